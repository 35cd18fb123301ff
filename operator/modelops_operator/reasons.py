"""The reasons the operator writes (pure): one vocabulary for analysis, rollout and status.

A reason is a CamelCase word on the wire (condition reasons, Event reasons,
`lastAnalysis.reason`, `history[].reason`); tools and alerts match on them, so
the values never change. `Result` is the outcome a finished rollout records in
`status.history` and counts in `modelops_operator_rollouts_total`.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # the canary analysis (analysis.py)
    NO_TRAFFIC = "NoTraffic"
    TOO_FEW_REQUESTS = "TooFewRequests"
    ERROR_RATE_TOO_HIGH = "ErrorRateTooHigh"
    LATENCY_TOO_HIGH = "LatencyTooHigh"
    DRIFT_TOO_HIGH = "DriftTooHigh"
    # the canary against the stable version over the same seconds
    ERROR_RATE_REGRESSION = "ErrorRateRegression"
    LATENCY_REGRESSION = "LatencyRegression"
    PREDICTION_SHIFT = "PredictionShift"
    NO_DATA = "NoData"
    TOO_FEW_PREDICTIONS = "TooFewPredictions"  # a shift over its limit, within chance
    WITHIN_THRESHOLDS = "WithinThresholds"
    PROMETHEUS_UNAVAILABLE = "PrometheusUnavailable"
    # rollout events (rollout.py)
    INITIAL_DEPLOY = "InitialDeploy"
    CANARY_ABORTED = "CanaryAborted"
    ROLLED_BACK = "RolledBack"
    ROLLOUT_PAUSED = "RolloutPaused"
    FAST_ROLLBACK = "FastRollback"
    CANARY_STARTED = "CanaryStarted"
    ROLLING_UPDATE = "RollingUpdate"
    AVAILABLE = "Available"
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    PROGRESSING = "Progressing"
    CANARY_STARTING = "CanaryStarting"
    CANARY_NOT_READY = "CanaryNotReady"
    ANALYZING = "Analyzing"
    ANALYSIS_PASSED = "AnalysisPassed"
    ANALYSIS_INCONCLUSIVE = "AnalysisInconclusive"
    SUPERSEDED = "Superseded"
    # requests of `kubectl modelops` (requests.py)
    PROMOTE_REQUESTED = "PromoteRequested"
    ABORT_REQUESTED = "AbortRequested"
    REQUEST_ACCEPTED = "RequestAccepted"
    REQUEST_REJECTED = "RequestRejected"
    AB_TESTING = "ABTesting"  # strategy ABTest: the split holds until a winner is named
    WINNER_CHOSEN = "WinnerChosen"  # abTest.winner names B: promoted
    # Kubernetes Events only
    DEPLOYING = "Deploying"
    DEPLOYED = "Deployed"
    CANARY_ADVANCED = "CanaryAdvanced"
    CANARY_PROMOTING = "CanaryPromoting"
    PROMOTED = "Promoted"
    ANALYSIS_HELD = "AnalysisHeld"
    DRIFT_CORRECTED = "DriftCorrected"
    # conditions
    NOT_DEPLOYED = "NotDeployed"
    NOT_AVAILABLE = "NotAvailable"
    ROLLOUT_COMPLETE = "RolloutComplete"
    DEGRADED = "Degraded"
    AS_EXPECTED = "AsExpected"
    KEDA_MISSING = "KedaMissing"
    SCALED_OBJECT_APPLIED = "ScaledObjectApplied"
    # what the reconciler cannot get past (phase Degraded until it can)
    INVALID_SPEC = "InvalidSpec"
    RENDER_FAILED = "RenderFailed"
    APPLY_FAILED = "ApplyFailed"
    TRAFFIC_ROUTING_FAILED = "TrafficRoutingFailed"


class Result(StrEnum):
    """How a rollout ended (status.history[].result)."""

    DEPLOYED = "Deployed"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    ABORTED = "Aborted"


# history[].result of a request of `kubectl modelops` (not a rollout's end: not counted)
REQUEST_RESULT = "Request"
