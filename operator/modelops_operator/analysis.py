"""Canary analysis: the PromQL it runs and the decision from the results (pure).

Only recording rules from alerts/ are queried (constants.RULE_*), so the
analysis, the alerts and the dashboards agree by construction. An empty vector,
NaN, +-Inf or too few requests is inconclusive: never a pass.

The canary's own figures (the absolute gates) cover the whole window. Its comparison
with the stable covers only the instants of the window at which both versions had served
for a whole rule range (RULE_RANGE) before, so that both sides average the same seconds
of traffic: a canary whose pods started mid-window, or a stable that stopped, would
otherwise be judged against other traffic (another hour's rows, another mix of classes).
A step that sends the stable nothing (100%) has nothing to compare with: the absolute
gates alone judge it, the steps before it having passed the relative ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from modelops_operator.constants import (
    RULE_CLASS_SHARE,
    RULE_DRIFT,
    RULE_ERROR_RATIO,
    RULE_LATENCY_P95,
    RULE_PREDICTION_BUCKETS,
    RULE_PREDICTION_MEAN,
    RULE_PREDICTIONS,
    RULE_RANGE,
    RULE_REQUESTS,
)
from modelops_operator.models import Analysis, Compare, Figures
from modelops_operator.reasons import Reason


class Verdict(StrEnum):
    PASS = "Pass"
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"


# Figure keys, in the order they are judged and reported. The canary's own figures,
# the stable version's over the same seconds, and what compares the two.
REQUESTS = "requests"
ERROR_RATE = "errorRate"
LATENCY_P95 = "latencyP95Seconds"
DRIFT = "driftScore"
PREDICTION_MEAN = "predictionMean"
STABLE_REQUESTS = "stableRequests"
STABLE_ERROR_RATE = "stableErrorRate"
STABLE_LATENCY_P95 = "stableLatencyP95Seconds"
STABLE_PREDICTION_MEAN = "stablePredictionMean"
TRAFFIC_SHARE = "trafficSharePercent"
ERROR_RATE_DELTA = "errorRateDelta"
LATENCY_P95_RATIO = "latencyP95Ratio"
LATENCY_P95_INCREASE = "latencyP95IncreaseSeconds"
PREDICTION_SHIFT = "predictionShift"
# How far predictionShift can be trusted: the rows behind each side, a regressor's spread,
# and the standard error of the shift they give.
PREDICTED_ROWS = "predictedRows"
STABLE_PREDICTED_ROWS = "stablePredictedRows"
PREDICTION_STDDEV = "predictionStdDev"
STABLE_PREDICTION_STDDEV = "stablePredictionStdDev"
PREDICTION_SHIFT_SE = "predictionShiftStandardError"
# The seconds the comparison covers (both versions served), and the canary's figures in them.
SHARED_SECONDS = "sharedSeconds"
SHARED_REQUESTS = "sharedRequests"
SHARED_ERROR_RATE = "sharedErrorRate"
SHARED_LATENCY_P95 = "sharedLatencyP95Seconds"
# Queries answered by a vector per class (classifiers) or per bucket (a regressor's
# prediction histogram), not by one number.
CLASS_SHARES = "classShares"
STABLE_CLASS_SHARES = "stableClassShares"
PREDICTION_BUCKETS = "predictionBuckets"
STABLE_PREDICTION_BUCKETS = "stablePredictionBuckets"
VECTOR_KEYS = frozenset(
    {CLASS_SHARES, STABLE_CLASS_SHARES, PREDICTION_BUCKETS, STABLE_PREDICTION_BUCKETS}
)


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


# Seconds between the samples a shared-seconds subquery takes of the recording rules: finer
# than any rule evaluation interval worth using, so every evaluation is seen.
RESOLUTION_SECONDS = 5


def _own_queries(sel: str, window: int) -> dict[str, str]:
    """The canary's absolute figures, over the whole window."""
    return {
        # Requests seen in the window: mean request rate times the window length.
        REQUESTS: f"sum(avg_over_time({RULE_REQUESTS}{sel}[{window}s])) * {window}",
        ERROR_RATE: f"max(avg_over_time({RULE_ERROR_RATIO}{sel}[{window}s]))",
        LATENCY_P95: f"max(max_over_time({RULE_LATENCY_P95}{sel}[{window}s]))",
        DRIFT: f"max(max_over_time({RULE_DRIFT}{sel}[{window}s]))",
    }


