"""The rollout state machine: every row of the transition table, then whole rollouts."""

from __future__ import annotations

import itertools

import pytest

from modelops_operator.analysis import Analysis, Decision, Verdict, decide, error_decision
from modelops_operator.models import (
    CanaryState,
    Compare,
    ModelDeploymentStatus,
    Phase,
    PreviousStable,
    RequestRecord,
    Verb,
    dump,
    parse_spec,
    parse_status,
)
from modelops_operator.rollout import (
    EFFECTS,
    TRANSITIONS,
    Action,
    EventKind,
    Observation,
    State,
    Transition,
    advance,
    analysis_due,
    classify,
    derive_state,
    desired_workloads,
    stable_serves,
)
from modelops_operator.workloads import MISSING, WorkloadState
from tests.support.operator_builders import at, ref, running, spec_for, stamp

V0, V1, V2, V3 = ref("0"), ref("1"), ref("2"), ref("3")
READY = WorkloadState(exists=True, desired=2, ready=2, updated=2, available=2)
PROGRESSING = WorkloadState(exists=True, desired=2, ready=0, updated=1, available=0)
CRASHING = WorkloadState(
    exists=True, desired=2, failure="CrashLoopBackOff", failure_message="pod x: CrashLoopBackOff"
)
PASS = Decision(Verdict.PASS, "WithinThresholds", "ok", {})
FAIL = Decision(Verdict.FAIL, "ErrorRateTooHigh", "errorRate 0.5 > maxErrorRate 0.05", {})
INCONCLUSIVE = Decision(Verdict.INCONCLUSIVE, "TooFewRequests", "requests 3 < 10", {})
ERROR = error_decision("http://127.0.0.1:1 unreachable")


def status_in(state: State, *, step: int = 0) -> ModelDeploymentStatus:
    base = ModelDeploymentStatus(previousStable=PreviousStable(model=V0, replacedAt=stamp(-60)))
    if state == State.INITIAL:
        return ModelDeploymentStatus()
    if state == State.IDLE:
        return base.model_copy(update={"stable": V1, "phase": Phase.READY})
    if state == State.ROLLING:
        return base.model_copy(
            update={"stable": V1, "phase": Phase.PROGRESSING, "rollout_started_at": stamp(0)}
        )
    if state == State.CANARY:
        canary = CanaryState(model=V2, step=step, startedAt=stamp(0), stepStartedAt=stamp(0))
        return base.model_copy(update={"stable": V1, "canary": canary, "phase": Phase.PROGRESSING})
    if state == State.PROMOTING:
        canary = CanaryState(
            model=V2, step=2, startedAt=stamp(0), stepStartedAt=stamp(0), promoting=True
        )
        return base.model_copy(update={"stable": V2, "canary": canary, "phase": Phase.PROGRESSING})
    assert state == State.ROLLED_BACK
    return base.model_copy(update={"stable": V1, "rolled_back": V2, "phase": Phase.ROLLED_BACK})


# The release each state is "about" when nothing changes.
CURRENT = {
    State.INITIAL: V1,
    State.IDLE: V1,
    State.ROLLING: V1,
    State.CANARY: V2,
    State.PROMOTING: V2,
    State.ROLLED_BACK: V2,
}


