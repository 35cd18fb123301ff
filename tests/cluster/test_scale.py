"""ModelDeployment /scale on the rig (KWOK nodes): `kubectl scale md` sizes the whole model,
the operator splits it between stable and canary, and nothing fights over replicas.

KEDA is not running here (its CRDs are installed for one test, so the operator's ScaledObject
can be read back); the autoscaling loop itself is the KEDA rig's (issue 18, Show 2).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.cluster import Cluster
from devstack.operator_process import OperatorProcess, running_operator
from tests.support.operator_rig import (
    condition,
    event_reasons,
    md_body,
    set_model,
    status_of,
    wait_for,
    wait_phase,
)

pytestmark = pytest.mark.cluster

AUTOSCALING = {"minReplicas": 2, "maxReplicas": 6, "targetRequestsPerSecond": 20}


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory) -> Iterator[OperatorProcess]:
    with running_operator(cluster, tmp_path_factory.mktemp("operator")) as op:
        yield op


def replicas(cluster: Cluster, ns: str) -> dict[str, int]:
    deps = cluster.get("deployments", "-n", ns)["items"]
    return {d["metadata"]["name"]: d["spec"]["replicas"] for d in deps}


def scale(cluster: Cluster, ns: str, name: str, n: int) -> None:
    cluster.kubectl("scale", f"md/{name}", "-n", ns, f"--replicas={n}")


def wait_replicas(cluster, op, ns: str, expected: dict[str, int]) -> None:
    wait_for(lambda: replicas(cluster, ns) == expected, f"Deployments at {expected}",
             explain=lambda: f"{replicas(cluster, ns)}\n{op.tail()}")  # fmt: skip


def test_kubectl_scale_md_sizes_the_model_without_drift_events(cluster, operator, namespace):
    cluster.apply(md_body("wine", namespace, rollout={"strategy": "RollingUpdate"}))
    wait_phase(cluster, operator, namespace, "wine", "Ready")
    wait_for(lambda: status_of(cluster, namespace, "wine").get("replicas") == 2, "status 2")

    # the /scale subresource, as an autoscaler reads it
    sub = cluster.kubectl(
        "get", "--raw",
        f"/apis/modelops.io/v1alpha1/namespaces/{namespace}/modeldeployments/wine/scale",
    ).stdout  # fmt: skip
    assert '"replicas":2' in sub
    selector = status_of(cluster, namespace, "wine")["selector"]
    assert selector == "app.kubernetes.io/instance=wine,app.kubernetes.io/name=model-service"
    pods = cluster.get("pods", "-n", namespace, "-l", selector)["items"]
    assert len(pods) == 2

    scale(cluster, namespace, "wine", 5)
    wait_replicas(cluster, operator, namespace, {"wine-model-service": 5})
    wait_for(lambda: status_of(cluster, namespace, "wine").get("replicas") == 5, "status 5")
    scale(cluster, namespace, "wine", 1)
    wait_replicas(cluster, operator, namespace, {"wine-model-service": 1})
    assert "DriftCorrected" not in event_reasons(cluster, namespace, "wine")


def test_a_scale_up_during_a_canary_at_50_keeps_the_ratio(cluster, operator, namespace):
    rollout = {
        "strategy": "Canary",
        "steps": [50, 100],
        "interval": "2s",
        # an unreachable Prometheus holds the canary at its first step (never promotes)
        "analysis": {"minRequests": 1, "prometheusUrl": "http://127.0.0.1:9"},
    }
    cluster.apply(md_body("wine", namespace, rollout=rollout))
    wait_phase(cluster, operator, namespace, "wine", "Ready")
    set_model(cluster, namespace, "wine", "wine", "2")
    wait_replicas(cluster, operator, namespace,
                  {"wine-model-service": 2, "wine-model-service-canary": 2})  # fmt: skip
    scale(cluster, namespace, "wine", 4)
    wait_replicas(cluster, operator, namespace,
                  {"wine-model-service": 4, "wine-model-service-canary": 4})  # fmt: skip
    status = status_of(cluster, namespace, "wine")
    assert status["canaryWeight"] == 50
    assert status["effectiveCanaryWeight"] == 50.0
    # /scale counts the track that carries the total, not stable + canary
    wait_for(lambda: status_of(cluster, namespace, "wine").get("replicas") == 4, "status 4")
    assert "DriftCorrected" not in event_reasons(cluster, namespace, "wine")


def test_autoscaling_without_keda_says_what_is_missing(cluster, operator, namespace):
    cluster.apply(md_body("wine", namespace, replicas=1, autoscaling=AUTOSCALING,
                          rollout={"strategy": "RollingUpdate"}))  # fmt: skip
    # the bounds hold meanwhile: replicas 1 runs at minReplicas 2
    wait_replicas(cluster, operator, namespace, {"wine-model-service": 2})

    def missing():
        cond = condition(status_of(cluster, namespace, "wine"), "AutoscalingReady")
        return cond if cond.get("reason") == "KedaMissing" else None

    cond = wait_for(missing, "AutoscalingReady=False KedaMissing", explain=operator.tail)
    assert cond["status"] == "False"
    assert "scaledobjects.keda.sh" in cond["message"]


@pytest.fixture
def keda_crds(cluster: Cluster) -> Iterator[None]:
    """KEDA's CRDs for one test (the rig stays without them for the others)."""
    names = cluster.install_keda_crds()
    yield
    cluster.kubectl("delete", *names, "--timeout=60s", check=False)


def test_with_keda_crds_the_operator_owns_one_scaled_object_on_the_model(
    cluster, operator, namespace, keda_crds
):
    cluster.apply(md_body("wine", namespace, replicas=3, autoscaling=AUTOSCALING,
                          rollout={"strategy": "RollingUpdate"}))  # fmt: skip

    def applied():
        cond = condition(status_of(cluster, namespace, "wine"), "AutoscalingReady")
        return cond if cond.get("status") == "True" else None

    wait_for(applied, "AutoscalingReady=True", explain=operator.tail)
    (so,) = cluster.get("scaledobjects.keda.sh", "-n", namespace)["items"]
    assert so["spec"]["scaleTargetRef"] == {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "name": "wine",
    }
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (2, 6)
    assert so["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"
    # autoscaling off again: the ScaledObject is pruned, the condition goes
    cluster.kubectl("patch", "md", "wine", "-n", namespace, "--type", "json",
                    "-p", '[{"op": "remove", "path": "/spec/autoscaling"}]')  # fmt: skip
    wait_for(lambda: not cluster.get("scaledobjects.keda.sh", "-n", namespace)["items"],
             "the ScaledObject pruned", explain=operator.tail)  # fmt: skip
    assert not condition(status_of(cluster, namespace, "wine"), "AutoscalingReady")
