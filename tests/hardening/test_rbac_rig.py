"""The operator's RBAC for real: the rig's API server answers what the chart's
ServiceAccount may do, in both modes, and the answer is exactly the README's table.

tests/cluster/test_charts.py spot-checks a few `kubectl auth can-i` answers after an
install; this module proves the whole of it:

- exactness: the rules the API server reports for the ServiceAccount (a
  SelfSubjectRulesReview made as the ServiceAccount, which is what
  `kubectl auth can-i --list --as=...` shows), less what every authenticated
  ServiceAccount may do anyway, equal the README table for each namespace: a watched
  one, a monitoring one, another one and the operator's own;
- cluster scope and Secrets: SubjectAccessReviews (the authorizer's decision) for every
  write verb on cluster-scoped objects, every verb on Secrets everywhere, and the usual
  escalation paths (pods/exec, tokens, RBAC objects, impersonation) are all denied;
- sufficiency: the real operator (`python -m modelops_operator`, the image's entry point)
  logged in with a token of that ServiceAccount and the settings the chart renders, takes
  a ModelDeployment to Ready in namespace-scoped mode: the least rights are enough.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from devstack.cluster import Cluster
from devstack.operator_chart import Identity, OperatorRelease
from devstack.operator_process import OperatorProcess
from tests.hardening.rbac_table import (
    ALL_NAMESPACES,
    CLUSTER_SCOPE,
    MONITORING,
    WATCHED,
    Grants,
    grants,
    merge,
    rule_grants,
)
from tests.support import operator_rig as rig

pytestmark = pytest.mark.cluster

READ = ("get", "list", "watch")
WRITE = ("create", "update", "patch", "delete", "deletecollection")
EVERY_VERB = READ + WRITE
CLUSTER_SCOPED = [
    ("", "namespaces"),
    ("", "nodes"),
    ("", "persistentvolumes"),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
    ("rbac.authorization.k8s.io", "clusterroles"),
    ("rbac.authorization.k8s.io", "clusterrolebindings"),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
    ("scheduling.k8s.io", "priorityclasses"),
    ("storage.k8s.io", "storageclasses"),
    ("certificates.k8s.io", "certificatesigningrequests"),
]
ESCALATION = [  # (verb, group, resource, subresource)
    ("create", "", "pods", ""),
    ("create", "", "pods", "exec"),
    ("create", "", "pods", "portforward"),
    ("create", "", "pods", "attach"),
    ("create", "", "serviceaccounts", "token"),
    ("create", "rbac.authorization.k8s.io", "roles", ""),
    ("create", "rbac.authorization.k8s.io", "rolebindings", ""),
    ("bind", "rbac.authorization.k8s.io", "clusterroles", ""),
    ("escalate", "rbac.authorization.k8s.io", "roles", ""),
    ("impersonate", "", "serviceaccounts", ""),
    ("impersonate", "", "users", ""),
    ("update", "", "nodes", "status"),
]


def _json_documents(text: str) -> list[dict]:
    """kubectl prints one JSON document per created object, back to back."""
    decoder, docs, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        doc, i = decoder.raw_decode(text, i)
        docs.append(doc)
    return docs


def rules_in(cluster: Cluster, who: Identity, namespace: str) -> Grants:
    """The resource rules the API server reports for ``who`` in ``namespace``."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": namespace},
    }
    impersonate = ["--as", who.user, *(f"--as-group={g}" for g in who.groups)]
    out = cluster.kubectl(
        "create", "--validate=false", *impersonate, "-f", "-", "-o", "json",
        input=json.dumps(review),
    )  # fmt: skip
    status = json.loads(out.stdout)["status"]
    assert not status.get("incomplete"), status.get("evaluationError")
    return rule_grants(status["resourceRules"])


def minus(granted: Grants, baseline: Grants) -> Grants:
    out = {k: v - baseline.get(k, frozenset()) for k, v in granted.items()}
    return {k: v for k, v in out.items() if v}