def observation(state: State, event: EventKind) -> Observation:
    """An observation that puts `state` in front of `event`."""
    target, strategy, paused, auto = CURRENT[state], "Canary", False, True
    stable, canary, analysis, now, step = READY, READY, None, at(31), 0
    if state == State.CANARY:
        canary = READY
    if event == EventKind.NEW_RELEASE_CANARY:
        target = V1 if state == State.INITIAL else V3
    elif event == EventKind.NEW_RELEASE_ROLLING:
        target, strategy = (V1 if state == State.INITIAL else V3), "RollingUpdate"
    elif event == EventKind.FAST_ROLLBACK:
        target = V0
    elif event == EventKind.BACK_TO_STABLE:
        target = V1
    elif event == EventKind.PAUSED:
        paused = True
        if state != State.CANARY:
            target = V3
    elif event in (EventKind.DEPLOY_READY, EventKind.DEPLOY_PROGRESSING, EventKind.DEPLOY_FAILED):
        if state == State.ROLLED_BACK:
            target = V1
        stable = {
            EventKind.DEPLOY_READY: READY,
            EventKind.DEPLOY_PROGRESSING: PROGRESSING,
            EventKind.DEPLOY_FAILED: CRASHING,
        }[event]
    elif event == EventKind.CANARY_STARTING:
        canary = PROGRESSING
    elif event == EventKind.STEP_NOT_DUE:
        now = at(5)
    elif event == EventKind.PASS_NEXT_STEP:
        analysis = PASS
    elif event == EventKind.PASS_LAST_STEP:
        analysis, step = PASS, 2
    elif event == EventKind.INCONCLUSIVE:
        analysis = INCONCLUSIVE
    elif event == EventKind.PROMETHEUS_ERROR:
        analysis = ERROR
    elif event == EventKind.FAIL:
        analysis = FAIL
    elif event == EventKind.FAIL_HOLD:
        analysis, auto = FAIL, False
    request = None
    if event == EventKind.PROMOTE_REQUESTED:
        request = RequestRecord(id="r1", verb=Verb.PROMOTE, by="alice", at=stamp(30))
    elif event == EventKind.PROMOTE_FULL_REQUESTED:
        request = RequestRecord(id="r1", verb=Verb.PROMOTE, full=True, by="alice", at=stamp(30))
    elif event == EventKind.ABORT_REQUESTED:
        request = RequestRecord(id="r1", verb=Verb.ABORT, by="alice", at=stamp(30))
    spec = spec_for(target.version, strategy=strategy, paused=paused, autoRollback=auto, replicas=4)
    status = status_in(state, step=step)
    stable = running(status.stable, stable)  # what the status asks of it, applied
    return Observation(spec, status, now, stable, canary, analysis, request=request)


@pytest.mark.parametrize(
    ("state", "event"), sorted(TRANSITIONS), ids=[f"{s}-{e}" for s, e in sorted(TRANSITIONS)]
)
def test_every_row_of_the_transition_table(state: State, event: EventKind):
    obs = observation(state, event)
    assert derive_state(obs.status) == state
    assert classify(obs).kind == event
    outcome = advance(obs)
    expected: Transition = TRANSITIONS[(state, event)]
    assert outcome.transition == expected
    assert outcome.status.phase == expected.phase
    # the next state is what the written status says: a restart resumes from it
    assert derive_state(outcome.status) == expected.next
    # and it survives the trip through the API server's JSON
    assert derive_state(parse_status(dump(outcome.status))) == expected.next


def test_the_table_covers_every_state():
    assert {s for s, _ in TRANSITIONS} == set(State)
    assert {e for _, e in TRANSITIONS} == set(EventKind)


def test_every_action_has_one_effect():
    assert set(EFFECTS) == set(Action)
    assert {t.action for t in TRANSITIONS.values()} <= set(EFFECTS)


