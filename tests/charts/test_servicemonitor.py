"""templates/servicemonitor.yaml, and what happens without the monitoring.coreos.com API."""

from __future__ import annotations

import pytest

from tests.support.charts import SERVICE, find, helm, one, render, selects, template

pytestmark = pytest.mark.render


def test_should_select_the_service_by_its_labels_and_name_its_port() -> None:
    objs = render(SERVICE, {"canary": {"enabled": True, "version": "2"}})
    sm, svc = one(objs, "ServiceMonitor"), one(objs, "Service")

    assert selects(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
    assert sm["spec"]["namespaceSelector"] == {"matchNames": ["models"]}
    port_names = {p["name"] for p in svc["spec"]["ports"]}
    assert [e["port"] for e in sm["spec"]["endpoints"]] == ["http"]
    assert sm["spec"]["endpoints"][0]["port"] in port_names
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"


def test_should_match_kube_prometheus_stack_release_label_by_default() -> None:
    sm = one(render(SERVICE), "ServiceMonitor")

    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["metadata"]["labels"]["modelops.io/model"] == "wine"


def test_should_take_labels_interval_and_timeout_from_values() -> None:
    sm = one(
        render(
            SERVICE,
            {
                "monitoring": {
                    "serviceMonitor": {
                        "labels": {"release": "kps", "team": "ml"},
                        "interval": "30s",
                        "scrapeTimeout": "5s",
                    }
                }
            },
        ),
        "ServiceMonitor",
    )

    assert sm["metadata"]["labels"]["release"] == "kps"
    assert sm["metadata"]["labels"]["team"] == "ml"
    assert sm["spec"]["endpoints"][0]["interval"] == "30s"
    assert sm["spec"]["endpoints"][0]["scrapeTimeout"] == "5s"


def test_should_copy_model_version_and_track_pod_labels_onto_series() -> None:
    sm = one(render(SERVICE), "ServiceMonitor")

    assert sm["spec"]["podTargetLabels"] == [
        "modelops.io/model",
        "modelops.io/version",
        "modelops.io/track",
    ]


def test_should_not_render_when_disabled() -> None:
    objs = render(SERVICE, {"monitoring": {"serviceMonitor": {"enabled": False}}})

    assert not find(objs, "ServiceMonitor")


@pytest.mark.parametrize(
    "api", ["monitoring.coreos.com/v1", "monitoring.coreos.com/v1/ServiceMonitor"]
)
def test_should_render_when_the_cluster_serves_the_api(api: str) -> None:
    assert find(render(SERVICE, api_versions=[api]), "ServiceMonitor")


def test_should_skip_monitoring_objects_without_the_api_by_default() -> None:
    objs = render(SERVICE, api_versions=[])

    assert not find(objs, "ServiceMonitor")
    assert not find(objs, "PrometheusRule")
    assert find(objs, "Deployment")


def test_should_fail_with_a_clear_message_without_the_api_when_asked(helm_bin: str) -> None:
    err = template(
        SERVICE,
        {"monitoring": {"missingCrds": "fail"}},
        api_versions=[],
        binary=helm_bin,
        expect_failure=True,
    )

    assert "does not serve monitoring.coreos.com/v1" in err
    assert "ServiceMonitor" in err
    assert "missingCrds=skip" in err


def test_should_render_without_the_api_when_told_to() -> None:
    objs = render(SERVICE, {"monitoring": {"missingCrds": "render"}}, api_versions=[])

    assert find(objs, "ServiceMonitor")


def test_should_warn_in_notes_when_monitoring_objects_are_skipped() -> None:
    # helm 4 renders NOTES offline (`install --dry-run=client`); helm 3 wants a cluster for
    # that, and the install tests read its NOTES there.
    proc = helm("install", "demo", SERVICE, "--dry-run=client", "-n", "models")

    assert proc.returncode == 0, proc.stderr
    assert "WARNING: this cluster does not serve monitoring.coreos.com/v1" in proc.stdout
    assert "port-forward service/demo-model-service 8080:8080" in proc.stdout
