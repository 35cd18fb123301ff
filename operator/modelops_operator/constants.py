"""Names the operator shares with the CRD, the chart and the tests (defined once)."""

from __future__ import annotations

from modelops_service import recording_rules

GROUP = "modelops.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SHORT_NAME = "md"

FIELD_MANAGER = "modelops-operator"
MANAGED_BY = "modelops-operator"

# Labels of the chart's objects (app.kubernetes.io/*) and pods (modelops.io/*) the operator reads.
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_TRACK = "modelops.io/track"
LABEL_VERSION = "modelops.io/version"
SERVICE_CONTAINER = "model-service"  # the chart's container of the service
TRACK_STABLE = "stable"
TRACK_CANARY = "canary"

# The label the operator adds to every object it applies; pruning lists by it and
# then deletes only objects whose owner reference is the ModelDeployment's uid.
LABEL_OWNER = "modelops.io/modeldeployment"

MONITORING_GROUP = "monitoring.coreos.com"
MONITORING_VERSION = "v1"

# Condition types written to status.conditions.
COND_READY = "Ready"
COND_PROGRESSING = "Progressing"
COND_DEGRADED = "Degraded"
COND_MONITORING = "MonitoringReady"
COND_AUTOSCALING = "AutoscalingReady"  # only while spec.autoscaling is set
CONDITION_TYPES = (COND_READY, COND_PROGRESSING, COND_DEGRADED, COND_MONITORING, COND_AUTOSCALING)

# The recording rules the canary analysis queries, named by the one catalog the rules of
# alerts/ are built from (CONVENTIONS.md); the analysis never names a raw metric.
RULE_REQUESTS = recording_rules.REQUESTS_RATE1M.name
RULE_ERROR_RATIO = recording_rules.ERROR_RATIO_RATE1M.name
RULE_LATENCY_P95 = recording_rules.LATENCY_P95_RATE1M.name
RULE_DRIFT = recording_rules.DRIFT_SCORE_MAX.name
RULE_PREDICTION_MEAN = recording_rules.PREDICTION_MEAN_RATE1M.name
RULE_CLASS_SHARE = recording_rules.PREDICTED_CLASS_SHARE_RATE1M.name
RULE_PREDICTIONS = recording_rules.PREDICTIONS_RATE1M.name
RULE_PREDICTION_BUCKETS = recording_rules.PREDICTION_VALUE_BUCKET_RATE1M.name
# The range each of those rate rules averages over ("1m"): a version's value at an instant
# covers that much traffic before it.
RULE_RANGE = recording_rules.REQUESTS_RATE1M.window

METRICS_PORT = 8000