St, Ev, Ac, Ph = State, EventKind, Action, Phase
TABLE = [
    # (state, event, next, action, phase) - the table, spelled out as the spec reads it
    (St.INITIAL, Ev.NEW_RELEASE_CANARY, St.ROLLING, Ac.DEPLOY_STABLE, Ph.PROGRESSING),
    (St.IDLE, Ev.NEW_RELEASE_CANARY, St.CANARY, Ac.START_CANARY, Ph.PROGRESSING),
    (St.IDLE, Ev.NEW_RELEASE_ROLLING, St.ROLLING, Ac.DEPLOY_STABLE, Ph.PROGRESSING),
    (St.IDLE, Ev.FAST_ROLLBACK, St.ROLLING, Ac.DEPLOY_STABLE, Ph.PROGRESSING),
    (St.ROLLING, Ev.DEPLOY_READY, St.IDLE, Ac.FINISH_ROLLOUT, Ph.READY),
    (St.ROLLING, Ev.DEPLOY_FAILED, St.ROLLING, Ac.NONE, Ph.DEGRADED),
    (St.CANARY, Ev.PASS_NEXT_STEP, St.CANARY, Ac.ADVANCE, Ph.PROGRESSING),
    (St.CANARY, Ev.PASS_LAST_STEP, St.PROMOTING, Ac.PROMOTE, Ph.PROGRESSING),
    (St.CANARY, Ev.FAIL, St.ROLLED_BACK, Ac.ROLLBACK, Ph.ROLLED_BACK),
    (St.CANARY, Ev.FAIL_HOLD, St.CANARY, Ac.HOLD, Ph.DEGRADED),
    (St.CANARY, Ev.PROMETHEUS_ERROR, St.CANARY, Ac.HOLD, Ph.PROGRESSING),
    (St.CANARY, Ev.INCONCLUSIVE, St.CANARY, Ac.NOTE_INCONCLUSIVE, Ph.PROGRESSING),
    (St.CANARY, Ev.PAUSED, St.CANARY, Ac.HOLD, Ph.PROGRESSING),
    (St.CANARY, Ev.BACK_TO_STABLE, St.IDLE, Ac.ABORT_CANARY, Ph.PROGRESSING),
    (St.PROMOTING, Ev.DEPLOY_READY, St.IDLE, Ac.FINISH_PROMOTION, Ph.READY),
    (St.ROLLED_BACK, Ev.RELEASE_ROLLED_BACK, St.ROLLED_BACK, Ac.NONE, Ph.ROLLED_BACK),
]  # fmt: skip


@pytest.mark.parametrize(("state", "event", "nxt", "action", "phase"), TABLE)
def test_key_transitions(state, event, nxt, action, phase):
    assert TRANSITIONS[(state, event)] == Transition(nxt, action, phase)


def test_classify_never_produces_a_pair_outside_the_table():
    """A grid over everything classify looks at: each pair must be in the table."""
    states = list(State)
    targets = [V0, V1, V2, V3]
    workloads = [READY, PROGRESSING, CRASHING, MISSING]
    analyses = [None, PASS, FAIL, INCONCLUSIVE, ERROR]
    for state, target, paused, strategy, stable, canary, analysis, now in itertools.product(
        states, targets, [False, True], ["Canary", "RollingUpdate"], workloads, workloads,
        analyses, [at(5), at(31), at(900)],
    ):  # fmt: skip
        spec = spec_for(target.version, paused=paused, strategy=strategy)
        obs = Observation(spec, status_in(state), now, stable, canary, analysis)
        event = classify(obs)
        assert (derive_state(obs.status), event.kind) in TRANSITIONS


# --- whole rollouts ---------------------------------------------------------


def run(obs: Observation) -> Observation:
    outcome = advance(obs)
    # the status goes through the API server as JSON between reconciles
    status = parse_status(dump(outcome.status))
    return Observation(obs.spec, status, obs.now, obs.stable, obs.canary)


def tick(obs: Observation, now_s: float, analysis: Decision | None = None, **kw) -> Observation:
    obs = Observation(
        kw.get("spec", obs.spec), obs.status, at(now_s),
        kw.get("stable", running(obs.status.stable, READY)), kw.get("canary", READY), None,
    )  # fmt: skip
    if analysis is not None and analysis_due(obs):
        obs = Observation(obs.spec, obs.status, obs.now, obs.stable, obs.canary, analysis)
    return run(obs)


