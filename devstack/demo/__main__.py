"""python -m devstack.demo: the no-Docker demo (make demo-local). --help lists the options."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from devstack.demo.story import NAMESPACE, Demo, Options


def parser() -> argparse.ArgumentParser:
    defaults = Options()
    p = argparse.ArgumentParser(
        prog="python -m devstack.demo",
        description="A canary promoted and one rolled back, on a real control plane with "
        "KWOK nodes, the operator and the real model services as local processes, "
        "judged by a local Prometheus. No Docker needed.",
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
        "is left running",
    )
    p.add_argument(
        "--rig-dir",
        type=Path,
        default=defaults.rig_dir,
        help="where the control plane runs or is started (default: that of make cluster-up, "
        "%(default)s; a rig already running there is used and left running)",
    )
    p.add_argument("--namespace", default=NAMESPACE, help="namespace of the demo (%(default)s)")
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
        help="seconds each wait may take before the demo gives up (%(default)s)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    options = Options(
        interactive=args.interactive and sys.stdin.isatty(),
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
