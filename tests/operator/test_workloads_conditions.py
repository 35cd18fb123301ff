from __future__ import annotations

import pytest

from modelops_operator.conditions import ConditionValue, set_conditions
from modelops_operator.models import Condition
from modelops_operator.workloads import read_deployment, ready_text, split_replicas


@pytest.mark.parametrize(
    ("total", "weight", "stable", "canary"),
    [
        (4, 25, 3, 1),
        (4, 50, 2, 2),
        (4, 100, 0, 4),
        (2, 10, 1, 1),
        (1, 10, 1, 1),
        (1, 100, 0, 1),
        (10, 10, 9, 1),
        (10, 33, 6, 4),
        (0, 50, 0, 0),
    ],
)
def test_split_replicas(total, weight, stable, canary):
    assert split_replicas(total, weight) == (stable, canary)


def deployment(replicas=2, ready=2, updated=2, available=2, generation=1, observed=1, conds=()):
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "readyReplicas": ready,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "observedGeneration": observed,
            "conditions": list(conds),
        },
    }


def test_read_deployment_ready_and_not():
    assert read_deployment(deployment()).is_ready
    assert not read_deployment(deployment(ready=1)).is_ready
    assert not read_deployment(deployment(generation=2)).is_ready  # controller not caught up
    assert not read_deployment(None).exists


def test_read_deployment_failures():
    stuck = deployment(
        ready=0,
        conds=[{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                "message": "took too long"}],
    )  # fmt: skip
    assert read_deployment(stuck).failure == "ProgressDeadlineExceeded"
    pod = {
        "metadata": {"name": "p1"},
        "status": {"containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff",
                                                                 "message": "sha256 mismatch"}}}]},
    }  # fmt: skip
    state = read_deployment(deployment(ready=0), [pod])
    assert state.failure == "CrashLoopBackOff"
    assert "p1" in state.failure_message
    assert "sha256 mismatch" in state.failure_message
    creating = {"status": {"containerStatuses": [{"state": {"waiting": {"reason": "Pulling"}}}]}}
    assert read_deployment(deployment(ready=0), [creating]).failure is None


def test_ready_text():
    a = read_deployment(deployment(replicas=3, ready=2))
    b = read_deployment(deployment(replicas=1, ready=1))
    assert ready_text(a, b) == "3/4"
    assert ready_text(a, read_deployment(None)) == "2/3"


def test_last_transition_time_moves_only_when_status_flips():
    first = set_conditions([], [ConditionValue("Ready", False, "NotAvailable", "0/2")], "T1")
    same = set_conditions(first, [ConditionValue("Ready", False, "NotAvailable", "1/2")], "T2")
    assert same[0].last_transition_time == "T1"
    assert same[0].message == "1/2"
    flipped = set_conditions(same, [ConditionValue("Ready", True, "Available", "2/2")], "T3")
    assert flipped[0].last_transition_time == "T3"
    assert flipped[0].status == "True"


def test_conditions_keep_canonical_order_and_unknown_types():
    current = [Condition(type="Custom", status="True", reason="x", lastTransitionTime="T0")]
    out = set_conditions(
        current,
        [ConditionValue("MonitoringReady", True, "Applied"), ConditionValue("Ready", None, "?")],
        "T1",
        generation=3,
    )
    assert [c.type for c in out] == ["Ready", "MonitoringReady", "Custom"]
    assert out[0].status == "Unknown"
    assert out[0].observed_generation == 3
