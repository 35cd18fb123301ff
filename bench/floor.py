"""Goal 1 of issue 21: ours' CPU per request against the floor of its stack.

The floor of one request is the server's share, the CPU per request of the raw ASGI echo
(bench/peers/echo_app.py: same uvicorn settings, same body in, ours' answer out), plus the
model's share: one model call at the batch size ours actually reached in that cell (rows
per call, from its /metrics before and after each measurement), timed in this process
with the service's own ``LoadedModel.infer``, divided among the requests of the batch.
"""

from __future__ import annotations

import statistics
import time
import urllib.request
from pathlib import Path

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from modelops_service import catalog

GOAL_FLOOR_RATIO = 2.0  # ours at most this many times the floor, single-row and 100-row


def model_counters(metrics_url: str) -> tuple[float, float]:
    """Rows answered and model calls made so far, from a service's /metrics."""
    with urllib.request.urlopen(metrics_url, timeout=30) as answer:
        text = answer.read().decode()
    rows = calls = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == catalog.PREDICTIONS.name and sample.labels["outcome"] == "ok":
                rows += sample.value
            elif sample.name == f"{catalog.INFERENCE_DURATION.name}_count":
                calls += sample.value
    return rows, calls


def rows_per_call(before: tuple[float, float], after: tuple[float, float]) -> float | None:
    rows, calls = after[0] - before[0], after[1] - before[1]
    return rows / calls if calls > 0 else None


def model_ms_per_call(model_dir: Path, rows: np.ndarray, batch: int, calls: int = 200) -> float:
    """Median CPU milliseconds of one ``LoadedModel.infer`` call of ``batch`` rows (the
    sample rows repeated as needed), with one OpenMP thread like the service
    (MODELOPS_INFERENCE_THREADS=1): more threads would spin and wait on a busy machine."""
    from threadpoolctl import threadpool_limits

    from modelops_service.artifact import load_model

    model = load_model(model_dir, None)
    features = np.resize(rows, (max(1, batch), rows.shape[1])).astype(np.float64)
    samples = []
    with threadpool_limits(limits=1):
        for _ in range(10):
            model.infer(features)
        for _ in range(calls):
            start = time.process_time()
            model.infer(features)
            samples.append(time.process_time() - start)
    return statistics.median(samples) * 1000


def floor_ms(echo_ms: float, model_ms_call: float, rows: int, per_call: float) -> float:
    """The floor of one request of ``rows`` rows: the echo's CPU per request plus its share
    of a model call that answered ``per_call`` rows."""
    return echo_ms + model_ms_call * rows / max(per_call, rows)
