"""The rollout state machine (pure): state x event -> next state, action, phase.

The state is read from status only, so a restarted operator resumes where the
status says it was (level-based: every tick recomputes the event from the spec,
the status and what the cluster shows, and acts on the difference).

    derive_state(status)            -> State
    classify(observation)           -> Event (kind + reason/message)
    TRANSITIONS[(state, event.kind)] -> Transition(next state, action, phase)
    advance(observation)            -> Outcome (new status, Events to post)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from modelops_operator.analysis import Decision, Verdict
from modelops_operator.constants import COND_PROGRESSING
from modelops_operator.images import split_image
from modelops_operator.models import (
    AnalysisRecord,
    CanaryState,
    HeldFailure,
    HistoryEntry,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    ModelRef,
    Phase,
    PreviousStable,
    RequestRecord,
    Strategy,
    Verb,
    isoformat,
    parse_time,
)
from modelops_operator.reasons import Reason, Result
from modelops_operator.scaling import total_replicas
from modelops_operator.workloads import (
    WorkloadState,
    effective_share,
    split_replicas,
    split_routed,
    unreachable_step,
)


class State(StrEnum):
    INITIAL = "Initial"  # nothing deployed yet
    IDLE = "Idle"  # the stable serves the desired release (or waits for pods)
    ROLLING = "Rolling"  # the stable Deployment is rolling to a new release
    CANARY = "Canary"  # a canary Deployment beside the stable, stepped by analysis
    PROMOTING = "Promoting"  # stable rolled to the canary's release; canary kept until ready
    ROLLED_BACK = "RolledBack"  # the canary failed; stable untouched, release not retried


class EventKind(StrEnum):
    NEW_RELEASE_CANARY = "NewReleaseCanary"
    NEW_RELEASE_ROLLING = "NewReleaseRolling"
    FAST_ROLLBACK = "FastRollback"  # back to the previous stable within the window
    BACK_TO_STABLE = "BackToStable"  # spec returned to the stable release mid-canary
    RELEASE_ROLLED_BACK = "ReleaseRolledBack"  # spec still asks for the failed release
    PAUSED = "Paused"
    DEPLOY_READY = "DeployReady"
    DEPLOY_PROGRESSING = "DeployProgressing"
    DEPLOY_FAILED = "DeployFailed"
    CANARY_STARTING = "CanaryStarting"
    STEP_NOT_DUE = "StepNotDue"
    PASS_NEXT_STEP = "PassNextStep"
    PASS_LAST_STEP = "PassLastStep"
    INCONCLUSIVE = "Inconclusive"
    PROMETHEUS_ERROR = "PrometheusError"
    FAIL = "Fail"  # analysis failed, inconclusive past the deadline, canary never ready
    FAIL_HOLD = "FailHold"  # the same with autoRollback: false
    # requests of `kubectl modelops` (requests.py), which win over the analysis
    PROMOTE_REQUESTED = "PromoteRequested"  # one step on
    PROMOTE_FULL_REQUESTED = "PromoteFullRequested"  # straight to promotion
    ABORT_REQUESTED = "AbortRequested"


class Action(StrEnum):
    NONE = "None"
    HOLD = "Hold"
    DEPLOY_STABLE = "DeployStable"
    FINISH_ROLLOUT = "FinishRollout"
    START_CANARY = "StartCanary"
    ADVANCE = "Advance"
    NOTE_INCONCLUSIVE = "NoteInconclusive"
    PROMOTE = "Promote"
    FINISH_PROMOTION = "FinishPromotion"
    ROLLBACK = "Rollback"
    ABORT_CANARY = "AbortCanary"


@dataclass(frozen=True)
class Transition:
    next: State
    action: Action
    phase: Phase


S, E, A, P = State, EventKind, Action, Phase

_NEW_RELEASE = {
    E.NEW_RELEASE_CANARY: Transition(S.CANARY, A.START_CANARY, P.PROGRESSING),
    E.NEW_RELEASE_ROLLING: Transition(S.ROLLING, A.DEPLOY_STABLE, P.PROGRESSING),
    E.FAST_ROLLBACK: Transition(S.ROLLING, A.DEPLOY_STABLE, P.PROGRESSING),
}

# The full table. A (state, event) pair missing here is a bug in classify().
TRANSITIONS: dict[tuple[State, EventKind], Transition] = {
    # first deploy: never a canary, there is nothing to compare against
    (S.INITIAL, E.NEW_RELEASE_CANARY): Transition(S.ROLLING, A.DEPLOY_STABLE, P.PROGRESSING),
    (S.INITIAL, E.NEW_RELEASE_ROLLING): Transition(S.ROLLING, A.DEPLOY_STABLE, P.PROGRESSING),
    **{(S.IDLE, k): t for k, t in _NEW_RELEASE.items()},
    (S.IDLE, E.PAUSED): Transition(S.IDLE, A.HOLD, P.PROGRESSING),
    (S.IDLE, E.DEPLOY_READY): Transition(S.IDLE, A.NONE, P.READY),
    (S.IDLE, E.DEPLOY_PROGRESSING): Transition(S.IDLE, A.NONE, P.PROGRESSING),
    (S.IDLE, E.DEPLOY_FAILED): Transition(S.IDLE, A.NONE, P.DEGRADED),
    **{(S.ROLLING, k): t for k, t in _NEW_RELEASE.items()},
    (S.ROLLING, E.PAUSED): Transition(S.ROLLING, A.HOLD, P.PROGRESSING),
    (S.ROLLING, E.DEPLOY_READY): Transition(S.IDLE, A.FINISH_ROLLOUT, P.READY),
    (S.ROLLING, E.DEPLOY_PROGRESSING): Transition(S.ROLLING, A.NONE, P.PROGRESSING),
    (S.ROLLING, E.DEPLOY_FAILED): Transition(S.ROLLING, A.NONE, P.DEGRADED),
    **{(S.CANARY, k): t for k, t in _NEW_RELEASE.items()},
    (S.CANARY, E.BACK_TO_STABLE): Transition(S.IDLE, A.ABORT_CANARY, P.PROGRESSING),
    (S.CANARY, E.PAUSED): Transition(S.CANARY, A.HOLD, P.PROGRESSING),
    (S.CANARY, E.CANARY_STARTING): Transition(S.CANARY, A.NONE, P.PROGRESSING),
    (S.CANARY, E.STEP_NOT_DUE): Transition(S.CANARY, A.NONE, P.PROGRESSING),
    (S.CANARY, E.PASS_NEXT_STEP): Transition(S.CANARY, A.ADVANCE, P.PROGRESSING),
    (S.CANARY, E.PASS_LAST_STEP): Transition(S.PROMOTING, A.PROMOTE, P.PROGRESSING),
    (S.CANARY, E.INCONCLUSIVE): Transition(S.CANARY, A.NOTE_INCONCLUSIVE, P.PROGRESSING),
    (S.CANARY, E.PROMETHEUS_ERROR): Transition(S.CANARY, A.HOLD, P.PROGRESSING),
    (S.CANARY, E.FAIL): Transition(S.ROLLED_BACK, A.ROLLBACK, P.ROLLED_BACK),
    (S.CANARY, E.FAIL_HOLD): Transition(S.CANARY, A.HOLD, P.DEGRADED),
    (S.CANARY, E.PROMOTE_REQUESTED): Transition(S.CANARY, A.ADVANCE, P.PROGRESSING),
    (S.CANARY, E.PROMOTE_FULL_REQUESTED): Transition(S.PROMOTING, A.PROMOTE, P.PROGRESSING),
    (S.CANARY, E.ABORT_REQUESTED): Transition(S.ROLLED_BACK, A.ROLLBACK, P.ROLLED_BACK),
    **{(S.PROMOTING, k): t for k, t in _NEW_RELEASE.items()},
    (S.PROMOTING, E.PAUSED): Transition(S.PROMOTING, A.HOLD, P.PROGRESSING),
    (S.PROMOTING, E.DEPLOY_READY): Transition(S.IDLE, A.FINISH_PROMOTION, P.READY),
    (S.PROMOTING, E.DEPLOY_PROGRESSING): Transition(S.PROMOTING, A.NONE, P.PROGRESSING),
    (S.PROMOTING, E.DEPLOY_FAILED): Transition(S.PROMOTING, A.NONE, P.DEGRADED),
    **{(S.ROLLED_BACK, k): t for k, t in _NEW_RELEASE.items()},
    (S.ROLLED_BACK, E.RELEASE_ROLLED_BACK): Transition(S.ROLLED_BACK, A.NONE, P.ROLLED_BACK),
    (S.ROLLED_BACK, E.PAUSED): Transition(S.ROLLED_BACK, A.HOLD, P.ROLLED_BACK),
    (S.ROLLED_BACK, E.DEPLOY_READY): Transition(S.IDLE, A.NONE, P.READY),
    (S.ROLLED_BACK, E.DEPLOY_PROGRESSING): Transition(S.IDLE, A.NONE, P.PROGRESSING),
    (S.ROLLED_BACK, E.DEPLOY_FAILED): Transition(S.IDLE, A.NONE, P.DEGRADED),
}


def derive_state(status: ModelDeploymentStatus) -> State:
    if status.stable is None:
        return State.INITIAL
    if status.canary is not None:
        return State.PROMOTING if status.canary.promoting else State.CANARY
    if status.rollout_started_at:
        return State.ROLLING
    if status.phase == Phase.ROLLED_BACK:
        return State.ROLLED_BACK
    return State.IDLE


@dataclass(frozen=True)
class Observation:
    """Everything one reconcile knows: spec, status, the cluster, the clock, the analysis."""

    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus
    now: datetime
    stable: WorkloadState
    canary: WorkloadState
    analysis: Decision | None = None  # only when analysis_due() said so
    request: RequestRecord | None = None  # a promote or abort of the canary (requests.py)

    @property
    def paused(self) -> bool:
        """Held by spec.paused or by `kubectl modelops pause` (status.pause)."""
        return self.spec.paused or self.status.pause is not None


@dataclass(frozen=True)
class Event:
    kind: EventKind
    reason: str = ""
    message: str = ""


def _seconds_since(text: str | None, now: datetime) -> float:
    if not text:
        return 0.0
    return (now - parse_time(text)).total_seconds()


def _release_event(obs: Observation, state: State) -> Event | None:
    """The event a change of spec.model causes, or None when the spec asks for what runs."""
    target, status = obs.spec.model, obs.status
    if state == State.INITIAL:
        if obs.spec.rollout.strategy == Strategy.CANARY:
            return Event(EventKind.NEW_RELEASE_CANARY, Reason.INITIAL_DEPLOY, "first release")
        return Event(EventKind.NEW_RELEASE_ROLLING, Reason.INITIAL_DEPLOY, "first release")
    if status.canary is not None and target == status.canary.model:
        return None
    if target == status.stable:
        if state == State.CANARY:
            return Event(
                EventKind.BACK_TO_STABLE,
                Reason.CANARY_ABORTED,
                f"spec returned to stable version {target.version}; canary removed",
            )
        return None
    if state == State.ROLLED_BACK and target == status.rolled_back:
        return Event(
            EventKind.RELEASE_ROLLED_BACK,
            Reason.ROLLED_BACK,
            f"version {target.version} was rolled back; change spec.model to retry",
        )
    if obs.paused:
        return Event(
            EventKind.PAUSED,
            Reason.ROLLOUT_PAUSED,
            f"rollout to {target.version} held: {_held_by(obs)}",
        )
    prev = status.previous_stable
    if (
        prev is not None
        and target == prev.model
        and _seconds_since(prev.replaced_at, obs.now) <= obs.spec.rollout.rollback_window_seconds
    ):
        return Event(
            EventKind.FAST_ROLLBACK,
            Reason.FAST_ROLLBACK,
            f"version {target.version} was stable until {prev.replaced_at}, within "
            f"rollbackWindow {obs.spec.rollout.rollback_window}: rolled back without analysis",
        )
    # The service labels its series by the model card's name and version: a release that
    # keeps both (a new image, the same artifact re-uploaded) cannot be told apart from the
    # stable in Prometheus, so a canary of it would be judged against itself.
    stable = status.stable
    same_series = stable is not None and (target.name, target.version) == (
        stable.name,
        stable.version,
    )
    if (
        obs.spec.rollout.strategy in (Strategy.CANARY, Strategy.AB_TEST)
        and total_replicas(obs.spec) > 0
        and not same_series
    ):
        what = "A/B test of" if obs.spec.rollout.ab else "canary of"
        return Event(
            EventKind.NEW_RELEASE_CANARY, Reason.CANARY_STARTED, f"{what} version {target.version}"
        )
    why = ""
    if same_series and obs.spec.rollout.strategy != Strategy.ROLLING_UPDATE:
        why = (
            f" without analysis: {target.name} {target.version} is the stable's model version, "
            "whose metrics the canary's cannot be told apart from (change model.version)"
        )
    return Event(
        EventKind.NEW_RELEASE_ROLLING,
        Reason.ROLLING_UPDATE,
        f"rolling update to {target.version}{why}",
    )


def _held_by(obs: Observation) -> str:
    """What holds a paused rollout: `kubectl modelops pause` (status.pause) or spec.paused."""
    pause = obs.status.pause
    return f"paused by {pause.by} at {pause.at}" if pause is not None else "spec.paused"


def _deploy_event(obs: Observation, deadline_from: str | None, *, rolling: bool) -> Event:
    """``rolling``: the stable Deployment is to take status.stable (Rolling, Promoting); it is
    done when it is ready running that release, not the one before."""
    stable = obs.stable
    behind = rolling and not _runs(stable, obs.status.stable)
    if stable.is_ready and not behind:
        return Event(
            EventKind.DEPLOY_READY, Reason.AVAILABLE, f"{stable.ready}/{stable.desired} ready"
        )
    if stable.failure:
        return Event(EventKind.DEPLOY_FAILED, stable.failure, stable.failure_message)
    deadline = obs.spec.rollout.progress_deadline_seconds
    if deadline_from and _seconds_since(deadline_from, obs.now) > deadline:
        return Event(
            EventKind.DEPLOY_FAILED,
            Reason.PROGRESS_DEADLINE_EXCEEDED,
            f"{stable.ready}/{stable.desired} ready after progressDeadline "
            f"{obs.spec.rollout.progress_deadline}",
        )
    running = f", running {stable.version} ({stable.image})" if behind else ""
    return Event(
        EventKind.DEPLOY_PROGRESSING,
        Reason.PROGRESSING,
        f"{stable.ready}/{stable.desired} ready, {stable.updated} updated{running}",
    )


def _runs(workload: WorkloadState, release: ModelRef | None) -> bool:
    """Whether the Deployment's pod template runs ``release`` (as the chart renders it)."""
    return release is not None and (workload.version, workload.image) == (
        release.version,
        split_image(release.image).rendered,
    )


