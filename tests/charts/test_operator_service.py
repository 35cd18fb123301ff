"""model-operator templates/service.yaml and servicemonitor.yaml: the operator's own metrics."""

from __future__ import annotations

import pytest

from tests.support.charts import OPERATOR, find, one, render, selects

pytestmark = pytest.mark.render


def test_should_expose_the_metrics_port() -> None:
    objs = render(OPERATOR)
    svc = one(objs, "Service")
    pods = one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]

    assert svc["metadata"]["name"] == "demo-model-operator-metrics"
    assert svc["spec"]["ports"] == [
        {"name": "metrics", "port": 8000, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert selects(svc["spec"]["selector"], pods)


def test_should_not_create_a_service_monitor_by_default() -> None:
    assert not find(render(OPERATOR), "ServiceMonitor")


def test_should_scrape_the_metrics_service_when_asked() -> None:
    objs = render(OPERATOR, {"metrics": {"serviceMonitor": {"enabled": True}}})
    sm, svc = one(objs, "ServiceMonitor"), one(objs, "Service")

    assert selects(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_should_skip_the_service_monitor_without_the_api() -> None:
    objs = render(OPERATOR, {"metrics": {"serviceMonitor": {"enabled": True}}}, api_versions=[])

    assert not find(objs, "ServiceMonitor")


def test_every_operator_object_carries_the_standard_labels() -> None:
    objs = render(
        OPERATOR, {"watchNamespaces": ["m"], "metrics": {"serviceMonitor": {"enabled": True}}}
    )

    for obj in objs:
        for key in ("name", "instance", "version", "managed-by", "part-of"):
            assert f"app.kubernetes.io/{key}" in obj["metadata"]["labels"], obj["kind"]


def test_the_chart_carries_the_crd_in_crds() -> None:
    crds = sorted((OPERATOR / "crds").glob("*.yaml"))

    for crd in crds:
        assert "kind: CustomResourceDefinition" in crd.read_text()
    names = [p.name for p in crds]
    assert names in ([], ["modeldeployments.modelops.io.yaml"])
