"""Fixtures of the hardening tests: the real services the fuzz and regression tests hit, and
the operator chart installed namespace-scoped (RBAC and operator-recovery tests)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from devstack.cluster import Cluster
from devstack.operator_chart import OperatorRelease
from devstack.service_process import ServiceProcess, start_service
from modelops_service.card import read_card
from modelops_service.train import train_all
from tests.support.hardening_targets import TARGETS


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


@pytest.fixture
def namespaced(cluster: Cluster, namespace: str) -> Iterator[OperatorRelease]:
    """charts/model-operator installed in ``namespace``, watching one new namespace, its
    monitoring Roles in another; all of it removed afterwards."""
    suffix = uuid.uuid4().hex[:6]
    watched = cluster.create_namespace(f"scoped-watched-{suffix}")
    monitoring = cluster.create_namespace(f"scoped-monitoring-{suffix}")
    release = OperatorRelease.install(cluster, namespace, [watched], [monitoring])
    try:
        yield release
    finally:
        release.uninstall(cluster)
        for ns in (watched, monitoring):
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
