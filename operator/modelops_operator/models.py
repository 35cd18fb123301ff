"""Pydantic models of the ModelDeployment spec and status, parsed at the handler boundary.

The CRD schema (manifests/crd) validates and defaults on the API server; these
models give the Python side the same shape and defaults, so code past the
handler never touches a raw dict.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")
# What parse_duration reads: h, m, s, ms in that order, each at most once, at least one. Also
# the CRD's pattern (manifests/crd; test_crd checks they agree), so in the API server's RE2
# dialect: no lookahead, hence one alternative per leading unit.
DURATION_PATTERN = (
    r"^([0-9]+h([0-9]+m)?([0-9]+s)?([0-9]+ms)?|[0-9]+m([0-9]+s)?([0-9]+ms)?"
    r"|[0-9]+s([0-9]+ms)?|[0-9]+ms)$"
)


def parse_duration(text: str) -> float:
    """'90s', '1m30s', '2h', '500ms' -> seconds."""
    match = _DURATION.match(text.strip())
    if not text.strip() or not match or not any(match.groups()):
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 1h30m, 500ms)")
    hours, minutes, seconds, millis = (int(g) if g else 0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


Duration = Annotated[str, Field(pattern=DURATION_PATTERN)]


class Strategy(StrEnum):
    CANARY = "Canary"
    ROLLING_UPDATE = "RollingUpdate"
    AB_TEST = "ABTest"


class Phase(StrEnum):
    PENDING = "Pending"
    PROGRESSING = "Progressing"
    READY = "Ready"
    DEGRADED = "Degraded"
    ROLLED_BACK = "RolledBack"


class FetchSpec(_Model):
    """How the init container fetches this release's remote uri (the chart's model.fetch, or
    canary.fetch for a canary: each track fetches with its own release's settings)."""

    endpoint: str = ""
    region: str = "us-east-1"
    credentials_secret: str = Field(default="", alias="credentialsSecret")
    ca_config_map: str = Field(default="", alias="caConfigMap")
    max_bytes: int = Field(default=1 << 30, alias="maxBytes", ge=1)
    timeout_seconds: float = Field(default=300.0, alias="timeoutSeconds", gt=0)


class ModelRef(_Model):
    """What one Deployment serves: a model version, its image and its artifact.

    The artifact is ``uri`` (s3://, https://, pvc://: fetched and verified by an init
    container; or a directory in the image) or, as before, ``artifact`` (a directory in
    the image). The CRD requires one of them, and a sha256 with a remote uri.
    """

    name: str
    version: str
    image: str
    artifact: str = ""
    uri: str = ""
    sha256: str = ""
    fetch: FetchSpec | None = None

    @property
    def location(self) -> str:
        """Where the artifact comes from, as a message names it."""
        return self.uri or self.artifact


class Analysis(_Model):
    max_error_rate: float = Field(default=0.05, alias="maxErrorRate", ge=0, le=1)
    max_latency_p95_seconds: float = Field(default=0.5, alias="maxLatencyP95Seconds", gt=0)
    max_drift_score: float | None = Field(default=0.2, alias="maxDriftScore", ge=0)
    min_requests: int = Field(default=50, alias="minRequests", ge=0)
    deadline: Duration = "10m"
    prometheus_url: str | None = Field(default=None, alias="prometheusUrl")

    @property
    def deadline_seconds(self) -> float:
        return parse_duration(self.deadline)


class Compare(_Model):
    """Relative gates: the canary against the stable version over the same seconds."""

    max_error_rate_delta: float | None = Field(default=0.02, alias="maxErrorRateDelta", ge=0, le=1)
    max_latency_p95_ratio: float | None = Field(default=1.5, alias="maxLatencyP95Ratio", ge=1)
    min_latency_p95_increase_seconds: float = Field(
        default=0.025,
        alias="minLatencyP95IncreaseSeconds",
        ge=0,
        description=(
            "maxLatencyP95Ratio fails the canary only when its p95 is also at least this much"
            " above the stable's: below it both p95s lie within the latency histogram's"
            " resolution and a busy node's noise."
        ),
    )
    max_prediction_shift: float | None = Field(default=0.1, alias="maxPredictionShift", ge=0)
    min_prediction_shift_standard_errors: float = Field(
        default=3.0,
        alias="minPredictionShiftStandardErrors",
        ge=0,
        description=(
            "maxPredictionShift fails the canary only when the shift is also at least this many"
            " standard errors (from both windows' rows and spread): a smaller one may be chance,"
            " and is inconclusive until more predictions tell. 0: the threshold alone."
        ),
    )


