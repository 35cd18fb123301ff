"""Builders shared by the operator's pure tests: times from one fixed start, model refs and
parsed ModelDeployment specs."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from modelops_operator.images import split_image
from modelops_operator.models import ModelRef, isoformat, parse_spec
from modelops_operator.workloads import WorkloadState

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def stamp(seconds: float) -> str:
    return isoformat(at(seconds))


def ref(version: str) -> ModelRef:
    return ModelRef(
        name="wine", version=version, image=f"model-service:{version}", artifact=f"/m/{version}"
    )


def spec_for(version: str = "1", **overrides):
    body = {
        "model": ref(version).model_dump(),
        "replicas": 4,
        "rollout": {
            "strategy": "Canary",
            "steps": [25, 50, 100],
            "interval": "30s",
            "analysis": {"minRequests": 10, "deadline": "2m"},
        },
    }
    for key, value in overrides.items():
        if key in ("strategy", "steps", "interval", "autoRollback", "rollbackWindow"):
            body["rollout"][key] = value
        else:
            body[key] = value
    return parse_spec(body)


def running(release: ModelRef | None, workload: WorkloadState) -> WorkloadState:
    """``workload`` with a pod template that runs ``release``, as the chart renders it."""
    if release is None:
        return workload
    image = split_image(release.image).rendered
    return dataclasses.replace(workload, version=release.version, image=image)
