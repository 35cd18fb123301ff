"""Pod Security on the rig: the real API server's PodSecurity admission enforces the
`restricted` standard in a namespace labelled for it.

Both charts install there with their default values, their pods are admitted and the
Deployments become Available (helm's own test Job too). Lowering one security setting
in values gets the pods refused by the API server (the ReplicaSet's FailedCreate, no pod
at all), not merely a different render; a control case with an unrelated change is
admitted in the same kind of namespace, so the refusals come from the setting.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from devstack.cluster import Cluster
from tests.support.charts import OPERATOR, SERVICE

pytestmark = pytest.mark.cluster

TIMEOUT = "--timeout=3m"
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/warn-version": "latest",
}
REFUSED = 'violates PodSecurity "restricted:latest"'
WARNED = 'would violate PodSecurity \\"restricted:latest\\"'  # helm logs the warning quoted


@pytest.fixture
def restricted(cluster: Cluster, namespace: str) -> str:
    """The test's namespace, enforcing (and warning about) the restricted standard."""
    cluster.kubectl("label", "namespace", namespace, *(f"{k}={v}" for k, v in RESTRICTED.items()))
    labels = cluster.get("namespace", namespace)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    return namespace


def release_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:5]}"


def helm_install(
    cluster: Cluster, namespace: str, release: str, chart: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return cluster.helm("install", release, chart, "-n", namespace, *args)


def condition(deploy: dict, kind: str) -> dict:
    found = [c for c in deploy["status"].get("conditions", []) if c["type"] == kind]
    assert found, f"no {kind} condition on {deploy['metadata']['name']}: {deploy['status']}"
    return found[0]


def pods_of(cluster: Cluster, namespace: str, release: str) -> list[dict]:
    selector = f"app.kubernetes.io/instance={release}"
    return cluster.get("pods", "-n", namespace, "-l", selector)["items"]


def failed_create_messages(cluster: Cluster, namespace: str) -> list[str]:
    events = cluster.get("events", "-n", namespace, "--field-selector", "reason=FailedCreate")
    return [e["message"] for e in events["items"] if e["involvedObject"]["kind"] == "ReplicaSet"]


def assert_available(cluster: Cluster, namespace: str, release: str) -> list[dict]:
    """Every Deployment of the release Available, every replica a Running pod; the pods."""
    deploys = cluster.get(
        "deployments", "-n", namespace, "-l", f"app.kubernetes.io/instance={release}"
    )["items"]
    assert deploys
    for deploy in deploys:
        assert condition(deploy, "Available")["status"] == "True", deploy["status"]
        assert not [
            c for c in deploy["status"].get("conditions", []) if c["type"] == "ReplicaFailure"
        ]
    pods = pods_of(cluster, namespace, release)
    assert len(pods) == sum(d["spec"]["replicas"] for d in deploys)
    assert all(p["status"]["phase"] == "Running" for p in pods)
    return pods


def assert_admitted_and_available(cluster: Cluster, namespace: str, release: str) -> None:
    """Available, and the admitted pods carry the secure defaults the charts promise."""
    for pod in assert_available(cluster, namespace, release):
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["limits"]
            assert container["resources"]["requests"]


def test_both_charts_run_with_default_values_under_restricted(
    cluster: Cluster, restricted: str
) -> None:
    service = release_name("psa-svc")
    operator = release_name("psa-op")
    try:
        installs = [
            helm_install(cluster, restricted, service, SERVICE, "--wait", TIMEOUT),
            helm_install(cluster, restricted, operator, OPERATOR, "--wait", TIMEOUT),
        ]
        for proc in installs:
            assert "PodSecurity" not in proc.stderr, proc.stderr

        assert_admitted_and_available(cluster, restricted, service)
        assert_admitted_and_available(cluster, restricted, operator)
        assert failed_create_messages(cluster, restricted) == []
        # helm's test hook is a Job whose pod must pass the same admission
        test = cluster.helm("test", service, "-n", restricted, TIMEOUT)
        assert "Succeeded" in test.stdout
    finally:
        # the operator's ClusterRole and binding outlive the namespace otherwise
        cluster.helm("uninstall", operator, "-n", restricted, "--wait", TIMEOUT, check=False)


def test_canary_and_every_optional_object_run_under_restricted(
    cluster: Cluster, restricted: str
) -> None:
    release = release_name("psa-full")
    proc = helm_install(
        cluster, restricted, release, SERVICE, "--wait", TIMEOUT,
        "--values", str(SERVICE / "ci" / "full-values.yaml"),
        "--set", "canary.enabled=true", "--set-string", "canary.version=2",
    )  # fmt: skip

    assert "PodSecurity" not in proc.stderr, proc.stderr
    assert_admitted_and_available(cluster, restricted, release)
    pods = pods_of(cluster, restricted, release)
    tracks = {p["metadata"]["labels"]["modelops.io/track"] for p in pods}
    assert tracks == {"stable", "canary"}


LOWERED = [
    pytest.param(
        SERVICE,
        ["securityContext.allowPrivilegeEscalation=true"],
        "allowPrivilegeEscalation != false",
        id="service-privilege-escalation",
    ),
    pytest.param(
        SERVICE,
        ["podSecurityContext.runAsNonRoot=false", "securityContext.runAsNonRoot=false"],
        "runAsNonRoot != true",
        id="service-root-allowed",
    ),
    pytest.param(
        SERVICE,
        ["securityContext.capabilities.add={NET_ADMIN}"],
        "unrestricted capabilities",
        id="service-capability-added",
    ),
    pytest.param(
        SERVICE,
        ["podSecurityContext.seccompProfile.type=Unconfined"],
        "seccompProfile",
        id="service-seccomp-unconfined",
    ),
    pytest.param(
        SERVICE,
        ["securityContext.privileged=true", "securityContext.allowPrivilegeEscalation=true"],
        "privileged",
        id="service-privileged",
    ),
    pytest.param(
        OPERATOR,
        ["securityContext.allowPrivilegeEscalation=true"],
        "allowPrivilegeEscalation != false",
        id="operator-privilege-escalation",
    ),
    pytest.param(
        OPERATOR,
        ["securityContext.capabilities.add={SYS_ADMIN}"],
        "unrestricted capabilities",
        id="operator-capability-added",
    ),
]


@pytest.mark.parametrize(("chart", "lowered", "violation"), LOWERED)
def test_a_lowered_security_setting_gets_the_pods_refused(
    cluster: Cluster, restricted: str, chart: Path, lowered: list[str], violation: str
) -> None:
    release = release_name("psa-low")
    set_args = [a for value in lowered for a in ("--set", value)]
    try:
        # no --wait: the Deployment is accepted (and warned about); its pods never come
        proc = helm_install(cluster, restricted, release, chart, *set_args)
        assert WARNED in proc.stderr, proc.stderr
        deploy = next(
            d
            for d in cluster.get(
                "deployments", "-n", restricted, "-l", f"app.kubernetes.io/instance={release}"
            )["items"]
        )
        name = deploy["metadata"]["name"]
        cluster.kubectl(
            "wait", "--for=condition=ReplicaFailure", f"deployment/{name}", "-n", restricted,
            TIMEOUT,
        )  # fmt: skip

        deploy = cluster.get("deployment", name, "-n", restricted)
        failure = condition(deploy, "ReplicaFailure")
        assert failure["reason"] == "FailedCreate"
        assert REFUSED in failure["message"]
        assert violation in failure["message"]
        assert condition(deploy, "Available")["status"] == "False"
        assert deploy["status"].get("availableReplicas", 0) == 0
        assert pods_of(cluster, restricted, release) == []
        messages = failed_create_messages(cluster, restricted)
        assert messages
        assert all(REFUSED in m and violation in m for m in messages), messages
    finally:
        cluster.helm("uninstall", release, "-n", restricted, "--wait", TIMEOUT, check=False)


def test_control_an_unrelated_change_is_admitted(cluster: Cluster, restricted: str) -> None:
    """Same procedure as the refusals, with a change PodSecurity does not judge."""
    release = release_name("psa-ctl")
    proc = helm_install(
        cluster, restricted, release, SERVICE, "--wait", TIMEOUT,
        "--set", "securityContext.readOnlyRootFilesystem=false",
        "--set-json", f"podLabels={json.dumps({'control': 'yes'})}",
    )  # fmt: skip

    assert "PodSecurity" not in proc.stderr
    pods = assert_available(cluster, restricted, release)
    assert len(pods) == 1
    assert pods[0]["metadata"]["labels"]["control"] == "yes"
    assert failed_create_messages(cluster, restricted) == []
