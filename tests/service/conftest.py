"""Fixtures of the service tests: fresh demo models, and real service processes.

The models are trained into a temporary directory once per session (well
under a second of fitting), so these tests never depend on a stale models/.
Services are started together (startup is mostly imports; in parallel the two
cores overlap it) and shared by the tests of the session.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modelops_service.train import train_all
from tests.support.service_process import ServiceProcess, start_service

# The strict service: reject out-of-range values, small limits, drift from the first row.
STRICT_ENV = {
    "MODELOPS_RANGE_POLICY": "reject",
    "MODELOPS_MAX_INSTANCES": "50",
    "MODELOPS_MAX_BODY_BYTES": str(64 * 1024),
    "MODELOPS_DRIFT_MIN_ROWS": "1",
    "MODELOPS_DRIFT_REFRESH_SECONDS": "0",
}
# The drift service: flag (do not reject) out-of-range values, a 500-row window.
DRIFT_ENV = {
    "MODELOPS_RANGE_POLICY": "flag",
    "MODELOPS_DRIFT_WINDOW": "500",
    "MODELOPS_DRIFT_MIN_ROWS": "200",
    "MODELOPS_DRIFT_REFRESH_SECONDS": "0",
    "MODELOPS_MAX_INSTANCES": "500",
}


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
    specs = {
        "wine": (model_root / "wine" / "1", STRICT_ENV),
        "diabetes": (model_root / "diabetes" / "1", STRICT_ENV),
        "drift": (model_root / "wine" / "1", DRIFT_ENV),
    }
    started = {
        key: start_service(model_dir, env=env, wait=False, log_dir=logs)
        for key, (model_dir, env) in specs.items()
    }
    try:
        for svc in started.values():
            svc.wait_ready()
        yield started
    finally:
        for svc in started.values():
            svc.stop()


@pytest.fixture(scope="session")
def wine(services: dict[str, ServiceProcess]) -> ServiceProcess:
    return services["wine"]


@pytest.fixture(scope="session")
def diabetes(services: dict[str, ServiceProcess]) -> ServiceProcess:
    return services["diabetes"]


@pytest.fixture(scope="session")
def drift_service(services: dict[str, ServiceProcess]) -> ServiceProcess:
    return services["drift"]


@pytest.fixture
def wine_client(wine: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=wine.url, timeout=30) as client:
        yield client
