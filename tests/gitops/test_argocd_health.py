"""The Argo CD health check of ModelDeployment, on fixtures of every phase (real Lua, lupa)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from modelops_operator.models import parse_status
from tests.support.argocd import HEALTH, health

ARGOCD_CM = HEALTH.parent / "argocd-cm.yaml"


def md(generation: int, status: dict[str, Any] | None, **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "wine", "namespace": "models", "generation": generation},
        "spec": {"model": {"name": "wine", "version": "2"}, **spec},
    }
    if status is not None:
        obj["status"] = status
    return obj


def cond(kind: str, status: str, reason: str, message: str = "") -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": "2026-01-01T00:00:00Z"}  # fmt: skip


HELD_CANARY = {
    "model": {"name": "wine", "version": "2", "image": "model-service:0.1.0"},
    "step": 0,
    "startedAt": "2026-01-01T00:00:00Z",
    "stepStartedAt": "2026-01-01T00:00:00Z",
    "held": {
        "at": "2026-01-01T00:05:00Z",
        "reason": "ErrorRateTooHigh",
        "message": "errorRate 0.5",
    },
}


def status(phase: str | None, *conditions: dict[str, str], generation: int = 3, **extra: Any):
    body: dict[str, Any] = {"observedGeneration": generation, "conditions": list(conditions)}
    if phase:
        body["phase"] = phase
    return body | extra


CASES = {
    "not observed yet": (md(1, None), "Progressing", "Waiting for the operator to observe"),
    "an older generation observed": (
        md(4, status("Ready", cond("Ready", "True", "Available", "2/2 stable replicas ready"))),
        "Progressing",
        "Waiting for the operator to observe generation 4",
    ),
    "Pending": (md(3, status("Pending")), "Progressing", "Phase Pending"),
    "Progressing (canary)": (
        md(
            3,
            status(
                "Progressing",
                cond("Ready", "False", "Analyzing", "rolling out version 2"),
                cond("Progressing", "True", "Analyzing", "step 1/3 at 10%"),
            ),
        ),
        "Progressing",
        "Analyzing: step 1/3 at 10%",
    ),
    "Ready": (
        md(3, status("Ready", cond("Ready", "True", "Available", "2/2 stable replicas ready"))),
        "Healthy",
        "Available: 2/2 stable replicas ready",
    ),
    "RolledBack": (
        md(
            3,
            status(
                "RolledBack",
                cond("Ready", "False", "RolledBack", "version 2 was rolled back; version 1 serves"),
            ),
        ),
        "Degraded",
        "RolledBack: version 2 was rolled back; version 1 serves",
    ),
    "Degraded": (
        md(
            3,
            status(
                "Degraded",
                cond("Ready", "True", "Available"),
                cond("Degraded", "True", "RenderFailed", "helm template failed"),
            ),
        ),
        "Degraded",
        "RenderFailed: helm template failed",
    ),
    "paused by the spec": (
        md(
            3,
            status("Progressing", cond("Progressing", "True", "RolloutPaused", "held")),
            paused=True,
        ),
        "Suspended",
        "RolloutPaused: held",
    ),
    # the operator's shapes a review found misread (each from its advance + status_after)
    "a new release held after a rollback": (
        md(
            3,
            status(
                "RolledBack",
                cond("Ready", "False", "RolledBack", "version 2 was rolled back; version 1 serves"),
                cond("Progressing", "True", "RolloutPaused", "rollout to 3 held: spec.paused"),
            ),
            paused=True,
        ),
        "Suspended",
        "RolloutPaused: rollout to 3 held: spec.paused",
    ),
    "a held failure, paused": (
        md(
            3,
            status(
                "Progressing",
                cond("Progressing", "True", "RolloutPaused", "canary held: spec.paused"),
                canary=HELD_CANARY,
            ),
            paused=True,
        ),
        "Degraded",
        "canary held after a failed analysis: ErrorRateTooHigh: errorRate 0.5",
    ),
    "a paused spec the operator does not hold (a rolling update under way)": (
        md(
            3,
            status("Progressing", cond("Progressing", "True", "Progressing", "0/2 ready")),
            paused=True,
        ),
        "Progressing",
        "Progressing: 0/2 ready",
    ),
    "an apply refused after a rollback": (
        md(
            3,
            status(
                "RolledBack",
                cond("Ready", "False", "RolledBack", "version 2 was rolled back; version 1 serves"),
                cond("Degraded", "True", "ApplyFailed", "403 Forbidden: deployments"),
            ),
        ),
        "Degraded",
        "ApplyFailed: 403 Forbidden: deployments",
    ),
    "paused by kubectl modelops pause": (
        md(
            3,
            status(
                "Progressing",
                cond("Progressing", "True", "RolloutPaused", "held"),
                pause={"by": "alice", "at": "2026-01-01T00:00:00Z"},
            ),
        ),
        "Suspended",
        "RolloutPaused: held",
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_health_of_every_phase(case: str) -> None:
    obj, want_status, want_message = CASES[case]
    got_status, got_message = health(obj)

    assert got_status == want_status
    assert got_message.startswith(want_message)


def test_the_fixtures_cover_every_phase_and_are_statuses_the_operator_reads() -> None:
    phases = {obj.get("status", {}).get("phase") for obj, _, _ in CASES.values()}
    assert {"Pending", "Progressing", "Ready", "RolledBack", "Degraded"} <= phases
    for obj, _, _ in CASES.values():
        parse_status(obj.get("status"))


def test_the_argocd_cm_snippet_carries_the_script() -> None:
    cm = yaml.safe_load(ARGOCD_CM.read_text())
    assert cm["metadata"]["name"] == "argocd-cm"
    script = cm["data"]["resource.customizations.health.modelops.io_ModelDeployment"]
    assert script.strip() == HEALTH.read_text().strip()
