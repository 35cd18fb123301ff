"""pytest plugin of the test rig (registered in tests/conftest.py).

Fixtures:
  cluster    session-scoped `Cluster`: a real control plane with KWOK nodes and
             the monitoring.coreos.com CRDs, started on first use and stopped at
             the end of the session. With MODELOPS_KUBECONFIG set, the rig of
             `make cluster-up` is reused instead (and left running).
  namespace  a fresh namespace per test, ready for pods; deleted afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rig.control_plane import RUN_ROOT, Cluster, ControlPlane, pid_alive


def _clean_stale_run_dirs() -> None:
    """Drop the run dirs of pytest sessions that died (their processes died with them)."""
    for d in RUN_ROOT.glob("pytest-*"):
        pid = d.name.removeprefix("pytest-")
        if pid.isdigit() and not pid_alive(int(pid)):
            recorded = ControlPlane.recorded_pids(d)
            if not any(pid_alive(p, st) for _, p, st in recorded):
                shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """A running control plane; see tests/rig/control_plane.py for the handle."""
    reuse = os.environ.get("MODELOPS_KUBECONFIG")
    if reuse:
        handle = Cluster.from_kubeconfig(Path(reuse))
        handle.wait_ready()
        handle.install_monitoring_crds()
        yield handle
        return

    _clean_stale_run_dirs()
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
