"""The one catalog of metric names the service exports.

Dashboards (dashboards/), alerts and recording rules (alerts/) and the
operator's canary analysis name metrics only from here; a contract test
parses every PromQL expression in the repo and fails on a name this module
does not define. Rename a metric here and that test tells you every place
that has to follow.

Every model metric carries the ``model`` and ``version`` labels; the HTTP
metrics (prometheus-fastapi-instrumentator's names, recorded by ``middleware.py``) carry
them too, so per-version analysis needs no relabeling in Prometheus.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricType = Literal["counter", "gauge", "histogram", "summary", "info"]

MODEL_LABELS = ("model", "version")


@dataclass(frozen=True)
class Metric:
    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...] = ()

    @property
    def series_names(self) -> tuple[str, ...]:
        """Names that appear in the exposition (and so in PromQL) for this metric."""
        if self.type == "counter":
            return (self.name,)
        if self.type == "histogram":
            return tuple(f"{self.name}{s}" for s in ("_bucket", "_sum", "_count"))
        if self.type == "summary":
            # The instrumentator's size summaries carry no quantiles.
            return (f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


# --- HTTP: prometheus-fastapi-instrumentator's standard names (middleware.py) ---
HTTP_REQUESTS = Metric(
    "http_requests_total",
    "counter",
    "Total number of requests by method, status and handler.",
    ("handler", "method", "status", *MODEL_LABELS),
)
HTTP_REQUEST_DURATION = Metric(
    "http_request_duration_seconds",
    "histogram",
    "Latency of HTTP requests by handler and method.",
    ("handler", "method", *MODEL_LABELS),
)
HTTP_REQUEST_SIZE = Metric(
    "http_request_size_bytes",
    "summary",
    "Content length of incoming requests by handler.",
    ("handler", *MODEL_LABELS),
)
HTTP_RESPONSE_SIZE = Metric(
    "http_response_size_bytes",
    "summary",
    "Content length of outgoing responses by handler.",
    ("handler", *MODEL_LABELS),
)
HTTP_REQUESTS_INPROGRESS = Metric(
    "http_requests_inprogress",
    "gauge",
    "Number of HTTP requests in progress.",
    ("handler", "method", *MODEL_LABELS),
)

# --- Model ------------------------------------------------------------------
MODEL_INFO = Metric(
    "model_info",
    "gauge",
    "Always 1: the loaded model, its task and artifact digest.",
    (*MODEL_LABELS, "task", "sha256", "framework"),
)
MODEL_READY = Metric(
    "model_ready",
    "gauge",
    "1 once the model is loaded and warmed up, else 0.",
    MODEL_LABELS,
)
PREDICTIONS = Metric(
    "model_predictions_total",
    "counter",
    "Rows predicted, by outcome (ok or error).",
    (*MODEL_LABELS, "outcome"),
)
INFERENCE_DURATION = Metric(
    "model_inference_duration_seconds",
    "histogram",
    "Time spent in the model's predict call, per call (a call may serve a batch).",
    MODEL_LABELS,
)
BATCH_SIZE = Metric(
    "model_batch_size",
    "histogram",
    "Rows per prediction request.",
    MODEL_LABELS,
)
PREDICTION_VALUE = Metric(
    "model_prediction_value",
    "histogram",
    "Predicted value (regressors).",
    MODEL_LABELS,
)
PREDICTION_CONFIDENCE = Metric(
    "model_prediction_confidence",
    "histogram",
    "Probability of the predicted class (classifiers).",
    MODEL_LABELS,
)
PREDICTED_CLASS = Metric(
    "model_predicted_class_total",
    "counter",
    "Rows predicted per class (classifiers).",
    (*MODEL_LABELS, "class"),
)
INPUT_ERRORS = Metric(
    "model_input_errors_total",
    "counter",
    "Rejected or flagged inputs, by reason.",
    (*MODEL_LABELS, "reason"),
)
FEATURE_DRIFT = Metric(
    "model_feature_drift_score",
    "gauge",
    "Drift of one feature's recent values against the training reference (psi or ks).",
    (*MODEL_LABELS, "feature", "method"),
)
PREDICTION_DRIFT = Metric(
    "model_prediction_drift_score",
    "gauge",
    "Drift of recent predictions against the training reference (psi or ks).",
    (*MODEL_LABELS, "method"),
)
DRIFT_WINDOW_ROWS = Metric(
    "model_drift_window_rows",
    "gauge",
    "Rows currently in the sliding window that drift is computed over.",
    MODEL_LABELS,
)

HTTP_METRICS = (
    HTTP_REQUESTS,
    HTTP_REQUEST_DURATION,
    HTTP_REQUEST_SIZE,
    HTTP_RESPONSE_SIZE,
    HTTP_REQUESTS_INPROGRESS,
)
MODEL_METRICS = (
    MODEL_INFO,
    MODEL_READY,
    PREDICTIONS,
    INFERENCE_DURATION,
    BATCH_SIZE,
    PREDICTION_VALUE,
    PREDICTION_CONFIDENCE,
    PREDICTED_CLASS,
    INPUT_ERRORS,
    FEATURE_DRIFT,
    PREDICTION_DRIFT,
    DRIFT_WINDOW_ROWS,
)
ALL_METRICS = HTTP_METRICS + MODEL_METRICS

# Reasons counted in model_input_errors_total; the service answers 4xx for
# each (out_of_range only when the range policy is "reject").
INPUT_ERROR_REASONS = (
    "malformed_json",
    "wrong_content_type",
    "body_too_large",
    "missing_field",
    "extra_field",
    "wrong_type",
    "not_finite",
    "out_of_range",
    "empty_batch",
    "too_many_instances",
)

# Standard series that PromQL in dashboards/ and alerts/ may name besides the
# catalog: target health, the default process collector, and cluster metrics
# from kube-state-metrics and cAdvisor (matched by prefix).
STANDARD_SERIES = ("up", "scrape_duration_seconds", "ALERTS", "ALERTS_FOR_STATE")
STANDARD_PREFIXES = ("process_", "python_", "kube_", "container_", "node_")


def catalog_series() -> frozenset[str]:
    """Every series name the service can expose."""
    return frozenset(s for m in ALL_METRICS for s in m.series_names)