class GatewayAPIRouting(_Model):
    """The HTTPRoute rule whose backendRefs weights the operator owns."""

    http_route: str = Field(alias="httpRoute", min_length=1)
    rule: str | None = Field(
        default=None,
        min_length=1,
        description="The rule's name; unset: the first rule with a backendRef to the model.",
    )
    canary_header: str | None = Field(
        default=None,
        alias="canaryHeader",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9-]*$",
        max_length=256,
        description="Requests with this header set to the canary's version reach the canary.",
    )


class TrafficRouting(_Model):
    gateway_api: GatewayAPIRouting | None = Field(default=None, alias="gatewayAPI")


class ABTest(_Model):
    """strategy ABTest: a fixed split between the stable (A) and the new version (B)."""

    weight: int = Field(
        default=50, ge=0, le=100, description="B's share, percent (0: only header-pinned requests)."
    )
    winner: str | None = Field(
        default=None,
        min_length=1,
        description="Set to B's version to promote it; the test runs until then.",
    )


class Rollout(_Model):
    strategy: Strategy = Strategy.CANARY
    steps: tuple[int, ...] = (10, 50, 100)
    interval: Duration = "60s"
    analysis: Analysis = Field(default_factory=Analysis)
    compare: Compare = Field(default_factory=Compare)
    traffic_routing: TrafficRouting = Field(default_factory=TrafficRouting, alias="trafficRouting")
    ab_test: ABTest = Field(default_factory=ABTest, alias="abTest")
    auto_rollback: bool = Field(default=True, alias="autoRollback")
    rollback_window: Duration = Field(default="1h", alias="rollbackWindow")
    progress_deadline: Duration = Field(default="10m", alias="progressDeadline")

    @field_validator("steps")
    @classmethod
    def _steps_ascending(cls, steps: tuple[int, ...]) -> tuple[int, ...]:
        if not steps:
            raise ValueError("steps must not be empty")
        if any(s < 1 or s > 100 for s in steps):
            raise ValueError("each step is a percentage in 1..100")
        if list(steps) != sorted(set(steps)):
            raise ValueError("steps must be strictly ascending")
        return steps

    @model_validator(mode="after")
    def _ab_test_reaches_b(self) -> Rollout:
        routing = self.traffic_routing.gateway_api
        header_only = routing is not None and routing.canary_header
        if self.strategy == Strategy.AB_TEST and self.ab_test.weight == 0 and not header_only:
            raise ValueError(
                "abTest.weight 0 sends B nothing: give it a weight, or route by header "
                "(trafficRouting.gatewayAPI.canaryHeader)"
            )
        return self

    @property
    def ab(self) -> bool:
        return self.strategy == Strategy.AB_TEST

    @property
    def interval_seconds(self) -> float:
        return parse_duration(self.interval)

    @property
    def gateway_api(self) -> GatewayAPIRouting | None:
        """The HTTPRoute that splits the traffic by weight, or None (replica mode)."""
        return self.traffic_routing.gateway_api

    @property
    def rollback_window_seconds(self) -> float:
        return parse_duration(self.rollback_window)

    @property
    def progress_deadline_seconds(self) -> float:
        return parse_duration(self.progress_deadline)


class ServiceMonitorSpec(_Model):
    enabled: bool = True
    labels: dict[str, str] = Field(default_factory=dict)
    interval: Duration = "15s"


class ToggleWithLabels(_Model):
    enabled: bool = True
    labels: dict[str, str] = Field(default_factory=dict)


