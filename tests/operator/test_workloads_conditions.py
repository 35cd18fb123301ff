from __future__ import annotations

import pytest

from modelops_operator.conditions import (
    ConditionValue,
    announces,
    degrade,
    rollout_conditions,
    set_conditions,
)
from modelops_operator.models import Condition, ModelDeploymentStatus, ModelRef, Phase
from modelops_operator.rollout import Observation, advance
from modelops_operator.workloads import (
    MISSING,
    TERMINATION_TEXT_LIMIT,
    WorkloadState,
    effective_share,
    read_deployment,
    ready_text,
    replicas_to_reach,
    split_replicas,
    termination_text,
    unreachable_step,
)
from tests.support.operator_builders import at, ref, spec_for

# Replica mode, replicas 1..10 against the default-like steps 10/25/50/100: the stable keeps
# every replica, the canary gets the most replicas whose share does not exceed the step (at
# least one); (stable, canary, effective share %, the step unreachable?).
REPLICA_MODE = {
    (1, 10): (1, 1, 50.0, True), (1, 25): (1, 1, 50.0, True),
    (1, 50): (1, 1, 50.0, False), (1, 100): (0, 1, 100.0, False),
    (2, 10): (2, 1, 33.3, True), (2, 25): (2, 1, 33.3, True),
    (2, 50): (2, 2, 50.0, False), (2, 100): (0, 2, 100.0, False),
    (3, 10): (3, 1, 25.0, True), (3, 25): (3, 1, 25.0, False),
    (3, 50): (3, 3, 50.0, False), (3, 100): (0, 3, 100.0, False),
    (4, 10): (4, 1, 20.0, True), (4, 25): (4, 1, 20.0, False),
    (4, 50): (4, 4, 50.0, False), (4, 100): (0, 4, 100.0, False),
    (5, 10): (5, 1, 16.7, True), (5, 25): (5, 1, 16.7, False),
    (5, 50): (5, 5, 50.0, False), (5, 100): (0, 5, 100.0, False),
    (6, 10): (6, 1, 14.3, True), (6, 25): (6, 2, 25.0, False),
    (6, 50): (6, 6, 50.0, False), (6, 100): (0, 6, 100.0, False),
    (7, 10): (7, 1, 12.5, True), (7, 25): (7, 2, 22.2, False),
    (7, 50): (7, 7, 50.0, False), (7, 100): (0, 7, 100.0, False),
    (8, 10): (8, 1, 11.1, True), (8, 25): (8, 2, 20.0, False),
    (8, 50): (8, 8, 50.0, False), (8, 100): (0, 8, 100.0, False),
    (9, 10): (9, 1, 10.0, False), (9, 25): (9, 3, 25.0, False),
    (9, 50): (9, 9, 50.0, False), (9, 100): (0, 9, 100.0, False),
    (10, 10): (10, 1, 9.1, False), (10, 25): (10, 3, 23.1, False),
    (10, 50): (10, 10, 50.0, False), (10, 100): (0, 10, 100.0, False),
}  # fmt: skip


def test_the_table_covers_replicas_1_to_10_and_every_step():
    assert set(REPLICA_MODE) == {(n, w) for n in range(1, 11) for w in (10, 25, 50, 100)}


@pytest.mark.parametrize(("total", "weight"), sorted(REPLICA_MODE))
def test_replica_mode(total, weight):
    stable, canary, share, unreachable = REPLICA_MODE[(total, weight)]
    assert split_replicas(total, weight) == (stable, canary)
    assert effective_share(stable, canary) == share
    assert canary >= 1
    if weight < 100:
        assert stable == total  # the stable never loses capacity to the canary
        # the most canary replicas within the step, unless one is already more
        assert share <= weight or canary == 1
        assert 100 * (canary + 1) / (stable + canary + 1) > weight
    message = unreachable_step(total, weight)
    assert (message is not None) == unreachable == (share > weight)
    if message:
        need = replicas_to_reach(weight)
        assert message == (
            f"step {weight}% is unreachable with {total} replicas: 1 canary beside {total} "
            f"stable is {share:g}%; {need} replicas would reach it"
        )
        assert 100 / (need + 1) <= weight < 100 / need  # the fewest that reach it
        assert unreachable_step(need, weight) is None


@pytest.mark.parametrize("total", range(1, 11))
@pytest.mark.parametrize("weight", [51, 60, 75, 90, 99])
def test_replica_mode_caps_the_canary_at_the_stable_above_50(total, weight):
    # replicas 10, step 90 gave 90 canary pods beside 10 stable: an equal split at most
    assert split_replicas(total, weight) == (total, total)
    assert effective_share(total, total) == 50.0
    assert unreachable_step(total, weight) == (
        f"step {weight}% is unreachable by replicas: the canary is capped at the stable's "
        f"{total} replicas, {total} canary beside {total} stable is 50%; traffic routing "
        "(gatewayAPI) would reach it"
    )