def allowed(cluster: Cluster, who: Identity, checks: list[dict]) -> list[bool]:
    """SubjectAccessReview decisions for resourceAttributes ``checks``, in order."""
    reviews = [
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {"user": who.user, "groups": who.groups, "resourceAttributes": attrs},
        }
        for attrs in checks
    ]
    out = cluster.kubectl(
        "create", "-f", "-", "-o", "json",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": reviews}),
    )  # fmt: skip
    docs = _json_documents(out.stdout)
    assert len(docs) == len(checks)
    return [bool(d["status"].get("allowed")) for d in docs]


def granted_checks(cluster: Cluster, who: Identity, checks: list[dict]) -> list[dict]:
    return [c for c, ok in zip(checks, allowed(cluster, who, checks), strict=True) if ok]


# --- the installs ----------------------------------------------------------------


@pytest.fixture
def cluster_wide(cluster: Cluster, namespace: str) -> Iterator[OperatorRelease]:
    release = OperatorRelease.install(cluster, namespace)
    try:
        yield release
    finally:
        release.uninstall(cluster)


@pytest.fixture
def elsewhere(cluster: Cluster) -> Iterator[str]:
    """A namespace the operator has no business in."""
    name = cluster.create_namespace(f"rbac-elsewhere-{uuid.uuid4().hex[:6]}")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def baseline(cluster: Cluster, namespace: str) -> Grants:
    """What any ServiceAccount may do (self reviews and the like), bound to nothing."""
    return rules_in(cluster, Identity(namespace, f"nobody-{uuid.uuid4().hex[:4]}"), namespace)


# --- exactness ---------------------------------------------------------------------


def test_cluster_wide_operator_has_exactly_the_table_everywhere(
    cluster: Cluster, cluster_wide: OperatorRelease, elsewhere: str
) -> None:
    expected = merge(grants(ALL_NAMESPACES, "cluster_wide"), grants(CLUSTER_SCOPE, "cluster_wide"))
    for ns in (elsewhere, cluster_wide.namespace, "default"):
        effective = minus(rules_in(cluster, cluster_wide.identity, ns), baseline(cluster, ns))
        assert effective == expected, ns


def test_namespaced_operator_has_exactly_the_table_where_it_works_and_nothing_elsewhere(
    cluster: Cluster, namespaced: OperatorRelease, elsewhere: str
) -> None:
    who = namespaced.identity
    (watched,) = namespaced.watched
    (monitoring,) = namespaced.monitoring

    def effective(ns: str) -> Grants:
        return minus(rules_in(cluster, who, ns), baseline(cluster, ns))

    assert effective(watched) == grants(WATCHED, "namespaced")
    assert effective(monitoring) == grants(MONITORING, "namespaced")
    assert effective(elsewhere) == {}
    assert effective(namespaced.namespace) == {}, "not even its own namespace"
    assert effective("default") == {}


# --- cluster scope, Secrets and escalation -------------------------------------------


def cluster_scoped_writes() -> list[dict]:
    return [
        {"verb": verb, "group": group, "resource": resource}
        for group, resource in CLUSTER_SCOPED
        for verb in WRITE
    ]


def secrets_everywhere(namespaces: list[str]) -> list[dict]:
    return [
        {"verb": verb, "resource": "secrets", "namespace": ns}
        for ns in [*namespaces, ""]  # "": across all namespaces
        for verb in EVERY_VERB
    ]


def escalation(namespaces: list[str]) -> list[dict]:
    return [
        {"verb": verb, "group": group, "resource": resource, "subresource": sub, "namespace": ns}
        for ns in namespaces
        for verb, group, resource, sub in ESCALATION
    ]


def test_cluster_wide_operator_never_writes_cluster_scope_or_touches_secrets(
    cluster: Cluster, cluster_wide: OperatorRelease, elsewhere: str
) -> None:
    who = cluster_wide.identity
    namespaces = [cluster_wide.namespace, elsewhere, "default", "kube-system"]

    assert granted_checks(cluster, who, cluster_scoped_writes()) == []
    assert granted_checks(cluster, who, secrets_everywhere(namespaces)) == []
    assert granted_checks(cluster, who, escalation(namespaces)) == []
    # what it does need at cluster scope (the table's reads there), and ModelDeployments
    # across namespaces
    needed = {
        **grants(CLUSTER_SCOPE, "cluster_wide"),
        ("modelops.io", "modeldeployments"): frozenset({"get", "list", "watch"}),
    }
    reads = [
        {"verb": v, "group": g, "resource": r} for (g, r), verbs in needed.items() for v in verbs
    ]
    assert {("", "namespaces"), ("apiextensions.k8s.io", "customresourcedefinitions")} <= set(
        needed
    )
    assert all(allowed(cluster, who, reads))


