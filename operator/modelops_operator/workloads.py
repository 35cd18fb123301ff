"""Read a Deployment (and its pods) into the few facts the rollout needs (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelops_operator.constants import LABEL_TRACK

# Container waiting reasons that will not heal by waiting.
FAILING_WAIT_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


@dataclass(frozen=True)
class WorkloadState:
    """One Deployment as the rollout sees it."""

    exists: bool
    desired: int = 0
    ready: int = 0
    updated: int = 0
    available: int = 0
    current_generation: bool = True
    failure: str | None = None  # reason, when it will not become ready by waiting
    failure_message: str = ""

    @property
    def is_ready(self) -> bool:
        return (
            self.exists
            and self.current_generation
            and self.updated >= self.desired
            and self.ready >= self.desired
            and self.available >= self.desired
        )


MISSING = WorkloadState(exists=False)


def read_deployment(
    deployment: dict[str, Any] | None, pods: Sequence[dict[str, Any]] = ()
) -> WorkloadState:
    if not deployment:
        return MISSING
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    meta = deployment.get("metadata") or {}
    desired = int(spec.get("replicas", 1) or 0)
    failure: str | None = None
    message = ""
    for cond in status.get("conditions") or []:
        if (
            cond.get("type") == "Progressing"
            and cond.get("status") == "False"
            and cond.get("reason") == "ProgressDeadlineExceeded"
        ):
            failure, message = "ProgressDeadlineExceeded", cond.get("message", "")
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            failure, message = cond.get("reason") or "ReplicaFailure", cond.get("message", "")
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in FAILING_WAIT_REASONS:
                failure = waiting["reason"]
                name = (pod.get("metadata") or {}).get("name", "?")
                message = f"pod {name}: {waiting['reason']}: {waiting.get('message', '')}".strip()
    return WorkloadState(
        exists=True,
        desired=desired,
        ready=int(status.get("readyReplicas") or 0),
        updated=int(status.get("updatedReplicas") or 0),
        available=int(status.get("availableReplicas") or 0),
        current_generation=int(status.get("observedGeneration") or 0)
        >= int(meta.get("generation") or 0),
        failure=failure,
        failure_message=message,
    )


def pods_of_track(pods: Sequence[dict[str, Any]], track: str) -> list[dict[str, Any]]:
    return [
        p for p in pods if ((p.get("metadata") or {}).get("labels") or {}).get(LABEL_TRACK) == track
    ]


def split_replicas(total: int, weight: int) -> tuple[int, int]:
    """(stable, canary) replicas for a canary at `weight` percent of `total`.

    Without a mesh the weight is a replica ratio behind one Service. The canary
    gets at least one replica; the stable keeps at least one until the last
    step (100), so traffic never drops to an unjudged version alone.
    """
    if total <= 0:
        return 0, 0
    canary = min(total, max(1, math.ceil(total * weight / 100)))
    if weight >= 100:
        return 0, canary
    return max(1, total - canary), canary


def ready_text(stable: WorkloadState, canary: WorkloadState) -> str:
    """The READY printer column: ready/desired over both tracks."""
    ready = stable.ready + (canary.ready if canary.exists else 0)
    desired = stable.desired + (canary.desired if canary.exists else 0)
    return f"{ready}/{desired}"
