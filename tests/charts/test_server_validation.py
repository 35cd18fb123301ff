"""Every object the charts render is valid for the pinned Kubernetes: the rig's real API
server validates it (`kubectl apply --dry-run=server --validate=strict`) against its
built-in schemas and the installed prometheus-operator and ModelDeployment CRDs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.cluster import Cluster
from tests.support.charts import MONITORING_API, OPERATOR, SERVICE, ci_values, template

pytestmark = pytest.mark.cluster

CASES = [(SERVICE, None), (OPERATOR, None)] + [
    (chart, f) for chart in (SERVICE, OPERATOR) for f in ci_values(chart)
]


@pytest.fixture(scope="module")
def crds_installed(cluster: Cluster) -> Iterator[Cluster]:
    """The ModelDeployment CRD from the operator chart's crds/ (the rig brings monitoring's)
    and, for this module only, KEDA's (the ScaledObject of ci/keda-values.yaml)."""
    for crd in sorted((OPERATOR / "crds").glob("*.yaml")):
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", crd)
        name = crd.name.removesuffix(".yaml")
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}")
    keda = cluster.install_keda_crds()
    yield cluster
    cluster.kubectl("delete", *keda, "--timeout=60s", check=False)


@pytest.mark.parametrize(
    ("chart", "values_file"),
    CASES,
    ids=[f"{c.name}-{f.stem if f else 'defaults'}" for c, f in CASES],
)
def test_rendered_objects_pass_strict_server_validation(
    crds_installed: Cluster, namespace: str, chart: Path, values_file: Path | None
) -> None:
    values = {}
    if chart == OPERATOR and values_file and "namespaced" in values_file.name:
        values = {"watchNamespaces": [namespace], "rbac": {"monitoringNamespaces": [namespace]}}
    manifest = template(
        chart,
        values,
        release="valid",
        namespace=namespace,
        api_versions=[MONITORING_API],
        values_files=[values_file] if values_file else [],
    )

    proc = crds_installed.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-n", namespace, "-f", "-",
        input=manifest, check=False,
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr
    kinds = {line.split("/")[0] for line in proc.stdout.splitlines() if "(server dry run)" in line}
    assert "deployment.apps" in kinds


def test_strict_validation_catches_what_the_schema_lets_through(
    crds_installed: Cluster, namespace: str
) -> None:
    """The check has teeth: a field the pass-through values carry is refused by the server."""
    manifest = template(
        SERVICE,
        {"podSecurityContext": {"runAsNonRoot": True, "runAsNonRot": True}},
        release="invalid",
        namespace=namespace,
    )

    proc = crds_installed.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-n", namespace, "-f", "-",
        input=manifest, check=False,
    )  # fmt: skip

    assert proc.returncode != 0
    assert "runAsNonRot" in proc.stderr