def test_namespaced_operator_has_no_cluster_scope_and_no_other_namespace(
    cluster: Cluster, namespaced: OperatorRelease, elsewhere: str
) -> None:
    who = namespaced.identity
    (watched,) = namespaced.watched
    (monitoring,) = namespaced.monitoring
    namespaces = [watched, monitoring, namespaced.namespace, elsewhere, "default"]

    cluster_reads = [
        {"verb": verb, "group": group, "resource": resource}
        for group, resource in [
            *CLUSTER_SCOPED,
            ("modelops.io", "modeldeployments"),
            ("apps", "deployments"),
            ("monitoring.coreos.com", "prometheuses"),
        ]
        for verb in READ
    ]
    assert granted_checks(cluster, who, cluster_reads + cluster_scoped_writes()) == []
    assert granted_checks(cluster, who, secrets_everywhere(namespaces)) == []
    assert granted_checks(cluster, who, escalation(namespaces)) == []
    # every right of the table is denied outside the watched and monitoring namespaces
    everything = merge(grants(WATCHED, "namespaced"), grants(MONITORING, "namespaced"))
    outside = [
        {"verb": verb, "group": group, "resource": resource.split("/")[0],
         "subresource": resource.partition("/")[2], "namespace": ns}
        for ns in (elsewhere, namespaced.namespace, "default")
        for (group, resource), verbs in everything.items()
        for verb in sorted(verbs)
    ]  # fmt: skip
    assert granted_checks(cluster, who, outside) == []
    # and allowed where the table says (the same decisions through the authorizer)
    inside = [
        {"verb": verb, "group": group, "resource": resource.split("/")[0],
         "subresource": resource.partition("/")[2], "namespace": watched}
        for (group, resource), verbs in grants(WATCHED, "namespaced").items()
        for verb in sorted(verbs)
    ]  # fmt: skip
    assert all(allowed(cluster, who, inside))


# --- sufficiency: the real operator with only these rights ---------------------------


def test_namespaced_operator_reconciles_with_only_its_own_rights(
    cluster: Cluster, namespaced: OperatorRelease, tmp_path
) -> None:
    (watched,) = namespaced.watched
    who = namespaced.identity
    op = OperatorProcess(
        cluster,
        tmp_path,
        kubeconfig=cluster.token_kubeconfig(who.namespace, who.name, tmp_path / "sa.yaml"),
        settings=namespaced.settings(cluster),
    )
    op.start()
    try:
        body = rig.md_body("wine", watched, rollout={"strategy": "RollingUpdate"}, replicas=1)
        body["spec"]["model"]["sha256"] = "a" * 64
        cluster.apply(body)
        status = rig.wait_phase(cluster, op, watched, "wine", "Ready", timeout=180)
        rig.assert_running(op)
    finally:
        op.stop()
    text = op.log.read_text()

    assert status["stableVersion"] == "1"
    deploy = cluster.get("deployment", "-n", watched, "-l", "modelops.io/modeldeployment=wine")
    assert [d["status"].get("availableReplicas") for d in deploy["items"]] == [1]
    # it worked as the ServiceAccount: the only refusals are the cluster-wide looks the
    # operator tolerates (and kopf's namespace/CRD scans), none inside its namespace
    forbidden = rig.refused_lines(text)
    assert not [ln for ln in forbidden if f"/namespaces/{watched}/" in ln], forbidden
    # the chart tells it where its monitoring Role is, so it never asks cluster-wide
    assert "cannot list Prometheus objects" not in text, forbidden
    assert "cannot list Grafana Deployments" not in text, forbidden