def analysis_due(obs: Observation) -> bool:
    """True when this reconcile should query Prometheus for the canary."""
    state = derive_state(obs.status)
    if state != State.CANARY or obs.paused or _release_event(obs, state) is not None:
        return False
    canary = obs.status.canary
    assert canary is not None
    if not obs.canary.is_ready or obs.spec.rollout.ab:  # an A/B test is decided by the user
        return False
    if canary.held is not None:  # held after a failure: a person decides
        return False
    return _seconds_since(canary.step_started_at, obs.now) >= obs.spec.rollout.interval_seconds


_HOLDING = " (autoRollback is false: holding)"


def _fail(obs: Observation, reason: str, message: str) -> Event:
    if obs.spec.rollout.auto_rollback:
        return Event(EventKind.FAIL, reason, message.removesuffix(_HOLDING))
    return Event(EventKind.FAIL_HOLD, reason, message.removesuffix(_HOLDING) + _HOLDING)


def _canary_event(obs: Observation) -> Event:
    canary = obs.status.canary
    assert canary is not None
    rollout = obs.spec.rollout
    request = obs.request
    if request is not None and request.verb == Verb.ABORT:
        return Event(
            EventKind.ABORT_REQUESTED, Reason.ABORT_REQUESTED, f"abort requested by {request.by}"
        )
    if request is not None and request.verb == Verb.PROMOTE:
        full = request.full or canary.step + 1 >= len(rollout.steps)
        kind = EventKind.PROMOTE_FULL_REQUESTED if full else EventKind.PROMOTE_REQUESTED
        what = "full promotion" if full else "promotion to the next step"
        return Event(kind, Reason.PROMOTE_REQUESTED, f"{what} requested by {request.by}")
    if obs.paused:
        return Event(EventKind.PAUSED, Reason.ROLLOUT_PAUSED, f"canary held: {_held_by(obs)}")
    if canary.held is not None:  # (autoRollback set to true since: rolled back now)
        return _fail(obs, canary.held.reason, canary.held.message)
    if not obs.canary.is_ready:
        if obs.canary.failure:
            return _fail(
                obs, f"Canary{obs.canary.failure}", obs.canary.failure_message or "canary failing"
            )
        if _seconds_since(canary.step_started_at, obs.now) > rollout.progress_deadline_seconds:
            return _fail(
                obs,
                Reason.CANARY_NOT_READY,
                f"canary {obs.canary.ready}/{obs.canary.desired} ready after progressDeadline "
                f"{rollout.progress_deadline}",
            )
        return Event(
            EventKind.CANARY_STARTING,
            Reason.CANARY_STARTING,
            f"canary {obs.canary.ready}/{obs.canary.desired} ready",
        )
    if rollout.ab:
        return _ab_test_event(obs, canary)
    waited = _seconds_since(canary.step_started_at, obs.now)
    if waited < rollout.interval_seconds or obs.analysis is None:
        shown = min(canary.step + 1, len(rollout.steps))  # steps may have been shortened
        return Event(
            EventKind.STEP_NOT_DUE,
            Reason.ANALYZING,
            f"step {shown}/{len(rollout.steps)} at {_step_text(obs.spec, canary.step)}: "
            f"analysis in {max(0.0, rollout.interval_seconds - waited):.0f}s",
        )
    decision = obs.analysis
    if decision.verdict == Verdict.ERROR:
        return Event(EventKind.PROMETHEUS_ERROR, decision.reason, decision.message)
    if decision.verdict == Verdict.FAIL:
        return _fail(obs, decision.reason, decision.message)
    if decision.verdict == Verdict.INCONCLUSIVE:
        since = canary.inconclusive_since or isoformat(obs.now)
        if _seconds_since(since, obs.now) >= rollout.analysis.deadline_seconds:
            return _fail(
                obs,
                Reason.ANALYSIS_INCONCLUSIVE,
                f"inconclusive for {rollout.analysis.deadline} (analysis deadline): "
                f"{decision.message}",
            )
        return Event(EventKind.INCONCLUSIVE, decision.reason, decision.message)
    if canary.step + 1 >= len(rollout.steps):
        return Event(EventKind.PASS_LAST_STEP, Reason.ANALYSIS_PASSED, decision.message)
    return Event(EventKind.PASS_NEXT_STEP, Reason.ANALYSIS_PASSED, decision.message)