def _served(sel: str) -> str:
    """The instants at which a version serves and had served a rule range before (its rate
    rules then average its own traffic of the range, as the other version's do)."""
    return f"({RULE_REQUESTS}{sel} > 0 and on() {RULE_REQUESTS}{sel} offset {RULE_RANGE} > 0)"


def _both_served(sel: str, other: str) -> str:
    return f"{_served(sel)} and on() {_served(other)}"


def _sampled(window: int) -> str:
    """The subquery range: the window, sampled every RESOLUTION_SECONDS."""
    return f"[{window}s:{RESOLUTION_SECONDS}s]"


def _shared_queries(sel: str, other: str, window: int) -> dict[str, str]:
    """One version's figures over the instants of the window at which it and `other` had
    both served a rule range: each rule sampled every RESOLUTION_SECONDS (a subquery)."""

    def over(fn: str, rule: str) -> str:
        return f"{fn}(({rule}{sel} and on() {_both_served(sel, other)}){_sampled(window)})"

    return {
        # requests served in those seconds: the rate summed over its samples, times their spacing
        REQUESTS: f"sum({over('sum_over_time', RULE_REQUESTS)}) * {RESOLUTION_SECONDS}",
        ERROR_RATE: f"max({over('avg_over_time', RULE_ERROR_RATIO)})",
        LATENCY_P95: f"max({over('max_over_time', RULE_LATENCY_P95)})",
        PREDICTION_MEAN: f"max({over('avg_over_time', RULE_PREDICTION_MEAN)})",
        CLASS_SHARES: f"avg by (class) ({over('avg_over_time', RULE_CLASS_SHARE)})",
        # rows predicted, as the requests; the buckets' shape gives the spread
        PREDICTED_ROWS: f"sum({over('sum_over_time', RULE_PREDICTIONS)}) * {RESOLUTION_SECONDS}",
        PREDICTION_BUCKETS: f"sum by (le) ({over('avg_over_time', RULE_PREDICTION_BUCKETS)})",
    }


# The canary's side of the comparison: keys apart from its own figures over the window
_SHARED_KEYS = {REQUESTS: SHARED_REQUESTS, ERROR_RATE: SHARED_ERROR_RATE,
                LATENCY_P95: SHARED_LATENCY_P95}  # fmt: skip
_STABLE_KEYS = {
    REQUESTS: STABLE_REQUESTS,
    ERROR_RATE: STABLE_ERROR_RATE,
    LATENCY_P95: STABLE_LATENCY_P95,
    PREDICTION_MEAN: STABLE_PREDICTION_MEAN,
    CLASS_SHARES: STABLE_CLASS_SHARES,
    PREDICTED_ROWS: STABLE_PREDICTED_ROWS,
    PREDICTION_BUCKETS: STABLE_PREDICTION_BUCKETS,
}


def build_queries(
    namespace: str,
    model: str,
    version: str,
    stable_model: str,
    stable_version: str,
    window: int,
    *,
    compared: bool = True,
) -> dict[str, str]:
    """The exact PromQL per figure (into status): the canary's own over the window, then
    both versions' over the instants of it at which both had served (see the module's doc).

    Each side by its own model name: a release may rename the model, and the stable's
    series keep the name it was deployed with.
    `compared` False (the stable serves nothing at this step): the canary's own alone.
    """
    canary = _selector(namespace, model, version)
    stable = _selector(namespace, stable_model, stable_version)
    own = _own_queries(canary, window)
    if not compared:
        return own
    shared = _shared_queries(canary, stable, window)
    both = _both_served(canary, stable)
    return {
        **own,
        SHARED_SECONDS: f"count_over_time(({both}){_sampled(window)}) * {RESOLUTION_SECONDS}",
        **{_SHARED_KEYS.get(k, k): q for k, q in shared.items()},
        **{_STABLE_KEYS[k]: q for k, q in _shared_queries(stable, canary, window).items()},
    }


