"""templates/hpa.yaml."""

from __future__ import annotations

import pytest

from tests.support.charts import SERVICE, find, one, render

pytestmark = pytest.mark.render


def test_should_not_render_by_default() -> None:
    assert not find(render(SERVICE), "HorizontalPodAutoscaler")


def test_should_scale_the_stable_deployment_on_cpu() -> None:
    hpa = one(
        render(SERVICE, {"autoscaling": {"enabled": True, "maxReplicas": 6}}),
        "HorizontalPodAutoscaler",
    )

    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "demo-model-service",
    }
    assert hpa["spec"]["maxReplicas"] == 6
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]


def test_should_add_memory_and_drop_cpu_on_request() -> None:
    values = {
        "autoscaling": {
            "enabled": True,
            "targetCPUUtilizationPercentage": None,
            "targetMemoryUtilizationPercentage": 75,
        }
    }
    hpa = one(render(SERVICE, values), "HorizontalPodAutoscaler")

    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "memory",
                "target": {"type": "Utilization", "averageUtilization": 75},
            },
        }
    ]
