"""The one catalog of recording-rule names, beside the metric catalog (catalog.py).

alerts/render.py records exactly these series (their expressions live there, built from
the metric catalog); the dashboards, the operator's canary analysis and the demo name a
recording rule only from here. A rename here changes every one of them at the next
`make generate`, and the contract test fails on a recording-rule name this module lacks.

Standard library only: the operator image carries this file without the rest of the
service (operator/Dockerfile), so it must stay importable on its own.

Names follow Prometheus' ``level:metric:operations``: the level names the aggregation
labels, ``by (namespace, model, version)`` (``model_version``), for the class shares
also ``class`` (``model_version_class``) and for histogram buckets also ``le``
(``model_version_le``); the request rules count the prediction
requests (``POST /v1/predict`` and ``POST /v2/models/{name}/infer``).
"""

from __future__ import annotations

from dataclasses import dataclass

LEVEL = "model_version"
AGGREGATION_LABELS = ("namespace", "model", "version")
CLASS_LEVEL = "model_version_class"
BUCKET_LEVEL = "model_version_le"


@dataclass(frozen=True)
class RecordingRule:
    name: str
    help: str

    @property
    def metric(self) -> str:
        """The middle part of the name: what is recorded (``error_ratio``)."""
        return self.name.split(":")[1]

    @property
    def window(self) -> str | None:
        """The range of a ``rate<window>`` rule (``5m``); None for other operations."""
        operation = self.name.split(":")[2]
        return operation.removeprefix("rate") if operation.startswith("rate") else None


def _rule(metric: str, operation: str, help: str, level: str = LEVEL) -> RecordingRule:
    return RecordingRule(f"{level}:{metric}:{operation}", help)


REQUESTS_RATE1M = _rule("requests", "rate1m", "prediction requests per second")
REQUESTS_RATE5M = _rule("requests", "rate5m", "prediction requests per second")

# 5xx over all prediction requests: 0 (not empty) while requests flow without 5xx, empty
# without requests. 1m feeds the canary analysis, 5m the alerts, the rest the
# availability SLO's burn-rate windows.
_ERROR_RATIO_HELP = "5xx / all prediction requests; 0 without 5xx, NaN or empty without requests"
ERROR_RATIO_WINDOWS = ("1m", "5m", "30m", "1h", "2h", "6h", "1d", "3d")
ERROR_RATIO = {w: _rule("error_ratio", f"rate{w}", _ERROR_RATIO_HELP) for w in ERROR_RATIO_WINDOWS}
ERROR_RATIO_RATE1M = ERROR_RATIO["1m"]
ERROR_RATIO_RATE5M = ERROR_RATIO["5m"]

INPUT_ERROR_RATIO_RATE5M = _rule("input_error_ratio", "rate5m", "4xx / all prediction requests")
LATENCY_P95_RATE1M = _rule(
    "latency_p95_seconds", "rate1m", "p95 latency of prediction requests, seconds"
)
LATENCY_P95_RATE5M = _rule(
    "latency_p95_seconds", "rate5m", "p95 latency of prediction requests, seconds"
)
DRIFT_SCORE_MAX = _rule(
    "drift_score",
    "max",
    'largest model_feature_drift_score{method="psi"} over the features, of the pods whose'
    " drift window holds driftMinWindowRows rows",
)

# The prediction distribution, per version, for the canary's relative gates: the mean
# prediction of a regressor, the share of each class of a classifier.
PREDICTION_MEAN_RATE1M = _rule(
    "prediction_mean", "rate1m", "mean predicted value (regressors); NaN without predictions"
)
PREDICTED_CLASS_SHARE_RATE1M = _rule(
    "predicted_class_share",
    "rate1m",
    "share of the rows predicted as each class (classifiers); the classes of a version sum to 1",
    level=CLASS_LEVEL,
)

# How much to trust a shift of that distribution: the rows behind it, and the spread of a
# regressor's predictions (the histogram has no sum of squares; its buckets give the variance).
PREDICTIONS_RATE1M = _rule("predictions", "rate1m", "rows predicted per second (outcome ok)")
PREDICTION_VALUE_BUCKET_RATE1M = _rule(
    "prediction_value_bucket",
    "rate1m",
    "rows per second in each cumulative bucket of model_prediction_value, by le (regressors)",
    level=BUCKET_LEVEL,
)

RECORDING_RULES = (
    REQUESTS_RATE1M,
    REQUESTS_RATE5M,
    *ERROR_RATIO.values(),
    INPUT_ERROR_RATIO_RATE5M,
    LATENCY_P95_RATE1M,
    LATENCY_P95_RATE5M,
    DRIFT_SCORE_MAX,
    PREDICTION_MEAN_RATE1M,
    PREDICTED_CLASS_SHARE_RATE1M,
    PREDICTIONS_RATE1M,
    PREDICTION_VALUE_BUCKET_RATE1M,
)


def recorded_names() -> frozenset[str]:
    """Every series name the rules record."""
    return frozenset(r.name for r in RECORDING_RULES)
