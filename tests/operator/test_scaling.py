"""The ModelDeployment scales as a whole (pure): the split of any total at every step,
spec.autoscaling's bounds, /scale's replicas and selector, the ScaledObject values and the
condition that names what autoscaling lacks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modelops_operator.conditions import autoscaling_condition
from modelops_operator.models import CanaryState, ModelDeploymentStatus
from modelops_operator.reasons import Reason
from modelops_operator.rollout import Observation, desired_workloads
from modelops_operator.scaling import (
    SCALED_OBJECT,
    keda_missing,
    scale_replicas,
    scale_selector,
    scaled_object_values,
    total_replicas,
)
from modelops_operator.workloads import MISSING, WorkloadState, effective_share
from tests.support.operator_builders import at, ref, spec_for, stamp

STEPS = (10, 25, 50, 100)
AUTOSCALING = {"minReplicas": 2, "maxReplicas": 10, "targetRequestsPerSecond": 20}


def canary_status(step: int, promoting: bool = False) -> ModelDeploymentStatus:
    return ModelDeploymentStatus(
        stable=ref("1"),
        canary=CanaryState(
            model=ref("2"),
            step=step,
            startedAt=stamp(0),
            stepStartedAt=stamp(0),
            promoting=promoting,
        ),
    )


@pytest.mark.parametrize("total", range(1, 21))
@pytest.mark.parametrize("step", range(len(STEPS)))
def test_any_total_splits_by_the_step(total, step):
    spec = spec_for("2", replicas=total, steps=list(STEPS))
    work = desired_workloads(spec, canary_status(step))
    weight = STEPS[step]
    if weight == 100:
        assert (work.stable_replicas, work.canary_replicas) == (0, total)
        return
    assert work.stable_replicas == total  # the stable carries the whole size
    assert work.canary_replicas >= 1
    share = effective_share(work.stable_replicas, work.canary_replicas)
    # the most canary replicas within the step: one more would go over it
    assert share <= weight or work.canary_replicas == 1
    assert 100 * (work.canary_replicas + 1) / (total + work.canary_replicas + 1) > weight


@pytest.mark.parametrize(("before", "after"), [(2, 4), (4, 8), (3, 9), (10, 20)])
def test_a_scale_up_at_50_keeps_the_ratio(before, after):
    for total in (before, after):
        work = desired_workloads(spec_for("2", replicas=total, steps=[50, 100]), canary_status(0))
        assert (work.stable_replicas, work.canary_replicas) == (total, total)


@pytest.mark.parametrize("weight", [60, 75, 90, 99])
def test_a_step_above_50_never_outgrows_the_stable(weight):
    spec = spec_for("2", replicas=10, steps=[weight, 100])
    work = desired_workloads(spec, canary_status(0))
    assert (work.stable_replicas, work.canary_replicas) == (10, 10)
    # status.replicas: the size the autoscaler asked for, not 90 canary pods
    stable, canary = workload(work.stable_replicas), workload(work.canary_replicas)
    assert scale_replicas(stable, canary) == 10
    promoting = desired_workloads(spec, canary_status(0, promoting=True))
    assert (promoting.stable_replicas, promoting.canary_replicas) == (10, 10)


def test_without_a_canary_the_stable_runs_the_total():
    spec = spec_for("1", replicas=7)
    assert desired_workloads(spec, ModelDeploymentStatus(stable=ref("1"))).stable_replicas == 7


@pytest.mark.parametrize(
    ("replicas", "expected"), [(0, 2), (1, 2), (2, 2), (5, 5), (10, 10), (11, 10), (100, 10)]
)
def test_autoscaling_bounds_clamp_the_total(replicas, expected):
    spec = spec_for("1", replicas=replicas, autoscaling=AUTOSCALING)
    assert total_replicas(spec) == expected
    assert desired_workloads(spec, ModelDeploymentStatus(stable=ref("1"))).stable_replicas == (
        expected
    )


def test_without_autoscaling_no_clamping():
    assert total_replicas(spec_for("1", replicas=0)) == 0
    assert total_replicas(spec_for("1", replicas=100)) == 100


def test_clamped_total_is_what_the_canary_splits():
    spec = spec_for("2", replicas=1, steps=[50, 100], autoscaling=AUTOSCALING)
    work = desired_workloads(spec, canary_status(0))
    assert (work.stable_replicas, work.canary_replicas) == (2, 2)


@pytest.mark.parametrize(
    "bad",
    [
        {"minReplicas": 5, "maxReplicas": 4, "targetRequestsPerSecond": 1},
        {"minReplicas": 0, "maxReplicas": 4, "targetRequestsPerSecond": 1},
        {"maxReplicas": 4, "targetRequestsPerSecond": 0},
        {"maxReplicas": 4},
        {"maxReplicas": 4, "targetRequestsPerSecond": 1, "scaleDownStabilization": "soon"},
    ],
)
def test_autoscaling_spec_refuses_what_cannot_work(bad):
    with pytest.raises(ValidationError):
        spec_for("1", autoscaling=bad)


def test_autoscaling_defaults():
    bounds = spec_for("1", autoscaling={"maxReplicas": 3, "targetRequestsPerSecond": 5}).autoscaling
    assert bounds is not None
    assert (bounds.min_replicas, bounds.scale_down_stabilization_seconds) == (1, 300)
    assert bounds.target_cpu_utilization_percentage is None


def workload(replicas: int) -> WorkloadState:
    return WorkloadState(exists=True, desired=replicas, replicas=replicas)


@pytest.mark.parametrize(
    ("stable", "canary", "expected"),
    [
        (workload(4), MISSING, 4),  # no canary: the stable's pods
        (workload(4), workload(1), 4),  # a canary beside the stable does not count
        (workload(4), workload(4), 4),  # 50%: still the size the autoscaler asked for
        (workload(0), workload(4), 4),  # step 100: the canary alone carries it
        (workload(6), workload(4), 6),  # the stable mid scale-up: what runs, not the spec
        (MISSING, MISSING, 0),
    ],
)
def test_scale_status_replicas_count_the_track_that_carries_the_total(stable, canary, expected):
    assert scale_replicas(stable, canary) == expected


def test_scale_selector_is_a_sorted_label_selector_string():
    labels = {"app.kubernetes.io/name": "model-service", "app.kubernetes.io/instance": "wine"}
    assert scale_selector(labels) == (
        "app.kubernetes.io/instance=wine,app.kubernetes.io/name=model-service"
    )
    assert scale_selector({}) == ""


def test_scaled_object_values_target_the_model_deployment():
    spec = spec_for("1", autoscaling={**AUTOSCALING, "targetCPUUtilizationPercentage": 70,
                                      "scaleDownStabilization": "1m"})  # fmt: skip
    values = scaled_object_values(spec, "wine", "http://prom:9090")
    assert values == {
        "enabled": True,
        "scaleTargetRef": {
            "apiVersion": "modelops.io/v1alpha1",
            "kind": "ModelDeployment",
            "name": "wine",
        },
        "minReplicas": 2,
        "maxReplicas": 10,
        "targetRequestsPerSecond": 20,
        "targetCPUUtilizationPercentage": 70,
        "scaleDownStabilizationSeconds": 60,
        "prometheusUrl": "http://prom:9090",
    }
    own = spec_for("1", autoscaling={**AUTOSCALING, "prometheusUrl": "http://mine:9090"})
    assert scaled_object_values(own, "wine", "http://prom:9090")["prometheusUrl"] == (
        "http://mine:9090"
    )
    assert scaled_object_values(spec_for("1"), "wine", "http://prom:9090") == {"enabled": False}


def observation(spec) -> Observation:
    return Observation(spec, ModelDeploymentStatus(stable=ref("1")), at(0), workload(2), MISSING)


def test_without_keda_the_condition_says_what_is_missing():
    spec = spec_for("1", replicas=1, autoscaling=AUTOSCALING)
    cond = autoscaling_condition(observation(spec), frozenset({"Deployment", "Service"}))
    assert cond is not None
    assert cond.status is False
    assert cond.reason == Reason.KEDA_MISSING
    assert "scaledobjects.keda.sh" in cond.message
    assert "install KEDA" in cond.message
    assert "[2, 10]" in cond.message  # and what the operator does meanwhile
    assert keda_missing(spec, frozenset({SCALED_OBJECT})) is None


def test_with_keda_the_condition_is_true_and_without_autoscaling_absent():
    spec = spec_for("1", autoscaling=AUTOSCALING)
    cond = autoscaling_condition(observation(spec), frozenset({SCALED_OBJECT}))
    assert cond is not None
    assert cond.status is True
    assert cond.reason == Reason.SCALED_OBJECT_APPLIED
    assert autoscaling_condition(observation(spec_for("1")), frozenset()) is None
