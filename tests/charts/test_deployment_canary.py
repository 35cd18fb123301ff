"""templates/deployment-canary.yaml: the canary Deployment of the canary contract."""

from __future__ import annotations

import pytest

from tests.support.charts import SERVICE, find, one, render, selects, template

pytestmark = pytest.mark.render

CANARY = {
    "model": {"name": "wine", "version": "1", "artifact": "/models/wine/1", "sha256": "a" * 64},
    "replicaCount": 3,
    "canary": {
        "enabled": True,
        "version": "2",
        "artifact": "/models/wine/2",
        "sha256": "b" * 64,
        "replicaCount": 1,
    },
}


def deployments(values: dict) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in find(render(SERVICE, values), "Deployment")}


def env(deploy: dict) -> dict:
    c = deploy["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in c.get("env", [])}


def test_should_not_render_a_canary_by_default() -> None:
    assert list(deployments({})) == ["demo-model-service"]


def test_should_render_the_canary_beside_the_stable_deployment() -> None:
    deploys = deployments(CANARY)

    assert set(deploys) == {"demo-model-service", "demo-model-service-canary"}
    assert deploys["demo-model-service"]["spec"]["replicas"] == 3
    assert deploys["demo-model-service-canary"]["spec"]["replicas"] == 1


def test_should_label_the_canary_with_its_own_version_and_track() -> None:
    canary = deployments(CANARY)["demo-model-service-canary"]
    labels = canary["spec"]["template"]["metadata"]["labels"]

    assert labels["modelops.io/track"] == "canary"
    assert labels["modelops.io/version"] == "2"
    assert labels["modelops.io/model"] == "wine"
    assert labels["app.kubernetes.io/version"] == "2"
    assert canary["metadata"]["labels"]["modelops.io/track"] == "canary"


def test_should_give_each_track_its_own_model_artifact_and_digest() -> None:
    deploys = deployments(CANARY)

    assert env(deploys["demo-model-service"]) == {
        "MODELOPS_PORT": "8080",
        "MODELOPS_MODEL_NAME": "wine",
        "MODELOPS_MODEL_VERSION": "1",
        "MODELOPS_MODEL_DIR": "/models/wine/1",
        "MODELOPS_MODEL_SHA256": "a" * 64,
    }
    assert env(deploys["demo-model-service-canary"]) == {
        "MODELOPS_PORT": "8080",
        "MODELOPS_MODEL_NAME": "wine",
        "MODELOPS_MODEL_VERSION": "2",
        "MODELOPS_MODEL_DIR": "/models/wine/2",
        "MODELOPS_MODEL_SHA256": "b" * 64,
    }


def test_should_keep_the_two_deployment_selectors_disjoint() -> None:
    deploys = deployments(CANARY)
    stable, canary = deploys["demo-model-service"], deploys["demo-model-service-canary"]
    stable_pods = stable["spec"]["template"]["metadata"]["labels"]
    canary_pods = canary["spec"]["template"]["metadata"]["labels"]

    assert not selects(stable["spec"]["selector"]["matchLabels"], canary_pods)
    assert not selects(canary["spec"]["selector"]["matchLabels"], stable_pods)


def test_should_put_both_tracks_behind_the_one_service() -> None:
    objs = render(SERVICE, CANARY)
    service = one(objs, "Service")
    pods = [d["spec"]["template"]["metadata"]["labels"] for d in find(objs, "Deployment")]

    assert len(find(objs, "Service")) == 1
    assert all(selects(service["spec"]["selector"], p) for p in pods)


@pytest.mark.parametrize(
    ("canary_image", "ref"),
    [
        ({}, "model-service:0.1.0"),
        ({"tag": "0.2.0"}, "model-service:0.2.0"),
        ({"repository": "other/ms", "tag": "7"}, "other/ms:7"),
        ({"digest": "sha256:" + "d" * 64}, "model-service@sha256:" + "d" * 64),
    ],
)
def test_should_default_the_canary_image_to_the_stable_image(canary_image: dict, ref: str) -> None:
    values = {**CANARY, "canary": {**CANARY["canary"], "image": canary_image}}
    canary = deployments(values)["demo-model-service-canary"]

    assert canary["spec"]["template"]["spec"]["containers"][0]["image"] == ref


def test_should_default_the_canary_artifact_to_the_stable_one() -> None:
    values = {**CANARY, "canary": {"enabled": True, "version": "2"}}

    assert env(deployments(values)["demo-model-service-canary"])["MODELOPS_MODEL_DIR"] == (
        "/models/wine/1"
    )


def test_should_scale_the_canary_even_when_the_stable_track_autoscales() -> None:
    deploys = deployments({**CANARY, "autoscaling": {"enabled": True}})

    assert "replicas" not in deploys["demo-model-service"]["spec"]
    assert deploys["demo-model-service-canary"]["spec"]["replicas"] == 1


def test_should_fail_clearly_without_a_canary_version(helm_bin: str) -> None:
    err = template(
        SERVICE,
        {"canary": {"enabled": True}},
        binary=helm_bin,
        expect_failure=True,
    )

    assert "version" in err


def test_should_not_restart_the_canary_when_only_the_stable_version_changes() -> None:
    def canary_template(stable_version: str) -> dict:
        values = {**CANARY, "model": {**CANARY["model"], "version": stable_version}}
        return deployments(values)["demo-model-service-canary"]["spec"]["template"]

    assert canary_template("1") == canary_template("3")