def test_no_replicas_no_pods():
    assert split_replicas(0, 50) == (0, 0)
    assert effective_share(0, 0) == 0.0
    assert unreachable_step(0, 10) is None


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


def test_read_deployment_reads_the_release_its_pod_template_runs():
    dep = deployment()
    dep["spec"]["template"] = {
        "metadata": {"labels": {"modelops.io/version": "2", "modelops.io/track": "stable"}},
        "spec": {"containers": [{"name": "sidecar", "image": "proxy:1"},
                                {"name": "model-service", "image": "reg/svc@sha256:ab"}]},
    }  # fmt: skip
    state = read_deployment(dep)
    assert (state.version, state.image) == ("2", "reg/svc@sha256:ab")
    assert (read_deployment(deployment()).version, read_deployment(deployment()).image) == (
        None,
        None,
    )


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


FETCH_FAILED = (
    "fetch failed: digest_mismatch: s3://models/wine/2/model.joblib has sha256 aa, the spec "
    "declares bb; nothing was loaded"
)


def test_a_failing_fetch_init_container_is_quoted_with_its_class():
    """The init container's one JSON line (FallbackToLogsOnError) names the failure class."""
    line = (
        '{"level":"error","logger":"modelops_service.fetch","msg":"' + FETCH_FAILED + '",'
        '"failure":"digest_mismatch","exitCode":12,"uri":"s3://models/wine/2"}\n'
    )
    pod = crashing_pod(message=line, exit_code=12)
    pod["status"]["initContainerStatuses"] = pod["status"].pop("containerStatuses")
    pod["status"]["initContainerStatuses"][0]["name"] = "model-fetch"
    pod["status"]["containerStatuses"] = [
        {"name": "model-service", "ready": False, "restartCount": 0,
         "state": {"waiting": {"reason": "PodInitializing"}}}
    ]  # fmt: skip
    state = read_deployment(deployment(ready=0), [pod])
    assert state.failure == "CrashLoopBackOff"
    assert state.failure_message == (
        f"pod wine-abc: CrashLoopBackOff: container model-fetch exited 12 (Error): {FETCH_FAILED}"
    )


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


def degraded_at(reason: str, when: str) -> tuple[Condition, ...]:
    return set_conditions(
        [],
        [ConditionValue("Degraded", True, reason, "HTTPRoute models/edge not found"),
         ConditionValue("Progressing", False, reason, "HTTPRoute models/edge not found")],
        when,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("before", "reason", "announced"),
    [
        ((), "TrafficRoutingFailed", True),  # the transition into Degraded
        # every later tick of the same cause
        (degraded_at("TrafficRoutingFailed", "T1"), "TrafficRoutingFailed", False),
        (degraded_at("RenderFailed", "T1"), "TrafficRoutingFailed", True),  # another cause
        (set_conditions([], [ConditionValue("Degraded", False, "AsExpected")], "T1"),
         "TrafficRoutingFailed", True),  # recovered, then again
    ],
)  # fmt: skip
def test_a_cause_is_announced_once_on_the_transition(before, reason, announced):
    assert announces(before, reason) is announced


def test_a_persisting_cause_keeps_its_transition_time_and_says_the_latest_message():
    before = degraded_at("TrafficRoutingFailed", "T1")
    # the rollout's own conditions of this pass say Degraded False (it knows no route)
    passing = ModelDeploymentStatus(
        phase=Phase.PROGRESSING,
        conditions=set_conditions(
            before, [ConditionValue("Degraded", False, "AsExpected"),
                     ConditionValue("Ready", True, "Available")], "T2"),
    )  # fmt: skip
    out = degrade(passing, before, "TrafficRoutingFailed", "no rule named predict", "T2", 4)
    assert out.phase == Phase.DEGRADED
    by_type = {c.type: c for c in out.conditions}
    assert (by_type["Degraded"].status, by_type["Degraded"].reason) == (
        "True",
        "TrafficRoutingFailed",
    )
    assert by_type["Degraded"].message == "no rule named predict"
    assert by_type["Degraded"].last_transition_time == "T1"
    assert by_type["Progressing"].status == "False"
    assert by_type["Ready"].status == "True"  # what the pass knew about the rest stays
    assert out.observed_generation == 4
    # a rollback that cannot reach its route stays RolledBack (the state machine reads it)
    rolled_back = passing.model_copy(update={"phase": Phase.ROLLED_BACK})
    assert degrade(rolled_back, before, "TrafficRoutingFailed", "x", "T2", 4).phase == (
        Phase.ROLLED_BACK
    )


def ready_condition(model: ModelRef, stable: WorkloadState) -> ConditionValue:
    spec = spec_for("1", model=model.model_dump())
    status = ModelDeploymentStatus(stable=model, phase=Phase.READY)
    obs = Observation(spec, status, at(0), stable, MISSING)
    return next(c for c in rollout_conditions(advance(obs), obs) if c.type == "Ready")


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
