from __future__ import annotations

import pytest

from modelops_operator.conditions import ConditionValue, rollout_conditions, set_conditions
from modelops_operator.models import Condition, ModelDeploymentStatus, ModelRef, Phase
from modelops_operator.rollout import Observation, advance
from modelops_operator.workloads import (
    MISSING,
    TERMINATION_TEXT_LIMIT,
    WorkloadState,
    read_deployment,
    ready_text,
    split_replicas,
    termination_text,
)
from tests.operator.conftest import at, ref, spec_for


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


REFUSED = (
    "refusing to load /models/wine/1/model.joblib: its sha256 is aa but "
    "MODELOPS_MODEL_SHA256 declares bb"
)
# the service's stdout when it refuses an artifact (one JSON line), as
# FallbackToLogsOnError hands it to the container's termination message
SERVICE_LOG = (
    '{"ts":"2026-01-01T00:00:00.000+00:00","level":"error","logger":"modelops_service",'
    f'"msg":"{REFUSED}","model_dir":"/models/wine/1"}}\n'
)


def crashing_pod(name="wine-abc", message=SERVICE_LOG, exit_code=2, reason="Error", restarts=3):
    return {
        "metadata": {"name": name},
        "status": {
            "containerStatuses": [
                {
                    "name": "model-service",
                    "ready": False,
                    "restartCount": restarts,
                    "state": {"waiting": {"reason": "CrashLoopBackOff",
                                          "message": "back-off 40s restarting failed container"}},
                    "lastState": {"terminated": {"exitCode": exit_code, "reason": reason,
                                                 "message": message}},
                }
            ]
        },
    }  # fmt: skip


def test_a_crash_loop_reports_the_containers_last_words_not_the_back_off():
    state = read_deployment(deployment(ready=0), [crashing_pod()])
    assert state.failure == "CrashLoopBackOff"
    assert state.failure_message == (
        f"pod wine-abc: CrashLoopBackOff: container model-service exited 2 (Error): {REFUSED}"
    )
    assert "back-off" not in state.failure_message


def test_a_crash_without_a_termination_message_still_says_exit_code_and_pod():
    state = read_deployment(deployment(ready=0), [crashing_pod(message="", reason="")])
    assert state.failure_message == (
        "pod wine-abc: CrashLoopBackOff: container model-service exited 2"
    )


@pytest.mark.parametrize(
    "state",
    [
        {"running": {"startedAt": "T"}},  # restarted after the back-off, not ready yet
        {"terminated": {"exitCode": 2, "reason": "Error"}},  # exited again
        {},
    ],
)
def test_a_crash_loop_between_two_back_offs_is_still_a_crash_loop(state):
    """The same reason and message in every phase of the loop: nothing flaps."""
    pod = crashing_pod()
    pod["status"]["containerStatuses"][0]["state"] = state
    between = read_deployment(deployment(ready=0), [pod])
    waiting = read_deployment(deployment(ready=0), [crashing_pod()])
    assert (between.failure, between.failure_message) == (
        waiting.failure,
        waiting.failure_message,
    )


@pytest.mark.parametrize(
    ("ready", "exit_code"),
    [
        (True, 2),  # crashed once, restarted and ready again
        (False, 0),  # exited cleanly, being restarted
    ],
)
def test_a_restart_that_recovers_or_exited_cleanly_is_no_failure(ready, exit_code):
    pod = crashing_pod(exit_code=exit_code)
    status = pod["status"]["containerStatuses"][0]
    status["ready"] = ready
    status["state"] = {"running": {"startedAt": "T"}}
    assert read_deployment(deployment(ready=0), [pod]).failure is None


def test_image_pull_back_off_keeps_the_kubelets_message():
    pod = {
        "metadata": {"name": "wine-xyz"},
        "status": {"containerStatuses": [{"name": "model-service", "state": {"waiting": {
            "reason": "ImagePullBackOff", "message": 'Back-off pulling image "nope:1"'}}}]},
    }  # fmt: skip
    state = read_deployment(deployment(ready=0), [pod])
    assert state.failure == "ImagePullBackOff"
    assert state.failure_message == (
        'pod wine-xyz: ImagePullBackOff: Back-off pulling image "nope:1"'
    )


@pytest.mark.parametrize(
    ("message", "said"),
    [
        (SERVICE_LOG, REFUSED),
        # the log tail: an earlier info line, the error, then a later info line
        ('{"level":"info","msg":"starting"}\n' + SERVICE_LOG + '{"level":"info","msg":"bye"}\n',
         REFUSED),
        # no error line: the last line's msg
        ('{"level":"info","msg":"a"}\n{"level":"warning","msg":"b"}', "b"),
        # plain text (a traceback): its last line
        ("Traceback (most recent call last):\n  File x\nValueError: bad model\n",
         "ValueError: bad model"),
        # the tail may begin mid-line; JSON that is not an object is text
        ('l":"error","msg":"cut"}\n[1, 2]', "[1, 2]"),
        ("  \n\n", ""),
        (r'{"level":"error","message":"also\n  wrapped"}', "also wrapped"),
    ],
)  # fmt: skip
def test_termination_text_picks_the_line_that_matters(message, said):
    assert termination_text(message) == said


def test_termination_text_is_trimmed():
    text = termination_text('{"level":"error","msg":"' + "x" * 5000 + '"}')
    assert len(text) == TERMINATION_TEXT_LIMIT
    assert text.endswith("\u2026")


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


def ready_condition(model: ModelRef, stable: WorkloadState) -> ConditionValue:
    spec = spec_for("1", model=model.model_dump())
    status = ModelDeploymentStatus(stable=model, phase=Phase.READY)
    outcome = advance(Observation(spec, status, at(0), stable, MISSING))
    return next(c for c in rollout_conditions(outcome, stable) if c.type == "Ready")


def test_ready_says_when_the_artifact_is_not_verified():
    ready = WorkloadState(exists=True, desired=4, ready=4, updated=4, available=4)
    unverified = ready_condition(ref("1"), ready)
    assert (unverified.status, unverified.reason) == (True, "Available")
    assert unverified.message == (
        "4/4 stable replicas ready; artifact not verified: spec.model.sha256 is empty, "
        "/m/1 loads unchecked"
    )
    verified = ready_condition(ref("1").model_copy(update={"sha256": "ab" * 32}), ready)
    assert verified.message == "4/4 stable replicas ready"


def test_ready_false_carries_the_failure_and_the_unverified_note():
    crashing = WorkloadState(
        exists=True, desired=2, failure="CrashLoopBackOff", failure_message="pod p: boom"
    )
    cond = ready_condition(ref("1"), crashing)
    assert (cond.status, cond.reason) == (False, "CrashLoopBackOff")
    assert cond.message.startswith("pod p: boom; artifact not verified")
