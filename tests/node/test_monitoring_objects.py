"""The monitoring stack's objects as devstack.prometheus_operator builds them (no cluster):
kube-prometheus-stack's values are the one source of the selectors, upstream's manifests are
moved to `monitoring` and point at the local images only."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from devstack.paths import KUBE_STATE_METRICS_MANIFESTS, PROMETHEUS_OPERATOR_MANIFESTS
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
    for name in (
        "prometheus",
        "alertmanager",
        "prometheus-operator",
        "prometheus-config-reloader",
        "kube-state-metrics",
    )
}


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], dict]:
    values = yaml.safe_load(KPS_VALUES.read_text())
    built = stack_objects(
        values, IMAGES, PROMETHEUS_OPERATOR_MANIFESTS, KUBE_STATE_METRICS_MANIFESTS
    )
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
    ksm = objects[("Deployment", "kube-state-metrics")]
    (container,) = ksm["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "localhost/modelops/kube-state-metrics:v9.9.9"
    assert container["imagePullPolicy"] == "Never"
    deployments = [o for o in objects.values() if o["kind"] == "Deployment"]
    images = {c["image"] for d in deployments for c in d["spec"]["template"]["spec"]["containers"]}
    images |= {o["spec"]["image"] for o in objects.values() if "image" in o.get("spec", {})}
    assert images, objects.keys()
    assert all(i.startswith("localhost/modelops/") for i in images), images  # no registry


def test_kube_state_metrics_is_scraped_as_kube_prometheus_stack_scrapes_it(objects) -> None:
    """Its Service's metrics port, its own `namespace` labels kept (honorLabels): a
    kube_deployment_spec_replicas{namespace="models"} is about models' Deployment."""
    monitor = objects[("ServiceMonitor", "kube-prometheus-stack-kube-state-metrics")]
    service = objects[("Service", "kube-state-metrics")]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["honorLabels"] is True
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"] == NAMESPACE


def test_alerts_go_nowhere_until_a_webhook_is_given() -> None:
    assert alertmanager_config()["route"]["receiver"] == "null"
    routed = alertmanager_config("http://10.245.255.1:9999/hook")
    (receiver,) = routed["receivers"]
    assert receiver["webhook_configs"][0]["url"] == "http://10.245.255.1:9999/hook"
    assert routed["route"]["receiver"] == receiver["name"]
