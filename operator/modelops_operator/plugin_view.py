"""What `kubectl modelops` prints and how it exits (pure: a ModelDeployment dict in, text out).

The verdict is the one `kubectl wait --for=condition=Ready` would reach, made decisive:
Ready on the version the spec asks for at the current generation (exit 0), the release it
asks for rolled back (exit 1), or not decided yet.
"""

from __future__ import annotations

import math
from enum import IntEnum
from typing import Any

from pydantic import ValidationError

from modelops_operator import analysis as an
from modelops_operator.constants import COND_READY
from modelops_operator.models import (
    ModelDeploymentStatus,
    ModelRef,
    Phase,
    Strategy,
    parse_status,
)
from modelops_operator.progress import FIGURE_THRESHOLDS

# Thresholds that are floors (at least), the others are ceilings (at most).
FLOORS = {"minRequests"}


class Verdict(IntEnum):
    """The exit code of `status`."""

    READY = 0
    ROLLED_BACK = 1
    UNDECIDED = 2  # in progress, degraded, or not yet observed (status --watch: timed out)


def _status(obj: dict[str, Any]) -> ModelDeploymentStatus:
    return parse_status(obj.get("status"))


def asked_version(obj: dict[str, Any]) -> str:
    return str(((obj.get("spec") or {}).get("model") or {}).get("version", "?"))


def asked_release(obj: dict[str, Any]) -> ModelRef | None:
    """spec.model as the operator reads it, or None when it is no release."""
    try:
        return ModelRef.model_validate((obj.get("spec") or {}).get("model") or {})
    except ValidationError:
        return None


def verdict(obj: dict[str, Any]) -> Verdict:
    status = _status(obj)
    generation = obj["metadata"].get("generation")
    if status.observed_generation != generation:
        return Verdict.UNDECIDED
    asked = asked_version(obj)
    # the whole release, as the operator compares it: version 2 rolled back and asked
    # again with a new image is a new release, which the operator may hold (pause)
    rolled_back = status.rolled_back
    if (
        status.phase == Phase.ROLLED_BACK
        and rolled_back is not None
        and rolled_back == asked_release(obj)
    ):
        return Verdict.ROLLED_BACK
    ready = next((c for c in status.conditions if c.type == COND_READY), None)
    if (
        status.phase == Phase.READY
        and status.stable_version == asked
        and ready is not None
        and ready.status == "True"
        and ready.observed_generation in (None, generation)
    ):
        return Verdict.READY
    return Verdict.UNDECIDED


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.4g}"


def _judged(
    figure: str,
    threshold: str,
    figures: dict[str, float | None],
    thresholds: dict[str, float | None],
) -> str:
    """What the analysis' rule makes of one figure: ok, over, no data, or what its second
    gate (analysis.second_gate) makes of a figure over its threshold; "" without a gate."""
    limit, value = thresholds.get(threshold), figures.get(figure)
    if limit is None:
        return ""
    if value is None or not math.isfinite(value):
        return "no data"
    if (value >= limit) if threshold in FLOORS else (value <= limit):
        return "ok"
    second = an.second_gate(figure, figures, thresholds)
    if second is None:
        return "over"
    result, why = second
    return f"{'ok' if result == an.Verdict.PASS else 'inconclusive'}: {why}"


def status_text(obj: dict[str, Any]) -> str:
    meta, spec = obj["metadata"], obj.get("spec") or {}
    status = _status(obj)
    rollout = spec.get("rollout") or {}
    steps = rollout.get("steps") or []
    lines = [
        f"{meta['namespace']}/{meta['name']}: version {asked_version(obj)} asked "
        f"(generation {meta.get('generation')}, observed {status.observed_generation})",
        f"phase {status.phase or '-'}, stable {status.stable_version or '-'}, ready "
        f"{status.ready or '-'}",
    ]
    canary = status.canary
    if canary is not None:
        if canary.promoting:
            where = "promoting"
        elif rollout.get("strategy") == Strategy.AB_TEST:  # no steps: held until the winner
            where = f"A/B test, promoted when abTest.winner is {canary.model.version}"
        else:
            where = f"step {canary.step + 1}/{len(steps)}"
        lines.append(
            f"canary {canary.model.version}: {where}, weight {status.canary_weight}%, "
            f"share {status.effective_canary_weight:.1f}%"
        )
    if status.pause is not None:
        lines.append(f"paused by {status.pause.by} at {status.pause.at} (resume to go on)")
    last = status.last_analysis
    if last is not None:
        lines.append(f"analysis {last.at}: {last.result} {last.reason}: {last.message}")
        figures = last.figures.model_dump(by_alias=True)
        lines.append(f"  {'figure':<20} {'value':>10}   {'threshold':<10}  judged")
        for figure, threshold in FIGURE_THRESHOLDS.items():
            limit, value = last.thresholds.get(threshold), figures.get(figure)
            bound = (
                "-" if limit is None else (">= " if threshold in FLOORS else "<= ") + _fmt(limit)
            )
            judged = _judged(figure, threshold, figures, last.thresholds)
            lines.append(f"  {figure:<20} {_fmt(value):>10}   {bound:<10}  {judged}".rstrip())
    for c in status.conditions:
        lines.append(f"{c.type}={c.status} {c.reason}: {c.message}".rstrip(": "))
    if status.last_request is not None:
        r = status.last_request
        said = "accepted" if r.accepted else "not accepted"
        lines.append(f"last request: {r.verb} by {r.by} at {r.at}: {said}: {r.message}")
    return "\n".join(lines)


def history_text(obj: dict[str, Any]) -> str:
    rows = [("AT", "VERSION", "RESULT", "REASON", "BY", "MESSAGE")]
    rows += [(h.at, h.version, h.result, h.reason, h.by or "-", h.message)
             for h in _status(obj).history]  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r[:5], widths, strict=True)) + "  " + r[5]
        for r in rows
    ).rstrip()