def _ab_test_event(obs: Observation, canary: CanaryState) -> Event:
    """A/B: no analysis moves it; only abTest.winner naming B promotes it (abort: spec.model
    back to the stable release). A winner naming any other version is not B's: it holds."""
    assert obs.status.stable is not None
    a, b = obs.status.stable.version, canary.model.version
    if obs.spec.rollout.ab_test.winner == b:
        return Event(EventKind.PASS_LAST_STEP, Reason.WINNER_CHOSEN, f"abTest.winner is {b}")
    return Event(
        EventKind.STEP_NOT_DUE,
        Reason.AB_TESTING,
        f"A/B test of {a} (A) and {b} (B) at {_step_text(obs.spec, 0)} for B: held until "
        f"abTest.winner is {b} (promote) or spec.model returns to {a} (abort)",
    )


def classify(obs: Observation) -> Event:
    state = derive_state(obs.status)
    release = _release_event(obs, state)
    if release is not None:
        return release
    if state == State.CANARY:
        return _canary_event(obs)
    deadline_from = obs.status.rollout_started_at if state == State.ROLLING else None
    if state == State.PROMOTING and obs.status.canary:
        deadline_from = obs.status.canary.step_started_at
    return _deploy_event(obs, deadline_from, rolling=state in (State.ROLLING, State.PROMOTING))


