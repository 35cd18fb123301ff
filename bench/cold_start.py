"""Benchmark (not a test): cold start, issue 21 goal 3 (at most 0.75x the faster peer).

    flock /run/lock/modelops-node-queue.lock .venv/bin/python bench/cold_start.py [--reps 5]
    flock /run/lock/modelops-node-queue.lock .venv/bin/python bench/cold_start.py --process

Default, on the real node: pod created -> Ready of the service image (make images), the way
a rollout or a scale-up starts it. A rig whose only node is real (devstack.node, as
tests/node and bench/autoscaling.py), the operator as a local process, `md/wine` at one
replica; each repetition deletes the pod and times its replacement from the kubelet's own
timestamps (created, scheduled, containers started, Ready; one-second resolution). The
peers have no images here (no registry reachable, and the project builds none for them),
so on the node only ours is measured.

`--process`: process start -> ready on this machine for ours, MLServer and KServe (the
servers of `make bench`, bench/servers.py, one at a time, pinned to one CPU): Popen to the
first 200 of each one's readiness URL, polled every 20 ms. Prints each one's median, and
ours over the faster peer's with PASS at most GOAL_RATIO.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.autoscaling import one_pod_on_node, pod_times, ready_pods, wait
from bench.model import load_model
from bench.servers import PEERS, build_servers, start, stop
from devstack.images import build_images
from devstack.processes import http_status

GOAL_RATIO = 0.75  # ours' cold start at most this many times the faster peer's


def on_node(reps: int) -> dict:
    image = build_images().service
    with one_pod_on_node("bench-cold-start", image) as (cluster, ns):
        starts = []
        for _ in range(reps):
            old = ready_pods(cluster, ns)[0]["metadata"]["name"]
            cluster.kubectl("delete", "pod", old, "-n", ns, "--wait=false")
            wait(
                lambda old=old: any(p["metadata"]["name"] != old for p in ready_pods(cluster, ns)),
                "the replacement pod Ready",
            )
            new = next(p for p in ready_pods(cluster, ns) if p["metadata"]["name"] != old)
            starts.append({k: round(v, 2) for k, v in pod_times(new).items()})
            print(f">> pod created -> {starts[-1]}", flush=True)
    return {
        "cold_start": f"pod created -> Ready, real node, image {image}, {reps} pods",
        "pods": starts,
        "median_pod_created_to_ready_s": statistics.median(s["ready"] for s in starts),
        "median_created_to_started_s": statistics.median(s["started"] for s in starts),
        "peers": "not measured on the node: no image of MLServer or KServe here",
    }


def process_starts(reps: int, model_dir: Path, cpu: int | None) -> dict:
    model = load_model(model_dir.resolve())
    run_dir = Path(tempfile.mkdtemp(prefix="bench-cold-start-"))
    seconds: dict[str, list[float]] = {}
    for rep in range(reps):
        for server in build_servers(model, run_dir, ["ours", *PEERS], {}):
            started = time.monotonic()
            start(server, cpu)
            try:
                assert server.proc is not None
                while http_status(server.ready_url) != 200:
                    if server.proc.poll() is not None or time.monotonic() - started > 180:
                        raise SystemExit(f"{server.key} did not become ready: see {server.log}")
                    time.sleep(0.02)
                seconds.setdefault(server.key, []).append(round(time.monotonic() - started, 3))
            finally:
                stop(server)
            print(f">> rep {rep + 1}/{reps} {server.key}: {seconds[server.key][-1]:.2f} s")
    medians = {key: statistics.median(values) for key, values in seconds.items()}
    faster = min(PEERS, key=lambda p: medians[p])
    ratio = medians["ours"] / medians[faster]
    return {
        "cold_start": f"process start -> ready, {reps} reps, one at a time on CPU {cpu}",
        "seconds": seconds,
        "median_s": medians,
        "ratio_to_faster_peer": round(ratio, 3),
        "verdict": f"[{'PASS' if ratio <= GOAL_RATIO else 'FAIL'}] ours {medians['ours']:.2f} s "
        f"<= {GOAL_RATIO}x {faster} ({medians[faster]:.2f} s): {ratio:.2f}x",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--process", action="store_true", help="process start, ours and peers")
    parser.add_argument("--model", type=Path, default=Path("models/wine/1"))
    args = parser.parse_args()
    if args.process:
        cpu = min(os.sched_getaffinity(0))
        result = process_starts(args.reps, args.model, cpu)
    else:
        result = on_node(args.reps)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
