"""What `kubectl modelops` prints and how it exits (pure: a ModelDeployment dict in, text out).

The verdict is the one `kubectl wait --for=condition=Ready` would reach, made decisive:
Ready on the version the spec asks for at the current generation (exit 0), that version
rolled back (exit 1), or not decided yet.
"""

from __future__ import annotations

import math
from enum import IntEnum
from typing import Any

from modelops_operator.constants import COND_READY
from modelops_operator.models import ModelDeploymentStatus, Phase, parse_status
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


def verdict(obj: dict[str, Any]) -> Verdict:
    status = _status(obj)
    generation = obj["metadata"].get("generation")
    if status.observed_generation != generation:
        return Verdict.UNDECIDED
    asked = asked_version(obj)
    rolled_back = status.rolled_back
    if (
        status.phase == Phase.ROLLED_BACK
        and rolled_back is not None
        and rolled_back.version == asked
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


def status_text(obj: dict[str, Any]) -> str:
    meta, spec = obj["metadata"], obj.get("spec") or {}
    status = _status(obj)
    steps = ((spec.get("rollout") or {}).get("steps")) or []
    lines = [
        f"{meta['namespace']}/{meta['name']}: version {asked_version(obj)} asked "
        f"(generation {meta.get('generation')}, observed {status.observed_generation})",
        f"phase {status.phase or '-'}, stable {status.stable_version or '-'}, ready "
        f"{status.ready or '-'}",
    ]
    canary = status.canary
    if canary is not None:
        where = "promoting" if canary.promoting else f"step {canary.step + 1}/{len(steps)}"
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
        lines.append(f"  {'figure':<20} {'value':>10}   threshold")
        for figure, threshold in FIGURE_THRESHOLDS.items():
            limit = last.thresholds.get(threshold)
            bound = (
                "-" if limit is None else (">= " if threshold in FLOORS else "<= ") + _fmt(limit)
            )
            lines.append(f"  {figure:<20} {_fmt(figures.get(figure)):>10}   {bound}")
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
