"""model-operator RBAC: least privilege, cluster-wide or namespace-scoped, never Secrets."""

from __future__ import annotations

import pytest
import yaml

from tests.support.charts import OPERATOR, ROOT, find, render

pytestmark = pytest.mark.render

RBAC_KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
# What the operator does to what the model-service chart renders: server-side apply (patch,
# create when new), read back, list by the owner label, prune; kopf watches the Deployments.
APPLY = {"get", "list", "create", "patch", "delete"}
LIST = {"list"}


def rbac(values: dict | None = None) -> list[dict]:
    objs = render(OPERATOR, values, namespace="modelops-system")
    return [o for o in objs if o["kind"] in RBAC_KINDS]


def grants(role: dict) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


NAMESPACED_GRANTS = {
    ("modelops.io", "modeldeployments"): {"get", "list", "watch", "patch"},
    ("modelops.io", "modeldeployments/status"): {"patch", "update"},
    ("modelops.io", "modeldeployments/finalizers"): {"update"},
    ("apps", "deployments"): APPLY | {"watch"},
    ("", "services"): APPLY,
    ("", "serviceaccounts"): APPLY,
    ("", "configmaps"): APPLY,
    ("autoscaling", "horizontalpodautoscalers"): APPLY,
    ("policy", "poddisruptionbudgets"): APPLY,
    ("networking.k8s.io", "networkpolicies"): APPLY,
    ("monitoring.coreos.com", "servicemonitors"): APPLY,
    ("monitoring.coreos.com", "prometheusrules"): APPLY,
    ("keda.sh", "scaledobjects"): APPLY,
    # the user's HTTPRoute: its weights set, never created or deleted
    ("gateway.networking.k8s.io", "httproutes"): {"get", "patch"},
    ("", "pods"): LIST,
    ("", "events"): {"create"},
}


def test_cluster_mode_grants_exactly_the_agreed_rights() -> None:
    objs = rbac()
    (role,) = find(objs, "ClusterRole")

    assert not find(objs, "Role")
    assert grants(role) == {
        **NAMESPACED_GRANTS,
        ("monitoring.coreos.com", "prometheuses"): LIST,
        ("", "namespaces"): {"get"},
        ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
    }


def test_grants_nothing_the_operator_does_not_read() -> None:
    """ReplicaSets and events.k8s.io are used by no code of the operator nor of kopf."""
    (role,) = find(rbac(), "ClusterRole")

    assert ("apps", "replicasets") not in grants(role)
    assert ("events.k8s.io", "events") not in grants(role)
    assert all("update" not in verbs for (_, r), verbs in grants(role).items() if "/" not in r)


def test_cluster_mode_covers_the_plain_manifests_rbac() -> None:
    """manifests/rbac/ (the operator without Helm; generated from the chart) grants no more."""
    plain = [
        d
        for f in sorted((ROOT / "manifests" / "rbac").glob("*.yaml"))
        for d in yaml.safe_load_all(f.read_text())
        if d and d.get("kind") == "ClusterRole"
    ]
    (role,) = find(rbac(), "ClusterRole")

    assert plain
    for plain_role in plain:
        for key, verbs in grants(plain_role).items():
            assert verbs <= grants(role).get(key, set()), f"chart lacks {key} {verbs}"


def test_cluster_mode_binds_the_operator_service_account() -> None:
    (binding,) = find(rbac(), "ClusterRoleBinding")

    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "demo-model-operator",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "demo-model-operator", "namespace": "modelops-system"}
    ]


def test_namespaced_mode_has_no_cluster_rights() -> None:
    objs = rbac({"watchNamespaces": ["models", "staging"]})

    assert not find(objs, "ClusterRole")
    assert not find(objs, "ClusterRoleBinding")
    roles = {r["metadata"]["namespace"]: r for r in find(objs, "Role")}
    assert set(roles) == {"models", "staging"}
    for role in roles.values():
        assert grants(role) == NAMESPACED_GRANTS
    bindings = {b["metadata"]["namespace"]: b for b in find(objs, "RoleBinding")}
    assert set(bindings) == {"models", "staging"}
    assert all(b["subjects"][0]["namespace"] == "modelops-system" for b in bindings.values())


def test_namespaced_mode_reads_prometheus_and_grafana_in_monitoring_namespaces() -> None:
    objs = rbac({"watchNamespaces": ["models"], "rbac": {"monitoringNamespaces": ["monitoring"]}})
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): r for r in find(objs, "Role")}

    reader = roles[("monitoring", "demo-model-operator-monitoring-reader")]
    assert grants(reader) == {
        ("monitoring.coreos.com", "prometheuses"): LIST,
        ("apps", "deployments"): LIST,
    }
    assert {
        (b["metadata"]["namespace"], b["roleRef"]["name"]) for b in find(objs, "RoleBinding")
    } == {
        ("models", "demo-model-operator"),
        ("monitoring", "demo-model-operator-monitoring-reader"),
    }


@pytest.mark.parametrize(
    "values", [{}, {"watchNamespaces": ["m"], "rbac": {"monitoringNamespaces": ["o"]}}]
)
def test_never_grants_secrets_wildcards_or_peering(values: dict) -> None:
    for role in [o for o in rbac(values) if o["kind"] in ("ClusterRole", "Role")]:
        for rule in role["rules"]:
            assert "secrets" not in rule["resources"]
            assert "*" not in rule["resources"]
            assert "*" not in rule["verbs"]
            assert "*" not in rule["apiGroups"]
            assert "kopf.dev" not in rule["apiGroups"]


def test_rbac_can_be_left_to_the_user() -> None:
    assert rbac({"rbac": {"create": False}}) == []
