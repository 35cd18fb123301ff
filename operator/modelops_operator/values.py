"""ModelDeployment spec (+ the rollout's workloads) -> values of charts/model-service (pure)."""

from __future__ import annotations

from typing import Any

from modelops_operator.images import split_image
from modelops_operator.models import (
    FetchSpec,
    ModelDeploymentSpec,
    ModelRef,
    dump,
    parse_duration,
)
from modelops_operator.rollout import Workloads

# The chart's default scrape timeout; Prometheus refuses a timeout longer than the interval,
# and the chart fails the render on one (templates/_validate.tpl).
DEFAULT_SCRAPE_TIMEOUT = "10s"


def scrape_timeout(interval: str) -> str:
    """The chart's default timeout, or the interval itself when that is shorter."""
    shorter = parse_duration(interval) < parse_duration(DEFAULT_SCRAPE_TIMEOUT)
    return interval if shorter else DEFAULT_SCRAPE_TIMEOUT


def chart_values(
    spec: ModelDeploymentSpec,
    workloads: Workloads,
    *,
    service_monitor_labels: dict[str, str] | None = None,
    rule_labels: dict[str, str] | None = None,
    dashboard_labels: dict[str, str] | None = None,
    scaled_object: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The values for `helm template`. The extra label maps come from selector discovery;
    `scaled_object` from scaling.scaled_object_values (KEDA scaling the ModelDeployment)."""
    stable: ModelRef = workloads.stable
    mon = spec.monitoring
    values: dict[str, Any] = {
        "fullnameOverride": "",
        "model": {
            "name": stable.name,
            "version": stable.version,
            "artifact": stable.artifact,
            "uri": stable.uri,
            "sha256": stable.sha256,
        },
        "image": split_image(stable.image).values(),
        "replicaCount": workloads.stable_replicas,
        "canary": {"enabled": False},
        # an HTTPRoute weighs the tracks by their own Services
        "service": {"perTrack": spec.rollout.gateway_api is not None},
        "monitoring": {
            # the operator decides from discovery which monitoring kinds it applies
            "missingCrds": "render",
            "serviceMonitor": {
                "enabled": mon.service_monitor.enabled,
                "interval": mon.service_monitor.interval,
                "scrapeTimeout": scrape_timeout(mon.service_monitor.interval),
                "labels": {**mon.service_monitor.labels, **(service_monitor_labels or {})},
            },
            "prometheusRule": {
                "enabled": mon.alerts.enabled,
                "labels": {**mon.alerts.labels, **(rule_labels or {})},
            },
            "dashboards": {
                "enabled": mon.dashboards.enabled,
                "labels": {**mon.dashboards.labels, **(dashboard_labels or {})},
            },
        },
        "scaledObject": scaled_object or {"enabled": False},
        "tests": {"enabled": False},
    }
    if workloads.canary is not None:
        canary = workloads.canary
        values["canary"] = {
            "enabled": True,
            "version": canary.version,
            "artifact": canary.artifact,
            "uri": canary.uri,
            "sha256": canary.sha256,
            "replicaCount": workloads.canary_replicas,
            "image": split_image(canary.image).values(),
            # every key, so none falls back to the stable's model.fetch
            "fetch": dump(canary.fetch or FetchSpec()),
        }
    if stable.fetch is not None:
        values["model"]["fetch"] = dump(stable.fetch)
    return values
