"""Values that can never work are refused at render time (issue 17, item 10).

templates/_validate.tpl refuses bounds that depend on each other; values.schema.json the
ranges of single fields (the rule parameters' from their types in alerts/params.yaml). Either
way the message must name the value, so the user knows what to fix.
"""

from __future__ import annotations

import pytest

from tests.support.charts import SERVICE, find, render, template

pytestmark = pytest.mark.render

PARAMS = ("monitoring", "prometheusRule", "params")


def nested(path: tuple[str, ...], value: object) -> dict:
    for key in reversed(path):
        value = {key: value}
    return value  # type: ignore[return-value]


def param(name: str, value: float) -> dict:
    return nested((*PARAMS, name), value)


REFUSED = [
    pytest.param(
        {"autoscaling": {"enabled": True, "minReplicas": 6, "maxReplicas": 5}},
        ["autoscaling.minReplicas (6) is above autoscaling.maxReplicas (5)"],
        id="autoscaling-bounds-out-of-order",
    ),
    pytest.param(
        {"autoscaling": {"enabled": True}, "resources": {"requests": None}},
        ["autoscaling.targetCPUUtilizationPercentage needs resources.requests.cpu"],
        id="cpu-target-without-cpu-request",
    ),
    pytest.param(
        {
            "autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": 80},
            "resources": {"requests": {"cpu": "100m", "memory": None}},
        },
        ["autoscaling.targetMemoryUtilizationPercentage needs resources.requests.memory"],
        id="memory-target-without-memory-request",
    ),
    pytest.param(
        {
            "scaledObject": {
                "enabled": True,
                "prometheusUrl": "http://p:9090",
                "minReplicas": 4,
                "maxReplicas": 3,
            }
        },
        ["scaledObject.minReplicas (4) is above scaledObject.maxReplicas (3)"],
        id="scaled-object-bounds-out-of-order",
    ),
    pytest.param(
        {
            "scaledObject": {"enabled": True, "prometheusUrl": "http://p:9090"},
            "autoscaling": {"enabled": True},
        },
        ["autoscaling.enabled and scaledObject.enabled both scale the stable Deployment"],
        id="two-autoscalers-on-one-deployment",
    ),
    pytest.param(
        {"scaledObject": {"enabled": True}},
        ["scaledObject.prometheusUrl is required"],
        id="scaled-object-without-prometheus",
    ),
    pytest.param(
        {
            "scaledObject": {
                "enabled": True,
                "prometheusUrl": "http://p:9090",
                "targetCPUUtilizationPercentage": 70,
            },
            "resources": {"requests": None},
        },
        ["scaledObject.targetCPUUtilizationPercentage needs resources.requests.cpu"],
        id="scaled-object-cpu-without-cpu-request",
    ),
    pytest.param(
        param("errorRatioThreshold", 1.5),
        ["errorRatioThreshold"],
        id="error-ratio-above-1",
    ),
    pytest.param(
        param("errorRatioThreshold", 1),
        ["errorRatioThreshold"],
        id="error-ratio-1-never-exceeded",
    ),
    pytest.param(
        param("lowConfidenceThreshold", 0),
        ["lowConfidenceThreshold"],
        id="confidence-0-never-undercut",
    ),
    pytest.param(
        param("inputErrorRatioThreshold", -0.1),
        ["inputErrorRatioThreshold"],
        id="input-error-ratio-negative",
    ),
    pytest.param(
        param("memoryLimitRatio", 1.2),
        ["memoryLimitRatio"],
        id="memory-ratio-above-1",
    ),
    pytest.param(
        param("lowConfidenceThreshold", 1.01),
        ["lowConfidenceThreshold"],
        id="confidence-above-1",
    ),
    pytest.param(
        param("sloObjective", 1),
        ["sloObjective"],
        id="slo-objective-1-leaves-no-budget",
    ),
    pytest.param(
        param("sloObjective", 99.5),
        ["sloObjective"],
        id="slo-objective-as-percent",
    ),
    pytest.param(
        {"monitoring": {"serviceMonitor": {"interval": "5s"}}},
        ["monitoring.serviceMonitor.scrapeTimeout (10s) is longer than", "interval (5s)"],
        id="scrape-timeout-above-interval",
    ),
    pytest.param(
        {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1500m"}}},
        ["resources.requests.cpu (2) is above resources.limits.cpu (1500m)"],
        id="cpu-request-above-limit",
    ),
    pytest.param(
        {"resources": {"requests": {"memory": "1Gi"}, "limits": {"memory": "1000M"}}},
        ["resources.requests.memory (1Gi) is above resources.limits.memory (1000M)"],
        id="memory-request-above-limit",
    ),
    pytest.param(
        {"terminationGracePeriodSeconds": 5},
        ["shutdownDelaySeconds (15) is not below terminationGracePeriodSeconds (5)"],
        id="shutdown-delay-past-the-grace-period",
    ),
]


@pytest.mark.parametrize(("values", "messages"), REFUSED)
def test_should_refuse_values_that_can_never_work(helm_bin, values, messages) -> None:
    err = template(SERVICE, values, binary=helm_bin, expect_failure=True)

    for message in messages:
        assert message in err


ACCEPTED = [
    pytest.param(
        {"autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 3}},
        id="autoscaling-min-equals-max",
    ),
    pytest.param(
        {"autoscaling": {"enabled": False, "minReplicas": 9, "maxReplicas": 2}},
        id="autoscaling-bounds-unused-when-disabled",
    ),
    pytest.param(
        {
            "monitoring": {
                "prometheusRule": {
                    "params": {
                        "errorRatioThreshold": 0,
                        "lowConfidenceThreshold": 1,
                        "sloObjective": 0.999,
                        "memoryLimitRatio": 0.95,
                    }
                }
            }
        },
        id="ratios-at-their-inclusive-edges",
    ),
    pytest.param(
        {"monitoring": {"serviceMonitor": {"interval": "1m30s", "scrapeTimeout": "90s"}}},
        id="scrape-timeout-equal-to-interval",
    ),
    pytest.param(
        {"monitoring": {"serviceMonitor": {"interval": "500ms", "scrapeTimeout": "250ms"}}},
        id="millisecond-durations",
    ),
    pytest.param(
        {
            "resources": {
                "requests": {"cpu": "1000m", "memory": "1Gi"},
                "limits": {"cpu": 1, "memory": "1024Mi"},
            }
        },
        id="request-equal-to-limit-in-other-units",
    ),
]


@pytest.mark.parametrize("values", ACCEPTED)
def test_should_accept_values_at_the_edges(helm_bin, values) -> None:
    assert find(render(SERVICE, values, binary=helm_bin), "Deployment")
