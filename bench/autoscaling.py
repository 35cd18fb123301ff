"""Benchmark (not a test): how fast does a scale-up help? From a ModelDeployment's new size
(what KEDA's HPA writes to /scale after a load step) to the new replicas Ready on the real
node, pod start to Ready of the real image.

    flock /run/lock/modelops-node-queue.lock python bench/autoscaling.py [--steps 3] [--to 3]
    (make bench-autoscaling)

A rig whose only node is real (as tests/node): the control plane, kubelet, containerd and
the service image built by the Docker engine; the operator as a real local process. Each
step scales `md/wine` from 1 to `--to` replicas with `kubectl scale` (the /scale
subresource an autoscaler uses) and times, per step: the operator's reaction (scale -> the
Deployment's replicas), and for each new pod creation -> scheduled -> containers started
-> Ready (the kubelet's own timestamps); then back to 1. Prints one JSON object: every
step's figures and their medians.

`--control-loop` measures the part before the new size instead, on a KWOK rig (no node
needed, no lock): a real service under a load step (0 -> 11 requests/s, target 4 per
replica), a real Prometheus with the recording rules, KEDA (devstack.keda) and the
kube-controller-manager's HPA controller; the time from the load step to the
ModelDeployment's first new size and to 3. Its bound is KEDA's pollingInterval (15 s) plus
the HPA sync period (15 s) plus the rise of a one-minute rate.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from devstack.cluster import Cluster
from devstack.control_plane import ControlPlane
from devstack.images import build_images
from devstack.node import running_node_rig
from devstack.operator_process import running_operator
from devstack.paths import RUN_ROOT

DEPLOYMENT = "wine-model-service"


def md(namespace: str) -> dict:
    return {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "wine", "namespace": namespace},
        "spec": {
            "model": {
                "name": "wine",
                "version": "1",
                "image": "model-service:0.1.0",
                "artifact": "/models/wine/1",
            },
            "replicas": 1,
            "rollout": {"strategy": "RollingUpdate"},
        },
    }


def stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def ready_pods(cluster: Cluster, ns: str) -> list[dict]:
    pods = cluster.get("pods", "-n", ns, "-l", "app.kubernetes.io/instance=wine")["items"]
    return [
        p
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p.get("status", {}).get("conditions", [])
        )
    ]


def wait(probe, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def pod_times(pod: dict) -> dict[str, float]:
    """Seconds from the pod's creation to scheduled, started, Ready (kubelet timestamps)."""
    created = stamp(pod["metadata"]["creationTimestamp"])
    conds = {c["type"]: stamp(c["lastTransitionTime"]) for c in pod["status"]["conditions"]}
    started = min(
        stamp(cs["state"]["running"]["startedAt"]) for cs in pod["status"]["containerStatuses"]
    )
    return {
        "scheduled": conds["PodScheduled"] - created,
        "started": started - created,
        "ready": conds["Ready"] - created,
    }


def step(cluster: Cluster, ns: str, to: int) -> dict:
    before = {p["metadata"]["name"] for p in ready_pods(cluster, ns)}
    t0 = time.time()
    cluster.kubectl("scale", "md/wine", "-n", ns, f"--replicas={to}")
    wait(
        lambda: cluster.get("deployment", DEPLOYMENT, "-n", ns)["spec"]["replicas"] == to,
        "the operator to resize the Deployment",
    )
    reacted = time.time() - t0
    wait(lambda: len(ready_pods(cluster, ns)) >= to, f"{to} pods Ready")
    all_ready = time.time() - t0
    new = [p for p in ready_pods(cluster, ns) if p["metadata"]["name"] not in before]
    pods = [pod_times(p) for p in new]
    result = {
        "operator_reaction_s": round(reacted, 2),
        "scale_to_all_ready_s": round(all_ready, 2),
        "pods": [{k: round(v, 2) for k, v in p.items()} for p in pods],
    }
    cluster.kubectl("scale", "md/wine", "-n", ns, "--replicas=1")
    wait(lambda: len(cluster.get("pods", "-n", ns)["items"]) == 1, "back to one pod")
    return result


