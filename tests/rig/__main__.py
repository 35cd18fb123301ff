"""`python -m tests.rig up|down|env|status`: the rig by hand (make cluster-up/-down).

The rig's state lives in MODELOPS_RIG_DIR (default .run/cluster): kubeconfig,
state.json with the PIDs, logs/. `up` is idempotent: a healthy running rig is
kept. Use it from a shell with `eval "$(python -m tests.rig env)"`; pytest
reuses it when MODELOPS_KUBECONFIG points at its kubeconfig.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tests.rig.control_plane import RUN_ROOT, Cluster, ControlPlane, RigError, pid_alive


def _run_dir() -> Path:
    return Path(os.environ.get("MODELOPS_RIG_DIR", RUN_ROOT / "cluster")).resolve()


def _running(run_dir: Path) -> bool:
    recorded = ControlPlane.recorded_pids(run_dir)
    return bool(recorded) and all(pid_alive(pid, st) for _, pid, st in recorded)


def _exports(run_dir: Path) -> str:
    kubeconfig = run_dir / "kubeconfig"
    return f"export KUBECONFIG={kubeconfig}\nexport MODELOPS_KUBECONFIG={kubeconfig}\n"


def up(run_dir: Path) -> int:
    if _running(run_dir):
        Cluster.from_kubeconfig(run_dir / "kubeconfig").wait_ready(timeout=30)
        print(f"rig already running in {run_dir}", file=sys.stderr)
    else:
        if ControlPlane.recorded_pids(run_dir):
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
    if not _running(run_dir):
        print(f"no rig running in {run_dir}: run `make cluster-up`", file=sys.stderr)
        return 1
    sys.stdout.write(_exports(run_dir))
    return 0


def status(run_dir: Path) -> int:
    recorded = ControlPlane.recorded_pids(run_dir)
    if not recorded:
        print(f"no rig in {run_dir}")
        return 1
    for name, pid, st in recorded:
        print(f"{name:24} pid {pid:<8} {'running' if pid_alive(pid, st) else 'GONE'}")
    return 0 if _running(run_dir) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.rig", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "env", "status"])
    args = parser.parse_args(argv)
    commands = {"up": up, "down": down, "env": env, "status": status}
    try:
        return commands[args.command](_run_dir())
    except RigError as e:
        print(f"rig: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
