"""Repository-wide pytest configuration; each tier keeps its own fixtures.

The dev stack's control plane as fixtures (devstack.control_plane):
  cluster    session-scoped `Cluster`: a real control plane with KWOK nodes and
             the monitoring.coreos.com CRDs, started on first use and stopped at
             the end of the session. With MODELOPS_KUBECONFIG set, the rig of
             `make cluster-up` is reused instead (and left running).
  namespace  a fresh namespace per test, ready for pods; deleted afterwards.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.cluster import Cluster
from devstack.control_plane import ControlPlane
from devstack.paths import RUN_ROOT, TOOLS_BIN, VENV_BIN


def pytest_configure(config: pytest.Config) -> None:
    # The pinned tools of `make tools` win over whatever else is on PATH, so a
    # bare `pytest` runs against the same helm, kubectl and promtool as `make test`.
    tool_dirs = [TOOLS_BIN, VENV_BIN]
    os.environ["PATH"] = os.pathsep.join([*map(str, tool_dirs), os.environ.get("PATH", "")])


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """A running control plane; see devstack/cluster.py for the handle."""
    reuse = os.environ.get("MODELOPS_KUBECONFIG")
    if reuse:
        handle = Cluster.from_kubeconfig(Path(reuse))
        handle.wait_ready()
        handle.install_monitoring_crds()
        yield handle
        return

    ControlPlane.clean_stale(RUN_ROOT)
    plane = ControlPlane(RUN_ROOT / f"pytest-{os.getpid()}")
    try:
        handle = plane.start()
    except BaseException:
        # Keep the logs of a failed start for the report; processes still end.
        plane.stop(remove=False)
        raise
    try:
        yield handle
    finally:
        plane.stop(remove=os.environ.get("MODELOPS_RIG_KEEP") != "1")


def _namespace_name(test_name: str) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:50].strip("-")
    return f"{base or 'test'}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new namespace named after the test, with its default ServiceAccount present."""
    name = cluster.create_namespace(_namespace_name(request.node.name))
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
