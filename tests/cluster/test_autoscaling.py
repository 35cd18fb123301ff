"""spec.autoscaling end to end on the rig: KEDA (operator and metrics server from the pinned
module, local processes registered as the external metrics APIService), the real
kube-controller-manager's HorizontalPodAutoscaler controller, the real operator, and a real
request rate: the real service for version 1 under prediction traffic, scraped by a real
Prometheus that evaluates the recording rules of alerts/.

The pods are KWOK's (Ready as soon as they are scheduled): what scales is the Deployments'
replicas, which is all the scaling logic needs. The traffic goes to one local service
process, not through the pods (nothing runs inside a KWOK pod), so the request rate is real
but does not spread over the replicas; the time to Ready of real pods is the real-node
benchmark's (bench/autoscaling).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.canary import Traffic, dataset_rows, start_prometheus
from devstack.cluster import Cluster
from devstack.keda import Keda, running_keda
from devstack.operator_process import running_operator
from devstack.service_process import demo_model_dir, start_service
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

TARGET_RPS = 4  # requests per second per replica
LOAD_RPS = 11  # -> ceil(11 / 4) = 3 replicas
STABILIZATION = "20s"


@pytest.fixture(scope="module")
def keda(cluster: Cluster, tmp_path_factory) -> Iterator[Keda]:
    with running_keda(cluster, tmp_path_factory.mktemp("keda")) as k:
        yield k


def replicas(cluster: Cluster, ns: str) -> dict[str, int]:
    deps = cluster.get("deployments", "-n", ns)["items"]
    return {d["metadata"]["name"]: d["spec"]["replicas"] for d in deps}


def test_request_rate_scales_the_model_and_a_canary_keeps_its_share(cluster, keda, namespace):
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="autoscale-")))
        service = start_service(demo_model_dir("wine", "1"), log_dir=workdir)
        stack.callback(service.stop)
        prom = start_prometheus(workdir, [service.url], namespace)
        stack.callback(prom.stop)
        op = stack.enter_context(
            running_operator(cluster, workdir / "operator", prometheus_url=prom.url)
        )

        def explain() -> str:
            hpas = cluster.kubectl("get", "hpa", "-n", namespace, "-o", "wide", check=False)
            return f"{replicas(cluster, namespace)}\n{hpas.stdout}\n{keda.tail()}\n{op.tail()}"

        autoscaling = {
            "minReplicas": 1,
            "maxReplicas": 5,
            "targetRequestsPerSecond": TARGET_RPS,
            "scaleDownStabilization": STABILIZATION,
        }
        rollout = {
            "strategy": "Canary",
            "steps": [50, 100],
            "interval": "2s",
            # never enough requests on the canary: the canary stays at 50% while we scale
            "analysis": {"minRequests": 1000000, "deadline": "30m"},
        }
        cluster.apply(md_body("wine", namespace, replicas=1, autoscaling=autoscaling,
                              rollout=rollout))  # fmt: skip
        wait_phase(cluster, op, namespace, "wine", "Ready")
        cond = wait_for(
            lambda: condition(status_of(cluster, namespace, "wine"), "AutoscalingReady"),
            "AutoscalingReady",
        )
        assert cond["status"] == "True"
        hpa = wait_for(
            lambda: cluster.get("hpa", "-n", namespace)["items"], "KEDA's HPA", explain=explain
        )[0]
        assert hpa["spec"]["scaleTargetRef"]["kind"] == "ModelDeployment"
        assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 20

        # traffic up -> replicas up
        traffic = stack.enter_context(Traffic([service.url], dataset_rows("wine"), rate=LOAD_RPS))
        wait_for(lambda: replicas(cluster, namespace).get("wine-model-service", 0) >= 3,
                 "3 replicas under load", timeout=240, explain=explain)  # fmt: skip
        total = get_total(cluster, namespace)
        assert 3 <= total <= 5

        # a canary at 50% under the same load: both tracks at the autoscaler's total
        set_model(cluster, namespace, "wine", "wine", "2")
        wait_for(lambda: status_of(cluster, namespace, "wine").get("canaryWeight") == 50,
                 "the canary at 50%", explain=explain)  # fmt: skip
        total = get_total(cluster, namespace)
        wait_for(lambda: replicas(cluster, namespace) == {"wine-model-service": total,
                                                         "wine-model-service-canary": total},
                 f"{total} + {total}", explain=explain)  # fmt: skip
        assert status_of(cluster, namespace, "wine")["effectiveCanaryWeight"] == 50.0

        # traffic down -> replicas down, both tracks, after the stabilisation window
        traffic.__exit__(None, None, None)
        wait_for(lambda: replicas(cluster, namespace) == {"wine-model-service": 1,
                                                         "wine-model-service-canary": 1},
                 "1 + 1 without load", timeout=300, explain=explain)  # fmt: skip
        assert status_of(cluster, namespace, "wine")["canaryWeight"] == 50
        assert "DriftCorrected" not in event_reasons(cluster, namespace, "wine")


def get_total(cluster: Cluster, ns: str) -> int:
    return int(cluster.get("md", "wine", "-n", ns)["spec"]["replicas"])
