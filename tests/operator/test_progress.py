"""progress.py and the gauges it feeds: what the operator's alerts and the dashboard read."""

from __future__ import annotations

import math

from prometheus_client import generate_latest

from modelops_operator.metrics import OperatorMetrics
from modelops_operator.models import (
    AnalysisRecord,
    CanaryState,
    Figures,
    HistoryEntry,
    ModelDeploymentStatus,
    Phase,
)
from modelops_operator.progress import Rollback, rollout_figures
from tests.support.operator_builders import T0, at, ref, spec_for, stamp


def canary_status(**canary: object) -> ModelDeploymentStatus:
    state = CanaryState(model=ref("2"), step=1, startedAt=stamp(0), stepStartedAt=stamp(100),
                        **canary)  # fmt: skip
    return ModelDeploymentStatus(phase=Phase.PROGRESSING, stable=ref("1"), canary=state,
                                 effectiveCanaryWeight=50.0)  # fmt: skip


def test_a_canary_step_may_last_its_interval_plus_the_progress_deadline() -> None:
    figures = rollout_figures(spec_for("2"), canary_status(), at(400))

    assert figures.step == 2
    assert figures.step_seconds == 300
    assert figures.step_deadline_seconds == 30 + 600  # interval 30s + progressDeadline 10m
    assert figures.share == {"stable": 50.0, "canary": 50.0}


def test_a_paused_rollout_is_never_past_its_deadline() -> None:
    figures = rollout_figures(spec_for("2", paused=True), canary_status(), at(99999))

    assert figures.step_deadline_seconds == math.inf


def test_inconclusive_seconds_count_from_inconclusive_since() -> None:
    figures = rollout_figures(spec_for("2"), canary_status(inconclusiveSince=stamp(200)), at(500))

    assert figures.inconclusive_seconds == 300


def test_without_a_rollout_nothing_counts_and_the_stable_has_everything() -> None:
    status = ModelDeploymentStatus(phase=Phase.READY, stable=ref("1"))
    figures = rollout_figures(spec_for("1"), status, at(10))

    assert (figures.step, figures.step_seconds, figures.inconclusive_seconds) == (0, 0, 0)
    assert figures.step_deadline_seconds == 0  # 0 > 0 is false: ModelRolloutStuck stays quiet
    assert figures.share == {"stable": 100.0}
    assert figures.rollback is None


def test_a_rollback_is_reported_with_its_reason_while_the_status_stays_rolled_back() -> None:
    entry = HistoryEntry(version="2", result="RolledBack", at=stamp(60), reason="DriftTooHigh")
    status = ModelDeploymentStatus(phase=Phase.ROLLED_BACK, stable=ref("1"),
                                   rolledBack=ref("2"), history=(entry,))  # fmt: skip

    assert rollout_figures(spec_for("2"), status, at(90)).rollback == Rollback(
        "wine", "2", "DriftTooHigh", (T0.timestamp() + 60)
    )
    ready = status.model_copy(update={"phase": Phase.READY})
    assert rollout_figures(spec_for("3"), ready, at(90)).rollback is None


def test_the_last_analysis_figures_stand_beside_their_thresholds() -> None:
    record = AnalysisRecord(
        at=stamp(100), version="2", step=1, weight=50, result="Pass", reason="WithinThresholds",
        figures=Figures(requests=120, errorRate=0.01, driftScore=None),
        thresholds={"minRequests": 10, "maxErrorRate": 0.05, "maxDriftScore": None},
    )  # fmt: skip
    status = canary_status().model_copy(update={"last_analysis": record})
    figures = rollout_figures(spec_for("2"), status, at(150))

    assert figures.figures == {"requests": 120, "errorRate": 0.01}
    assert figures.thresholds == {"requests": 10, "errorRate": 0.05}


def test_gauges_of_a_gone_rollback_or_figure_are_removed() -> None:
    metrics = OperatorMetrics()
    entry = HistoryEntry(version="2", result="RolledBack", at=stamp(60), reason="DriftTooHigh")
    rolled = ModelDeploymentStatus(phase=Phase.ROLLED_BACK, stable=ref("1"),
                                   rolledBack=ref("2"), history=(entry,))  # fmt: skip
    metrics.set_progress("models", "wine", rollout_figures(spec_for("2"), rolled, at(90)))
    text = generate_latest(metrics.registry).decode()
    assert 'modelops_operator_rollback_timestamp_seconds{model="wine",name="wine",' in text
    assert 'reason="DriftTooHigh",version="2"}' in text

    ready = ModelDeploymentStatus(phase=Phase.READY, stable=ref("1"))
    metrics.set_progress("models", "wine", rollout_figures(spec_for("1"), ready, at(99)))
    text = generate_latest(metrics.registry).decode()
    assert "modelops_operator_rollback_timestamp_seconds{" not in text
    share = 'modelops_operator_traffic_share_percent{name="wine",namespace="models",track="stable"}'
    assert f"{share} 100.0" in text

    metrics.forget("models", "wine")
    assert 'name="wine"' not in generate_latest(metrics.registry).decode()


def test_the_release_info_names_the_release_the_spec_asks_for_and_follows_it() -> None:
    metrics = OperatorMetrics()
    info = (
        'modelops_operator_release_info{{model="wine",name="wine",namespace="models",'
        'version="{}"}} 1.0'
    )
    status = ModelDeploymentStatus(phase=Phase.READY, stable=ref("1"))
    metrics.set_progress("models", "wine", rollout_figures(spec_for("2"), status, at(9)))
    assert info.format("2") in generate_latest(metrics.registry).decode()

    metrics.set_progress("models", "wine", rollout_figures(spec_for("3"), status, at(19)))
    text = generate_latest(metrics.registry).decode()
    assert info.format("3") in text
    assert 'version="2"' not in text  # the release it no longer asks for is gone

    metrics.set_progress("models", "wine", rollout_figures(None, status, at(29)))  # unreadable
    assert "modelops_operator_release_info{" not in generate_latest(metrics.registry).decode()
