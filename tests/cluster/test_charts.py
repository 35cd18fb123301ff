"""Both charts on the test rig (issue 4, "Show"): helm install --wait, Available
Deployments, monitoring objects with the right labels, upgrade rolls, rollback returns,
rollout restart rolls, uninstall leaves nothing of ours. Runs under every helm major the
charts support (helm 4; helm 3 when hack/versions.env pins HELM3_VERSION).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from devstack.cluster import Cluster
from tests.support.charts import OPERATOR, SERVICE, helm_binaries
from tests.support.repo import tool

pytestmark = pytest.mark.cluster

TIMEOUT = "--timeout=3m"
SHA_V1 = "1" * 64
SHA_V2 = "2" * 64


@pytest.fixture(params=helm_binaries())
def helm(request: pytest.FixtureRequest, cluster: Cluster, tmp_path: Path):
    """helm of one major against the rig, with its own HELM_*_HOME."""
    binary = tool(request.param)
    env = {
        **cluster.env,
        "HELM_CONFIG_HOME": str(tmp_path / "helm-config"),
        "HELM_CACHE_HOME": str(tmp_path / "helm-cache"),
        "HELM_DATA_HOME": str(tmp_path / "helm-data"),
    }

    def run(*args: Any, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [binary, *(str(a) for a in args)],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
        )
        if check:
            assert proc.returncode == 0, f"helm {' '.join(map(str, args))}:\n{proc.stderr}"
        return proc

    run.major = request.param  # type: ignore[attr-defined]
    return run


def release_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:5]}"


def model_values(version: str, sha: str) -> list[str]:
    return [
        "--set-string",
        f"model.name=wine,model.version={version},model.artifact=/models/wine/{version}",
        "--set-string",
        f"model.sha256={sha}",
    ]


def conditions(obj: dict) -> dict[str, str]:
    return {c["type"]: c["status"] for c in obj["status"].get("conditions", [])}


def replicasets(cluster: Cluster, namespace: str, release: str) -> dict[str, dict]:
    items = cluster.get(
        "replicasets", "-n", namespace, "-l", f"app.kubernetes.io/instance={release}"
    )["items"]
    return {rs["metadata"]["name"]: rs for rs in items}


def active_replicaset(cluster: Cluster, namespace: str, release: str, deploy: str) -> dict:
    active = [
        rs
        for rs in replicasets(cluster, namespace, release).values()
        if rs["metadata"]["ownerReferences"][0]["name"] == deploy and rs["spec"]["replicas"] > 0
    ]
    assert len(active) == 1, [rs["metadata"]["name"] for rs in active]
    return active[0]


def ours(cluster: Cluster, namespace: str, release: str) -> list[str]:
    """Every object of a release left in the namespace (and the Helm release records)."""
    kinds = (
        "deployments,replicasets,pods,services,serviceaccounts,configmaps,jobs,"
        "horizontalpodautoscalers,poddisruptionbudgets,networkpolicies,roles,rolebindings,"
        "servicemonitors.monitoring.coreos.com,prometheusrules.monitoring.coreos.com"
    )
    items = cluster.get(kinds, "-n", namespace, "-l", f"app.kubernetes.io/instance={release}")
    left = [f"{o['kind']}/{o['metadata']['name']}" for o in items["items"]]
    records = cluster.get("secrets", "-n", namespace, "-l", f"owner=helm,name={release}")
    return left + [f"Secret/{o['metadata']['name']}" for o in records["items"]]


def test_model_service_installs_available_with_its_monitoring(
    cluster: Cluster, namespace: str, helm
) -> None:
    release = release_name("wine")
    install = helm(
        "install", release, SERVICE, "-n", namespace, "--wait", TIMEOUT,
        "--set", "monitoring.serviceMonitor.labels.release=kps",
        *model_values("1", SHA_V1),
    )  # fmt: skip
    fullname = f"{release}-model-service"
    assert f"port-forward service/{fullname} 8080:8080" in install.stdout
    assert f"ServiceMonitor {fullname} scrapes" in install.stdout
    assert "WARNING" not in install.stdout

    deploy = cluster.get("deployment", fullname, "-n", namespace)
    assert conditions(deploy)["Available"] == "True"
    assert deploy["status"]["availableReplicas"] == 1
    sm = cluster.get("servicemonitor", fullname, "-n", namespace)
    assert sm["metadata"]["labels"]["release"] == "kps"
    assert sm["metadata"]["labels"]["modelops.io/model"] == "wine"
    svc = cluster.get("service", fullname, "-n", namespace)
    assert all(
        svc["metadata"]["labels"].get(k) == v
        for k, v in sm["spec"]["selector"]["matchLabels"].items()
    )
    rule = cluster.get("prometheusrule", fullname, "-n", namespace)
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"]["groups"], "the PrometheusRule carries the rule groups of alerts/"
    dashboards = cluster.get("configmaps", "-n", namespace, "-l", "grafana_dashboard=1")["items"]
    expected = sorted(p.name for p in (SERVICE / "files" / "dashboards").glob("*.json"))
    assert sorted(k for cm in dashboards for k in cm["data"]) == expected

    test = helm("test", release, "-n", namespace, TIMEOUT)
    assert "Succeeded" in test.stdout


def test_canary_runs_beside_stable_behind_one_service(
    cluster: Cluster, namespace: str, helm
) -> None:
    release = release_name("canary")
    helm(
        "install", release, SERVICE, "-n", namespace, "--wait", TIMEOUT,
        "--values", SERVICE / "ci" / "canary-values.yaml",
    )  # fmt: skip
    fullname = f"{release}-model-service"

    stable = cluster.get("deployment", fullname, "-n", namespace)
    canary = cluster.get("deployment", f"{fullname}-canary", "-n", namespace)
    assert conditions(stable)["Available"] == "True"
    assert conditions(canary)["Available"] == "True"
    selector = ",".join(
        f"{k}={v}"
        for k, v in cluster.get("service", fullname, "-n", namespace)["spec"]["selector"].items()
    )
    pods = cluster.get("pods", "-n", namespace, "-l", selector)["items"]
    tracks = sorted(p["metadata"]["labels"]["modelops.io/track"] for p in pods)
    assert tracks == ["canary", "stable", "stable", "stable"]
    versions = {p["metadata"]["labels"]["modelops.io/version"] for p in pods}
    assert versions == {"1", "2"}


def test_upgrade_rolls_rollback_returns_and_restart_rolls(
    cluster: Cluster, namespace: str, helm
) -> None:
    release = release_name("roll")
    fullname = f"{release}-model-service"
    base = ["-n", namespace, "--wait", TIMEOUT, "--set", "replicaCount=2"]
    helm("install", release, SERVICE, *base, *model_values("1", SHA_V1))
    v1 = active_replicaset(cluster, namespace, release, fullname)

    helm("upgrade", release, SERVICE, *base, *model_values("2", SHA_V2))
    cluster.kubectl("rollout", "status", f"deployment/{fullname}", "-n", namespace, TIMEOUT)
    v2 = active_replicaset(cluster, namespace, release, fullname)
    assert v2["metadata"]["name"] != v1["metadata"]["name"]
    assert v2["spec"]["template"]["metadata"]["labels"]["modelops.io/version"] == "2"
    env = {e["name"]: e["value"] for e in v2["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env == {
        "MODELOPS_PORT": "8080",
        "MODELOPS_MODEL_NAME": "wine",
        "MODELOPS_MODEL_VERSION": "2",
        "MODELOPS_MODEL_DIR": "/models/wine/2",
        "MODELOPS_MODEL_SHA256": SHA_V2,
    }
    assert v2["status"].get("availableReplicas") == 2

    helm("rollback", release, "1", "-n", namespace, "--wait", TIMEOUT)
    cluster.kubectl("rollout", "status", f"deployment/{fullname}", "-n", namespace, TIMEOUT)
    back = active_replicaset(cluster, namespace, release, fullname)
    assert back["metadata"]["name"] == v1["metadata"]["name"]
    assert back["spec"]["template"]["metadata"]["labels"]["modelops.io/version"] == "1"
    history = json.loads(helm("history", release, "-n", namespace, "-o", "json").stdout)
    assert [h["revision"] for h in history] == [1, 2, 3]
    assert history[-1]["status"] == "deployed"

    cluster.kubectl("rollout", "restart", f"deployment/{fullname}", "-n", namespace)
    cluster.kubectl("rollout", "status", f"deployment/{fullname}", "-n", namespace, TIMEOUT)
    restarted = active_replicaset(cluster, namespace, release, fullname)
    assert restarted["metadata"]["name"] not in (v1["metadata"]["name"], v2["metadata"]["name"])
    annotations = restarted["spec"]["template"]["metadata"]["annotations"]
    assert "kubectl.kubernetes.io/restartedAt" in annotations
    assert restarted["status"].get("availableReplicas") == 2


def test_uninstall_leaves_nothing_of_ours(cluster: Cluster, namespace: str, helm) -> None:
    release = release_name("gone")
    helm(
        "install", release, SERVICE, "-n", namespace, "--wait", TIMEOUT,
        "--values", SERVICE / "ci" / "full-values.yaml",
        "--set", "canary.enabled=true", "--set-string", "canary.version=3",
    )  # fmt: skip
    assert ours(cluster, namespace, release)

    helm("uninstall", release, "-n", namespace, "--wait", TIMEOUT)

    assert ours(cluster, namespace, release) == []


def test_operator_installs_with_crd_and_cluster_rbac(
    cluster: Cluster, namespace: str, helm
) -> None:
    release = release_name("op")
    fullname = f"{release}-model-operator"
    helm("install", release, OPERATOR, "-n", namespace, "--wait", TIMEOUT)

    crd = cluster.get("crd", "modeldeployments.modelops.io")
    assert conditions(crd)["Established"] == "True"
    assert "md" in crd["spec"]["names"].get("shortNames", [])
    deploy = cluster.get("deployment", fullname, "-n", namespace)
    assert conditions(deploy)["Available"] == "True"
    assert deploy["spec"]["strategy"]["type"] == "Recreate"
    sa = f"system:serviceaccount:{namespace}:{fullname}"

    def can(verb: str, resource: str, *where: str) -> bool:
        proc = cluster.kubectl("auth", "can-i", verb, resource, "--as", sa, *where, check=False)
        return proc.stdout.strip() == "yes"

    assert can("patch", "modeldeployments.modelops.io", "-A")
    assert can("patch", "deployments.apps", "-n", "default")
    assert can("create", "servicemonitors.monitoring.coreos.com", "-n", "default")
    assert can("list", "prometheuses.monitoring.coreos.com", "-A")
    assert not can("get", "secrets", "-n", namespace)
    assert not can("delete", "modeldeployments.modelops.io", "-A")
    assert not can("create", "clusterkopfpeerings.kopf.dev")

    helm("uninstall", release, "-n", namespace, "--wait", TIMEOUT)
    assert ours(cluster, namespace, release) == []
    left = cluster.get(
        "clusterroles,clusterrolebindings", "-l", f"app.kubernetes.io/instance={release}"
    )
    assert left["items"] == []


def test_namespaced_operator_has_rights_only_where_it_watches(
    cluster: Cluster, namespace: str, helm
) -> None:
    watched = cluster.create_namespace(f"watched-{uuid.uuid4().hex[:6]}")
    release = release_name("nsop")
    fullname = f"{release}-model-operator"
    try:
        helm(
            "install", release, OPERATOR, "-n", namespace, "--wait", TIMEOUT,
            "--set", f"watchNamespaces={{{watched}}}",
        )  # fmt: skip
        sa = f"system:serviceaccount:{namespace}:{fullname}"

        def can(verb: str, resource: str, *where: str) -> bool:
            proc = cluster.kubectl("auth", "can-i", verb, resource, "--as", sa, *where, check=False)
            return proc.stdout.strip() == "yes"

        assert can("patch", "deployments.apps", "-n", watched)
        assert can("watch", "modeldeployments.modelops.io", "-n", watched)
        assert not can("patch", "deployments.apps", "-n", "default")
        assert not can("watch", "modeldeployments.modelops.io", "-A")
        assert not can("list", "namespaces")
        env = cluster.get("deployment", fullname, "-n", namespace)["spec"]["template"]["spec"]
        value = {e["name"]: e.get("value") for e in env["containers"][0]["env"]}
        assert json.loads(value["MODELOPS_OPERATOR_NAMESPACES"]) == [watched]
    finally:
        helm("uninstall", release, "-n", namespace, "--wait", TIMEOUT, check=False)
        cluster.kubectl("delete", "namespace", watched, "--wait=false", check=False)