def thresholds(spec: Analysis, compare: Compare) -> dict[str, float | None]:
    return {
        "minRequests": float(spec.min_requests),
        "maxErrorRate": spec.max_error_rate,
        "maxLatencyP95Seconds": spec.max_latency_p95_seconds,
        "maxDriftScore": spec.max_drift_score,
        "maxErrorRateDelta": compare.max_error_rate_delta,
        "maxLatencyP95Ratio": compare.max_latency_p95_ratio,
        "minLatencyP95IncreaseSeconds": compare.min_latency_p95_increase_seconds,
        "maxPredictionShift": compare.max_prediction_shift,
        "minPredictionShiftStandardErrors": compare.min_prediction_shift_standard_errors,
    }


def scalar_from_vector(result: list[dict]) -> float | None:
    """The value of a one-sample instant vector; None for an empty vector.

    The queries aggregate with sum()/max(), so more than one sample means the
    query is not what this module built: take the largest, to err on failing.
    """
    values = [_sample_value(sample) for sample in result]
    if not values:
        return None
    if any(math.isnan(v) for v in values):
        return math.nan
    return max(values)


def shares_from_vector(result: list[dict], label: str = "class") -> dict[str, float]:
    """{class: share} of a vector by class (empty for an empty vector); by `label` else."""
    return {
        str((sample.get("metric") or {}).get(label, "")): _sample_value(sample) for sample in result
    }


def _sample_value(sample: dict) -> float:
    raw = sample.get("value", [None, None])[1]
    try:
        return float(raw)
    except (TypeError, ValueError):
        return math.nan


def class_distance(canary: dict[str, float], stable: dict[str, float]) -> float | None:
    """Total variation distance between two class-share vectors (0 same .. 1 disjoint).

    None when either side is empty; NaN when a share is not finite. A class one
    side never predicts counts as share 0 there.
    """
    if not canary or not stable:
        return None
    shares = [*canary.values(), *stable.values()]
    if not all(math.isfinite(v) for v in shares):
        return math.nan
    classes = canary.keys() | stable.keys()
    return 0.5 * sum(abs(canary.get(c, 0.0) - stable.get(c, 0.0)) for c in classes)


def _ratio(num: float | None, den: float | None) -> float | None:
    """num / den; None when either is missing, NaN when undefined (a zero or NaN side)."""
    if num is None or den is None:
        return None
    if not (math.isfinite(num) and math.isfinite(den)) or den == 0:
        return math.nan
    return num / den


