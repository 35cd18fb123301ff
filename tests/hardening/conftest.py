"""Fixtures of the hardening tests: the real services the fuzz and regression tests hit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelops_service.card import read_card
from modelops_service.train import train_all
from tests.support.service_process import ServiceProcess, start_service

# Started the way the chart starts them (declared sha256), one per task and range policy:
# wine/1 (classifier) with the default settings (out-of-range values flagged), diabetes/1
# (regressor) rejecting out-of-range values.
TARGETS = {
    "wine-flag": ("wine", "1", {}),
    "diabetes-reject": ("diabetes", "1", {"MODELOPS_RANGE_POLICY": "reject"}),
}


@pytest.fixture(scope="session")
def hardening_services(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, ServiceProcess]]:
    """The services of TARGETS, on fresh demo models, shared by the session."""
    root = tmp_path_factory.mktemp("hardening-models")
    train_all(root)
    logs = tmp_path_factory.mktemp("hardening-logs")
    started: dict[str, ServiceProcess] = {}
    try:
        for key, (name, version, env) in TARGETS.items():
            model_dir = root / name / version
            declared = {"MODELOPS_MODEL_SHA256": read_card(model_dir).sha256}
            started[key] = start_service(model_dir, env=env | declared, wait=False, log_dir=logs)
        for svc in started.values():  # started together: the two cores overlap the imports
            svc.wait_ready()
        yield started
    finally:
        for svc in started.values():
            svc.stop()


@pytest.fixture(scope="session")
def wine(hardening_services: dict[str, ServiceProcess]) -> ServiceProcess:
    return hardening_services["wine-flag"]


@pytest.fixture(scope="session")
def diabetes(hardening_services: dict[str, ServiceProcess]) -> ServiceProcess:
    return hardening_services["diabetes-reject"]
