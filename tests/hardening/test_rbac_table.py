"""The RBAC table of charts/model-operator/README.md is exactly what the chart renders."""

from __future__ import annotations

import json

import pytest

from tests.hardening.rbac_table import (
    ALL_NAMESPACES,
    CLUSTER_SCOPE,
    MONITORING,
    NOWHERE,
    WATCHED,
    grants,
    merge,
    rows,
    rule_grants,
)
from tests.support.charts import OPERATOR, find, render

pytestmark = pytest.mark.render

SECRETS_AND_ESCALATION = {
    ("", "secrets"),
    ("", "pods/exec"),
    ("", "pods/portforward"),
    ("", "serviceaccounts/token"),
    ("rbac.authorization.k8s.io", "roles"),
    ("rbac.authorization.k8s.io", "rolebindings"),
    ("rbac.authorization.k8s.io", "clusterroles"),
    ("rbac.authorization.k8s.io", "clusterrolebindings"),
}


def test_the_table_names_no_secret_no_escalation_and_no_wildcard() -> None:
    table = rows()
    assert table
    for row in table:
        assert "*" not in row.verbs
        assert "*" not in row.resources
        for resource in row.resources:
            assert (row.group, resource) not in SECRETS_AND_ESCALATION
        assert not (row.verbs & {"escalate", "bind", "impersonate", "deletecollection"})
    cluster_scoped = merge(grants(CLUSTER_SCOPE, "cluster_wide"))
    assert all(verbs <= {"get", "list", "watch"} for verbs in cluster_scoped.values())
    assert grants(CLUSTER_SCOPE, "namespaced") == {}


def test_cluster_wide_mode_renders_the_table() -> None:
    objs = render(OPERATOR, namespace="modelops-system")
    (role,) = find(objs, "ClusterRole")

    assert not find(objs, "Role")
    assert rule_grants(role["rules"]) == merge(
        grants(ALL_NAMESPACES, "cluster_wide"), grants(CLUSTER_SCOPE, "cluster_wide")
    )
    assert grants(NOWHERE, "cluster_wide") == {}


def test_namespace_scoped_mode_renders_the_table() -> None:
    values = {"watchNamespaces": ["models", "staging"], "rbac": {"monitoringNamespaces": ["mon"]}}
    objs = render(OPERATOR, values, namespace="modelops-system")

    assert not find(objs, "ClusterRole")
    assert not find(objs, "ClusterRoleBinding")
    roles = {r["metadata"]["namespace"]: r for r in find(objs, "Role")}
    assert set(roles) == {"models", "staging", "mon"}
    for ns in ("models", "staging"):
        assert rule_grants(roles[ns]["rules"]) == grants(WATCHED, "namespaced"), ns
    assert rule_grants(roles["mon"]["rules"]) == grants(MONITORING, "namespaced")


def test_a_watched_namespace_that_is_also_a_monitoring_namespace_gets_both() -> None:
    values = {"watchNamespaces": ["models"], "rbac": {"monitoringNamespaces": ["models"]}}
    (role,) = find(render(OPERATOR, values, namespace="modelops-system"), "Role")

    assert rule_grants(role["rules"]) == merge(
        grants(WATCHED, "namespaced"), grants(MONITORING, "namespaced")
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, []),
        ({"rbac": {"monitoringNamespaces": ["mon"]}}, []),  # cluster-wide: reads everywhere
        ({"watchNamespaces": ["models"], "rbac": {"monitoringNamespaces": ["mon"]}}, ["mon"]),
    ],
)
def test_the_operator_looks_for_monitoring_only_where_its_roles_allow(
    values: dict, expected: list[str]
) -> None:
    (deploy,) = find(render(OPERATOR, values, namespace="modelops-system"), "Deployment")
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}

    assert json.loads(env["MODELOPS_OPERATOR_MONITORING_NAMESPACES"]) == expected