def test_healthy_canary_is_promoted_step_by_step():
    obs = Observation(spec_for("1"), ModelDeploymentStatus(), at(0), MISSING, MISSING)
    obs = run(obs)
    assert obs.status.phase == Phase.PROGRESSING
    obs = tick(obs, 1)
    assert obs.status.phase == Phase.READY
    assert obs.status.stable_version == "1"
    obs = tick(obs, 2, spec=spec_for("2"))
    assert obs.status.canary_version == "2"
    weights = [obs.status.canary_weight]
    effective = [obs.status.effective_canary_weight]
    shares = [desired_workloads(obs.spec, obs.status)]
    for t in (40, 80, 120):
        obs = tick(obs, t, PASS)
        weights.append(obs.status.canary_weight)
        effective.append(obs.status.effective_canary_weight)
        shares.append(desired_workloads(obs.spec, obs.status))
    assert weights == [25, 50, 100, 0]
    # the stable keeps its 4; at 25% the canary gets the most replicas within the step (1: 20%)
    assert effective == [20.0, 50.0, 100.0, 0.0]
    assert [(w.stable_replicas, w.canary_replicas) for w in shares] == [
        (4, 1), (4, 4), (0, 4), (4, 4),
    ]  # fmt: skip
    assert obs.status.stable_version == "2"  # promoting: stable rolls to 2, canary kept
    obs = tick(obs, 125)
    assert obs.status.phase == Phase.READY
    assert obs.status.canary is None
    assert obs.status.history[-1].result == "Promoted"
    assert obs.status.previous_stable.model.version == "1"


def test_failing_canary_is_rolled_back_with_a_warning_and_not_retried():
    obs = Observation(spec_for("2"), status_in(State.CANARY), at(31), READY, READY, FAIL)
    outcome = advance(obs)
    assert outcome.status.phase == Phase.ROLLED_BACK
    assert outcome.status.stable.version == "1"
    assert outcome.status.canary is None
    assert outcome.status.history[-1].result == "RolledBack"
    warning = [e for e in outcome.events if e.type == "Warning"]
    assert len(warning) == 1
    assert "errorRate 0.5 > maxErrorRate 0.05" in warning[0].message
    again = tick(Observation(obs.spec, outcome.status, at(60), READY, MISSING), 90)
    assert again.status.phase == Phase.ROLLED_BACK
    assert desired_workloads(again.spec, again.status).canary is None


def test_a_failure_held_under_auto_rollback_false_stays_held_until_a_person_decides():
    hold = spec_for("2", autoRollback=False)
    obs = tick(Observation(hold, status_in(State.CANARY), at(0), READY, READY), 31, FAIL)
    assert obs.status.phase == Phase.DEGRADED
    assert obs.status.canary.held.at == stamp(31)
    # a later window that passes does not move it on: it is not even analysed
    for t in (62, 93, 400):
        obs = tick(obs, t, PASS)
        assert (obs.status.phase, obs.status.canary.step) == (Phase.DEGRADED, 0)
        assert not analysis_due(obs)
    held = obs.status.canary.held
    assert (held.at, held.reason) == (stamp(31), "ErrorRateTooHigh")
    assert held.message == "errorRate 0.5 > maxErrorRate 0.05 (autoRollback is false: holding)"
    # a promote request moves it on and lifts the hold
    promote = RequestRecord(id="r1", verb=Verb.PROMOTE, by="alice", at=stamp(401))
    nxt = run(Observation(hold, obs.status, at(402), READY, READY, request=promote))
    assert (nxt.status.canary.step, nxt.status.canary.held) == (1, None)
    assert nxt.status.phase == Phase.PROGRESSING
    # autoRollback set to true meanwhile: the held failure rolls back, with its own reason
    rolled = advance(Observation(spec_for("2"), obs.status, at(403), READY, READY))
    assert rolled.status.phase == Phase.ROLLED_BACK
    assert rolled.status.history[-1].reason == "ErrorRateTooHigh"
    assert "autoRollback is false" not in rolled.status.history[-1].message


def test_inconclusive_waits_until_the_deadline_then_rolls_back():
    obs = Observation(spec_for("2"), status_in(State.CANARY), at(0), READY, READY)
    obs = tick(obs, 31, INCONCLUSIVE)
    assert obs.status.canary.inconclusive_since == stamp(31)
    obs = tick(obs, 100, INCONCLUSIVE)
    assert obs.status.phase == Phase.PROGRESSING
    obs = tick(obs, 31 + 121, INCONCLUSIVE)
    assert obs.status.phase == Phase.ROLLED_BACK
    assert obs.status.history[-1].reason == "AnalysisInconclusive"


