"""The operator's own Prometheus metrics (port 8000), shown in the rollout dashboard.

Names are defined here once; every series carries `namespace` and `name` of the
ModelDeployment where it is about one.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from modelops_operator.models import Phase

PREFIX = "modelops_operator"
RECONCILES = f"{PREFIX}_reconciles_total"
RECONCILE_ERRORS = f"{PREFIX}_reconcile_errors_total"
RECONCILE_DURATION = f"{PREFIX}_reconcile_duration_seconds"
ROLLOUT_PHASE = f"{PREFIX}_rollout_phase"
CANARY_WEIGHT = f"{PREFIX}_canary_weight_percent"
ANALYSIS_RESULTS = f"{PREFIX}_analysis_results_total"
ROLLOUTS = f"{PREFIX}_rollouts_total"
OPERATOR_METRIC_NAMES = (
    RECONCILES,
    RECONCILE_ERRORS,
    RECONCILE_DURATION,
    ROLLOUT_PHASE,
    CANARY_WEIGHT,
    ANALYSIS_RESULTS,
    ROLLOUTS,
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

    def serve(self, port: int) -> None:
        if port:
            start_http_server(port, registry=self.registry)
