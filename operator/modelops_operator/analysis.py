"""Canary analysis: the PromQL it runs and the decision from the results (pure).

Only recording rules from alerts/ are queried (constants.RULE_*), so the
analysis, the alerts and the dashboards agree by construction. An empty vector,
NaN, +-Inf or too few requests is inconclusive: never a pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from modelops_operator.constants import (
    RULE_DRIFT,
    RULE_ERROR_RATIO,
    RULE_LATENCY_P95,
    RULE_REQUESTS,
)
from modelops_operator.models import Analysis, Figures
from modelops_operator.reasons import Reason


class Verdict(StrEnum):
    PASS = "Pass"
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"


# Figure keys, in the order they are judged and reported.
REQUESTS = "requests"
ERROR_RATE = "errorRate"
LATENCY_P95 = "latencyP95Seconds"
DRIFT = "driftScore"
FIGURE_KEYS = (REQUESTS, ERROR_RATE, LATENCY_P95, DRIFT)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _selector(namespace: str, model: str, version: str) -> str:
    return (
        f'{{namespace="{_escape(namespace)}",model="{_escape(model)}",'
        f'version="{_escape(version)}"}}'
    )


def window_seconds(interval_seconds: float) -> int:
    """The look-back of the analysis: one step interval, at least 30s (two rule evaluations)."""
    return max(30, math.ceil(interval_seconds))


def build_queries(namespace: str, model: str, version: str, window: int) -> dict[str, str]:
    """The exact PromQL per figure for the canary version (written into status)."""
    sel = _selector(namespace, model, version)
    return {
        # Requests seen in the window: mean request rate times the window length.
        REQUESTS: f"sum(avg_over_time({RULE_REQUESTS}{sel}[{window}s])) * {window}",
        ERROR_RATE: f"max(avg_over_time({RULE_ERROR_RATIO}{sel}[{window}s]))",
        LATENCY_P95: f"max(max_over_time({RULE_LATENCY_P95}{sel}[{window}s]))",
        DRIFT: f"max(max_over_time({RULE_DRIFT}{sel}[{window}s]))",
    }


def thresholds(spec: Analysis) -> dict[str, float | None]:
    return {
        "minRequests": float(spec.min_requests),
        "maxErrorRate": spec.max_error_rate,
        "maxLatencyP95Seconds": spec.max_latency_p95_seconds,
        "maxDriftScore": spec.max_drift_score,
    }


def scalar_from_vector(result: list[dict]) -> float | None:
    """The value of a one-sample instant vector; None for an empty vector.

    The queries aggregate with sum()/max(), so more than one sample means the
    query is not what this module built: take the largest, to err on failing.
    """
    values: list[float] = []
    for sample in result:
        raw = sample.get("value", [None, None])[1]
        try:
            values.append(float(raw))
        except (TypeError, ValueError):
            values.append(math.nan)
    if not values:
        return None
    if any(math.isnan(v) for v in values):
        return math.nan
    return max(values)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _fmt(value: float | None) -> str:
    if value is None:
        return "no data"
    if math.isnan(value):
        return "NaN"
    return f"{value:.4g}"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str
    message: str
    figures: dict[str, float | None] = field(default_factory=dict)

    def figures_model(self) -> Figures:
        def clean(v: float | None) -> float | None:
            return v if _finite(v) else None

        return Figures.model_validate({k: clean(v) for k, v in self.figures.items()})


def decide(figures: dict[str, float | None], spec: Analysis) -> Decision:
    """Pass, Fail or Inconclusive from the four figures (None = empty vector).

    Order: too little traffic is inconclusive before anything else (a ratio over a
    handful of requests proves nothing); then any finite figure over its
    threshold fails; then any missing or non-finite figure is inconclusive;
    only four finite figures within their thresholds pass.
    """
    requests = figures.get(REQUESTS)
    if not _finite(requests):
        return Decision(
            Verdict.INCONCLUSIVE,
            Reason.NO_TRAFFIC,
            f"request count is {_fmt(requests)} (need {spec.min_requests})",
            figures,
        )
    assert requests is not None
    if requests < spec.min_requests:
        return Decision(
            Verdict.INCONCLUSIVE,
            Reason.TOO_FEW_REQUESTS,
            f"requests {requests:.0f} < minRequests {spec.min_requests}",
            figures,
        )
    limits: list[tuple[str, str, float | None]] = [
        (ERROR_RATE, "maxErrorRate", spec.max_error_rate),
        (LATENCY_P95, "maxLatencyP95Seconds", spec.max_latency_p95_seconds),
        (DRIFT, "maxDriftScore", spec.max_drift_score),
    ]
    failures = []
    for key, limit_name, limit in limits:
        value = figures.get(key)
        if limit is not None and _finite(value) and value > limit:  # type: ignore[operator]
            failures.append(f"{key} {_fmt(value)} > {limit_name} {limit:g}")
    if failures:
        first_key = failures[0].split(" ", 1)[0]
        reason = {
            ERROR_RATE: Reason.ERROR_RATE_TOO_HIGH,
            LATENCY_P95: Reason.LATENCY_TOO_HIGH,
            DRIFT: Reason.DRIFT_TOO_HIGH,
        }[first_key]
        return Decision(Verdict.FAIL, reason, "; ".join(failures), figures)
    unknown = [
        f"{key} is {_fmt(figures.get(key))}"
        for key, _, limit in limits
        if limit is not None and not _finite(figures.get(key))
    ]
    if unknown:
        return Decision(Verdict.INCONCLUSIVE, Reason.NO_DATA, "; ".join(unknown), figures)
    within = ", ".join(
        f"{key} {_fmt(figures.get(key))} <= {name} {limit:g}"
        for key, name, limit in limits
        if limit is not None
    )
    return Decision(
        Verdict.PASS,
        Reason.WITHIN_THRESHOLDS,
        f"requests {requests:.0f} >= {spec.min_requests}; {within}",
        figures,
    )


def error_decision(message: str) -> Decision:
    """Prometheus unreachable or a query error: hold, never promote."""
    return Decision(Verdict.ERROR, Reason.PROMETHEUS_UNAVAILABLE, message, {})