def test_prometheus_error_holds_forever_and_never_promotes():
    obs = Observation(spec_for("2"), status_in(State.CANARY, step=2), at(0), READY, READY)
    for t in range(31, 3000, 300):
        obs = tick(obs, t, ERROR)
        assert obs.status.canary is not None
        assert obs.status.stable_version == "1"
        assert obs.status.canary.step == 2


def test_paused_canary_is_not_analyzed():
    obs = Observation(spec_for("2", paused=True), status_in(State.CANARY), at(300), READY, READY)
    assert not analysis_due(obs)
    assert classify(obs).kind == EventKind.PAUSED


def test_fast_rollback_only_within_the_window():
    inside = Observation(spec_for("0"), status_in(State.IDLE), at(100), READY, MISSING)
    assert classify(inside).kind == EventKind.FAST_ROLLBACK
    outside = Observation(spec_for("0"), status_in(State.IDLE), at(4000), READY, MISSING)
    assert classify(outside).kind == EventKind.NEW_RELEASE_CANARY


def test_a_release_of_the_stables_model_version_rolls_without_a_canary():
    """A new image of the same model version: its series are the stable's (the service labels
    them by model card), so a canary would be judged against itself."""
    spec = spec_for("1", model={**V1.model_dump(), "image": "model-service:1-patched"})
    obs = Observation(spec, status_in(State.IDLE), at(4000), READY, MISSING)
    event = classify(obs)
    assert event.kind == EventKind.NEW_RELEASE_ROLLING
    assert "without analysis: wine 1 is the stable's model version" in event.message
    obs = tick(run(obs), 4001)
    assert obs.status.phase == Phase.READY
    assert obs.status.canary is None
    assert obs.status.stable.image == "model-service:1-patched"
    # under RollingUpdate it is the usual rolling update, said as usual
    spec = spec_for("1", strategy="RollingUpdate", model=spec.model.model_dump())
    event = classify(Observation(spec, status_in(State.IDLE), at(4000), READY, MISSING))
    assert event.message == "rolling update to 1"


def test_a_ready_deployment_still_running_the_release_before_does_not_finish_a_rollout():
    """The status is written before the apply: when the apply failed (or the operator restarted
    between), the stable Deployment is ready but runs the release before. A promotion, or a
    rolling update, finishes only when it runs the release the status asks for."""
    promoting = status_in(State.PROMOTING)  # status.stable is 2, the Deployment still runs 1
    obs = Observation(spec_for("2"), promoting, at(31), running(V1, READY), READY)
    event = classify(obs)
    assert event.kind == EventKind.DEPLOY_PROGRESSING
    assert event.message == "2/2 ready, 2 updated, running 1 (model-service:1)"
    assert advance(obs).status.canary is not None  # the canary still serves
    obs = Observation(spec_for("2"), promoting, at(32), running(V2, READY), READY)
    assert classify(obs).kind == EventKind.DEPLOY_READY
    # a new image of the same version (rolled, not canaried) is told apart by its image
    patched = V1.model_copy(update={"image": "model-service:1-patched"})
    rolling = status_in(State.ROLLING).model_copy(update={"stable": patched})
    spec = spec_for("1", model=patched.model_dump())
    obs = Observation(spec, rolling, at(31), running(V1, READY), MISSING)
    assert classify(obs).kind == EventKind.DEPLOY_PROGRESSING
    obs = Observation(spec, rolling, at(31), running(patched, READY), MISSING)
    assert classify(obs).kind == EventKind.DEPLOY_READY


def test_rolling_update_degrades_after_the_progress_deadline():
    spec = spec_for("1", progress={})
    obs = Observation(spec, status_in(State.ROLLING), at(601), READY, MISSING)
    obs = Observation(spec, obs.status, at(601), PROGRESSING, MISSING)
    event = classify(obs)
    assert event.kind == EventKind.DEPLOY_FAILED
    assert event.reason == "ProgressDeadlineExceeded"
    outcome = advance(obs)
    assert outcome.status.phase == Phase.DEGRADED
    assert [e.type for e in outcome.events] == ["Warning"]


