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
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.charts.render import OPERATOR, SERVICE
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
from tests.rig.control_plane import REPO_ROOT, Cluster, find_tool, free_port

pytestmark = pytest.mark.cluster

TIMEOUT = "--timeout=3m"
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


@dataclass(frozen=True)
class Identity:
    """A ServiceAccount as the API server sees it: user name and groups."""

    namespace: str
    name: str

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"

    @property
    def groups(self) -> list[str]:
        return [
            "system:serviceaccounts",
            f"system:serviceaccounts:{self.namespace}",
            "system:authenticated",
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


@dataclass
class Install:
    release: str
    namespace: str  # where the operator runs
    identity: Identity
    watched: list[str]
    monitoring: list[str]


def install_operator(cluster: Cluster, namespace: str, *set_args: str) -> Install:
    release = f"rbac-{uuid.uuid4().hex[:5]}"
    cluster.helm("install", release, OPERATOR, "-n", namespace, "--wait", TIMEOUT, *set_args)
    sa = f"{release}-model-operator"
    return Install(release, namespace, Identity(namespace, sa), [], [])


def uninstall(cluster: Cluster, inst: Install) -> None:
    cluster.helm("uninstall", inst.release, "-n", inst.namespace, "--wait", TIMEOUT, check=False)


@pytest.fixture
def cluster_wide(cluster: Cluster, namespace: str) -> Iterator[Install]:
    inst = install_operator(cluster, namespace)
    try:
        yield inst
    finally:
        uninstall(cluster, inst)


@pytest.fixture
def namespaced(cluster: Cluster, namespace: str) -> Iterator[Install]:
    suffix = uuid.uuid4().hex[:6]
    watched = cluster.create_namespace(f"rbac-watched-{suffix}")
    monitoring = cluster.create_namespace(f"rbac-monitoring-{suffix}")
    inst = install_operator(
        cluster, namespace,
        "--set", f"watchNamespaces={{{watched}}}",
        "--set", f"rbac.monitoringNamespaces={{{monitoring}}}",
    )  # fmt: skip
    inst.watched, inst.monitoring = [watched], [monitoring]
    try:
        yield inst
    finally:
        uninstall(cluster, inst)
        for ns in (watched, monitoring):
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


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
    cluster: Cluster, cluster_wide: Install, elsewhere: str
) -> None:
    expected = merge(grants(ALL_NAMESPACES, "cluster_wide"), grants(CLUSTER_SCOPE, "cluster_wide"))
    for ns in (elsewhere, cluster_wide.namespace, "default"):
        effective = minus(rules_in(cluster, cluster_wide.identity, ns), baseline(cluster, ns))
        assert effective == expected, ns


def test_namespaced_operator_has_exactly_the_table_where_it_works_and_nothing_elsewhere(
    cluster: Cluster, namespaced: Install, elsewhere: str
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
    cluster: Cluster, cluster_wide: Install, elsewhere: str
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
    cluster: Cluster, namespaced: Install, elsewhere: str
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


def token_kubeconfig(cluster: Cluster, who: Identity, path: Path) -> Path:
    """A kubeconfig that logs in as ``who`` with a fresh token (TokenRequest API)."""
    token = cluster.kubectl(
        "create", "token", who.name, "-n", who.namespace, "--duration=1h"
    ).stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    server = admin["clusters"][0]["cluster"]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "rig", "cluster": server}],
                "users": [{"name": who.name, "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": "rig", "user": who.name}}],
                "current-context": "sa",
            }
        )
    )
    return path


def chart_env(cluster: Cluster, inst: Install) -> dict[str, str]:
    """The MODELOPS_OPERATOR_* settings the chart gave the operator's container."""
    deploy = cluster.get("deployment", f"{inst.release}-model-operator", "-n", inst.namespace)
    env = deploy["spec"]["template"]["spec"]["containers"][0]["env"]
    out = {e["name"]: e["value"] for e in env if "value" in e}
    out["MODELOPS_OPERATOR_POD_NAMESPACE"] = inst.namespace  # a fieldRef in the pod
    return out


def wait_for_phase(cluster: Cluster, ns: str, name: str, phase: str, log: Path) -> dict:
    deadline = time.monotonic() + 180
    status: dict = {}
    while time.monotonic() < deadline:
        status = cluster.get("modeldeployment", name, "-n", ns).get("status") or {}
        if status.get("phase") == phase:
            return status
        time.sleep(1)
    tail = "\n".join(log.read_text().splitlines()[-40:])
    raise AssertionError(f"{ns}/{name} never {phase}: {json.dumps(status)}\n{tail}")


def test_namespaced_operator_reconciles_with_only_its_own_rights(
    cluster: Cluster, namespaced: Install
) -> None:
    (watched,) = namespaced.watched
    with tempfile.TemporaryDirectory(prefix="rbac-operator-") as tmp:
        workdir = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELOPS_")}
        env.update(chart_env(cluster, namespaced))
        env.update(
            KUBECONFIG=str(token_kubeconfig(cluster, namespaced.identity, workdir / "sa.yaml")),
            PATH=f"{find_tool('helm').parent}{os.pathsep}{env.get('PATH', '')}",
            MODELOPS_OPERATOR_HEALTH_PORT=str(free_port()),
            MODELOPS_OPERATOR_METRICS_PORT=str(free_port()),
            MODELOPS_OPERATOR_CHART_PATH=str(SERVICE),
            MODELOPS_OPERATOR_TICK_SECONDS="1",
            MODELOPS_OPERATOR_PROMETHEUS_URL="http://127.0.0.1:9",  # unused: no canary
        )
        log = workdir / "operator.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "modelops_operator"],
                env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        try:
            cluster.apply(
                {
                    "apiVersion": "modelops.io/v1alpha1",
                    "kind": "ModelDeployment",
                    "metadata": {"name": "wine", "namespace": watched},
                    "spec": {
                        "model": {
                            "name": "wine",
                            "version": "1",
                            "image": "model-service:0.1.0",
                            "artifact": "/models/wine/1",
                            "sha256": "a" * 64,
                        },
                        "replicas": 1,
                        "rollout": {"strategy": "RollingUpdate"},
                    },
                }
            )
            status = wait_for_phase(cluster, watched, "wine", "Ready", log)
            assert proc.poll() is None, log.read_text()[-4000:]
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        text = log.read_text()

    assert status["stableVersion"] == "1"
    deploy = cluster.get("deployment", "-n", watched, "-l", "modelops.io/modeldeployment=wine")
    assert [d["status"].get("availableReplicas") for d in deploy["items"]] == [1]
    # it worked as the ServiceAccount: the only refusals are the cluster-wide looks the
    # operator tolerates (and kopf's namespace/CRD scans), none inside its namespace
    forbidden = [ln for ln in text.splitlines() if "403" in ln or "orbidden" in ln]
    assert not [ln for ln in forbidden if f"/namespaces/{watched}/" in ln], forbidden
    # the chart tells it where its monitoring Role is, so it never asks cluster-wide
    assert "cannot list Prometheus objects" not in text, forbidden
    assert "cannot list Grafana Deployments" not in text, forbidden