def _difference(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return a - b


def prediction_shift(
    mean: float | None,
    stable_mean: float | None,
    shares: dict[str, float],
    stable_shares: dict[str, float],
) -> float | None:
    """How far the canary's predictions moved from the stable's.

    A regressor (both means finite): the relative difference of the mean
    predictions, |canary - stable| / |stable|. A classifier (class shares on
    both sides): the total variation distance between the class shares.
    Otherwise None (no data), never 0.
    """
    if _finite(mean) and _finite(stable_mean):
        ratio = _ratio(_difference(mean, stable_mean), stable_mean)
        return abs(ratio) if _finite(ratio) else ratio  # type: ignore[arg-type]
    if shares or stable_shares:
        return class_distance(shares, stable_shares)
    if any(m is not None and math.isnan(m) for m in (mean, stable_mean)):
        return math.nan  # a regressor whose window held no predictions
    return None


def histogram_stddev(cumulative: dict[str, float]) -> float | None:
    """The standard deviation of a classic histogram's observations, from its cumulative
    bucket counts (le -> count, any scale: rates will do). None for no buckets; NaN without
    observations or with a count or bound that is not a number.

    The service's prediction histogram has a sum but no sum of squares, so the spread can
    only come from the buckets: each observation counts at its bucket's midpoint (the lowest
    bucket's at its upper bound, the +Inf bucket's at the highest finite bound). That errs
    by about a bucket width squared over 12 in the variance (Sheppard), a few percent at the
    demo models' widths, and on the side of a larger spread: a shift looks less certain.
    """
    if not cumulative:
        return None
    try:
        buckets = sorted((float(le), count) for le, count in cumulative.items())
    except ValueError:
        return math.nan
    finite = [bound for bound, _ in buckets if math.isfinite(bound)]
    if not finite or not all(math.isfinite(count) for _, count in buckets):
        return math.nan
    points: list[tuple[float, float]] = []  # (value, observations)
    lower, below = None, 0.0
    for bound, count in buckets:
        value = finite[-1] if math.isinf(bound) else bound if lower is None else (lower + bound) / 2
        points.append((value, max(0.0, count - below)))  # rates of two scrapes may jitter
        lower, below = bound, max(below, count)
    total = sum(n for _, n in points)
    if total <= 0:
        return math.nan
    mean = sum(v * n for v, n in points) / total
    return math.sqrt(sum(n * (v - mean) ** 2 for v, n in points) / total)


def mean_shift_standard_error(
    stddev: float | None,
    stable_stddev: float | None,
    rows: float | None,
    stable_rows: float | None,
    stable_mean: float | None,
) -> float | None:
    """The standard error of |mean_c - mean_s| / |mean_s| (a regressor's predictionShift).

    The two windows are independent samples: the difference of their means has the standard
    error sqrt(sd_c^2 / n_c + sd_s^2 / n_s), taken relative to the stable's mean like the
    shift. None when a figure is missing; NaN when one is not finite, fewer than two rows
    on a side (no spread to speak of), or a zero stable mean.
    """
    known = [f for f in (stddev, stable_stddev, rows, stable_rows, stable_mean) if f is not None]
    if len(known) < 5:
        return None
    sd_c, sd_s, n_c, n_s, mean_s = known
    if not all(math.isfinite(f) for f in known) or n_c < 2 or n_s < 2 or mean_s == 0:
        return math.nan
    return math.sqrt(sd_c**2 / n_c + sd_s**2 / n_s) / abs(mean_s)


def class_shift_standard_error(
    shares: dict[str, float],
    stable_shares: dict[str, float],
    rows: float | None,
    stable_rows: float | None,
) -> float | None:
    """The standard error of the total variation distance between two class-share vectors
    (a classifier's predictionShift), by the delta method.

    With s_k the sign of share_c[k] - share_s[k], the distance is 1/2 sum s_k (share_c[k] -
    share_s[k]), and the shares of n rows (a multinomial) give sum s_k share[k] the variance
    (sum s_k^2 share[k] - (sum s_k share[k])^2) / n on each side; the sides are independent.
    None when a side is missing; NaN when a figure is not finite or a side has fewer than
    two rows.
    """
    if not shares or not stable_shares or rows is None or stable_rows is None:
        return None
    values = [*shares.values(), *stable_shares.values(), rows, stable_rows]
    if not all(math.isfinite(v) for v in values) or rows < 2 or stable_rows < 2:
        return math.nan
    classes = shares.keys() | stable_shares.keys()
    signs = {c: _sign(shares.get(c, 0.0) - stable_shares.get(c, 0.0)) for c in classes}

    def variance(side: dict[str, float], n: float) -> float:
        first = sum(signs[c] * side.get(c, 0.0) for c in classes)
        second = sum(signs[c] ** 2 * side.get(c, 0.0) for c in classes)
        return max(0.0, second - first**2) / n

    return 0.5 * math.sqrt(variance(shares, rows) + variance(stable_shares, stable_rows))


def _sign(x: float) -> float:
    return 1.0 if x > 0 else -1.0 if x < 0 else 0.0


def figures_from(results: dict[str, list[dict]]) -> dict[str, float | None]:
    """The figures from the query results (key -> instant vector), compared figures included."""
    figures = {k: scalar_from_vector(v) for k, v in results.items() if k not in VECTOR_KEYS}
    requests, stable_requests = figures.get(SHARED_REQUESTS), figures.get(STABLE_REQUESTS)
    share = _ratio(requests, _sum(requests, stable_requests))
    figures[TRAFFIC_SHARE] = share * 100 if _finite(share) else share  # type: ignore[operator]
    latency, stable_latency = figures.get(SHARED_LATENCY_P95), figures.get(STABLE_LATENCY_P95)
    figures[ERROR_RATE_DELTA] = _difference(
        figures.get(SHARED_ERROR_RATE), figures.get(STABLE_ERROR_RATE)
    )
    figures[LATENCY_P95_RATIO] = _ratio(latency, stable_latency)
    figures[LATENCY_P95_INCREASE] = _difference(latency, stable_latency)
    mean, stable_mean = figures.get(PREDICTION_MEAN), figures.get(STABLE_PREDICTION_MEAN)
    shares = shares_from_vector(results.get(CLASS_SHARES, []))
    stable_shares = shares_from_vector(results.get(STABLE_CLASS_SHARES, []))
    figures[PREDICTION_SHIFT] = prediction_shift(mean, stable_mean, shares, stable_shares)
    rows, stable_rows = figures.get(PREDICTED_ROWS), figures.get(STABLE_PREDICTED_ROWS)
    if _finite(mean) and _finite(stable_mean):  # a regressor: as prediction_shift decides
        figures[PREDICTION_STDDEV] = histogram_stddev(
            shares_from_vector(results.get(PREDICTION_BUCKETS, []), "le")
        )
        figures[STABLE_PREDICTION_STDDEV] = histogram_stddev(
            shares_from_vector(results.get(STABLE_PREDICTION_BUCKETS, []), "le")
        )
        figures[PREDICTION_SHIFT_SE] = mean_shift_standard_error(
            figures[PREDICTION_STDDEV], figures[STABLE_PREDICTION_STDDEV], rows, stable_rows,
            stable_mean,
        )  # fmt: skip
    else:
        figures[PREDICTION_SHIFT_SE] = class_shift_standard_error(
            shares, stable_shares, rows, stable_rows
        )
    return figures


def _sum(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


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


def _traffic(requests: float | None, spec: Analysis, what: str) -> tuple[Reason, str] | None:
    """Why `what` (requests of one side) is too little to judge, or None when it is enough."""
    if not _finite(requests):
        return Reason.NO_TRAFFIC, f"{what} is {_fmt(requests)} (need {spec.min_requests})"
    assert requests is not None
    if requests < spec.min_requests:
        return Reason.TOO_FEW_REQUESTS, f"{what} {requests:.0f} < minRequests {spec.min_requests}"
    return None


def _shared_traffic(figures: dict[str, float | None], spec: Analysis) -> tuple[Reason, str] | None:
    """Why the seconds both versions served hold too little to compare, or None."""
    if not figures.get(SHARED_SECONDS):  # None or 0: no such instant in the window yet
        message = f"no instant of the window at which both versions had served {RULE_RANGE}"
        return Reason.NO_TRAFFIC, message
    both = "in the seconds both served"
    return _traffic(figures.get(STABLE_REQUESTS), spec, f"stable requests {both}") or _traffic(
        figures.get(SHARED_REQUESTS), spec, f"canary requests {both}"
    )


def decide(
    figures: dict[str, float | None], spec: Analysis, compare: Compare, *, compared: bool = True
) -> Decision:
    """Pass, Fail or Inconclusive from the figures (None = empty vector).

    Order: too little canary traffic is inconclusive before anything else (a
    ratio over a handful of requests proves nothing); then any finite canary
    figure over its absolute threshold fails, and so does any finite comparison
    over its threshold (the canary against the stable version, same seconds) when
    both had enough traffic in those seconds; the reason names the first breach
    (absolute first), the message every one. Then a missing or non-finite canary
    figure is inconclusive; then too little traffic in the seconds both served
    (nothing to compare with yet); then a shift within chance; then a missing or
    non-finite comparison. Only finite figures within every threshold pass.

    `compared` False (the stable serves nothing at this step): the absolute gates alone.
    """
    if not compared:
        off = {"max_error_rate_delta": None, "max_latency_p95_ratio": None,
               "max_prediction_shift": None}  # fmt: skip
        compare = compare.model_copy(update=off)
    short = _traffic(figures.get(REQUESTS), spec, "canary requests")
    if short:
        return Decision(Verdict.INCONCLUSIVE, short[0], short[1], figures)
    absolute: list[tuple[str, str, float | None, Reason]] = [
        (ERROR_RATE, "maxErrorRate", spec.max_error_rate, Reason.ERROR_RATE_TOO_HIGH),
        (LATENCY_P95, "maxLatencyP95Seconds", spec.max_latency_p95_seconds,
         Reason.LATENCY_TOO_HIGH),
        (DRIFT, "maxDriftScore", spec.max_drift_score, Reason.DRIFT_TOO_HIGH),
    ]  # fmt: skip
    relative: list[tuple[str, str, float | None, Reason]] = [
        (ERROR_RATE_DELTA, "maxErrorRateDelta", compare.max_error_rate_delta,
         Reason.ERROR_RATE_REGRESSION),
        (LATENCY_P95_RATIO, "maxLatencyP95Ratio", compare.max_latency_p95_ratio,
         Reason.LATENCY_REGRESSION),
        (PREDICTION_SHIFT, "maxPredictionShift", compare.max_prediction_shift,
         Reason.PREDICTION_SHIFT),
    ]  # fmt: skip
    # every breach is named in the message; the first names the reason
    failed = _breaches(figures, absolute)
    short = _shared_traffic(figures, spec) if compared else None
    within_resolution = _latency_within_resolution(figures, compare)
    within_chance = _shift_within_chance(figures, compare)
    if not short:
        failed += [
            (reason, message + _certainty(figures, compare) * (reason is Reason.PREDICTION_SHIFT))
            for reason, message in _breaches(figures, relative)
            if not (reason is Reason.LATENCY_REGRESSION and within_resolution)
            and not (reason is Reason.PREDICTION_SHIFT and within_chance)
        ]
    if failed:
        return Decision(Verdict.FAIL, failed[0][0], "; ".join(m for _, m in failed), figures)
    # the canary's own figures that are no number: said before anything of the comparison,
    # which more traffic will bring, while these may never come
    unknown = _unknown(figures, [(key, limit) for key, _, limit, _ in absolute])
    if unknown:
        return Decision(Verdict.INCONCLUSIVE, Reason.NO_DATA, unknown, figures)
    if short:
        return Decision(Verdict.INCONCLUSIVE, short[0], short[1], figures)
    if within_chance:
        return Decision(Verdict.INCONCLUSIVE, Reason.TOO_FEW_PREDICTIONS, within_chance, figures)
    judged = [(key, limit) for key, _, limit, _ in relative]
    if compare.max_prediction_shift is not None and compare.min_prediction_shift_standard_errors:
        judged.append((PREDICTION_SHIFT_SE, compare.min_prediction_shift_standard_errors))
    unknown = _unknown(figures, judged)
    if unknown:
        return Decision(Verdict.INCONCLUSIVE, Reason.NO_DATA, unknown, figures)
    gates = [*absolute, *relative]
    within = ", ".join(
        within_resolution
        if key == LATENCY_P95_RATIO and within_resolution
        else f"{key} {_fmt(figures.get(key))} <= {name} {limit:g}"
        + _standard_error(figures) * (key == PREDICTION_SHIFT)
        for key, name, limit, _ in gates
        if limit is not None
    )
    requests = figures[REQUESTS]
    alone = "" if compared else "; the stable serves nothing at this step: no comparison"
    return Decision(
        Verdict.PASS,
        Reason.WITHIN_THRESHOLDS,
        f"requests {requests:.0f} >= {spec.min_requests}; {within}{alone}",
        figures,
    )


# Why a figure can be empty while everything works, said beside "is no data"
_WHY_EMPTY = {
    DRIFT: " (the drift rule waits for a pod's drift window to hold the chart's"
    " driftMinWindowRows rows)",
}


def _unknown(figures: dict[str, float | None], judged: list[tuple[str, float | None]]) -> str:
    """'key is NaN; ...' for each judged figure (a limit set) that is no finite number."""
    return "; ".join(
        f"{key} is {_fmt(figures.get(key))}"
        + (_WHY_EMPTY.get(key, "") if figures.get(key) is None else "")
        for key, limit in judged
        if limit is not None and not _finite(figures.get(key))
    )


def _latency_within_resolution(figures: dict[str, float | None], compare: Compare) -> str:
    """Why a latency ratio over its limit does not count, or "" when it does."""
    why = _latency_increase_small(figures, compare)
    if not why:
        return ""
    ratio, limit = figures.get(LATENCY_P95_RATIO), compare.max_latency_p95_ratio
    return f"{LATENCY_P95_RATIO} {_fmt(ratio)} > maxLatencyP95Ratio {limit:g} but {why}"


def _latency_increase_small(figures: Mapping[str, float | None], compare: Compare) -> str:
    """The second gate of a latency ratio over its limit when it keeps it from counting, or "".

    A ratio of two small p95s (4 ms against 8 ms) is the histogram's bucket width
    and the node's noise, not a regression: the ratio fails only when the canary is
    also at least minLatencyP95IncreaseSeconds slower.
    """
    ratio, increase = figures.get(LATENCY_P95_RATIO), figures.get(LATENCY_P95_INCREASE)
    limit, floor = compare.max_latency_p95_ratio, compare.min_latency_p95_increase_seconds
    if limit is None or ratio is None or increase is None:
        return ""
    if (
        not (math.isfinite(ratio) and math.isfinite(increase))
        or ratio <= limit
        or increase >= floor
    ):
        return ""
    return f"{LATENCY_P95_INCREASE} {_fmt(increase)} < minLatencyP95IncreaseSeconds {floor:g}"


def _shift_within_chance(figures: dict[str, float | None], compare: Compare) -> str:
    """Why a prediction shift over its limit does not fail (yet), or "" when it does."""
    why = _shift_not_beyond_chance(figures, compare)
    if not why:
        return ""
    shift, limit = figures.get(PREDICTION_SHIFT), compare.max_prediction_shift
    assert limit is not None
    return f"{PREDICTION_SHIFT} {_fmt(shift)} > maxPredictionShift {limit:g} but {why}"


def _shift_not_beyond_chance(figures: Mapping[str, float | None], compare: Compare) -> str:
    """The second gate of a prediction shift over its limit when it keeps it from failing
    (yet), or "".

    A shift over maxPredictionShift fails only when it is also at least
    minPredictionShiftStandardErrors standard errors: a handful of predictions moves a
    mean or a class share by chance. Less, or a standard error nobody can compute, is
    inconclusive (more predictions will tell), never a pass.
    """
    shift, se = figures.get(PREDICTION_SHIFT), figures.get(PREDICTION_SHIFT_SE)
    limit, k = compare.max_prediction_shift, compare.min_prediction_shift_standard_errors
    if limit is None or not k or shift is None or not math.isfinite(shift) or shift <= limit:
        return ""
    if se is None or not math.isfinite(se):
        return f"{PREDICTION_SHIFT_SE} is {_fmt(se)}: too few predictions to judge it"
    if se == 0 or shift / se >= k:
        return ""
    return (
        f"only {shift / se:.3g} standard errors ({PREDICTION_SHIFT_SE} {_fmt(se)})"
        f" < minPredictionShiftStandardErrors {k:g}: too few predictions to tell it from chance"
    )


def second_gate(
    figure: str, figures: Mapping[str, float | None], thresholds: Mapping[str, float | None]
) -> tuple[Verdict, str] | None:
    """For a figure over its threshold, what decide()'s second gate makes of it: None when
    the breach counts (Fail), else the verdict it leads to and why: a latency ratio within
    the histogram's resolution does not count (Pass), a prediction shift within chance
    waits (Inconclusive). `thresholds` as status.lastAnalysis records them (thresholds())."""
    try:
        compare = Compare.model_validate(thresholds)
    except ValueError:  # not what thresholds() writes: no second gate to apply
        return None
    if figure == LATENCY_P95_RATIO and (why := _latency_increase_small(figures, compare)):
        return Verdict.PASS, why
    if figure == PREDICTION_SHIFT and (why := _shift_not_beyond_chance(figures, compare)):
        return Verdict.INCONCLUSIVE, why
    return None


def _certainty(figures: dict[str, float | None], compare: Compare) -> str:
    """' (n standard errors of se >= k)' for a prediction shift that fails, else ''."""
    shift, se = figures.get(PREDICTION_SHIFT), figures.get(PREDICTION_SHIFT_SE)
    k = compare.min_prediction_shift_standard_errors
    if shift is None or se is None or not (math.isfinite(shift) and math.isfinite(se)):
        return ""
    times = "infinitely many" if se == 0 else f"{shift / se:.3g}"
    return f" ({times} standard errors of {_fmt(se)} >= minPredictionShiftStandardErrors {k:g})"


def _standard_error(figures: dict[str, float | None]) -> str:
    se = figures.get(PREDICTION_SHIFT_SE)
    return f" (standard error {_fmt(se)})" if _finite(se) else ""


def _breaches(
    figures: dict[str, float | None], gates: list[tuple[str, str, float | None, Reason]]
) -> list[tuple[Reason, str]]:
    """(reason, 'figure value > threshold') for each finite figure over its threshold."""
    out = []
    for key, name, limit, reason in gates:
        value = figures.get(key)
        if limit is not None and value is not None and _finite(value) and value > limit:
            out.append((reason, f"{key} {_fmt(value)} > {name} {limit:g}"))
    return out


def error_decision(message: str) -> Decision:
    """Prometheus unreachable or a query error: hold, never promote."""
    return Decision(Verdict.ERROR, Reason.PROMETHEUS_UNAVAILABLE, message, {})
