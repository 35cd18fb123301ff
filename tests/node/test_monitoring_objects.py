"""The monitoring stack's objects as devstack.prometheus_operator builds them (no cluster):
kube-prometheus-stack's values are the one source of the selectors, upstream's manifests are
moved to `monitoring` and point at the local images only."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from devstack.paths import PROMETHEUS_OPERATOR_MANIFESTS
from devstack.prometheus_operator import (
    KPS_VALUES,
    NAMESPACE,
    Image,
    alertmanager_config,
    kps_spec,
    stack_objects,
)

IMAGES = {
    name: Image(name, Path(f"/bin/{name}"), f"/bin/{name}", "v9.9.9")
    for name in ("prometheus", "alertmanager", "prometheus-operator", "prometheus-config-reloader")
}


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], dict]:
    values = yaml.safe_load(KPS_VALUES.read_text())
    built = stack_objects(values, IMAGES, PROMETHEUS_OPERATOR_MANIFESTS)
    return {(o["kind"], o["metadata"]["name"]): o for o in built}


def test_the_prometheus_selects_what_the_kps_values_select(objects) -> None:
    spec = objects[("Prometheus", "kube-prometheus-stack-prometheus")]["spec"]
    values = yaml.safe_load(KPS_VALUES.read_text())["prometheus"]["prometheusSpec"]
    for key in ("serviceMonitorSelector", "ruleSelector", "ruleNamespaceSelector"):
        assert spec[key] == values[key] == {}, key
    assert spec["scrapeInterval"] == values["scrapeInterval"]
    assert not any(k.endswith("NilUsesHelmValues") for k in spec)
    assert spec["image"] == "localhost/modelops/prometheus:v9.9.9"
    assert spec["version"] == "v9.9.9"
    assert kps_spec({"alertmanager": {"alertmanagerSpec": {"replicas": 1}}}, "alertmanager") == {
        "replicas": 1
    }


def test_upstreams_manifests_run_in_monitoring_with_the_local_images_only(objects) -> None:
    for (kind, name), obj in objects.items():
        if not kind.startswith("Cluster") and kind != "Namespace":
            assert obj["metadata"]["namespace"] == NAMESPACE, (kind, name)
        for subject in obj.get("subjects", []):
            assert subject["namespace"] == NAMESPACE, (kind, name)
    deploy = objects[("Deployment", "prometheus-operator")]
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "localhost/modelops/prometheus-operator:v9.9.9"
    assert container["imagePullPolicy"] == "Never"
    reloader = [a for a in container["args"] if a.startswith("--prometheus-config-reloader=")]
    assert reloader == [
        "--prometheus-config-reloader=localhost/modelops/prometheus-config-reloader:v9.9.9"
    ]
    assert "quay.io" not in yaml.safe_dump(list(objects.values()))


def test_alerts_go_nowhere_until_a_webhook_is_given() -> None:
    assert alertmanager_config()["route"]["receiver"] == "null"
    routed = alertmanager_config("http://10.245.255.1:9999/hook")
    (receiver,) = routed["receivers"]
    assert receiver["webhook_configs"][0]["url"] == "http://10.245.255.1:9999/hook"
    assert routed["route"]["receiver"] == receiver["name"]
