"""plugin_view.py: what `kubectl modelops status` and `history` print, and status' exit code."""

from __future__ import annotations

from typing import Any

from modelops_operator.plugin import parser
from modelops_operator.plugin_view import Verdict, history_text, status_text, verdict

REF = {"name": "wine", "version": "2", "image": "i", "artifact": "/m/2"}


def md(generation: int, model: dict[str, Any] = REF, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "wine", "namespace": "models", "generation": generation},
        "spec": {"model": model, "rollout": {"steps": [25, 50, 100]}},
        "status": status,
    }


READY = {"type": "Ready", "status": "True", "reason": "Available", "message": "2/2",
         "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 3}  # fmt: skip


def test_ready_on_the_asked_version_at_this_generation_exits_0() -> None:
    obj = md(3, observedGeneration=3, phase="Ready", stableVersion="2", conditions=[READY])
    assert verdict(obj) == Verdict.READY == 0


def test_an_older_generation_or_an_older_version_is_undecided() -> None:
    assert verdict(md(4, observedGeneration=3, phase="Ready", stableVersion="2",
                      conditions=[READY])) == Verdict.UNDECIDED  # fmt: skip
    assert verdict(md(3, observedGeneration=3, phase="Ready", stableVersion="1",
                      conditions=[READY])) == Verdict.UNDECIDED  # fmt: skip


def test_the_asked_version_rolled_back_exits_1() -> None:
    obj = md(3, observedGeneration=3, phase="RolledBack", stableVersion="1", rolledBack=REF)
    assert verdict(obj) == Verdict.ROLLED_BACK == 1


def test_the_rolled_back_version_asked_again_as_a_new_release_is_undecided() -> None:
    # version 2 again with a fixed image: a new release, held while paused (phase RolledBack)
    fixed = {**REF, "image": "i-fixed"}
    obj = md(4, fixed, observedGeneration=4, phase="RolledBack", stableVersion="1",
             rolledBack=REF, pause={"by": "alice", "at": "2026-01-01T00:03:00Z"})  # fmt: skip
    assert verdict(obj) == Verdict.UNDECIDED


def test_status_shows_the_step_and_each_figure_against_its_threshold() -> None:
    obj = md(
        3, observedGeneration=3, phase="Progressing", stableVersion="1", canaryWeight=50,
        effectiveCanaryWeight=50.0,
        canary={"model": REF, "step": 1, "startedAt": "2026-01-01T00:00:00Z",
                "stepStartedAt": "2026-01-01T00:01:00Z"},
        lastAnalysis={"at": "2026-01-01T00:02:00Z", "version": "2", "step": 1, "weight": 50,
                      "result": "Fail", "reason": "DriftTooHigh", "message": "drift",
                      "figures": {"requests": 120, "driftScore": 0.31},
                      "thresholds": {"minRequests": 20, "maxDriftScore": 0.2}},
        pause={"by": "alice", "at": "2026-01-01T00:03:00Z"},
    )  # fmt: skip
    text = status_text(obj)

    assert "canary 2: step 2/3, weight 50%, share 50.0%" in text
    assert "paused by alice" in text
    lines = {
        line.split()[0]: line.split()[1:] for line in text.splitlines() if line.startswith("  ")
    }
    assert lines["requests"] == ["120", ">=", "20", "ok"]
    assert lines["driftScore"] == ["0.31", "<=", "0.2", "over"]
    assert lines["errorRate"] == ["-", "-"]
    assert lines["latencyP95Seconds"] == ["-", "-"]


def analysed(figures: dict[str, float], **thresholds: float) -> dict[str, list[str]]:
    """The figure rows of `status` for one last analysis: figure -> the rest of its row."""
    obj = md(3, observedGeneration=3, phase="Progressing", lastAnalysis={
        "at": "t", "version": "2", "step": 0, "weight": 25, "result": "Pass",
        "reason": "WithinThresholds", "message": "", "figures": {"requests": 300, **figures},
        "thresholds": {"minRequests": 50, "maxLatencyP95Ratio": 1.5,
                       "minLatencyP95IncreaseSeconds": 0.025, "maxPredictionShift": 0.1,
                       "minPredictionShiftStandardErrors": 3, **thresholds}})  # fmt: skip
    return {
        line.split()[0]: line.split()[1:]
        for line in status_text(obj).splitlines()
        if line.startswith("  ") and not line.startswith("  figure")
    }


def test_a_ratio_over_its_threshold_within_its_second_gate_is_judged_as_the_analysis_does():
    rows = analysed({"latencyP95Ratio": 2.0, "latencyP95IncreaseSeconds": 0.004,
                     "predictionShift": 0.15, "predictionShiftStandardError": 0.1})  # fmt: skip

    assert rows["latencyP95Ratio"][:4] == ["2", "<=", "1.5", "ok:"]
    assert "latencyP95IncreaseSeconds 0.004 < minLatencyP95IncreaseSeconds 0.025" in " ".join(
        rows["latencyP95Ratio"]
    )
    assert rows["predictionShift"][:4] == ["0.15", "<=", "0.1", "inconclusive:"]
    assert "only 1.5 standard errors" in " ".join(rows["predictionShift"])


def test_a_ratio_over_both_gates_is_over():
    rows = analysed({"latencyP95Ratio": 2.0, "latencyP95IncreaseSeconds": 0.05,
                     "predictionShift": 0.15, "predictionShiftStandardError": 0.01})  # fmt: skip
    assert rows["latencyP95Ratio"] == ["2", "<=", "1.5", "over"]
    assert rows["predictionShift"] == ["0.15", "<=", "0.1", "over"]
    # 0: the threshold alone, as the analysis reads it
    alone = analysed({"predictionShift": 0.15}, minPredictionShiftStandardErrors=0)
    assert alone["predictionShift"] == ["0.15", "<=", "0.1", "over"]


def test_an_ab_test_shows_no_step():
    obj = md(3, observedGeneration=3, phase="Progressing", stableVersion="1", canaryWeight=50,
             effectiveCanaryWeight=50.0,
             canary={"model": REF, "step": 1, "startedAt": "2026-01-01T00:00:00Z",
                     "stepStartedAt": "2026-01-01T00:01:00Z"})  # fmt: skip
    obj["spec"]["rollout"] = {"strategy": "ABTest", "steps": [25, 50, 100], "abTest": {}}
    canary = next(line for line in status_text(obj).splitlines() if line.startswith("canary"))

    assert "step" not in canary
    assert "abTest.winner is 2" in canary


def test_history_has_a_who_column() -> None:
    obj = md(3, history=[
        {"version": "1", "result": "Deployed", "at": "2026-01-01T00:00:00Z", "reason": "Available"},
        {"version": "2", "result": "Request", "at": "2026-01-01T00:05:00Z", "reason": "Abort",
         "by": "alice", "message": "abort canary 2"},
    ])  # fmt: skip
    rows = [line.split() for line in history_text(obj).splitlines()]

    assert rows[0] == ["AT", "VERSION", "RESULT", "REASON", "BY", "MESSAGE"]
    assert rows[1][1:] == ["1", "Deployed", "Available", "-"]
    assert rows[2][1:] == ["2", "Request", "Abort", "alice", "abort", "canary", "2"]


def test_every_verb_of_the_issue_is_a_subcommand() -> None:
    verbs = parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(verbs) == {"status", "promote", "abort", "retry", "pause", "resume", "history"}
    assert parser().parse_args(["promote", "wine", "--full"]).full is True
    assert parser().parse_args(["status", "wine", "-w"]).watch is True
