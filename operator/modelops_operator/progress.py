"""How far a rollout has got, as figures for the operator's metrics (pure).

The operator's alerts (alerts/operator.rules.tmpl) and the rollout dashboard's operator
row read these gauges, so the figures are computed here once from the spec, the status
and the clock: how long the current step has lasted against how long it may last, how
long the canary has been inconclusive, the rollback to report, the share of each track
and the last analysis' figures beside their thresholds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from modelops_operator.constants import TRACK_CANARY, TRACK_STABLE
from modelops_operator.models import ModelDeploymentSpec, ModelDeploymentStatus, Phase, parse_time
from modelops_operator.reasons import Result

# Each judged figure of status.lastAnalysis and the threshold it is held against.
FIGURE_THRESHOLDS = {
    "requests": "minRequests",
    "errorRate": "maxErrorRate",
    "latencyP95Seconds": "maxLatencyP95Seconds",
    "driftScore": "maxDriftScore",
    "errorRateDelta": "maxErrorRateDelta",
    "latencyP95Ratio": "maxLatencyP95Ratio",
    "predictionShift": "maxPredictionShift",
}


@dataclass(frozen=True)
class Rollback:
    """The release the status says was rolled back, and why (the alert's labels)."""

    model: str
    version: str
    reason: str
    at: float  # unix seconds


@dataclass(frozen=True)
class RolloutFigures:
    step: int = 0  # the canary's step, 1-based; 0 without a canary
    step_seconds: float = 0.0  # how long the current step (or rolling update) has lasted
    step_deadline_seconds: float = 0.0  # how long it may last; 0 without a rollout, +Inf paused
    inconclusive_seconds: float = 0.0
    rollback: Rollback | None = None
    release: tuple[str, str] | None = None  # (model, version) spec.model asks for; None: unread
    share: dict[str, float] = field(default_factory=dict)  # track -> percent of the replicas
    figures: dict[str, float] = field(default_factory=dict)  # figure -> value (finite only)
    thresholds: dict[str, float] = field(default_factory=dict)  # figure -> its threshold


def _since(text: str | None, now: datetime) -> float:
    return max(0.0, (now - parse_time(text)).total_seconds()) if text else 0.0


def rollout_figures(
    spec: ModelDeploymentSpec | None, status: ModelDeploymentStatus, now: datetime
) -> RolloutFigures:
    """The figures of one ModelDeployment (spec None: unreadable, only the status counts)."""
    canary = status.canary
    rollout = spec.rollout if spec is not None else None
    paused = (spec is not None and spec.paused) or status.pause is not None
    step, step_seconds, deadline, inconclusive = 0, 0.0, 0.0, 0.0
    if canary is not None:
        step = 0 if canary.promoting else canary.step + 1
        step_seconds = _since(canary.step_started_at, now)
        inconclusive = _since(canary.inconclusive_since, now)
        if paused:
            deadline = math.inf  # a held rollout is never stuck
        elif rollout is not None:
            # a step is judged after `interval`; its pods had `progressDeadline` to come up
            wait = 0.0 if canary.promoting else rollout.interval_seconds
            deadline = wait + rollout.progress_deadline_seconds
    elif status.rollout_started_at:
        step_seconds = _since(status.rollout_started_at, now)
        if paused:
            deadline = math.inf
        elif rollout is not None:
            deadline = rollout.progress_deadline_seconds
    share = {TRACK_STABLE: 100.0 - status.effective_canary_weight}
    if canary is not None and not canary.promoting:
        share[TRACK_CANARY] = status.effective_canary_weight
    figures: dict[str, float] = {}
    thresholds: dict[str, float] = {}
    last = status.last_analysis
    if last is not None:  # kept after the rollout ends: why it was promoted or rolled back
        values = last.figures.model_dump(by_alias=True)
        for figure, threshold in FIGURE_THRESHOLDS.items():
            value, limit = values.get(figure), last.thresholds.get(threshold)
            if value is not None and math.isfinite(value):
                figures[figure] = value
            if limit is not None:
                thresholds[figure] = limit
    return RolloutFigures(
        step=step,
        step_seconds=step_seconds,
        step_deadline_seconds=deadline,
        inconclusive_seconds=inconclusive,
        rollback=_rollback(status),
        release=(spec.model.name, spec.model.version) if spec is not None else None,
        share=share,
        figures=figures,
        thresholds=thresholds,
    )


def _rollback(status: ModelDeploymentStatus) -> Rollback | None:
    """The rollback while the status stays rolled back (the alert resolves with a new release)."""
    failed = status.rolled_back
    if status.phase != Phase.ROLLED_BACK or failed is None:
        return None
    for entry in reversed(status.history):
        if entry.result == Result.ROLLED_BACK and entry.version == failed.version:
            return Rollback(
                failed.name, failed.version, entry.reason, parse_time(entry.at).timestamp()
            )
    return None
