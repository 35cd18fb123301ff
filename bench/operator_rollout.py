"""Benchmark (not a test): apply N ModelDeployments at once, time until all are Ready.

    python bench/operator_rollout.py [--count 50] [--tick 2]      (make bench-operator)

Runs on the dev stack's control plane: the one of `make cluster-up` when
MODELOPS_KUBECONFIG is set, else a fresh one started here and stopped at the end.
The operator runs as a real local process (`python -m modelops_operator`, the
image's entry point, through devstack.operator_process), as in tests/cluster.
Prints the wall time from the apply to the last Ready, the operator's peak memory
(VmHWM of its process) and its reconcile counters, as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from devstack.cluster import Cluster
from devstack.control_plane import ControlPlane
from devstack.operator_process import running_operator
from devstack.paths import RUN_ROOT
from modelops_operator.metrics import RECONCILE_DURATION, RECONCILES


def md(name: str, namespace: str) -> dict:
    return {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {
                "name": "wine",
                "version": "1",
                "image": "model-service:0.1.0",
                "artifact": "/models/wine/1",
            },
            "replicas": 1,
        },
    }


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(cluster: Cluster, count: int, tick: float, timeout: float) -> dict:
    namespace = cluster.create_namespace(f"bench-operator-{os.getpid()}")
    workdir = Path(tempfile.mkdtemp(prefix="bench-operator-"))
    settings = {
        "MODELOPS_OPERATOR_NAMESPACES": json.dumps([namespace]),
        "MODELOPS_OPERATOR_TICK_SECONDS": str(tick),
        "MODELOPS_OPERATOR_RESYNC_SECONDS": "30",  # the operator's default
    }
    try:
        with running_operator(cluster, workdir, settings=settings) as op:
            assert op.pid is not None
            baseline = peak_rss_mib(op.pid)
            items = [md(f"model-{i:03d}", namespace) for i in range(count)]
            started = time.monotonic()
            cluster.apply(items)
            applied = time.monotonic() - started
            ready_at: dict[str, float] = {}
            deadline = started + timeout
            while len(ready_at) < count:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{len(ready_at)}/{count} Ready after {timeout}s; {op.log}")
                for item in cluster.get("modeldeployments", "-n", namespace)["items"]:
                    if (item.get("status") or {}).get("phase") == "Ready":
                        ready_at.setdefault(item["metadata"]["name"], time.monotonic() - started)
                time.sleep(0.5)
            times = sorted(ready_at.values())
            return {
                "modeldeployments": count,
                "tick_seconds": tick,
                "apply_seconds": round(applied, 2),
                "first_ready_seconds": round(times[0], 2),
                "median_ready_seconds": round(times[len(times) // 2], 2),
                "all_ready_seconds": round(times[-1], 2),
                "operator_peak_rss_mib": round(peak_rss_mib(op.pid), 1),
                "operator_idle_rss_mib_before": round(baseline, 1),
                "reconciles": op.metric(RECONCILES),
                "reconcile_seconds_sum": round(op.metric(f"{RECONCILE_DURATION}_sum"), 2),
                "operator_log": str(op.log),
            }
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--tick", type=float, default=2.0, help="operator tick_seconds")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    reuse = os.environ.get("MODELOPS_KUBECONFIG")
    if reuse:
        result = run(Cluster.from_kubeconfig(Path(reuse)), args.count, args.tick, args.timeout)
    else:
        plane = ControlPlane(RUN_ROOT / "bench-operator")
        cluster = plane.start()
        try:
            result = run(cluster, args.count, args.tick, args.timeout)
        finally:
            plane.stop()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
