"""requests.py: the requests of `kubectl modelops`, consumed once and recorded with who asked."""

from __future__ import annotations

import json

import pytest

from modelops_operator.analysis import Decision, Verdict
from modelops_operator.models import (
    CanaryState,
    ModelDeploymentStatus,
    Pause,
    Phase,
    RequestRecord,
    Verb,
)
from modelops_operator.reasons import Result
from modelops_operator.requests import (
    ANNOTATION,
    answer,
    apply_request,
    is_new,
    read_request,
    record,
)
from modelops_operator.rollout import Observation, State, advance, derive_state
from modelops_operator.workloads import MISSING, WorkloadState
from tests.support.operator_builders import at, ref, spec_for, stamp

READY = WorkloadState(exists=True, desired=4, ready=4, updated=4, available=4)
CANARY = WorkloadState(exists=True, desired=1, ready=1, updated=1, available=1)


def request(verb: Verb, full: bool = False) -> RequestRecord:
    return RequestRecord(id=f"id-{verb}", verb=verb, full=full, by="alice", at=stamp(10))


def in_canary(step: int = 0, **status: object) -> Observation:
    canary = CanaryState(model=ref("2"), step=step, startedAt=stamp(0), stepStartedAt=stamp(0))
    body = ModelDeploymentStatus(stable=ref("1"), canary=canary, phase=Phase.PROGRESSING, **status)
    return Observation(spec_for("2"), body, at(5), READY, CANARY)


def consume(obs: Observation, req: RequestRecord):
    obs, consumed = apply_request(obs, req, stamp(10))
    outcome = advance(obs)
    return outcome, record(outcome.status, consumed, obs.spec.model.version, 10), consumed


def test_the_annotation_is_read_and_a_bad_one_refused() -> None:
    body = {"id": "x", "verb": "promote", "full": True, "by": "alice", "at": stamp(0)}
    assert read_request({ANNOTATION: json.dumps(body)}) == RequestRecord(**body)
    assert read_request({"other": "1"}) is None
    with pytest.raises(ValueError, match=ANNOTATION):
        read_request({ANNOTATION: '{"verb": "explode"}'})


def test_promote_moves_one_step_without_waiting_for_the_analysis() -> None:
    outcome, status, consumed = consume(in_canary(), request(Verb.PROMOTE))

    assert consumed.accepted
    assert status.canary is not None
    assert status.canary.step == 1
    assert "promotion to the next step requested by alice" in outcome.events[0].message


def test_promote_full_goes_straight_to_promotion() -> None:
    _outcome, status, _ = consume(in_canary(), request(Verb.PROMOTE, full=True))

    assert derive_state(status) == State.PROMOTING
    assert status.stable == ref("2")


def test_abort_rolls_the_canary_back_and_says_who_asked() -> None:
    _, status, _ = consume(in_canary(), request(Verb.ABORT))

    assert status.phase == Phase.ROLLED_BACK
    assert status.rolled_back == ref("2")
    rolled, asked = status.history[-2], status.history[-1]
    assert (rolled.result, rolled.reason) == (Result.ROLLED_BACK, "AbortRequested")
    assert (asked.result, asked.reason, asked.by) == ("Request", "Abort", "alice")


def test_retry_canaries_a_rolled_back_release_again_without_a_spec_change() -> None:
    rolled = ModelDeploymentStatus(stable=ref("1"), rolled_back=ref("2"), phase=Phase.ROLLED_BACK)
    obs = Observation(spec_for("2"), rolled, at(5), READY, MISSING)
    assert advance(obs).status.canary is None  # without the request: not retried

    _, status, consumed = consume(obs, request(Verb.RETRY))
    assert consumed.accepted
    assert status.canary is not None
    assert status.canary.model == ref("2")


def test_pause_holds_the_canary_and_resume_releases_it() -> None:
    fail = Decision(Verdict.FAIL, "DriftTooHigh", "drift", {})
    _, paused, _ = consume(in_canary(), request(Verb.PAUSE))
    assert paused.pause == Pause(by="alice", at=stamp(10))

    held = Observation(spec_for("2"), paused, at(60), READY, CANARY, analysis=fail)
    assert held.paused
    assert advance(held).status.phase == Phase.PROGRESSING  # no rollback while held

    _, resumed, consumed = consume(held, request(Verb.RESUME))
    assert consumed.accepted
    assert resumed.pause is None


@pytest.mark.parametrize(
    ("verb", "obs", "why"),
    [
        (Verb.PROMOTE, Observation(spec_for("1"), ModelDeploymentStatus(stable=ref("1"),
         phase=Phase.READY), at(5), READY, MISSING), "no canary of version 1"),
        (Verb.RETRY, in_canary(), "version 2 is not rolled back"),
        (Verb.RESUME, in_canary(), "not paused"),
        (Verb.PAUSE, in_canary(pause=Pause(by="bob", at=stamp(1))), "already paused by bob"),
    ],
)  # fmt: skip
def test_a_request_that_does_not_apply_is_recorded_as_not_accepted(verb, obs, why) -> None:
    _, status, consumed = consume(obs, request(verb))

    assert not consumed.accepted
    assert why in consumed.message
    assert status.history[-1].message.startswith("not accepted: ")
    assert status.last_request == consumed


def test_a_request_is_consumed_once() -> None:
    _, status, _consumed = consume(in_canary(), request(Verb.PROMOTE))

    assert not is_new(request(Verb.PROMOTE), status)
    assert is_new(request(Verb.ABORT), status)


def ab_test() -> Observation:
    canary = CanaryState(model=ref("2"), startedAt=stamp(0), stepStartedAt=stamp(0))
    body = ModelDeploymentStatus(stable=ref("1"), canary=canary, phase=Phase.PROGRESSING)
    return Observation(spec_for("2", strategy="ABTest"), body, at(5), READY, CANARY)


def test_promote_on_an_ab_test_is_not_accepted_and_names_the_winner_field() -> None:
    obs = ab_test()
    for _ in range(len(obs.spec.rollout.steps) + 1):  # never a hidden step, never a promotion
        _outcome, status, consumed = consume(obs, request(Verb.PROMOTE))
        assert not consumed.accepted
        assert "spec.rollout.abTest.winner to 2" in consumed.message
        assert status.canary == obs.status.canary
        assert derive_state(status) == State.CANARY
        obs = Observation(obs.spec, status, obs.now, READY, CANARY)


def test_abort_on_an_ab_test_rolls_b_back() -> None:
    _, status, consumed = consume(ab_test(), request(Verb.ABORT))

    assert consumed.accepted
    assert (status.phase, status.rolled_back) == (Phase.ROLLED_BACK, ref("2"))


def test_a_request_answered_before_another_is_found_in_the_history() -> None:
    mine, bobs = request(Verb.PROMOTE), RequestRecord(id="bob-1", verb=Verb.PAUSE, by="bob")
    assert answer(in_canary().status, mine) is None  # not consumed yet

    _, status, consumed = consume(in_canary(), mine)
    _, status, _ = consume(Observation(spec_for("2"), status, at(6), READY, CANARY), bobs)

    assert status.last_request is not None
    assert status.last_request.id == "bob-1"
    assert answer(status, mine) == consumed
    refused = record(status, request(Verb.RESUME).model_copy(update={"message": "no"}), "2", 10)
    assert answer(refused, request(Verb.RESUME)) == request(Verb.RESUME).model_copy(
        update={"accepted": False, "message": "no"}
    )
    # the same user's older request of another verb, or another second, is not it
    assert answer(status, request(Verb.ABORT)) is None
    assert answer(status, mine.model_copy(update={"id": "x", "at": stamp(11)})) is None
