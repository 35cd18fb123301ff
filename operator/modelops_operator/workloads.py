"""Read a Deployment (and its pods) into the few facts the rollout needs (pure)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelops_operator.constants import LABEL_TRACK, LABEL_VERSION, SERVICE_CONTAINER

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

# How much of a container's termination message goes into failure_message (the
# kubelet keeps up to 4 KiB, or with FallbackToLogsOnError the last 2 KiB of the log).
TERMINATION_TEXT_LIMIT = 512
_ERROR_LEVELS = frozenset({"error", "critical", "fatal"})


@dataclass(frozen=True)
class WorkloadState:
    """One Deployment as the rollout sees it."""

    exists: bool
    desired: int = 0
    replicas: int = 0  # pods the Deployment has (status.replicas), ready or not
    ready: int = 0
    updated: int = 0
    available: int = 0
    current_generation: bool = True
    failure: str | None = None  # reason, when it will not become ready by waiting
    failure_message: str = ""
    # What the pod template runs: its modelops.io/version label and the service's image
    # (None: not read). The status is written before the apply, so a ready Deployment may
    # still run the release before (the apply failed, or the operator restarted between).
    version: str | None = None
    image: str | None = None

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
    template = spec.get("template") or {}
    template_labels = (template.get("metadata") or {}).get("labels") or {}
    containers = (template.get("spec") or {}).get("containers") or []
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
        status_of_pod = pod.get("status") or {}
        # the init container (model-fetch) first: while it fails, the service never starts
        for cs in [
            *(status_of_pod.get("initContainerStatuses") or []),
            *(status_of_pod.get("containerStatuses") or []),
        ]:
            reason = failing_reason(cs)
            if reason:
                failure = reason
                name = (pod.get("metadata") or {}).get("name", "?")
                message = f"pod {name}: {container_failure(cs, reason)}"
    return WorkloadState(
        exists=True,
        desired=desired,
        replicas=int(status.get("replicas") or 0),
        ready=int(status.get("readyReplicas") or 0),
        updated=int(status.get("updatedReplicas") or 0),
        available=int(status.get("availableReplicas") or 0),
        current_generation=int(status.get("observedGeneration") or 0)
        >= int(meta.get("generation") or 0),
        failure=failure,
        failure_message=message,
        version=template_labels.get(LABEL_VERSION),
        image=next(
            (c.get("image") for c in containers if c.get("name") == SERVICE_CONTAINER), None
        ),
    )


def failing_reason(cs: dict[str, Any]) -> str | None:
    """Why a container will not become ready by waiting, or None when it may."""
    waiting = (cs.get("state") or {}).get("waiting") or {}
    if waiting.get("reason") in FAILING_WAIT_REASONS:
        return waiting["reason"]
    last = (cs.get("lastState") or {}).get("terminated") or {}
    if not cs.get("ready") and last.get("exitCode") not in (None, 0):
        # Between two back-offs the kubelet runs the container again (state running,
        # then terminated: not waiting). The same crash loop, so the same reason, or
        # the Degraded condition and its Warning would flap at every restart.
        return "CrashLoopBackOff"
    return None


def container_failure(cs: dict[str, Any], reason: str = "") -> str:
    """Why one failing container fails: its last exit and what it said, else the kubelet's word.

    A crash-looping container's own last words (its termination message: what it
    wrote to /dev/termination-log, or with terminationMessagePolicy
    FallbackToLogsOnError the tail of its log) say more than the kubelet's
    "back-off restarting failed container".
    """
    waiting = (cs.get("state") or {}).get("waiting") or {}
    reason = reason or waiting.get("reason") or "Waiting"
    last = (cs.get("lastState") or {}).get("terminated") or {}
    if last:
        code = last.get("exitCode")
        said = termination_text(last.get("message") or "")
        exited = f"container {cs.get('name', '?')} exited {code}"
        if last.get("reason"):
            exited += f" ({last['reason']})"
        return f"{reason}: {exited}" + (f": {said}" if said else "")
    return f"{reason}: {waiting.get('message', '')}".strip().removesuffix(":")


def termination_text(message: str, limit: int = TERMINATION_TEXT_LIMIT) -> str:
    """The line that matters in a termination message, trimmed to ``limit`` characters.

    With FallbackToLogsOnError the message is the tail of the log: for JSON log
    lines (the service's), the ``msg`` of the last error line, else of the last
    line; for plain text, the last line.
    """
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if not lines:
        return ""
    for line in reversed(lines):
        doc = _json_object(line) or {}
        if _said(doc) and str(doc.get("level", "")).lower() in _ERROR_LEVELS:
            chosen = _said(doc)
            break
    else:
        chosen = _said(_json_object(lines[-1])) or lines[-1]
    chosen = " ".join(chosen.split())
    if len(chosen) > limit:
        chosen = chosen[: limit - 1].rstrip() + "\u2026"
    return chosen


def _said(doc: dict[str, Any] | None) -> str:
    return str(doc.get("msg") or doc.get("message") or "") if doc else ""


def _json_object(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def pods_of_track(pods: Sequence[dict[str, Any]], track: str) -> list[dict[str, Any]]:
    return [
        p for p in pods if ((p.get("metadata") or {}).get("labels") or {}).get(LABEL_TRACK) == track
    ]


def split_replicas(total: int, weight: int) -> tuple[int, int]:
    """(stable, canary) replicas for a canary step of `weight` percent (replica mode).

    Without traffic routing the share is a replica ratio behind one Service. The
    stable keeps its full `total` (it never loses capacity to an unjudged version);
    the canary gets the most replicas whose share c / (total + c) does not exceed
    the step, at least one and at most `total`: a canary never outgrows the stable
    it runs beside, so a step above 50% (below 100) gives an equal split, 50%. At
    100 the canary runs alone at `total`. When even one canary replica is more than
    the step (replicas 2, step 10: 33%), the effective share is higher than the
    step; above 50% it is lower. Either way the status reports it beside the step
    and says what the replicas give (`unreachable_step`), never rounding silently.
    """
    if total <= 0:
        return 0, 0
    if weight >= 100:
        return 0, total
    return total, min(total, max(1, total * weight // (100 - weight)))


def split_routed(total: int, weight: int) -> tuple[int, int]:
    """(stable, canary) replicas when an HTTPRoute splits the traffic by `weight` percent.

    The route gives the share, so replicas only need to carry it: the stable keeps
    its full `total` until the promotion has rolled it, and the canary gets the
    share of `total` its weight asks for, rounded up, at least one.
    """
    if total <= 0:
        return 0, 0
    return total, max(1, -(-total * weight // 100))


def effective_share(stable: int, canary: int) -> float:
    """The canary's share of the replicas, percent (one decimal)."""
    pods = stable + canary
    return round(100 * canary / pods, 1) if pods else 0.0


def replicas_to_reach(weight: int) -> int:
    """The fewest stable replicas beside one canary replica that keep it within `weight`%."""
    return 0 if weight >= 100 else -(-(100 - weight) // weight)


def unreachable_step(total: int, weight: int) -> str | None:
    """Why the replica count cannot give `weight` percent, and what it gives, or None
    when it can."""
    stable, canary = split_replicas(total, weight)
    share = effective_share(stable, canary)
    if total <= 0 or weight >= 100:
        return None
    if weight > 50:
        return (
            f"step {weight}% is unreachable by replicas: the canary is capped at the "
            f"stable's {total} replicas, {canary} canary beside {stable} stable is {share:g}%; "
            "traffic routing (gatewayAPI) would reach it"
        )
    if share <= weight:
        return None
    return (
        f"step {weight}% is unreachable with {total} replicas: 1 canary beside {stable} stable "
        f"is {share:g}%; {replicas_to_reach(weight)} replicas would reach it"
    )


def ready_text(stable: WorkloadState, canary: WorkloadState) -> str:
    """The READY printer column: ready/desired over both tracks."""
    ready = stable.ready + (canary.ready if canary.exists else 0)
    desired = stable.desired + (canary.desired if canary.exists else 0)
    return f"{ready}/{desired}"
