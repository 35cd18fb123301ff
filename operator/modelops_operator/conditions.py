"""Status conditions (pure): Ready, Progressing, Degraded, MonitoringReady.

lastTransitionTime changes only when a condition's status flips, as the
Kubernetes API conventions ask; reason and message follow every reconcile.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from modelops_operator.constants import (
    COND_AUTOSCALING,
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
from modelops_operator.scaling import keda_missing, scale_replicas, scale_selector
from modelops_operator.selectors import MonitoringReport
from modelops_operator.workloads import ready_text


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


def rollout_conditions(outcome: Outcome, obs: Observation) -> list[ConditionValue]:
    """Ready, Progressing and Degraded from the rollout outcome.

    Ready is True only when the stable Deployment serves the release the spec asks for and
    is available: `kubectl wait --for=condition=Ready` (which compares the condition's
    observedGeneration with the object's generation) then waits for this generation's
    release, and a rolled-back release says Ready=False, reason RolledBack, at once.
    """
    phase = outcome.transition.phase
    event = outcome.event
    next_state = outcome.transition.next
    stable = obs.stable
    unverified = _unverified(outcome)
    serving = outcome.status.stable
    current = serving == obs.spec.model and outcome.status.canary is None
    replicas = f"{stable.ready}/{stable.desired} stable replicas ready"
    if phase == Phase.ROLLED_BACK:
        ready = ConditionValue(
            COND_READY,
            False,
            Reason.ROLLED_BACK,
            f"version {obs.spec.model.version} was rolled back; "
            f"version {serving.version if serving else '?'} serves ({replicas})",
        )
    elif not current and stable.is_ready:
        ready = ConditionValue(
            COND_READY,
            False,
            event.reason or Reason.PROGRESSING,
            f"rolling out version {obs.spec.model.version}: {event.message}; "
            f"version {serving.version if serving else '?'} serves ({replicas})",
        )
    elif stable.is_ready:
        ready = ConditionValue(COND_READY, True, Reason.AVAILABLE, replicas + unverified)
    else:
        ready = ConditionValue(
            COND_READY,
            False,
            stable.failure or (Reason.NOT_DEPLOYED if not stable.exists else Reason.NOT_AVAILABLE),
            (stable.failure_message or replicas) + unverified,
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


def degraded_reason(conditions: Iterable[Condition]) -> str | None:
    """The reason of a Degraded condition that is True, else None."""
    return next(
        (c.reason for c in conditions if c.type == COND_DEGRADED and c.status == "True"), None
    )


def announces(before: Iterable[Condition], reason: str) -> bool:
    """Whether a pass that cannot get past `reason` posts its Warning Event.

    Only on the transition: when the status read at the start of the pass did not
    already say Degraded for this reason. A cause that persists over many ticks (a
    missing HTTPRoute) is one Event, then the condition, which keeps saying it, as
    kopf and Flagger users expect: no Event storm.
    """
    return degraded_reason(before) != reason


def degrade(
    status: ModelDeploymentStatus,
    before: Iterable[Condition],
    reason: str,
    message: str,
    now: str,
    generation: int | None,
) -> ModelDeploymentStatus:
    """`status` Degraded for `reason`: Degraded True, Progressing False, with the
    lastTransitionTime of the conditions read at the start of the pass (`before`), so a
    cause that persists keeps the time it started however often the pass runs.

    A rollback stays phase RolledBack (derive_state reads it there; the conditions say
    what is wrong), anything else becomes phase Degraded.
    """
    kept = (COND_DEGRADED, COND_PROGRESSING)
    conditions = set_conditions(
        [
            *(c for c in status.conditions if c.type not in kept),
            *(c for c in before if c.type in kept),
        ],
        [
            ConditionValue(COND_DEGRADED, True, reason, message),
            ConditionValue(COND_PROGRESSING, False, reason, message),
        ],
        now,
        generation,
    )
    phase = Phase.ROLLED_BACK if status.phase == Phase.ROLLED_BACK else Phase.DEGRADED
    return status.model_copy(
        update={"phase": phase, "conditions": conditions, "observed_generation": generation}
    )


def monitoring_condition(ok: bool, reason: str, message: str) -> ConditionValue:
    return ConditionValue(COND_MONITORING, ok, reason, message)


def autoscaling_condition(obs: Observation, served: frozenset[str]) -> ConditionValue | None:
    """AutoscalingReady while spec.autoscaling is set: False naming what is missing (KEDA)."""
    bounds = obs.spec.autoscaling
    if bounds is None:
        return None
    missing = keda_missing(obs.spec, served)
    if missing:
        return ConditionValue(COND_AUTOSCALING, False, Reason.KEDA_MISSING, missing)
    return ConditionValue(
        COND_AUTOSCALING,
        True,
        Reason.SCALED_OBJECT_APPLIED,
        f"KEDA scales this ModelDeployment between {bounds.min_replicas} and "
        f"{bounds.max_replicas} replicas at {bounds.target_requests_per_second:g} requests/s "
        "per replica",
    )


def status_after(
    outcome: Outcome,
    obs: Observation,
    report: MonitoringReport,
    last_analysis: AnalysisRecord | None,
    generation: int | None,
    *,
    pod_labels: dict[str, str],
    served: frozenset[str],
) -> ModelDeploymentStatus:
    """The status one pass writes: the outcome's, with conditions, READY, /scale's replicas
    and selector, and the last analysis."""
    if outcome.transition.action == Action.START_CANARY:
        last_analysis = None  # a new canary: the previous figures are about another release
    autoscaling = autoscaling_condition(obs, served)
    conditions = set_conditions(
        [c for c in obs.status.conditions if c.type != COND_AUTOSCALING or autoscaling],
        [
            *rollout_conditions(outcome, obs),
            monitoring_condition(report.ok, report.reason, report.message),
            *([autoscaling] if autoscaling else []),
        ],
        isoformat(obs.now),
        generation,
    )
    return outcome.status.model_copy(
        update={
            "observed_generation": generation,
            "ready": ready_text(obs.stable, obs.canary),
            "replicas": scale_replicas(obs.stable, obs.canary),
            "selector": scale_selector(pod_labels),
            "last_analysis": last_analysis,
            "conditions": conditions,
        }
    )