def test_canary_that_never_becomes_ready_is_rolled_back():
    obs = Observation(spec_for("2"), status_in(State.CANARY), at(601), READY, CRASHING)
    event = classify(obs)
    assert event.kind == EventKind.FAIL
    assert event.reason == "CanaryCrashLoopBackOff"


def test_history_is_capped():
    status = status_in(State.ROLLING)
    for i in range(15):
        obs = Observation(spec_for("1"), status, at(i), running(status.stable, READY), MISSING)
        status = advance(obs, history_limit=5).status.model_copy(
            update={"rollout_started_at": stamp(i)}
        )
    assert len(status.history) == 5


@pytest.mark.parametrize(
    ("replicas", "steps", "effective", "why"),
    [
        (2, [10, 50, 100], 33.3, "step 10% is unreachable with 2 replicas: 1 canary beside 2 "
         "stable is 33.3%; 9 replicas would reach it"),
        # above 50% the canary is capped at the stable's replicas: an equal split
        (10, [90, 100], 50.0, "step 90% is unreachable by replicas: the canary is capped at "
         "the stable's 10 replicas, 10 canary beside 10 stable is 50%; traffic routing "
         "(gatewayAPI) would reach it"),
    ],
    ids=["below-one-replica", "above-50"],
)  # fmt: skip
def test_an_unreachable_step_is_said_never_rounded_silently(
    replicas: int, steps: list[int], effective: float, why: str
):
    spec = spec_for("2", replicas=replicas, steps=steps)
    outcome = advance(Observation(spec, status_in(State.IDLE), at(0), READY, MISSING))
    assert outcome.status.canary_weight == steps[0]
    assert outcome.status.effective_canary_weight == effective
    (started,) = outcome.events
    assert started.message == f"canary 2 at {steps[0]}% ({why})"
    waiting = advance(Observation(spec, outcome.status, at(1), READY, READY))
    assert why in waiting.event.message
    assert waiting.event.reason == "Analyzing"


def test_steps_shortened_under_a_running_canary_count_as_the_last_step():
    # the status keeps step 2 of 25/50/100; the spec now has two steps
    spec = spec_for("2", steps=[50, 100])
    waiting = advance(Observation(spec, status_in(State.CANARY, step=2), at(1), READY, READY))
    assert waiting.event.kind == EventKind.STEP_NOT_DUE
    assert waiting.event.message.startswith("step 2/2 at 100%")
    passed = advance(Observation(spec, status_in(State.CANARY, step=2), at(31), READY, READY, PASS))
    assert passed.event.kind == EventKind.PASS_LAST_STEP
    assert passed.status.canary.promoting


def test_analysis_uses_the_real_decision():
    # the state machine and the analysis agree: a real decide() result drives it
    decision = decide(
        {"requests": 100.0, "errorRate": 0.2, "latencyP95Seconds": 0.1, "driftScore": 0.0},
        Analysis(),
        Compare(),
    )
    obs = Observation(spec_for("2"), status_in(State.CANARY), at(31), READY, READY, decision)
    assert advance(obs).status.phase == Phase.ROLLED_BACK


@pytest.mark.parametrize(("step", "serves"), [(0, True), (1, True), (2, False)])
def test_the_stable_serves_at_every_step_but_the_last_one_of_100(step, serves):
    # replica mode, steps 25/50/100: at 100 the canary runs alone
    assert stable_serves(spec_for("2"), status_in(State.CANARY, step=step)) is serves
    body = spec_for("2").model_dump(by_alias=True, exclude_none=True)
    body["rollout"]["trafficRouting"] = {"gatewayAPI": {"httpRoute": "models"}}
    routed = parse_spec(body)  # HTTPRoute weights: the stable's is 0 at 100
    assert stable_serves(routed, status_in(State.CANARY, step=step)) is serves
