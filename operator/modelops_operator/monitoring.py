"""What discovery found -> the labels our monitoring objects need, and MonitoringReady (pure).

`Discovered` is the cluster as far as monitoring goes: the kinds served, the
Prometheus objects, namespace labels, Grafana dashboard sidecars (discovery.py
reads them). From it, `selector_labels` says which labels make those selectors
pick our objects, and `report` explains in the MonitoringReady condition what
picks them up and what does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelops_operator.applyset import ApplySet
from modelops_operator.models import ModelDeploymentSpec
from modelops_operator.selectors import (
    GrafanaSidecar,
    MonitoringReport,
    Selection,
    explain,
    explain_sidecar,
    monitoring_report,
    needed_labels,
)

PROMETHEUS_KINDS = ("ServiceMonitor", "PrometheusRule")


@dataclass(frozen=True)
class Discovered:
    served: frozenset[str]  # every kind name the cluster serves among the chart's kinds
    missing: frozenset[str]  # monitoring kinds not served
    prometheuses: list[dict[str, Any]] = field(default_factory=list)
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    sidecars: list[GrafanaSidecar] = field(default_factory=list)


@dataclass(frozen=True)
class SelectorLabels:
    """Labels added to our objects so that the selectors found pick them."""

    service_monitor: dict[str, str] = field(default_factory=dict)
    rule: dict[str, str] = field(default_factory=dict)
    dashboard: dict[str, str] = field(default_factory=dict)


def selector_labels(found: Discovered, namespace: str) -> SelectorLabels:
    def labels_for(kind: str) -> dict[str, str]:
        return needed_labels(found.prometheuses, kind, namespace, found.namespace_labels)

    dashboard: dict[str, str] = {}
    for sidecar in found.sidecars:
        if sidecar.watches(namespace):
            dashboard.setdefault(sidecar.label, sidecar.label_value or "1")
    return SelectorLabels(labels_for("ServiceMonitor"), labels_for("PrometheusRule"), dashboard)


def report(
    spec: ModelDeploymentSpec, apply_set: ApplySet, namespace: str, found: Discovered
) -> MonitoringReport:
    """The MonitoringReady condition for what we apply, given what the cluster runs."""
    enabled = []
    if spec.monitoring.service_monitor.enabled:
        enabled.append("ServiceMonitor")
    if spec.monitoring.alerts.enabled:
        enabled.append("PrometheusRule")
    missing = [k for k in enabled if k in found.missing]
    return monitoring_report(
        missing_kinds=missing,
        selections=_selections(apply_set, namespace, found),
        sidecar_notes=_sidecar_notes(spec, apply_set, namespace, found),
        enabled_kinds=[k for k in enabled if k not in missing],
    )


def _selections(apply_set: ApplySet, namespace: str, found: Discovered) -> list[Selection]:
    return [
        explain(prom, obj["kind"], obj["metadata"].get("labels") or {}, namespace,
                found.namespace_labels)
        for obj in apply_set.objects
        if obj["kind"] in PROMETHEUS_KINDS
        for prom in found.prometheuses
    ]  # fmt: skip


def _sidecar_notes(
    spec: ModelDeploymentSpec, apply_set: ApplySet, namespace: str, found: Discovered
) -> list[tuple[bool, str]]:
    if not spec.monitoring.dashboards.enabled:
        return []
    dashboard = next(
        (o for o in apply_set.objects
         if o["kind"] == "ConfigMap" and "-dashboard-" in o["metadata"]["name"]),
        None,
    )  # fmt: skip
    if dashboard is None:
        return []
    labels = dashboard["metadata"].get("labels") or {}
    return [
        (sidecar.watches(namespace) and sidecar.selects(labels),
         explain_sidecar(sidecar, labels, namespace))
        for sidecar in found.sidecars
    ]  # fmt: skip
