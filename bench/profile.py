"""Where ours spends its CPU per request, by component: a cProfile of the real service under
the benchmark's load (bench/peers/profiled_service.py, only the load window), split by the
cumulative time of the functions that do each job.

cProfile's own cost inflates Python calls more than C calls, so the shares are estimates;
the report scales them to the CPU per request measured without the profiler. msgspec
decodes and validates in one pass, so the two are one component here. cProfile sees the
event loop's thread only: /metrics (drift scores computed on scrape) runs in a worker
thread, so its small share is spread over the others when scaled.
"""

from __future__ import annotations

import os
import pstats
import signal
import time
from pathlib import Path

from bench.drive import Scraper, wrk
from bench.model import Model
from bench.servers import BENCH, ours, start, stop, wait_ready

ENV = {k: v for k, v in os.environ.items() if not k.startswith("MODELOPS_")}

# (component, file suffix, function names): cumulative time of these functions, which
# never call each other, so their sums add up.
ENTRY_POINTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("decode + validate", "modelops_service/decoding.py", ("decode_v1", "decode_v2")),
    ("model call", "modelops_service/artifact.py", ("infer",)),
    ("encode", "modelops_service/routes/common.py", ("json_response",)),
    ("encode", "modelops_service/routes/v1.py", ("answer",)),
    (
        "metrics",
        "modelops_service/telemetry.py",
        ("observe", "started", "flush", "predicted", "request_rows", "input_errors"),
    ),
    ("drift window", "modelops_service/window.py", ("append",)),
    ("request log", "modelops_service/middleware.py", ("_log",)),
)
BATCHER = "modelops_service/predictor.py"  # the batcher's own time (not the model call)
REST = "server, framework, event loop (the rest)"
COMPONENTS = (*dict.fromkeys(c for c, _, _ in ENTRY_POINTS), "batch", REST)


def components(profile: Path) -> dict[str, float]:
    """Each component's share of the profiled CPU time (they sum to 1)."""
    stats = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    total = sum(tt for _, _, tt, _, _ in stats.values())
    shares = dict.fromkeys(COMPONENTS, 0.0)
    for (file, _, name), (_, _, tt, ct, _) in stats.items():
        for component, suffix, names in ENTRY_POINTS:
            if file.endswith(suffix) and name in names:
                shares[component] += ct
        if file.endswith(BATCHER):
            shares["batch"] += tt
    shares[REST] = max(total - sum(shares.values()), 0.0)
    return {c: s / total for c, s in shares.items()} if total else shares


def profile_ours(
    model: Model,
    run_dir: Path,
    bodies: dict[int, Path],
    connections: int,
    seconds: float,
    server_cpu: int | None,
    load_cpu: int | None,
) -> dict[str, dict[str, float]]:
    """Component shares of ours at each payload (rows per request -> shares), from one
    profiled service per payload under ``connections`` clients for ``seconds``."""
    found: dict[str, dict[str, float]] = {}
    for n, body in bodies.items():
        server = ours(model, run_dir, ENV, f"ours:profile-{n}", {})
        server.command[1:3] = [str(BENCH / "peers/profiled_service.py")]
        out = run_dir / f"profile-{n}.prof"
        server.env["BENCH_PROFILE_FILE"] = str(out)
        start(server, server_cpu)
        try:
            wait_ready(server, 180)
            assert server.proc is not None
            wrk(server.predict_url, body, connections, 2, load_cpu)  # warm-up, not profiled
            server.proc.send_signal(signal.SIGUSR1)
            with Scraper([server.metrics_url or ""], 1.0):
                wrk(server.predict_url, body, connections, seconds, load_cpu)
            server.proc.send_signal(signal.SIGUSR2)
            deadline = time.monotonic() + 30
            while not out.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            stop(server)
        found[str(n)] = components(out)
    return found
