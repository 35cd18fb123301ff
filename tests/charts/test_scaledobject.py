"""templates/scaledobject.yaml: KEDA scales on prediction requests per second per replica."""

from __future__ import annotations

import pytest

from modelops_service import recording_rules
from tests.support.charts import SERVICE, find, one, render

pytestmark = pytest.mark.render

PROM = "http://prometheus-operated.monitoring.svc:9090"
MODEL_DEPLOYMENT = {"apiVersion": "modelops.io/v1alpha1", "kind": "ModelDeployment", "name": "w"}


def scaled(values: dict | None = None) -> list[dict]:
    base = {"enabled": True, "prometheusUrl": PROM, **(values or {})}
    return render(SERVICE, {"scaledObject": base})


def test_should_not_render_by_default() -> None:
    assert not find(render(SERVICE), "ScaledObject")


def test_should_scale_the_stable_deployment_on_the_request_rate() -> None:
    objs = scaled({"maxReplicas": 8, "targetRequestsPerSecond": 40})
    so = one(objs, "ScaledObject")

    assert so["apiVersion"] == "keda.sh/v1alpha1"
    assert so["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "demo-model-service",
    }
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (1, 8)
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metricType"] == "AverageValue"
    meta = trigger["metadata"]
    assert meta["serverAddress"] == PROM
    assert meta["threshold"] == "40"  # KEDA reads trigger metadata as strings
    # the whole model's rate (every version), from the recording rule the chart ships
    assert meta["query"] == (
        f'sum({recording_rules.REQUESTS_RATE1M.name}{{namespace="models",model="wine"}})'
    )
    # KEDA's HPA owns the replicas: the Deployment leaves them out
    assert "replicas" not in one(objs, "Deployment")["spec"]


def test_the_requests_rule_is_the_catalog_one() -> None:
    so = one(scaled(), "ScaledObject")
    assert recording_rules.REQUESTS_RATE1M.name in so["spec"]["triggers"][0]["metadata"]["query"]


def test_should_wait_the_stabilisation_window_before_scaling_down() -> None:
    so = one(scaled({"scaleDownStabilizationSeconds": 90}), "ScaledObject")
    behavior = so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior == {"scaleDown": {"stabilizationWindowSeconds": 90}}


def test_should_add_a_cpu_trigger_on_request() -> None:
    so = one(scaled({"targetCPUUtilizationPercentage": 70}), "ScaledObject")
    assert so["spec"]["triggers"][1] == {
        "type": "cpu",
        "name": "cpu",
        "metricType": "Utilization",
        "metadata": {"value": "70"},
    }


def test_should_target_the_model_deployment_when_the_operator_says_so() -> None:
    objs = scaled({"scaleTargetRef": MODEL_DEPLOYMENT})
    assert one(objs, "ScaledObject")["spec"]["scaleTargetRef"] == MODEL_DEPLOYMENT
    # the operator, not the HPA, sets the Deployment's replicas from the ModelDeployment
    assert one(objs, "Deployment")["spec"]["replicas"] == 1
