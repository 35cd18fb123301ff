"""Repository-wide pytest configuration: the test tiers, and the dev stack's control plane.

Tiers by speed (make test-unit, test-process, test-render, test-cluster; make test runs all,
on two pytest-xdist workers: a module is a unit of work, and so are all the tests of the Docker
engine and the real node together):
  unit     no marker: in-process only, no subprocess at all (a guard fails any test of this
           tier that starts one), the whole tier in well under a minute
  process  starts local processes: the real service, Prometheus, the traffic generator, make
  render   renders or lints with real helm, promtool, hadolint or Go tools (no cluster)
  cluster  needs the control plane of devstack/
A test's tier is the heaviest of its own marker, the fixtures it uses (FIXTURE_TIERS) and what
its module imports (PROCESS_MODULES), so most tests need no marker: asking for `cluster` or
`namespace` makes a cluster test, importing `subprocess` or a devstack runner a process test.

The control plane as fixtures (devstack.control_plane):
  cluster    session-scoped `Cluster`: a real control plane with KWOK nodes and
             the monitoring.coreos.com CRDs, started on first use and stopped at
             the end of the session. With MODELOPS_KUBECONFIG set, the rig of
             `make cluster-up` is reused instead (and left running).
  namespace  a fresh namespace per test, ready for pods; deleted afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import settings

from devstack.cluster import Cluster
from devstack.control_plane import ControlPlane
from devstack.paths import RUN_ROOT, TOOLS_BIN, VENV_BIN, DevstackError, find_tool

# Hypothesis fails an example slower than 200 ms by default: a timed assertion, which on
# these shared machines failed a test under load (a CI rehearsal beside it). Never here.
settings.register_profile("modelops", deadline=None)
settings.load_profile("modelops")

TIERS = ("process", "render", "cluster")  # lightest first; no marker at all: unit
FIXTURE_TIERS = {
    "cluster": "cluster",  # and `namespace`, which asks for it
    "helm_bin": "render",
    "kindcheck": "render",
    "services": "process",
    "hardening_services": "process",
    "make_var": "process",
    "images": "process",
    "object_store": "process",
    "https_files": "process",
}
# the images are built and run by the local engine; the real node joins a control plane
MARKER_TIERS = {"images": "process", "node": "cluster"}
ENGINE = "engine"  # the unit of work of ENGINE_DIRS' tests (xdist_scope)
ENGINE_MARKERS = frozenset(MARKER_TIERS)
ENGINE_DIRS = ("tests/images/", "tests/node/")  # where ENGINE_MARKERS' tests live
# The modules that need a tool a cold `.ci/run` may still be building when the tests start
# (MODELOPS_TOOLS_DETACH=1), and those tools: last in their unit of work, so the builds have
# the most time, and waited for before a test's timeout starts (pytest_runtest_protocol).
LATE_MODULES = {
    "tests/cluster/test_autoscaling.py": ("keda", "keda-adapter"),
    "tests/node/test_gateway_dataplane.py": ("traefik",),
    "tests/node/test_tour.py": ("traefik",),
}
PROCESS_MODULES = frozenset(
    {
        "subprocess",
        "devstack.service_process",
        "devstack.prometheus",
        "devstack.canary",
        "devstack.object_store",
        "devstack.https_files",
        "tests.support.repo",  # run(): make and hack/kind.sh
        "tests.kind.stubs",
    }
)


def _imports_processes(module: ModuleType | None) -> bool:
    for value in vars(module or ModuleType("none")).values():
        name = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", "")
        if name in PROCESS_MODULES:
            return True
    return False


def tier(item: pytest.Item) -> str | None:
    """The heaviest tier of the item's markers, fixtures and module; None for a unit test."""
    found = {MARKER_TIERS.get(m.name, m.name) for m in item.iter_markers()} & set(TIERS)
    fixtures = getattr(item, "fixturenames", ())
    found |= {t for name, t in FIXTURE_TIERS.items() if name in fixtures}
    if _imports_processes(getattr(item, "module", None)):
        found.add("process")
    return max(found, key=TIERS.index, default=None)