class Monitoring(_Model):
    service_monitor: ServiceMonitorSpec = Field(
        default_factory=ServiceMonitorSpec, alias="serviceMonitor"
    )
    alerts: ToggleWithLabels = Field(default_factory=ToggleWithLabels)
    # once per cluster with the operator's chart; a per-model copy only when asked
    dashboards: ToggleWithLabels = Field(default_factory=lambda: ToggleWithLabels(enabled=False))
    match_selectors: bool | None = Field(
        default=None,
        alias="matchSelectors",
        description="Add the labels Prometheus/Grafana selectors need; unset = operator setting.",
    )


class Autoscaling(_Model):
    """spec.autoscaling: KEDA scales the whole ModelDeployment (its /scale) on the request rate."""

    min_replicas: int = Field(default=1, alias="minReplicas", ge=1, le=100)
    max_replicas: int = Field(alias="maxReplicas", ge=1, le=100)
    target_requests_per_second: float = Field(alias="targetRequestsPerSecond", gt=0)
    target_cpu_utilization_percentage: int | None = Field(
        default=None, alias="targetCPUUtilizationPercentage", ge=1, le=100
    )
    scale_down_stabilization: Duration = Field(default="5m", alias="scaleDownStabilization")
    prometheus_url: str | None = Field(default=None, alias="prometheusUrl")

    @field_validator("max_replicas")
    @classmethod
    def _max_not_below_min(cls, value: int, info: Any) -> int:
        low = info.data.get("min_replicas", 1)
        if value < low:
            raise ValueError(f"maxReplicas {value} is below minReplicas {low}")
        return value

    @property
    def scale_down_stabilization_seconds(self) -> int:
        return int(parse_duration(self.scale_down_stabilization))


class ModelDeploymentSpec(_Model):
    model: ModelRef
    replicas: int = Field(default=1, ge=0, le=100)
    autoscaling: Autoscaling | None = None
    paused: bool = False
    rollout: Rollout = Field(default_factory=Rollout)
    monitoring: Monitoring = Field(default_factory=Monitoring)


# --- status -----------------------------------------------------------------


class Condition(_Model):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: str = Field(alias="lastTransitionTime")
    observed_generation: int | None = Field(default=None, alias="observedGeneration")


class HistoryEntry(_Model):
    version: str
    result: str
    at: str
    reason: str = ""
    message: str = ""
    by: str = ""  # who asked, for the requests of `kubectl modelops`


class Pause(_Model):
    """A hold asked for with `kubectl modelops pause`."""

    by: str
    at: str


class Verb(StrEnum):
    """The requests of `kubectl modelops` (requests.py)."""

    PROMOTE = "promote"
    ABORT = "abort"
    RETRY = "retry"
    PAUSE = "pause"
    RESUME = "resume"


class RequestRecord(_Model):
    """A request of `kubectl modelops`: as read from the annotation, then as consumed
    (accepted, message) into status.lastRequest, so it is never acted on twice."""

    id: str = Field(min_length=1)
    verb: Verb
    full: bool = False
    by: str = ""
    at: str = ""
    accepted: bool = False
    message: str = ""


