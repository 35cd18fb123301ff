"""Writing status.conditions and the rest of the status; the Degraded status of a pass that fails.

The status is written with a PUT conditional on the resourceVersion read at the
start of the pass: two passes can never both act on one status (the loser gets
409, `ConflictError`, and the next tick starts from the winner's status).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from modelops_operator.conditions import announces, degrade
from modelops_operator.constants import API_VERSION
from modelops_operator.kube import KubeClient
from modelops_operator.metrics import OperatorMetrics
from modelops_operator.models import Condition, ModelDeploymentStatus, dump, isoformat


class StatusWriter:
    def __init__(self, kube: KubeClient, metrics: OperatorMetrics, field_manager: str) -> None:
        self.kube = kube
        self.metrics = metrics
        self.field_manager = field_manager

    def write(self, obj: dict[str, Any], status: ModelDeploymentStatus) -> dict[str, Any]:
        """PUT the status; returns the object as stored (for the Events that follow)."""
        meta = obj["metadata"]
        body = {
            "apiVersion": API_VERSION,
            "kind": obj["kind"],
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "resourceVersion": meta["resourceVersion"],
            },
            "spec": obj.get("spec") or {},
            "status": json_clean(dump(status)),
        }
        return self.kube.replace_status(body) or obj

    def post_events(self, obj: dict[str, Any], events: list[tuple[str, str, str]]) -> None:
        """(type, reason, message) Events about `obj`, best effort."""
        for type_, reason, message in events:
            self.kube.post_event(obj, type_, reason, message, self.field_manager)

    def degraded(
        self,
        obj: dict[str, Any],
        status: ModelDeploymentStatus,
        reason: str,
        message: str,
        generation: int | None,
        before: Sequence[Condition] | None = None,
    ) -> str:
        """`status` Degraded with `reason` (conditions.degrade), written; a Warning Event only
        when `before` (the conditions read at the start of the pass, default `status`'s) did
        not say it already. Returns the reason."""
        meta = obj["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        before = status.conditions if before is None else before
        new = degrade(status, before, reason, message, isoformat(datetime.now(UTC)), generation)
        fresh = self.kube.get(obj["apiVersion"], obj["kind"], name, namespace) or obj
        written = self.write(fresh, new)
        if announces(before, reason):
            self.post_events(written, [("Warning", reason, message)])
        self.metrics.errors.labels(namespace, name, reason).inc()
        self.metrics.set_phase(namespace, name, new.phase, 0)
        return reason


def json_clean(value: Any) -> Any:
    """Status must be JSON: NaN/Inf figures become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_clean(v) for v in value]
    return value