def xdist_scope(nodeid: str) -> str:
    """A test's unit of work on `make test`'s workers: ENGINE for the tests under ENGINE_DIRS
    (one Docker engine and one real node per machine: one at a time), else its module (its
    module-scoped rigs start once)."""
    module = module_of(nodeid)
    return ENGINE if module.startswith(ENGINE_DIRS) else module


def module_of(nodeid: str) -> str:
    return nodeid.split("::")[0]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """--dist loadscope with xdist_scope's units (the controller sees node ids, not markers)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class EngineAwareScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_scope(nodeid)

    return EngineAwareScheduling(config, log)  # type: ignore[arg-type]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        heaviest = tier(item)
        if heaviest is not None:
            item.add_marker(heaviest)
        engine = any(item.get_closest_marker(name) for name in ENGINE_MARKERS)
        if engine and xdist_scope(item.nodeid) != ENGINE:
            raise pytest.UsageError(
                f"{item.nodeid} needs the Docker engine or the real node: it belongs under "
                f"{' or '.join(ENGINE_DIRS)}, whose tests the workers run one at a time"
            )
    # The engine's unit is the longest: first, so the other worker shares out the rest.
    items.sort(key=run_order)


def run_order(item: pytest.Item) -> tuple[bool, bool]:
    """The engine's unit first; in each unit of work, LATE_MODULES last."""
    return xdist_scope(item.nodeid) != ENGINE, module_of(item.nodeid) in LATE_MODULES


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Wait for the detached builds of the tools a LATE_MODULES test needs outside
    pytest-timeout's wrapper, whose timer covers the fixtures: on a cold run such a build may
    need longer than a test's timeout, and a build is not a hung test. A failed build is left
    to the test's own find_tool, which names its log."""
    for name in LATE_MODULES.get(module_of(item.nodeid), ()):
        with contextlib.suppress(DevstackError):
            find_tool(name)
    yield


@pytest.fixture(autouse=True)
def _unit_tests_start_no_process(request: pytest.FixtureRequest) -> Iterator[None]:
    """A unit test that starts a subprocess fails, naming the tier it belongs to."""
    if tier(request.node) is not None:
        yield
        return
    original = subprocess.Popen.__init__

    def refuse(self: subprocess.Popen, args: object, *rest: object, **kw: object) -> None:
        raise AssertionError(
            f"a unit test started {args!r}: mark it process, render or cluster "
            "(tests/conftest.py, FIXTURE_TIERS)"
        )

    subprocess.Popen.__init__ = refuse  # type: ignore[method-assign]
    try:
        yield
    finally:
        subprocess.Popen.__init__ = original  # type: ignore[method-assign]


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


@pytest.fixture(scope="session")
def rig_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway PKI (devstack.pki) for the rig's HTTPS servers outside a cluster."""
    from devstack.pki import make_pki

    pki = tmp_path_factory.mktemp("pki")
    make_pki(pki)
    return pki


@pytest.fixture(scope="session")
def object_store(tmp_path_factory: pytest.TempPathFactory, rig_pki: Path) -> Iterator[object]:
    """A real S3-compatible server (versitygw) over HTTPS, bucket ``models`` made."""
    from devstack.object_store import ObjectStore

    with ObjectStore(tmp_path_factory.mktemp("s3"), rig_pki) as store:
        store.make_bucket("models")
        yield store


@pytest.fixture(scope="session")
def https_files(tmp_path_factory: pytest.TempPathFactory, rig_pki: Path) -> Iterator[object]:
    """A real HTTPS server of a directory (``https_files.root``) with the rig's CA."""
    from devstack.https_files import HttpsFiles

    with HttpsFiles(tmp_path_factory.mktemp("www"), rig_pki) as files:
        yield files


def _namespace_name(test_name: str) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:50].strip("-")
    return f"{base or 'test'}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new namespace named after the test, with its default ServiceAccount present."""
    name = cluster.create_namespace(_namespace_name(request.node.name))
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
