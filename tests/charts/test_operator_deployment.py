"""model-operator templates/deployment.yaml: one replica, Recreate, liveness, settings."""

from __future__ import annotations

import json

import pytest

from tests.support.charts import OPERATOR, one, render, selects

pytestmark = pytest.mark.render


def operator(values: dict | None = None) -> dict:
    return one(render(OPERATOR, values, namespace="modelops-system"), "Deployment")


def container(deploy: dict) -> dict:
    return deploy["spec"]["template"]["spec"]["containers"][0]


def env(deploy: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(deploy)["env"]}


def test_should_run_one_replica_with_recreate() -> None:
    deploy = operator()

    assert deploy["metadata"]["name"] == "demo-model-operator"
    assert deploy["spec"]["replicas"] == 1
    assert deploy["spec"]["strategy"] == {"type": "Recreate"}
    assert selects(
        deploy["spec"]["selector"]["matchLabels"], deploy["spec"]["template"]["metadata"]["labels"]
    )


def test_should_run_the_modelops_operator_image() -> None:
    assert container(operator())["image"] == "modelops-operator:0.1.0"
    assert container(operator({"image": {"tag": "0.2.0"}}))["image"] == "modelops-operator:0.2.0"


def test_should_probe_liveness_on_healthz_and_expose_metrics() -> None:
    c = container(operator())

    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"health": 8080, "metrics": 8000}


@pytest.mark.parametrize(
    ("watch", "expected"),
    [([], []), (["models"], ["models"]), (["a", "b"], ["a", "b"])],
)
def test_should_pass_the_watched_namespaces_as_a_json_list(watch: list, expected: list) -> None:
    value = env(operator({"watchNamespaces": watch}))["MODELOPS_OPERATOR_NAMESPACES"]

    assert json.loads(value) == expected


def test_should_pass_ports_log_level_own_namespace_and_extra_settings() -> None:
    config = {"MODELOPS_OPERATOR_TICK_SECONDS": 5, "MODELOPS_OPERATOR_RESYNC_SECONDS": 3600000}
    e = env(operator({"logLevel": "debug", "config": config}))

    assert e["MODELOPS_OPERATOR_METRICS_PORT"] == "8000"
    assert e["MODELOPS_OPERATOR_HEALTH_PORT"] == "8080"
    assert e["MODELOPS_OPERATOR_LOG_LEVEL"] == "debug"
    assert e["MODELOPS_OPERATOR_POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert e["MODELOPS_OPERATOR_TICK_SECONDS"] == "5"
    assert e["MODELOPS_OPERATOR_RESYNC_SECONDS"] == "3600000"  # not 3.6e+06
    assert all(name.startswith("MODELOPS_OPERATOR_") for name in e)


def test_should_run_non_root_read_only_without_capabilities() -> None:
    deploy = operator()
    pod, c = deploy["spec"]["template"]["spec"], container(deploy)

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["resources"]["limits"]
    assert pod["serviceAccountName"] == "demo-model-operator"
