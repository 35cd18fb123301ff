"""The Ready condition is about the release the spec asks for (GitOps: `kubectl wait`).

kubectl wait --for=condition=Ready compares the condition's observedGeneration with
metadata.generation, so Ready=True must mean "this generation's release serves"; mid-canary
and after a rollback it is False, the latter with reason RolledBack.
"""

from __future__ import annotations

from modelops_operator.analysis import Decision, Verdict
from modelops_operator.conditions import status_after
from modelops_operator.models import CanaryState, Condition, ModelDeploymentStatus, Phase
from modelops_operator.rollout import Observation, advance
from modelops_operator.selectors import MonitoringReport
from modelops_operator.workloads import MISSING, WorkloadState
from tests.support.operator_builders import at, ref, spec_for, stamp

READY = WorkloadState(exists=True, desired=4, ready=4, updated=4, available=4)
CANARY_READY = WorkloadState(exists=True, desired=1, ready=1, updated=1, available=1)
REPORT = MonitoringReport(True, "Applied", "")
SCALE: dict = {"pod_labels": {"app.kubernetes.io/name": "model-service"}, "served": frozenset()}
FAIL = Decision(Verdict.FAIL, "DriftTooHigh", "driftScore 0.9 > maxDriftScore 0.2", {})


def ready(status: ModelDeploymentStatus) -> Condition:
    return next(c for c in status.conditions if c.type == "Ready")


def test_ready_while_the_stable_serves_the_asked_release() -> None:
    status = ModelDeploymentStatus(stable=ref("1"), phase=Phase.READY)
    obs = Observation(spec_for("1"), status, at(0), READY, MISSING)
    new = status_after(advance(obs), obs, REPORT, None, generation=3, **SCALE)

    assert (ready(new).status, ready(new).reason, ready(new).observed_generation) == (
        "True", "Available", 3,
    )  # fmt: skip


def test_not_ready_when_a_new_generation_asks_for_a_canary() -> None:
    status = ModelDeploymentStatus(stable=ref("1"), phase=Phase.READY)
    obs = Observation(spec_for("2"), status, at(0), READY, MISSING)
    new = status_after(advance(obs), obs, REPORT, None, generation=4, **SCALE)

    cond = ready(new)
    assert (cond.status, cond.reason, cond.observed_generation) == ("False", "CanaryStarted", 4)
    assert cond.message.startswith("rolling out version 2: canary of version 2")


def test_rolled_back_says_ready_false_reason_rolled_back_at_once() -> None:
    canary = CanaryState(model=ref("2"), step=0, startedAt=stamp(0), stepStartedAt=stamp(0))
    status = ModelDeploymentStatus(stable=ref("1"), canary=canary, phase=Phase.PROGRESSING)
    obs = Observation(spec_for("2"), status, at(60), READY, CANARY_READY, analysis=FAIL)
    rolled = status_after(advance(obs), obs, REPORT, None, generation=4, **SCALE)

    assert rolled.phase == Phase.ROLLED_BACK
    cond = ready(rolled)
    assert (cond.status, cond.reason, cond.observed_generation) == ("False", "RolledBack", 4)
    assert cond.message == "version 2 was rolled back; version 1 serves (4/4 stable replicas ready)"

    # and it stays so on the next ticks, while the spec still asks for version 2
    again = Observation(spec_for("2"), rolled, at(90), READY, MISSING)
    assert ready(
        status_after(advance(again), again, REPORT, None, generation=4, **SCALE)
    ).reason == ("RolledBack")