@contextlib.contextmanager
def one_pod_on_node(name: str, image: str) -> Iterator[tuple[Cluster, str]]:
    """The real-node rig with the operator as a local process, and md/wine at one Ready
    pod in namespace ``name``: (cluster, namespace)."""
    with running_node_rig(image) as (cluster, _):
        ns = cluster.create_namespace(name)
        with running_operator(cluster, Path(tempfile.mkdtemp(prefix=f"{name}-"))):
            cluster.apply(md(ns))
            wait(lambda: len(ready_pods(cluster, ns)) == 1, "the first pod Ready")
            yield cluster, ns


def run(steps: int, to: int) -> dict:
    image = build_images().service
    with one_pod_on_node("bench-autoscaling", image) as (cluster, ns):
        results = [step(cluster, ns, to) for _ in range(steps)]
    ready = [p["ready"] for r in results for p in r["pods"]]
    return {
        "scale": f"1 -> {to} replicas, {steps} steps, real node, image {image}",
        "steps": results,
        "median_operator_reaction_s": statistics.median(r["operator_reaction_s"] for r in results),
        "median_scale_to_all_ready_s": statistics.median(
            r["scale_to_all_ready_s"] for r in results
        ),
        "median_pod_created_to_ready_s": statistics.median(ready),
        "max_pod_created_to_ready_s": max(ready),
    }


def control_loop(steps: int) -> dict:
    """Load step -> the ModelDeployment's new size, through Prometheus, KEDA and the HPA."""
    from devstack.canary import Traffic, dataset_rows, start_prometheus
    from devstack.keda import running_keda
    from devstack.service_process import demo_model_dir, start_service

    plane = ControlPlane(RUN_ROOT / f"bench-control-loop-{os.getpid()}")
    cluster = plane.start()
    results = []
    try:
        ns = cluster.create_namespace("bench-control-loop")
        work = Path(tempfile.mkdtemp(prefix="bench-control-loop-"))
        service = start_service(demo_model_dir("wine", "1"), log_dir=work)
        prom = start_prometheus(work, [service.url], ns)
        try:
            with (
                running_keda(cluster, work / "keda"),
                running_operator(cluster, work / "operator", prometheus_url=prom.url),
            ):
                body = md(ns)
                body["spec"]["autoscaling"] = {
                    "minReplicas": 1, "maxReplicas": 5, "targetRequestsPerSecond": 4,
                    "scaleDownStabilization": "10s",
                }  # fmt: skip
                cluster.apply(body)

                def size() -> int:
                    return int(cluster.get("md", "wine", "-n", ns)["spec"]["replicas"])

                wait(lambda: cluster.get("hpa", "-n", ns)["items"], "KEDA's HPA")
                for _ in range(steps):
                    wait(lambda: size() == 1, "back to 1 replica", timeout=400)
                    time.sleep(20)  # the one-minute rate settles at 0 before the step
                    t0 = time.time()
                    with Traffic([service.url], dataset_rows("wine"), rate=11):
                        wait(lambda: size() >= 2, "the first scale-up")
                        first = time.time() - t0
                        wait(lambda: size() >= 3, "3 replicas")
                        three = time.time() - t0
                    results.append({"first_new_size_s": round(first, 1),
                                    "size_3_s": round(three, 1)})  # fmt: skip
        finally:
            prom.stop()
            service.stop()
    finally:
        plane.stop(remove=True)
    return {
        "control_loop": "load step 0 -> 11 req/s (target 4/replica) -> ModelDeployment size",
        "steps": results,
        "median_first_new_size_s": statistics.median(r["first_new_size_s"] for r in results),
        "median_size_3_s": statistics.median(r["size_3_s"] for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--to", type=int, default=3)
    parser.add_argument("--control-loop", action="store_true", help="the KWOK part (see above)")
    args = parser.parse_args()
    result = control_loop(args.steps) if args.control_loop else run(args.steps, args.to)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
