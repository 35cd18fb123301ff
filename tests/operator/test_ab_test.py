"""strategy ABTest (pure): a fixed split, held without analysis until the user picks B."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modelops_operator.models import CanaryState, ModelDeploymentStatus, Phase, parse_spec
from modelops_operator.rollout import (
    EventKind,
    Observation,
    State,
    advance,
    analysis_due,
    desired_workloads,
    route_weight,
)
from modelops_operator.workloads import MISSING, WorkloadState
from tests.support.operator_builders import at, ref, running, stamp

READY = WorkloadState(exists=True, desired=2, ready=2, updated=2, available=2)
STABLE_READY = WorkloadState(exists=True, desired=4, ready=4, updated=4, available=4)
GATEWAY = {"gatewayAPI": {"httpRoute": "models", "canaryHeader": "x-model-version"}}


def ab_spec(version: str = "2", **ab) -> object:
    return parse_spec(
        {
            "model": ref(version).model_dump(),
            "replicas": 4,
            "rollout": {"strategy": "ABTest", "abTest": ab, "trafficRouting": GATEWAY},
        }
    )


def ab_status(promoting: bool = False) -> ModelDeploymentStatus:
    canary = CanaryState(model=ref("2"), startedAt=stamp(0), stepStartedAt=stamp(0),
                         promoting=promoting)  # fmt: skip
    stable = ref("2") if promoting else ref("1")
    return ModelDeploymentStatus(stable=stable, canary=canary, phase=Phase.PROGRESSING)


def test_a_new_release_starts_b_beside_a():
    idle = ModelDeploymentStatus(stable=ref("1"), phase=Phase.READY)
    out = advance(Observation(ab_spec(weight=30), idle, at(0), STABLE_READY, MISSING))
    assert out.transition.next == State.CANARY
    assert out.status.canary.model.version == "2"
    assert out.status.canary_weight == 30
    assert out.events[0].message == "A/B test of 2 at 30% (HTTPRoute weight)"


def test_the_split_holds_without_analysis_however_long_it_runs():
    spec = ab_spec(weight=30)
    for seconds in (5, 3600, 30 * 86400):
        obs = Observation(spec, ab_status(), at(seconds), STABLE_READY, READY)
        assert not analysis_due(obs)
        out = advance(obs)
        assert out.event.kind == EventKind.STEP_NOT_DUE
        assert out.event.reason == "ABTesting"
        assert "abTest.winner is 2 (promote)" in out.event.message
        assert out.status.canary_weight == 30
        assert out.status.effective_canary_weight == 30.0
        assert out.status.phase == Phase.PROGRESSING


def test_a_winner_that_is_not_b_holds():
    out = advance(Observation(ab_spec(winner="7"), ab_status(), at(5), STABLE_READY, READY))
    assert out.event.kind == EventKind.STEP_NOT_DUE


def test_naming_b_the_winner_promotes_it_and_records_why():
    spec = ab_spec(winner="2")
    out = advance(Observation(spec, ab_status(), at(5), STABLE_READY, READY))
    assert (out.event.kind, out.event.reason) == (EventKind.PASS_LAST_STEP, "WinnerChosen")
    assert out.transition.next == State.PROMOTING
    assert out.status.stable.version == "2"
    assert "A/B test: version 2 promoted" in out.events[0].message
    stable = running(out.status.stable, STABLE_READY)  # the stable Deployment now runs 2
    done = advance(Observation(spec, out.status, at(10), stable, READY))
    entry = done.status.history[-1]
    assert (entry.version, entry.result, entry.reason) == ("2", "Promoted", "WinnerChosen")
    assert done.status.canary is None


def test_a_winner_named_before_b_is_ready_waits_for_it():
    starting = WorkloadState(exists=True, desired=2, ready=0, updated=2, available=0)
    out = advance(Observation(ab_spec(winner="2"), ab_status(), at(5), STABLE_READY, starting))
    assert out.event.kind == EventKind.CANARY_STARTING


def test_abort_is_spec_model_back_to_a():
    out = advance(Observation(ab_spec("1"), ab_status(), at(5), STABLE_READY, READY))
    assert out.event.kind == EventKind.BACK_TO_STABLE
    assert out.status.canary is None


@pytest.mark.parametrize(("weight", "replicas"), [(50, (4, 2)), (10, (4, 1)), (0, (4, 1))])
def test_b_gets_the_replicas_of_its_share_at_least_one(weight, replicas):
    workloads = desired_workloads(ab_spec(weight=weight), ab_status())
    assert (workloads.stable_replicas, workloads.canary_replicas) == replicas


def test_header_only_routes_no_weight_to_b_and_keeps_it_while_promoting():
    assert route_weight(ab_spec(weight=0), ab_status(), True) == 0
    assert route_weight(ab_spec(weight=40), ab_status(promoting=True), True) == 40


def test_weight_zero_needs_a_header_to_reach_b():
    body = {
        "model": ref("2").model_dump(),
        "rollout": {"strategy": "ABTest", "abTest": {"weight": 0}},
    }
    with pytest.raises(ValidationError, match="sends B nothing"):
        parse_spec(body)
