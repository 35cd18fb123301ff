"""The operator's own Prometheus metrics (port 8000), shown in the rollout dashboard.

Names are defined here once; every series carries `namespace` and `name` of the
ModelDeployment where it is about one.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from modelops_operator.models import Phase
from modelops_operator.progress import RolloutFigures

PREFIX = "modelops_operator"
RECONCILES = f"{PREFIX}_reconciles_total"
RECONCILE_ERRORS = f"{PREFIX}_reconcile_errors_total"
RECONCILE_DURATION = f"{PREFIX}_reconcile_duration_seconds"
ROLLOUT_PHASE = f"{PREFIX}_rollout_phase"
CANARY_WEIGHT = f"{PREFIX}_canary_weight_percent"
ANALYSIS_RESULTS = f"{PREFIX}_analysis_results_total"
ROLLOUTS = f"{PREFIX}_rollouts_total"
# The rollout's progress (progress.py): the operator's alerts and the dashboard read these.
CANARY_STEP = f"{PREFIX}_canary_step"
STEP_SECONDS = f"{PREFIX}_rollout_step_seconds"
STEP_DEADLINE = f"{PREFIX}_rollout_step_deadline_seconds"
INCONCLUSIVE = f"{PREFIX}_canary_inconclusive_seconds"
ROLLBACK = f"{PREFIX}_rollback_timestamp_seconds"
RELEASE_INFO = f"{PREFIX}_release_info"
TRAFFIC_SHARE = f"{PREFIX}_traffic_share_percent"
ANALYSIS_FIGURE = f"{PREFIX}_analysis_figure"
ANALYSIS_THRESHOLD = f"{PREFIX}_analysis_threshold"
OPERATOR_METRIC_NAMES = (
    RECONCILES,
    RECONCILE_ERRORS,
    RECONCILE_DURATION,
    ROLLOUT_PHASE,
    CANARY_WEIGHT,
    ANALYSIS_RESULTS,
    ROLLOUTS,
    CANARY_STEP,
    STEP_SECONDS,
    STEP_DEADLINE,
    INCONCLUSIVE,
    ROLLBACK,
    RELEASE_INFO,
    TRAFFIC_SHARE,
    ANALYSIS_FIGURE,
    ANALYSIS_THRESHOLD,
)


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.reconciles = Counter(
            RECONCILES.removesuffix("_total"),
            "Reconciles of ModelDeployments by result (ok, error, conflict).",
            ("namespace", "name", "result"),
            registry=r,
        )
        self.errors = Counter(
            RECONCILE_ERRORS.removesuffix("_total"),
            "Reconcile errors by stage (render, apply, status, prometheus).",
            ("namespace", "name", "stage"),
            registry=r,
        )
        self.duration = Histogram(
            RECONCILE_DURATION,
            "Wall time of one reconcile.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.phase = Gauge(
            ROLLOUT_PHASE,
            "1 for the current phase of each ModelDeployment, 0 for the others.",
            ("namespace", "name", "phase"),
            registry=r,
        )
        self.canary_weight = Gauge(
            CANARY_WEIGHT,
            "Canary step in percent of the replicas (0 without a canary).",
            ("namespace", "name"),
            registry=r,
        )
        self.analysis = Counter(
            ANALYSIS_RESULTS.removesuffix("_total"),
            "Canary analyses by result (Pass, Fail, Inconclusive, Error).",
            ("namespace", "name", "result"),
            registry=r,
        )
        self.rollouts = Counter(
            ROLLOUTS.removesuffix("_total"),
            "Finished rollouts by result (Deployed, Promoted, RolledBack, Aborted).",
            ("namespace", "name", "result"),
            registry=r,
        )
        per_object = ("namespace", "name")
        self.canary_step = Gauge(
            CANARY_STEP, "The canary's step, 1-based (0 without a canary).", per_object, registry=r
        )
        self.step_seconds = Gauge(
            STEP_SECONDS,
            "How long the current canary step or rolling update has lasted (0 without one).",
            per_object,
            registry=r,
        )
        self.step_deadline = Gauge(
            STEP_DEADLINE,
            "How long that step may last before it is stuck: interval + progressDeadline "
            "(canary), progressDeadline (rolling, promoting); 0 without a rollout, +Inf paused.",
            per_object,
            registry=r,
        )
        self.inconclusive = Gauge(
            INCONCLUSIVE,
            "How long the canary's analysis has been inconclusive (0 when it is not).",
            per_object,
            registry=r,
        )
        self.rollback = Gauge(
            ROLLBACK,
            "When the release (model, version) was rolled back, and why; present while the "
            "ModelDeployment stays rolled back.",
            (*per_object, "model", "version", "reason"),
            registry=r,
        )
        self.release = Gauge(
            RELEASE_INFO,
            "1 for the release each ModelDeployment asks for (spec.model): the model and "
            "version its alerts join, as the service's alerts carry them.",
            (*per_object, "model", "version"),
            registry=r,
        )
        self.share = Gauge(
            TRAFFIC_SHARE,
            "Each track's share of the replicas, percent (what the replicas give).",
            (*per_object, "track"),
            registry=r,
        )
        self.figure = Gauge(
            ANALYSIS_FIGURE,
            "The last canary analysis' figures (status.lastAnalysis.figures).",
            (*per_object, "figure"),
            registry=r,
        )
        self.threshold = Gauge(
            ANALYSIS_THRESHOLD,
            "The threshold each figure of the last analysis is held against.",
            (*per_object, "figure"),
            registry=r,
        )
        # the label sets each object has now, to remove those that go away
        self._labelled: dict[tuple[str, str], list[tuple[Gauge, tuple[str, ...]]]] = {}

    def set_progress(self, namespace: str, name: str, figures: RolloutFigures) -> None:
        obj = (namespace, name)
        self.canary_step.labels(*obj).set(figures.step)
        self.step_seconds.labels(*obj).set(figures.step_seconds)
        self.step_deadline.labels(*obj).set(figures.step_deadline_seconds)
        self.inconclusive.labels(*obj).set(figures.inconclusive_seconds)
        now: list[tuple[Gauge, tuple[str, ...], float]] = []
        if figures.rollback is not None:
            b = figures.rollback
            now.append((self.rollback, (*obj, b.model, b.version, b.reason), b.at))
        if figures.release is not None:
            now.append((self.release, (*obj, *figures.release), 1.0))
        now += [(self.share, (*obj, track), v) for track, v in figures.share.items()]
        now += [(self.figure, (*obj, f), v) for f, v in figures.figures.items()]
        now += [(self.threshold, (*obj, f), v) for f, v in figures.thresholds.items()]
        for gauge, labels, value in now:
            gauge.labels(*labels).set(value)
        keep = {(gauge, labels) for gauge, labels, _ in now}
        for gauge, labels in self._labelled.get(obj, []):
            if (gauge, labels) not in keep:
                with contextlib.suppress(KeyError):
                    gauge.remove(*labels)
        self._labelled[obj] = list(keep)

    def set_phase(self, namespace: str, name: str, phase: Phase | None, weight: int) -> None:
        for p in Phase:
            self.phase.labels(namespace, name, p.value).set(1 if p == phase else 0)
        self.canary_weight.labels(namespace, name).set(weight)

    def forget(self, namespace: str, name: str) -> None:
        for gauge, labels in [(self.phase, (namespace, name, p.value)) for p in Phase] + [
            (self.canary_weight, (namespace, name))
        ]:
            with contextlib.suppress(KeyError):
                gauge.remove(*labels)
        per_object = (self.canary_step, self.step_seconds, self.step_deadline, self.inconclusive)
        for gauge in per_object:
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, name)
        for gauge, kept in self._labelled.pop((namespace, name), []):
            with contextlib.suppress(KeyError):
                gauge.remove(*kept)

    def serve(self, port: int) -> None:
        if port:
            start_http_server(port, registry=self.registry)