# --- applying a transition to the status ------------------------------------


@dataclass(frozen=True)
class KubeEvent:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Outcome:
    state: State
    event: Event
    transition: Transition
    status: ModelDeploymentStatus
    events: tuple[KubeEvent, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Step:
    """What an action sees: the observation, the event it answers, the time, the history cap."""

    obs: Observation
    event: Event
    now: str
    history_limit: int

    def record(
        self, status: ModelDeploymentStatus, version: str, result: Result, reason: str, message: str
    ) -> ModelDeploymentStatus:
        """The status with one finished rollout appended to its capped history."""
        entry = HistoryEntry(version=version, result=result, at=self.now, reason=reason,
                             message=message)  # fmt: skip
        return replace_status(status, history=(*status.history, entry)[-self.history_limit :])


# An action takes the status and returns the new one and the Events to post.
Effect = tuple[ModelDeploymentStatus, list[KubeEvent]]


def _deploy_stable(step: Step, status: ModelDeploymentStatus) -> Effect:
    target = step.obs.spec.model
    changes: dict = {"stable": target, "canary": None, "rollout_started_at": step.now}
    if status.stable is not None and status.stable != target:
        changes["previous_stable"] = PreviousStable(model=status.stable, replaced_at=step.now)
    if status.canary is not None and not status.canary.promoting:
        status = step.record(status, status.canary.model.version, Result.ABORTED,
                             step.event.reason, "superseded")  # fmt: skip
    fast = step.event.kind == EventKind.FAST_ROLLBACK
    reason = Reason.FAST_ROLLBACK if fast else Reason.DEPLOYING
    message = step.event.message or f"deploying {target.version}"
    return replace_status(status, **changes), [KubeEvent("Normal", reason, message)]


def _finish_rollout(step: Step, status: ModelDeploymentStatus) -> Effect:
    assert status.stable is not None
    version = status.stable.version
    status = replace_status(status, rollout_started_at=None)
    status = step.record(status, version, Result.DEPLOYED, step.event.reason,
                         "stable Deployment available")  # fmt: skip
    return status, [KubeEvent("Normal", Reason.DEPLOYED, f"version {version} ready")]


def _start_canary(step: Step, status: ModelDeploymentStatus) -> Effect:
    target = step.obs.spec.model
    if status.canary is not None:
        # a promoting canary is done as far as the stable is concerned; any other is cut short
        result = Result.PROMOTED if status.canary.promoting else Result.ABORTED
        message = "" if status.canary.promoting else f"by {target.version}"
        status = step.record(status, status.canary.model.version, result, Reason.SUPERSEDED,
                             message)  # fmt: skip
    canary = CanaryState(model=target, step=0, started_at=step.now, step_started_at=step.now)
    status = replace_status(status, canary=canary, rollout_started_at=None, last_analysis=None)
    what = "A/B test of" if step.obs.spec.rollout.ab else "canary"
    message = f"{what} {target.version} at {_step_text(step.obs.spec, 0)}"
    return status, [KubeEvent("Normal", Reason.CANARY_STARTED, message)]


def _advance_step(step: Step, status: ModelDeploymentStatus) -> Effect:
    assert status.canary is not None
    nxt = status.canary.step + 1
    canary = status.canary.model_copy(
        update={
            "step": nxt,
            "step_started_at": step.now,
            "inconclusive_since": None,
            "held": None,
        }
    )
    message = (
        f"canary {step.obs.spec.model.version} to {_step_text(step.obs.spec, nxt)}: "
        f"{step.event.message}"
    )
    return replace_status(status, canary=canary), [
        KubeEvent("Normal", Reason.CANARY_ADVANCED, message)
    ]


def _note_inconclusive(step: Step, status: ModelDeploymentStatus) -> Effect:
    assert status.canary is not None
    if status.canary.inconclusive_since is None:
        canary = status.canary.model_copy(update={"inconclusive_since": step.now})
        status = replace_status(status, canary=canary)
    return status, []


def _promote(step: Step, status: ModelDeploymentStatus) -> Effect:
    assert status.canary is not None
    assert status.stable is not None
    promoted = status.canary.model
    status = replace_status(
        status,
        previous_stable=PreviousStable(model=status.stable, replaced_at=step.now),
        stable=promoted,
        canary=status.canary.model_copy(update={"promoting": True, "step_started_at": step.now}),
    )
    if step.obs.spec.rollout.ab:
        message = f"A/B test: version {promoted.version} promoted: {step.event.message}"
    else:
        message = f"canary {promoted.version} passed every step: {step.event.message}"
    return status, [KubeEvent("Normal", Reason.CANARY_PROMOTING, message)]


def _finish_promotion(step: Step, status: ModelDeploymentStatus) -> Effect:
    assert status.canary is not None
    version = status.canary.model.version
    reason, message = Reason.ANALYSIS_PASSED, "every step passed analysis"
    if step.obs.spec.rollout.ab:
        reason, message = Reason.WINNER_CHOSEN, "chosen by abTest.winner"
    status = step.record(replace_status(status, canary=None), version, Result.PROMOTED,
                         reason, message)  # fmt: skip
    return status, [KubeEvent("Normal", Reason.PROMOTED, f"version {version} is stable")]


def _rollback(step: Step, status: ModelDeploymentStatus) -> Effect:
    assert status.canary is not None
    assert status.stable is not None
    failed, stable, event = status.canary.model, status.stable, step.event
    status = replace_status(status, canary=None, rolled_back=failed)
    status = step.record(status, failed.version, Result.ROLLED_BACK, event.reason, event.message)
    message = (
        f"canary {failed.version} rolled back to {stable.version}: {event.reason}: {event.message}"
    )
    return status, [KubeEvent("Warning", Reason.ROLLED_BACK, message)]


def _abort_canary(step: Step, status: ModelDeploymentStatus) -> Effect:
    assert status.canary is not None
    event = step.event
    status = step.record(status, status.canary.model.version, Result.ABORTED, event.reason,
                         event.message)  # fmt: skip
    return replace_status(status, canary=None), [
        KubeEvent("Normal", Reason.CANARY_ABORTED, event.message)
    ]


def _hold(step: Step, status: ModelDeploymentStatus) -> Effect:
    """One Warning when a hold for Prometheus starts; other holds say nothing. A failure
    held (autoRollback: false) is marked, so no later analysis moves the canary on."""
    if step.event.kind == EventKind.PROMETHEUS_ERROR and not _holding_for_prometheus(status):
        return status, [KubeEvent("Warning", Reason.ANALYSIS_HELD, step.event.message)]
    canary, event = status.canary, step.event
    if event.kind == EventKind.FAIL_HOLD and canary is not None and canary.held is None:
        held = HeldFailure(at=step.now, reason=event.reason, message=event.message)
        status = replace_status(status, canary=canary.model_copy(update={"held": held}))
    return status, []


def _nothing(step: Step, status: ModelDeploymentStatus) -> Effect:
    return status, []


# What each action does to the status. An action missing here is a bug (a test checks).
EFFECTS: dict[Action, Callable[[Step, ModelDeploymentStatus], Effect]] = {
    Action.NONE: _nothing,
    Action.HOLD: _hold,
    Action.DEPLOY_STABLE: _deploy_stable,
    Action.FINISH_ROLLOUT: _finish_rollout,
    Action.START_CANARY: _start_canary,
    Action.ADVANCE: _advance_step,
    Action.NOTE_INCONCLUSIVE: _note_inconclusive,
    Action.PROMOTE: _promote,
    Action.FINISH_PROMOTION: _finish_promotion,
    Action.ROLLBACK: _rollback,
    Action.ABORT_CANARY: _abort_canary,
}


def advance(obs: Observation, *, history_limit: int = 10) -> Outcome:
    """One transition: classify, look up the table, apply the action's effect."""
    state = derive_state(obs.status)
    event = classify(obs)
    transition = TRANSITIONS[(state, event.kind)]
    step = Step(obs, event, isoformat(obs.now), history_limit)
    status, events = EFFECTS[transition.action](step, obs.status)
    if transition.phase == Phase.DEGRADED and obs.status.phase != Phase.DEGRADED:
        events.append(KubeEvent("Warning", event.reason or Reason.DEGRADED, event.message))
    status = replace_status(
        status,
        phase=transition.phase,
        stable_version=status.stable.version if status.stable else None,
        canary_version=status.canary.model.version if status.canary else None,
        canary_weight=_weight(obs.spec, status),
        effective_canary_weight=_effective_weight(
            obs.spec, status, canary_routable(status, obs.canary)
        ),
    )
    return Outcome(state, event, transition, status, tuple(events))


def _weight(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> int:
    """The canary's step in percent (0 without a canary or while it is being promoted)."""
    if status.canary is None or status.canary.promoting:
        return 0
    return step_weight(spec, status.canary)


def _effective_weight(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, canary_ready: bool
) -> float:
    """The canary's share the status gives, percent (0 without a canary or while promoting).

    Replica mode: its share of the replicas. Gateway API: its HTTPRoute weight.
    """
    if status.canary is None or status.canary.promoting or status.stable is None:
        return 0.0
    if spec.rollout.gateway_api is not None:
        return float(route_weight(spec, status, canary_ready))
    workloads = desired_workloads(spec, status)
    return effective_share(workloads.stable_replicas, workloads.canary_replicas)


def stable_serves(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> bool:
    """Whether the stable gets any of the traffic at the canary's step (not at 100%), so
    that the analysis can compare the two."""
    return _effective_weight(spec, status, canary_ready=True) < 100


def canary_routable(status: ModelDeploymentStatus, canary: WorkloadState) -> bool:
    """Whether the route may give the canary its weight.

    At the first step only once the canary is Ready. Past it (an analysis passed,
    so it was Ready) while one of its pods is ready: scaling up to the next step's
    replicas must not take its backend away and back.
    """
    if status.canary is None:
        return False
    if canary.is_ready:
        return True
    passed = status.canary.step > 0 or status.canary.promoting
    return passed and canary.ready > 0


def route_weight(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, canary_ready: bool
) -> int:
    """The canary's HTTPRoute weight, percent: 0 until it is routable and once it is gone.

    While the promotion rolls the stable, the canary keeps the last step's weight.
    """
    if status.canary is None or not canary_ready:
        return 0
    return step_weight(spec, status.canary)


def step_weight(spec: ModelDeploymentSpec, canary: CanaryState) -> int:
    """The canary's requested share, percent: its step's (the last one while it is being
    promoted), or with strategy ABTest the fixed abTest.weight throughout."""
    if spec.rollout.ab:
        return spec.rollout.ab_test.weight
    steps = spec.rollout.steps
    return steps[-1] if canary.promoting else _at_step(steps, canary.step)


def _at_step(steps: tuple[int, ...], step: int) -> int:
    """steps[step], the last one past the end: spec.rollout.steps may be shortened under a
    running canary, whose status keeps its step."""
    return steps[min(step, len(steps) - 1)]


def _step_text(spec: ModelDeploymentSpec, step: int) -> str:
    """'10%', and when the replicas cannot reach it, what they give instead."""
    weight = spec.rollout.ab_test.weight if spec.rollout.ab else _at_step(spec.rollout.steps, step)
    if spec.rollout.gateway_api is not None:
        return f"{weight}% (HTTPRoute weight)"
    unreachable = unreachable_step(total_replicas(spec), weight)
    return f"{weight}% ({unreachable})" if unreachable else f"{weight}%"


def _holding_for_prometheus(status: ModelDeploymentStatus) -> bool:
    return any(
        c.type == COND_PROGRESSING and c.reason == Reason.PROMETHEUS_UNAVAILABLE
        for c in status.conditions
    )


def replace_status(status: ModelDeploymentStatus, **changes: Any) -> ModelDeploymentStatus:
    return status.model_copy(update=changes)


@dataclass(frozen=True)
class Workloads:
    """What to render: the stable release and replicas, and the canary if any."""

    stable: ModelRef
    stable_replicas: int
    canary: ModelRef | None = None
    canary_replicas: int = 0


def desired_workloads(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> Workloads:
    """The Deployments the (new) status asks for."""
    stable = status.stable or spec.model
    canary = status.canary
    total = total_replicas(spec)  # what /scale (an autoscaler) set, within its bounds
    if canary is None:
        return Workloads(stable, total)
    split = split_routed if spec.rollout.gateway_api is not None else split_replicas
    # header-only A/B (weight 0): one pod of B for the pinned requests
    weight = max(1, step_weight(spec, canary))
    if canary.promoting:
        # the stable rolls to the promoted release at full size; the canary keeps
        # serving at its last share until the stable is available
        _, canary_replicas = split(total, weight)
        return Workloads(stable, total, canary.model, canary_replicas)
    stable_replicas, canary_replicas = split(total, weight)
    return Workloads(stable, stable_replicas, canary.model, canary_replicas)


def analysis_record(
    obs: Observation,
    decision: Decision,
    *,
    thresholds: dict[str, float | None],
    queries: dict[str, str],
    prometheus_url: str,
) -> AnalysisRecord:
    canary = obs.status.canary
    assert canary is not None
    return AnalysisRecord(
        at=isoformat(obs.now),
        version=canary.model.version,
        step=canary.step,
        weight=step_weight(obs.spec, canary),
        effectiveWeight=_effective_weight(
            obs.spec, obs.status, canary_routable(obs.status, obs.canary)
        ),
        result=decision.verdict.value,
        reason=decision.reason,
        message=decision.message,
        figures=decision.figures_model(),
        thresholds=thresholds,
        queries=queries,
        prometheusUrl=prometheus_url,
    )


__all__ = [
    "EFFECTS",
    "TRANSITIONS",
    "Action",
    "EventKind",
    "KubeEvent",
    "Observation",
    "Outcome",
    "State",
    "Transition",
    "Workloads",
    "advance",
    "analysis_due",
    "analysis_record",
    "canary_routable",
    "classify",
    "derive_state",
    "desired_workloads",
    "route_weight",
    "step_weight",
]
