"""Benchmark (not a test): apply N ModelDeployments at once, time until all are Ready.

    python operator/bench.py [--count 50] [--tick 2]      (make bench-operator)

Runs on the test rig: the one of `make cluster-up` when MODELOPS_KUBECONFIG is
set, else a fresh one started here and stopped at the end. The operator runs as
a real local process (`kopf run --standalone`), as in tests/cluster. Prints the
wall time from the apply to the last Ready, the operator's peak memory (VmHWM
of its process) and its reconcile counters, as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.rig.control_plane import RUN_ROOT, Cluster, ControlPlane, find_tool, free_port  # noqa: E402


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


def scrape(port: int, metric: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        lines = resp.read().decode().splitlines()
    return sum(float(x.rsplit(" ", 1)[1]) for x in lines if x.startswith(metric))


def run(cluster: Cluster, count: int, tick: float, timeout: float) -> dict:
    cluster.kubectl("apply", "-f", ROOT / "manifests/crd/modeldeployments.modelops.io.yaml")
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/modeldeployments.modelops.io"
    )
    cluster.install_monitoring_crds()
    namespace = cluster.create_namespace(f"bench-operator-{os.getpid()}")
    health, metrics = free_port(), free_port()
    env = dict(cluster.env)
    env.update(
        MODELOPS_OPERATOR_TICK_SECONDS=str(tick),
        MODELOPS_OPERATOR_METRICS_PORT=str(metrics),
        MODELOPS_OPERATOR_CHART_PATH=str(ROOT / "charts/model-service"),
        PATH=f"{find_tool('helm').parent}{os.pathsep}{env.get('PATH', '')}",
    )
    log = tempfile.NamedTemporaryFile(prefix="bench-operator-", suffix=".log", delete=False)  # noqa: SIM115
    op = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("kopf")), "run", "--standalone",
            "--namespace", namespace, "-m", "modelops_operator.handlers",
            f"--liveness=http://127.0.0.1:{health}/healthz",
        ],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{health}/healthz", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or op.poll() is not None:
                    raise RuntimeError(f"operator did not start; log: {log.name}") from None
                time.sleep(0.3)
        baseline = peak_rss_mib(op.pid)
        items = [md(f"model-{i:03d}", namespace) for i in range(count)]
        started = time.monotonic()
        cluster.apply(items)
        applied = time.monotonic() - started
        ready_at: dict[str, float] = {}
        deadline = started + timeout
        while len(ready_at) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(ready_at)}/{count} Ready after {timeout}s; {log.name}")
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
            "reconciles": scrape(metrics, "modelops_operator_reconciles_total"),
            "reconcile_seconds_sum": round(
                scrape(metrics, "modelops_operator_reconcile_duration_seconds_sum"), 2
            ),
            "operator_log": log.name,
        }
    finally:
        op.send_signal(signal.SIGTERM)
        try:
            op.wait(20)
        except subprocess.TimeoutExpired:
            op.kill()
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
