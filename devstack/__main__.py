"""`python -m devstack up|down|env|status`: the rig by hand (make cluster-up/-down).

The rig's state lives in MODELOPS_RIG_DIR (default .run/cluster): kubeconfig,
state.json with the PIDs, logs/. `up` is idempotent: a healthy running rig is
kept. Use it from a shell with `eval "$(python -m devstack env)"`; pytest
reuses it when MODELOPS_KUBECONFIG points at its kubeconfig.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from devstack.cluster import Cluster
from devstack.control_plane import ControlPlane
from devstack.paths import RUN_ROOT, DevstackError


def _run_dir() -> Path:
    return Path(os.environ.get("MODELOPS_RIG_DIR", RUN_ROOT / "cluster")).resolve()


def _exports(run_dir: Path) -> str:
    kubeconfig = run_dir / "kubeconfig"
    return f"export KUBECONFIG={kubeconfig}\nexport MODELOPS_KUBECONFIG={kubeconfig}\n"


def up(run_dir: Path) -> int:
    if ControlPlane.running(run_dir):
        Cluster.from_kubeconfig(run_dir / "kubeconfig").wait_ready(timeout=30)
        print(f"rig already running in {run_dir}", file=sys.stderr)
    else:
        if ControlPlane.recorded(run_dir):
            stopped = ControlPlane.stop_recorded(run_dir)
            print(f"cleared a half-dead rig: stopped {stopped or 'nothing'}", file=sys.stderr)
        print(f"starting the rig in {run_dir} ...", file=sys.stderr)
        plane = ControlPlane(run_dir, detach=True)
        try:
            cluster = plane.start()
        except BaseException:
            plane.stop(remove=False)
            print(f"start failed; logs kept in {run_dir / 'logs'}", file=sys.stderr)
            raise
        print(
            f"API server {cluster.server}, nodes {', '.join(cluster.nodes)}; "
            f"logs in {run_dir / 'logs'}; stop with `make cluster-down`",
            file=sys.stderr,
        )
    sys.stdout.write(_exports(run_dir))
    return 0


def down(run_dir: Path) -> int:
    stopped = ControlPlane.stop_recorded(run_dir)
    print(f"stopped {', '.join(stopped)}" if stopped else f"no rig running in {run_dir}")
    return 0


def env(run_dir: Path) -> int:
    if not ControlPlane.running(run_dir):
        print(f"no rig running in {run_dir}: run `make cluster-up`", file=sys.stderr)
        return 1
    sys.stdout.write(_exports(run_dir))
    return 0


def status(run_dir: Path) -> int:
    recorded = ControlPlane.recorded(run_dir)
    if not recorded:
        print(f"no rig in {run_dir}")
        return 1
    for p in recorded:
        print(f"{p.name:24} pid {p.pid:<8} {'running' if p.alive() else 'GONE'}")
    return 0 if ControlPlane.running(run_dir) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "env", "status"])
    args = parser.parse_args(argv)
    commands = {"up": up, "down": down, "env": env, "status": status}
    try:
        return commands[args.command](_run_dir())
    except DevstackError as e:
        print(f"rig: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
