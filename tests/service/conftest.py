"""Fixtures of the service tests: fresh demo models, and real service processes.

The models are trained into a temporary directory once per session (well
under a second of fitting), so these tests never depend on a stale models/.
Services are started together (startup is mostly imports; in parallel the two
cores overlap it) and shared by the tests of the session.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.processes import http_status
from devstack.service_process import ServiceProcess, ServiceStartError, start_service
from modelops_service.card import read_card
from modelops_service.train import train_all

# wine/1, strict: rejects out-of-range values (tolerance: one training range's width on
# either side, so the drift test's shifted rows still pass), small limits, a 500-row
# drift window with scores from the first row.
WINE_ENV = {
    "MODELOPS_RANGE_POLICY": "reject",
    "MODELOPS_RANGE_TOLERANCE": "1.0",
    "MODELOPS_MAX_INSTANCES": "200",
    "MODELOPS_MAX_BODY_BYTES": str(64 * 1024),
    "MODELOPS_DRIFT_WINDOW": "500",
    "MODELOPS_DRIFT_MIN_ROWS": "1",
    "MODELOPS_DRIFT_REFRESH_SECONDS": "0",
}
# diabetes/1: flags out-of-range values, and is started with its declared digest.
DIABETES_ENV = {
    "MODELOPS_RANGE_POLICY": "flag",
    "MODELOPS_DRIFT_MIN_ROWS": "1",
    "MODELOPS_DRIFT_REFRESH_SECONDS": "0",
}
# wine/1 held not-ready longer than any session lasts (make test's workers run a session's
# modules far apart), so the not-ready phase is certain.
NOT_READY_ENV = {"MODELOPS_READINESS_DELAY_SECONDS": "86400"}


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    train_all(root)
    return root


@pytest.fixture(scope="session")
def services(
    model_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServiceProcess]]:
    logs = tmp_path_factory.mktemp("service-logs")
    declared = {"MODELOPS_MODEL_SHA256": read_card(model_root / "diabetes" / "1").sha256.upper()}
    specs = {
        "wine": (model_root / "wine" / "1", WINE_ENV),
        "diabetes": (model_root / "diabetes" / "1", DIABETES_ENV | declared),
        "not_ready": (model_root / "wine" / "1", NOT_READY_ENV),
    }
    # Started together: start-up is mostly imports, which the cores then overlap.
    started = {
        key: start_service(model_dir, env=env, wait=False, log_dir=logs)
        for key, (model_dir, env) in specs.items()
    }
    try:
        for key, svc in started.items():
            if key == "not_ready":
                wait_until_serving(svc)
            else:
                svc.wait_ready()
        yield started
    finally:
        for svc in started.values():
            svc.stop()


def wait_until_serving(svc: ServiceProcess, timeout: float = 120.0) -> None:
    """Until /healthz answers (the process serves HTTP, ready or not)."""
    deadline = time.monotonic() + timeout
    while http_status(f"{svc.url}/healthz") != 200:
        if svc.returncode is not None or time.monotonic() > deadline:
            raise ServiceStartError(f"service never answered /healthz\n{svc.logs()}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def wine(services: dict[str, ServiceProcess]) -> ServiceProcess:
    return services["wine"]


@pytest.fixture(scope="session")
def diabetes(services: dict[str, ServiceProcess]) -> ServiceProcess:
    return services["diabetes"]


@pytest.fixture(scope="session")
def not_ready(services: dict[str, ServiceProcess]) -> ServiceProcess:
    return services["not_ready"]


@pytest.fixture
def wine_client(wine: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=wine.url, timeout=30) as client:
        yield client
