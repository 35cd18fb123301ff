"""python -m devstack.demo: the demo of make demo-local. --help lists the options."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from devstack.demo.stage import Options
from devstack.demo.story import Demo


def parser() -> argparse.ArgumentParser:
    defaults = Options()
    p = argparse.ArgumentParser(
        prog="python -m devstack.demo",
        description="A canary promoted and two rolled back, judged by Prometheus: on a real "
        "node running the images, with prometheus-operator and the operator in-cluster, where "
        "this machine can run containers; else on KWOK nodes with the operator, the model "
        "services and Prometheus as local processes (no Docker needed).",
    )
    p.add_argument(
        "--node",
        choices=["auto", "real", "kwok"],
        default=defaults.node,
        help="the stage: a real node, KWOK nodes, or (auto, the default) the real node where "
        "this machine can run it (root, the node's tools, a Docker engine) and KWOK otherwise",
    )
    p.add_argument(
        "--yes",
        "--non-interactive",
        dest="interactive",
        action="store_false",
        help="do not pause between the acts (also the default when stdin is not a terminal)",
    )
    p.add_argument(
        "--keep-cluster",
        action="store_true",
        help="leave the control plane running at the end (make cluster-down stops it); the "
        "operator, services, Prometheus and traffic are always stopped",
    )
    p.add_argument(
        "--kubeconfig",
        type=Path,
        help="use this running control plane (e.g. a test rig) instead of starting one; it "
        "is left running (KWOK stage)",
    )
    p.add_argument(
        "--rig-dir",
        type=Path,
        default=defaults.rig_dir,
        help="where the control plane runs or is started (default: that of make cluster-up, "
        "%(default)s; a rig already running there is used and left running)",
    )
    p.add_argument(
        "--namespace", default=defaults.namespace, help="namespace of the demo (%(default)s)"
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=defaults.workdir,
        help="logs, Prometheus data, state; wiped at start (%(default)s)",
    )
    p.add_argument("--summary", type=Path, help="write the outcome and the PIDs here as JSON")
    p.add_argument(
        "--traffic-rate",
        type=float,
        default=defaults.traffic_rate,
        help="requests/s per model (%(default)s)",
    )
    p.add_argument(
        "--act-timeout",
        type=float,
        default=defaults.act_timeout,
        help="seconds each wait may take before the demo gives up (%(default)s); a canary's "
        "at least as long as the operator may take to decide it: steps x (interval + "
        "analysis deadline) + 1m",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    options = Options(
        interactive=args.interactive and sys.stdin.isatty(),
        node=args.node,
        keep_cluster=args.keep_cluster,
        kubeconfig=args.kubeconfig,
        rig_dir=args.rig_dir,
        namespace=args.namespace,
        workdir=args.workdir,
        summary=args.summary,
        traffic_rate=args.traffic_rate,
        act_timeout=args.act_timeout,
    )
    return Demo(options).run()


if __name__ == "__main__":
    sys.exit(main())
