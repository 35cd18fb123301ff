"""Status conditions (pure): Ready, Progressing, Degraded, MonitoringReady.

lastTransitionTime changes only when a condition's status flips, as the
Kubernetes API conventions ask; reason and message follow every reconcile.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from modelops_operator.constants import (
    COND_DEGRADED,
    COND_MONITORING,
    COND_PROGRESSING,
    COND_READY,
    CONDITION_TYPES,
)
from modelops_operator.models import (
    AnalysisRecord,
    Condition,
    ModelDeploymentStatus,
    Phase,
    isoformat,
)
from modelops_operator.reasons import Reason
from modelops_operator.rollout import Action, EventKind, Observation, Outcome, State
from modelops_operator.selectors import MonitoringReport
from modelops_operator.workloads import WorkloadState, ready_text


@dataclass(frozen=True)
class ConditionValue:
    type: str
    status: bool | None
    reason: str
    message: str = ""

    @property
    def status_text(self) -> Literal["True", "False", "Unknown"]:
        return "Unknown" if self.status is None else "True" if self.status else "False"


def set_conditions(
    current: Iterable[Condition],
    updates: Iterable[ConditionValue],
    now: str,
    generation: int | None = None,
) -> tuple[Condition, ...]:
    """Merge updates into the current conditions, keeping the canonical order."""
    by_type = {c.type: c for c in current}
    for update in updates:
        old = by_type.get(update.type)
        changed = old is None or old.status != update.status_text
        by_type[update.type] = Condition(
            type=update.type,
            status=update.status_text,
            reason=update.reason,
            message=update.message[:1024],
            last_transition_time=now if changed else old.last_transition_time,  # type: ignore[union-attr]
            observed_generation=generation,
        )
    ordered = [by_type[t] for t in CONDITION_TYPES if t in by_type]
    ordered += [c for t, c in sorted(by_type.items()) if t not in CONDITION_TYPES]
    return tuple(ordered)


def rollout_conditions(outcome: Outcome, stable: WorkloadState) -> list[ConditionValue]:
    """Ready, Progressing and Degraded from the rollout outcome."""
    phase = outcome.transition.phase
    event = outcome.event
    next_state = outcome.transition.next
    unverified = _unverified(outcome)
    if stable.is_ready:
        ready = ConditionValue(
            COND_READY,
            True,
            Reason.AVAILABLE,
            f"{stable.ready}/{stable.desired} stable replicas ready{unverified}",
        )
    else:
        ready = ConditionValue(
            COND_READY,
            False,
            stable.failure or (Reason.NOT_DEPLOYED if not stable.exists else Reason.NOT_AVAILABLE),
            (stable.failure_message or f"{stable.ready}/{stable.desired} stable replicas ready")
            + unverified,
        )
    in_rollout = next_state in (State.ROLLING, State.CANARY, State.PROMOTING) or (
        event.kind == EventKind.PAUSED
    )
    if in_rollout:
        progressing = ConditionValue(COND_PROGRESSING, True, event.reason, event.message)
    elif phase == Phase.ROLLED_BACK:
        progressing = ConditionValue(COND_PROGRESSING, False, Reason.ROLLED_BACK, event.message)
    else:
        progressing = ConditionValue(
            COND_PROGRESSING,
            False,
            Reason.ROLLOUT_COMPLETE,
            event.message or "no rollout in progress",
        )
    if phase == Phase.DEGRADED:
        degraded = ConditionValue(
            COND_DEGRADED, True, event.reason or Reason.DEGRADED, event.message
        )
    else:
        degraded = ConditionValue(COND_DEGRADED, False, Reason.AS_EXPECTED, "")
    return [ready, progressing, degraded]


def _unverified(outcome: Outcome) -> str:
    """A note for the Ready message when the stable release declares no sha256.

    spec.model.sha256 stays optional (DESIGN.md only asks that a declared digest
    be enforced), but an artifact nobody declared a digest for is unpickled
    unchecked, and the status says so.
    """
    stable = outcome.status.stable
    if stable is None or stable.sha256:
        return ""
    return f"; artifact not verified: spec.model.sha256 is empty, {stable.location} loads unchecked"


def monitoring_condition(ok: bool, reason: str, message: str) -> ConditionValue:
    return ConditionValue(COND_MONITORING, ok, reason, message)


def status_after(
    outcome: Outcome,
    obs: Observation,
    report: MonitoringReport,
    last_analysis: AnalysisRecord | None,
    generation: int | None,
) -> ModelDeploymentStatus:
    """The status one pass writes: the outcome's, with conditions, READY and the last analysis."""
    if outcome.transition.action == Action.START_CANARY:
        last_analysis = None  # a new canary: the previous figures are about another release
    conditions = set_conditions(
        obs.status.conditions,
        [
            *rollout_conditions(outcome, obs.stable),
            monitoring_condition(report.ok, report.reason, report.message),
        ],
        isoformat(obs.now),
        generation,
    )
    return outcome.status.model_copy(
        update={
            "observed_generation": generation,
            "ready": ready_text(obs.stable, obs.canary),
            "last_analysis": last_analysis,
            "conditions": conditions,
        }
    )
