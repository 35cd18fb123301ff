"""Goal 1 of issue 21: ours' CPU per request against the floor of its stack.

The floor of one request is the server's share, the CPU per request of the raw ASGI echo
(bench/peers/echo_app.py: same uvicorn settings, same body in, ours' answer out), plus the
model's share: one model call at the batch size ours actually reached in that cell, divided
among the requests of the batch. Both come from ours' /metrics before and after each
measurement: rows per call, and the time of a call as the service measured it around each
call (its inference histogram), scaled by the core share ours got (a call preempted by
another process would count that process's time).

The server's share is the echo's at ours' pace. An echo answering as fast as it can runs at
several times ours' requests/s, and per request the same server costs less at a faster pace
(measured, bench/README.md "Goal 1: the server's share at ours' pace": 0.022 ms at 44,600
req/s, 0.040 ms at 10,000, ours' pace). So the echo also runs with a filler, CPU spent on
each request before answering, that makes it cost what ours costs (``next_filler_ms``: ours'
CPU per request less the echo's share, once from its own pace and once more from the share
measured with that filler), and its share is then its CPU per request less the filler
(``paced_share_ms``). The share at the echo's own pace is still printed.

Why the call as the service timed it, not a call timed alone: a model call in a loop of
nothing but model calls keeps the model's trees in the CPU's caches, which no server does.
Measured (bench/README.md, "Goal 1: the model's share"): 16 rows of wine/1 cost 0.52 ms
alone, 0.70-0.72 ms inside ours and inside a raw ASGI app that calls the model every 16th
request. The call alone (``model_ms_per_call``) is still measured and printed beside it.
"""

from __future__ import annotations

import statistics
import time
import urllib.request
from pathlib import Path
from typing import NamedTuple

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from modelops_service import catalog

GOAL_FLOOR_RATIO = 2.0  # ours at most this many times the floor, single-row and 100-row


class ModelCounters(NamedTuple):
    """A service's model counters so far, from its /metrics."""

    rows: float  # rows answered
    calls: float  # model calls made
    seconds: float  # time spent in those calls, as the service measured it


def model_counters(metrics_url: str) -> ModelCounters:
    with urllib.request.urlopen(metrics_url, timeout=30) as answer:
        text = answer.read().decode()
    rows = calls = seconds = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == catalog.PREDICTIONS.name and sample.labels["outcome"] == "ok":
                rows += sample.value
            elif sample.name == f"{catalog.INFERENCE_DURATION.name}_count":
                calls += sample.value
            elif sample.name == f"{catalog.INFERENCE_DURATION.name}_sum":
                seconds += sample.value
    return ModelCounters(rows, calls, seconds)


def rows_per_call(before: ModelCounters, after: ModelCounters) -> float | None:
    rows, calls = after.rows - before.rows, after.calls - before.calls
    return rows / calls if calls > 0 else None


def ms_per_call_in_service(
    before: ModelCounters, after: ModelCounters, core_share: float
) -> float | None:
    """Milliseconds of one model call between two scrapes, as the service timed it (wall
    time), times the share of a core the service got meanwhile (at most 1): on a core the
    service had to itself the two are equal; on a shared one, wall time counts the other
    process's turns too."""
    calls = after.calls - before.calls
    if calls <= 0:
        return None
    return (after.seconds - before.seconds) / calls * 1000 * min(core_share, 1.0)


def model_ms_per_call(model_dir: Path, rows: np.ndarray, batch: int, calls: int = 200) -> float:
    """Median CPU milliseconds of one ``LoadedModel.infer`` call of ``batch`` rows alone, in a
    loop of calls (the sample rows repeated as needed), with one OpenMP thread like the service
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


def model_share_ms(model_ms_call: float, rows: int, per_call: float) -> float:
    """A request of ``rows`` rows' share of a model call that answered ``per_call`` rows (a
    request larger than the batches counted is a call of its own, at least)."""
    return model_ms_call * rows / max(per_call, rows)


def floor_ms(echo_ms: float, model_ms_call: float, rows: int, per_call: float) -> float:
    """The floor of one request of ``rows`` rows: the echo's CPU per request plus its share
    of a model call that answered ``per_call`` rows."""
    return echo_ms + model_share_ms(model_ms_call, rows, per_call)


def next_filler_ms(ours_ms: float, share_ms: float) -> float:
    """The filler that makes the echo cost, per request, what ours costs: ours' CPU per
    request less the echo's server share as last measured (none below zero)."""
    return max(ours_ms - share_ms, 0.0)


def paced_share_ms(cpu_ms: float, filler_ms: float) -> float:
    """The server's share of a request of the echo run with a filler."""
    return max(cpu_ms - filler_ms, 0.0)
