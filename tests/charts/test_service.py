"""templates/service.yaml."""

from __future__ import annotations

import pytest

from tests.support.charts import SERVICE, one, render

pytestmark = pytest.mark.render


def test_should_expose_the_named_http_port() -> None:
    svc = one(render(SERVICE), "Service")

    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]


def test_should_follow_the_port_value() -> None:
    svc = one(render(SERVICE, {"port": 9000}), "Service")
    deploy = one(render(SERVICE, {"port": 9000}), "Deployment")

    assert svc["spec"]["ports"][0]["port"] == 9000
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == 9000
    assert {"name": "MODELOPS_PORT", "value": "9000"} in container["env"]


def test_should_select_name_and_instance_only() -> None:
    svc = one(render(SERVICE, {"model": {"version": "5"}}), "Service")

    assert svc["spec"]["selector"] == {
        "app.kubernetes.io/name": "model-service",
        "app.kubernetes.io/instance": "demo",
    }


def test_should_carry_extra_labels_and_annotations() -> None:
    values = {"service": {"type": "NodePort", "labels": {"a": "b"}, "annotations": {"c": "d"}}}
    svc = one(render(SERVICE, values), "Service")

    assert svc["spec"]["type"] == "NodePort"
    assert svc["metadata"]["labels"]["a"] == "b"
    assert svc["metadata"]["annotations"] == {"c": "d"}
