"""templates/service-tracks.yaml: one Service per track for an HTTPRoute to weigh."""

from __future__ import annotations

import pytest

from tests.support.charts import SERVICE, find, one, render

pytestmark = pytest.mark.render

CANARY = {"enabled": True, "version": "2", "artifact": "/models/demo/2"}


def services(values: dict) -> dict[str, dict]:
    return {s["metadata"]["name"]: s for s in find(render(SERVICE, values), "Service")}


def test_should_render_no_track_service_by_default() -> None:
    assert list(services({"canary": CANARY})) == ["demo-model-service"]


def test_should_render_the_stable_track_service_when_per_track() -> None:
    svcs = services({"service": {"perTrack": True}})

    assert sorted(svcs) == ["demo-model-service", "demo-model-service-stable"]
    stable = svcs["demo-model-service-stable"]
    assert stable["spec"]["selector"] == {
        "app.kubernetes.io/name": "model-service",
        "app.kubernetes.io/instance": "demo",
        "modelops.io/track": "stable",
    }
    assert stable["metadata"]["labels"]["modelops.io/track"] == "stable"
    assert stable["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]


def test_should_render_the_canary_track_service_while_a_canary_runs() -> None:
    svcs = services({"service": {"perTrack": True}, "canary": CANARY, "port": 9000})

    canary = svcs["demo-model-service-canary"]
    assert canary["spec"]["selector"]["modelops.io/track"] == "canary"
    assert canary["spec"]["ports"][0]["port"] == 9000
    # each track Service selects exactly the pods of its Deployment
    for track in ("stable", "canary"):
        name = "demo-model-service" + ("-canary" if track == "canary" else "")
        deploy = one(render(SERVICE, {"canary": CANARY}), "Deployment", name)
        pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
        selector = svcs[f"demo-model-service-{track}"]["spec"]["selector"]
        assert selector.items() <= pod_labels.items()


def test_should_keep_the_track_services_out_of_the_servicemonitor() -> None:
    objs = render(SERVICE, {"service": {"perTrack": True}, "canary": CANARY})
    selector = one(objs, "ServiceMonitor")["spec"]["selector"]

    def selected(svc: dict) -> bool:
        labels = svc["metadata"]["labels"]
        absent = all(
            e["key"] not in labels
            for e in selector["matchExpressions"]
            if e["operator"] == "DoesNotExist"
        )
        return selector["matchLabels"].items() <= labels.items() and absent

    assert [s["metadata"]["name"] for s in find(objs, "Service") if selected(s)] == [
        "demo-model-service"
    ]