class Figures(_Model):
    requests: float | None = None
    error_rate: float | None = Field(default=None, alias="errorRate")
    latency_p95_seconds: float | None = Field(default=None, alias="latencyP95Seconds")
    drift_score: float | None = Field(default=None, alias="driftScore")
    prediction_mean: float | None = Field(default=None, alias="predictionMean")
    stable_requests: float | None = Field(default=None, alias="stableRequests")
    stable_error_rate: float | None = Field(default=None, alias="stableErrorRate")
    stable_latency_p95_seconds: float | None = Field(default=None, alias="stableLatencyP95Seconds")
    stable_prediction_mean: float | None = Field(default=None, alias="stablePredictionMean")
    traffic_share_percent: float | None = Field(
        default=None,
        alias="trafficSharePercent",
        description="The canary's share of both versions' requests, in the seconds both served.",
    )
    error_rate_delta: float | None = Field(default=None, alias="errorRateDelta")
    latency_p95_ratio: float | None = Field(default=None, alias="latencyP95Ratio")
    latency_p95_increase_seconds: float | None = Field(
        default=None, alias="latencyP95IncreaseSeconds"
    )
    prediction_shift: float | None = Field(default=None, alias="predictionShift")
    predicted_rows: float | None = Field(default=None, alias="predictedRows")
    stable_predicted_rows: float | None = Field(default=None, alias="stablePredictedRows")
    prediction_std_dev: float | None = Field(default=None, alias="predictionStdDev")
    stable_prediction_std_dev: float | None = Field(default=None, alias="stablePredictionStdDev")
    prediction_shift_standard_error: float | None = Field(
        default=None,
        alias="predictionShiftStandardError",
        description="The standard error of predictionShift, in its units.",
    )
    shared_seconds: float | None = Field(
        default=None,
        alias="sharedSeconds",
        description=(
            "The seconds of the window in which both versions served: what every comparison"
            " with the stable covers."
        ),
    )
    shared_requests: float | None = Field(default=None, alias="sharedRequests")
    shared_error_rate: float | None = Field(default=None, alias="sharedErrorRate")
    shared_latency_p95_seconds: float | None = Field(default=None, alias="sharedLatencyP95Seconds")


class AnalysisRecord(_Model):
    at: str
    version: str
    step: int
    weight: int
    effective_weight: float | None = Field(default=None, alias="effectiveWeight")
    result: Literal["Pass", "Fail", "Inconclusive", "Error"]
    reason: str
    message: str = ""
    figures: Figures = Field(default_factory=Figures)
    thresholds: dict[str, float | None] = Field(default_factory=dict)
    queries: dict[str, str] = Field(default_factory=dict)
    prometheus_url: str = Field(default="", alias="prometheusUrl")


class HeldFailure(_Model):
    at: str
    reason: str
    message: str = ""


class CanaryState(_Model):
    model: ModelRef
    step: int = 0
    started_at: str = Field(alias="startedAt")
    step_started_at: str = Field(alias="stepStartedAt")
    inconclusive_since: str | None = Field(default=None, alias="inconclusiveSince")
    # A failure under autoRollback: false: held from then on, not analysed again, until a
    # promote or abort request or a change of spec.model.
    held: HeldFailure | None = None
    promoting: bool = False


class PreviousStable(_Model):
    model: ModelRef
    replaced_at: str = Field(alias="replacedAt")


class ModelDeploymentStatus(_Model):
    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    phase: Phase | None = None
    stable_version: str | None = Field(default=None, alias="stableVersion")
    canary_version: str | None = Field(default=None, alias="canaryVersion")
    canary_weight: int = Field(default=0, alias="canaryWeight", description="The requested step.")
    effective_canary_weight: float = Field(
        default=0.0,
        alias="effectiveCanaryWeight",
        description="The canary's share: of the replicas (replica mode), or its HTTPRoute "
        "weight (Gateway API, 0 until the canary is Ready), percent.",
    )
    ready: str | None = None
    replicas: int | None = Field(
        default=None, description="/scale: pods of the track that carries spec.replicas."
    )
    selector: str | None = Field(
        default=None, description="/scale: the label selector of the model's pods (both tracks)."
    )
    stable: ModelRef | None = None
    canary: CanaryState | None = None
    previous_stable: PreviousStable | None = Field(default=None, alias="previousStable")
    rolled_back: ModelRef | None = Field(
        default=None, alias="rolledBack", description="The release last rolled back; not retried."
    )
    rollout_started_at: str | None = Field(default=None, alias="rolloutStartedAt")
    last_analysis: AnalysisRecord | None = Field(default=None, alias="lastAnalysis")
    pause: Pause | None = None
    last_request: RequestRecord | None = Field(default=None, alias="lastRequest")
    conditions: tuple[Condition, ...] = ()
    history: tuple[HistoryEntry, ...] = ()


def parse_spec(spec: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(dict(spec or {}))


def parse_status(status: Any) -> ModelDeploymentStatus:
    return ModelDeploymentStatus.model_validate(dict(status or {}))


def dump(model: BaseModel) -> dict[str, Any]:
    """The camelCase dict the API server stores (None fields dropped)."""
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


def isoformat(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
