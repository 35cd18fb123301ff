"""Operator settings: one pydantic-settings class, environment prefix MODELOPS_OPERATOR_."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelops_operator.constants import FIELD_MANAGER, METRICS_PORT


def _default_chart() -> Path:
    # In the image the chart sits at /opt/modelops/charts/model-service; in the repo
    # it is charts/model-service beside operator/.
    image_path = Path("/opt/modelops/charts/model-service")
    if image_path.is_dir():
        return image_path
    return Path(__file__).resolve().parents[2] / "charts" / "model-service"


class OperatorSettings(BaseSettings):
    """Everything the operator reads from its environment, read once at startup."""

    model_config = SettingsConfigDict(env_prefix="MODELOPS_OPERATOR_", extra="ignore")

    prometheus_url: str = Field(
        default="http://prometheus-operated.monitoring.svc:9090",
        description="Prometheus HTTP API base URL for canary analysis (spec can override).",
    )
    prometheus_timeout_seconds: float = Field(default=5.0, gt=0)
    chart_path: Path = Field(default_factory=_default_chart)
    helm_binary: str = "helm"
    kubeconfig: Path | None = Field(
        default=None, description="Unset: in-cluster, else ~/.kube/config."
    )
    field_manager: str = FIELD_MANAGER
    metrics_port: int = Field(default=METRICS_PORT, ge=0, le=65535, description="0 disables.")
    tick_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often every ModelDeployment is re-reconciled: canary steps are "
        "checked, deleted or edited objects put back, monitoring selectors re-read.",
    )
    resync_seconds: float = Field(
        default=30.0,
        ge=0,
        description="Re-apply an unchanged set of objects at least this often (puts back "
        "deleted or edited objects); a changed set is applied at once.",
    )
    workers: int = Field(default=16, ge=1, le=256, description="Reconciles running at once.")
    history_limit: int = Field(default=10, ge=1, le=100)
    selector_mode: Literal["label", "report"] = Field(
        default="label",
        description="label: add the labels a Prometheus/Grafana selector needs; "
        "report: only say in MonitoringReady which selector misses our objects.",
    )
    discover_grafana: bool = True
    namespaces: list[str] = Field(
        default_factory=list, description="Watched namespaces (JSON list); empty = cluster-wide."
    )
    monitoring_namespaces: list[str] = Field(
        default_factory=list,
        description="Where to look for Prometheus objects and Grafana (JSON list); "
        "empty = every namespace (needs cluster-wide read).",
    )
    health_port: int = Field(default=8080, ge=1, le=65535, description="kopf liveness /healthz.")
    log_level: str = "info"
