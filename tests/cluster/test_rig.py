"""The test rig itself: a real API server, KCM, scheduler and KWOK nodes behave
like a cluster (issue 3, "Show")."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from devstack.cluster import Cluster, CommandError
from devstack.control_plane import ControlPlane
from devstack.paths import REPO_ROOT, versions
from devstack.processes import pid_alive

pytestmark = pytest.mark.cluster

WAIT = "--timeout=180s"


def deployment(name: str, replicas: int) -> dict:
    labels = {"app.kubernetes.io/name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
            },
        },
    }


def replicasets(cluster: Cluster, namespace: str, name: str) -> dict[str, dict]:
    items = cluster.get("replicasets", "-n", namespace, "-l", f"app.kubernetes.io/name={name}")
    return {rs["metadata"]["name"]: rs for rs in items["items"]}


def test_api_server_reports_the_pinned_version(cluster: Cluster) -> None:
    version = json.loads(cluster.kubectl("get", "--raw", "/version").stdout)

    assert version["gitVersion"] == f"v{versions()['KUBERNETES_VERSION']}"
    assert cluster.server.startswith("https://127.0.0.1:")


def test_at_least_two_fake_nodes_are_ready_and_schedulable(cluster: Cluster) -> None:
    nodes = cluster.get("nodes", "-l", "type=kwok")["items"]

    assert len(nodes) >= 2
    for node in nodes:
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True", node["metadata"]["name"]
        assert not node["spec"].get("unschedulable")
        assert not [t for t in node["spec"].get("taints", []) if t["effect"] == "NoSchedule"]


def test_create_namespace(cluster: Cluster) -> None:
    name = cluster.create_namespace("rig-namespace-check")

    ns = cluster.get("namespace", name)
    assert ns["status"]["phase"] == "Active"
    assert cluster.get("serviceaccount", "default", "-n", name)["metadata"]["name"] == "default"
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def test_deployment_becomes_available_with_pods_running_on_kwok_nodes(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply(deployment("web", 3), "-n", namespace)
    cluster.kubectl("rollout", "status", "deployment/web", "-n", namespace, WAIT)

    deploy = cluster.get("deployment", "web", "-n", namespace)
    available = {c["type"]: c["status"] for c in deploy["status"]["conditions"]}["Available"]
    assert available == "True"
    assert deploy["status"]["availableReplicas"] == 3
    pods = cluster.get("pods", "-n", namespace, "-l", "app.kubernetes.io/name=web")["items"]
    assert len(pods) == 3
    for pod in pods:
        assert pod["status"]["phase"] == "Running"
        assert pod["spec"]["nodeName"] in cluster.nodes
        assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "True"


def test_rollout_restart_creates_a_new_replicaset_that_becomes_available(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply(deployment("api", 3), "-n", namespace)
    cluster.kubectl("rollout", "status", "deployment/api", "-n", namespace, WAIT)
    before = replicasets(cluster, namespace, "api")
    assert len(before) == 1

    cluster.kubectl("rollout", "restart", "deployment/api", "-n", namespace)
    cluster.kubectl("rollout", "status", "deployment/api", "-n", namespace, WAIT)

    after = replicasets(cluster, namespace, "api")
    new = [rs for name, rs in after.items() if name not in before]
    assert len(new) == 1
    assert new[0]["status"].get("availableReplicas") == 3
    (old_name,) = before
    assert after[old_name]["spec"]["replicas"] == 0
    deploy = cluster.get("deployment", "api", "-n", namespace)
    assert deploy["status"]["updatedReplicas"] == 3
    assert deploy["status"]["availableReplicas"] == 3


WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.rig.modelops.io"},
    "spec": {
        "group": "rig.modelops.io",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {"size": {"type": "integer", "minimum": 1}},
                            },
                            "status": {
                                "type": "object",
                                "properties": {"phase": {"type": "string"}},
                            },
                        },
                    }
                },
            }
        ],
    },
}


def test_custom_resource_with_status_subresource(cluster: Cluster, namespace: str) -> None:
    cluster.apply(WIDGET_CRD)
    cluster.kubectl(
        "wait", "--for=condition=Established", "crd/widgets.rig.modelops.io", "--timeout=60s"
    )
    widget = {
        "apiVersion": "rig.modelops.io/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "namespace": namespace},
        "spec": {"size": 3},
    }
    cluster.apply(widget)

    read = cluster.get("widget", "w1", "-n", namespace)
    assert read["spec"] == {"size": 3}
    generation = read["metadata"]["generation"]

    cluster.kubectl(
        "patch", "widget", "w1", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", '{"status": {"phase": "Ready"}}',
    )  # fmt: skip
    # A status written through the main resource is dropped: status is a subresource.
    cluster.kubectl(
        "patch", "widget", "w1", "-n", namespace, "--type=merge",
        "-p", '{"status": {"phase": "Hijacked"}}',
    )  # fmt: skip

    read = cluster.get("widget", "w1", "-n", namespace)
    assert read["status"] == {"phase": "Ready"}
    assert read["metadata"]["generation"] == generation
    with pytest.raises(CommandError, match=r"spec\.size"):
        cluster.apply({**widget, "spec": {"size": 0}})


def test_monitoring_crds_are_installed_at_the_pinned_version(cluster: Cluster) -> None:
    crds = {
        crd["metadata"]["name"]: crd
        for crd in cluster.get("crd")["items"]
        if crd["spec"]["group"] == "monitoring.coreos.com"
    }

    assert {"servicemonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com"} <= (
        crds.keys()
    )
    pinned = versions()["PROMETHEUS_OPERATOR_VERSION"].removeprefix("v")
    annotation = "operator.prometheus.io/version"
    assert crds["servicemonitors.monitoring.coreos.com"]["metadata"]["annotations"][annotation] == (
        pinned
    )


def servicemonitor(name: str, endpoint: dict) -> str:
    return json.dumps(
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {"name": name},
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/name": "web"}},
                "endpoints": [endpoint],
            },
        }
    )


def test_api_server_validates_servicemonitor_and_prometheusrule(
    cluster: Cluster, namespace: str
) -> None:
    cluster.kubectl(
        "apply", "-n", namespace, "-f", "-",
        input=servicemonitor("good", {"port": "http", "path": "/metrics", "interval": "15s"}),
    )  # fmt: skip
    rule = textwrap.dedent(
        """\
        apiVersion: monitoring.coreos.com/v1
        kind: PrometheusRule
        metadata: {name: good}
        spec:
          groups:
          - name: g
            rules:
            - record: job:up:sum
              expr: sum by (job) (up)
        """
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=rule)

    bad = cluster.kubectl(
        "apply", "-n", namespace, "-f", "-",
        input=servicemonitor("bad", {"port": "http", "scheme": "gopher", "interval": "soon"}),
        check=False,
    )  # fmt: skip

    assert bad.returncode != 0
    assert "is invalid" in bad.stderr
    assert "spec.endpoints[0].scheme" in bad.stderr
    assert "spec.endpoints[0].interval" in bad.stderr
    names = cluster.kubectl("get", "servicemonitors", "-n", namespace, "-o", "name").stdout
    assert names.split() == ["servicemonitor.monitoring.coreos.com/good"]


def test_helm_install_waits_for_the_deployment_and_helm_test_hooks_complete(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    chart = tmp_path / "tiny"
    (chart / "templates" / "tests").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: tiny\nversion: 0.1.0\n")
    (chart / "templates" / "deployment.yaml").write_text(
        json.dumps(deployment("tiny", 2)).replace('"tiny"', '"{{ .Release.Name }}"')
    )
    (chart / "templates" / "tests" / "hook.yaml").write_text(
        textwrap.dedent(
            """\
            apiVersion: v1
            kind: Pod
            metadata:
              name: "{{ .Release.Name }}-test"
              annotations: {"helm.sh/hook": test}
            spec:
              restartPolicy: Never
              containers: [{name: probe, image: registry.invalid/probe:1}]
            """
        )
    )

    cluster.helm("install", "tiny", chart, "-n", namespace, "--wait=watcher", "--timeout=3m")
    tested = cluster.helm("test", "tiny", "-n", namespace, "--timeout=3m")

    assert cluster.get("deployment", "tiny", "-n", namespace)["status"]["availableReplicas"] == 2
    assert re.search(r"Phase:\s+Succeeded", tested.stdout), tested.stdout
    assert cluster.get("pod", "tiny-test", "-n", namespace)["status"]["phase"] == "Succeeded"


def test_api_server_restart_keeps_state_and_nodes(cluster: Cluster, namespace: str) -> None:
    if cluster.control_plane is None:
        pytest.skip("MODELOPS_KUBECONFIG rig: restart needs a rig started by this session")
    cluster.kubectl("create", "configmap", "survivor", "-n", namespace, "--from-literal=k=v")
    old_pid = next(p.pid for p in cluster.control_plane.procs if p.name == "kube-apiserver")

    cluster.restart("kube-apiserver")

    new_pid = next(p.pid for p in cluster.control_plane.procs if p.name == "kube-apiserver")
    assert new_pid != old_pid
    assert not pid_alive(old_pid)
    assert cluster.get("configmap", "survivor", "-n", namespace)["data"] == {"k": "v"}
    cluster.kubectl("wait", "--for=condition=Ready", "node", "-l", "type=kwok", WAIT)
    cluster.apply(deployment("after-restart", 1), "-n", namespace)
    cluster.kubectl("rollout", "status", "deployment/after-restart", "-n", namespace, WAIT)


def test_rig_cli_up_is_idempotent_and_down_leaves_no_process(tmp_path: Path) -> None:
    env = {**os.environ, "MODELOPS_RIG_DIR": str(tmp_path / "rig")}
    env.pop("MODELOPS_KUBECONFIG", None)

    def rig(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "devstack", command],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
            check=False,
        )

    try:
        started = rig("up")
        assert started.returncode == 0, started.stderr
        kubeconfig = tmp_path / "rig" / "kubeconfig"
        assert f"export KUBECONFIG={kubeconfig}" in started.stdout
        recorded = ControlPlane.recorded(tmp_path / "rig")
        assert {p.name for p in recorded} == {
            "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok",
        }  # fmt: skip
        assert all(p.alive() for p in recorded)
        handle = Cluster.from_kubeconfig(kubeconfig)
        assert handle.kubectl("get", "--raw", "/readyz").stdout == "ok"

        again = rig("up")
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stderr
        assert rig("env").stdout == started.stdout
    finally:
        stopped = rig("down")

    assert stopped.returncode == 0, stopped.stderr
    deadline = time.monotonic() + 30
    while any(p.alive() for p in recorded) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p.name for p in recorded if p.alive()]
    assert not (tmp_path / "rig").exists()
    assert rig("env").returncode == 1
