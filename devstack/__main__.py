"""`python -m devstack up|down|env|status`: the rig by hand (make cluster-up/-down).

The rig's state lives in MODELOPS_RIG_DIR (default .run/cluster): kubeconfig,
state.json with the PIDs, logs/. `up` is idempotent: a healthy running rig is
kept. Use it from a shell with `eval "$(python -m devstack env)"`; pytest
reuses it when MODELOPS_KUBECONFIG points at its kubeconfig.

`up --node real` starts a real node (devstack/node.py) instead of the KWOK nodes and
loads the `--load` images from the Docker engine into it; `down` tears it down and
reverts every host change it made, saying what it removed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from devstack import node
from devstack.cluster import Cluster
from devstack.control_plane import DEFAULT_NODES, ControlPlane
from devstack.paths import RUN_ROOT, DevstackError


def _run_dir() -> Path:
    return Path(os.environ.get("MODELOPS_RIG_DIR", RUN_ROOT / "cluster")).resolve()


def _exports(run_dir: Path) -> str:
    kubeconfig = run_dir / "kubeconfig"
    return f"export KUBECONFIG={kubeconfig}\nexport MODELOPS_KUBECONFIG={kubeconfig}\n"


def up(run_dir: Path, real_node: bool = False, images: Sequence[str] = ()) -> int:
    if ControlPlane.running(run_dir):
        Cluster.from_kubeconfig(run_dir / "kubeconfig").wait_ready(timeout=30)
        print(f"rig already running in {run_dir}", file=sys.stderr)
    else:
        if ControlPlane.recorded(run_dir):
            stopped = ControlPlane.stop_recorded(run_dir)
            print(f"cleared a half-dead rig: stopped {stopped or 'nothing'}", file=sys.stderr)
        print(f"starting the rig in {run_dir} ...", file=sys.stderr)
        plane = ControlPlane(run_dir, detach=True, node_count=0 if real_node else DEFAULT_NODES)
        try:
            cluster = plane.start()
            if real_node:
                print(f"starting the real node {node.NODE_NAME} ...", file=sys.stderr)
                started = node.RealNode(plane)
                started.start(cluster)
                cluster.wait_ready()
                _load(started, images)
        except BaseException:
            for line in node.release(run_dir):
                print(f"removed {line}", file=sys.stderr)
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


def _load(started: node.RealNode, images: Sequence[str]) -> None:
    for image in images:
        try:
            started.load_image(image)
            print(f"loaded {image} from the Docker engine into the node", file=sys.stderr)
        except node.NodeError as e:
            print(f"not loaded: {image} ({e}); `make images`, then run up again", file=sys.stderr)


def down(run_dir: Path) -> int:
    for line in node.release(run_dir):
        print(f"removed {line}")
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
    parser.add_argument(
        "--node", choices=["kwok", "real"], default="kwok", help="up: KWOK nodes or a real node"
    )
    parser.add_argument(
        "--load", action="append", default=[], metavar="IMAGE",
        help="up --node real: load this image from the Docker engine into the node (repeat)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    commands = {"down": down, "env": env, "status": status}
    try:
        if args.command == "up":
            return up(_run_dir(), real_node=args.node == "real", images=args.load)
        return commands[args.command](_run_dir())
    except DevstackError as e:
        print(f"rig: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
