"""templates/_deployment.tpl with model.uri: the model-fetch init container and its volumes."""

from __future__ import annotations

import pytest

from tests.support.charts import SERVICE, find, one, render

pytestmark = pytest.mark.render

SHA = "ab" * 32
CANARY_SHA = "cd" * 32


def pod_spec(values: dict, name: str = "demo-model-service") -> dict:
    return one(render(SERVICE, values), "Deployment", name)["spec"]["template"]["spec"]


def env_of(container: dict) -> dict:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def mounts_of(container: dict) -> dict:
    return {m["mountPath"]: m for m in container.get("volumeMounts", [])}


def test_should_fetch_a_remote_uri_in_an_init_container_of_the_same_image() -> None:
    spec = pod_spec(
        {
            "model": {
                "uri": "s3://models/wine/2",
                "sha256": SHA,
                "fetch": {"endpoint": "https://10.245.255.1:9000", "credentialsSecret": "s3-keys",
                          "caConfigMap": "rig-ca", "maxBytes": 5000},
            }
        }
    )  # fmt: skip
    (fetch,) = spec["initContainers"]
    service = spec["containers"][0]
    assert fetch["name"] == "model-fetch"
    assert fetch["image"] == service["image"]
    assert fetch["args"] == ["fetch"]
    assert fetch["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert fetch["securityContext"] == service["securityContext"]
    assert env_of(fetch) == {
        "MODELOPS_FETCH_URI": "s3://models/wine/2",
        "MODELOPS_FETCH_SHA256": SHA,
        "MODELOPS_FETCH_DEST": "/model",
        "MODELOPS_FETCH_MAX_BYTES": "5000",
        "MODELOPS_FETCH_TIMEOUT_SECONDS": "300",
        "MODELOPS_FETCH_REGION": "us-east-1",
        "MODELOPS_FETCH_ENDPOINT": "https://10.245.255.1:9000",
        "MODELOPS_FETCH_CA_FILE": "/etc/modelops.io/fetch-ca/ca.crt",
    }
    assert env_of(service)["MODELOPS_MODEL_DIR"] == "/model"
    assert env_of(service)["MODELOPS_MODEL_SHA256"] == SHA
    assert mounts_of(service)["/model"]["readOnly"] is True
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["model"]["emptyDir"] == {"sizeLimit": "2Gi"}
    assert volumes["fetch-credentials"]["secret"] == {"secretName": "s3-keys"}
    assert volumes["fetch-ca"]["configMap"] == {"name": "rig-ca"}


@pytest.mark.parametrize("uri", ["s3://m/w", "https://files.example/w"])
def test_should_mount_the_credentials_into_the_init_container_only(uri) -> None:
    spec = pod_spec({"model": {"uri": uri, "sha256": SHA, "fetch": {"credentialsSecret": "keys"}}})
    secret_path = "/var/run/secrets/modelops.io/fetch"
    assert mounts_of(spec["initContainers"][0])[secret_path]["readOnly"] is True
    assert all(secret_path not in mounts_of(c) for c in spec["containers"])
    assert all("secretKeyRef" not in str(c.get("env")) for c in spec["containers"])


def test_should_mount_the_claim_of_a_pvc_uri_read_only() -> None:
    spec = pod_spec({"model": {"uri": "pvc://model-store/wine/2", "sha256": SHA}})
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["model-source"]["persistentVolumeClaim"] == {
        "claimName": "model-store",
        "readOnly": True,
    }
    assert mounts_of(spec["initContainers"][0])["/mnt/model-source"]["readOnly"] is True


@pytest.mark.parametrize("values", [{}, {"model": {"uri": "/models/wine/2"}}])
def test_should_not_fetch_a_directory_in_the_image(values) -> None:
    spec = pod_spec(values)
    assert "initContainers" not in spec
    assert all(v["name"] != "model" for v in spec["volumes"])
    if values:
        assert env_of(spec["containers"][0])["MODELOPS_MODEL_DIR"] == "/models/wine/2"


def test_should_fetch_the_canary_from_its_own_uri() -> None:
    objs = render(
        SERVICE,
        {
            "model": {"artifact": "/models/wine/1"},
            "canary": {"enabled": True, "version": "2", "uri": "s3://models/wine/2",
                       "sha256": CANARY_SHA},
        },
    )  # fmt: skip
    stable, canary = (
        one(objs, "Deployment", n)["spec"]["template"]["spec"]
        for n in ("demo-model-service", "demo-model-service-canary")
    )
    assert "initContainers" not in stable
    assert env_of(canary["initContainers"][0])["MODELOPS_FETCH_URI"] == "s3://models/wine/2"
    assert env_of(canary["initContainers"][0])["MODELOPS_FETCH_SHA256"] == CANARY_SHA
    assert env_of(canary["containers"][0])["MODELOPS_MODEL_DIR"] == "/model"
    assert len(find(objs, "Deployment")) == 2


def test_a_canary_that_inherits_the_models_remote_uri_checks_it_against_the_models_digest() -> None:
    # the fetch refuses an empty digest: the canary's pods would never start
    model = {"uri": "s3://models/wine/1", "sha256": SHA}
    objs = render(SERVICE, {"model": model, "canary": {"enabled": True, "version": "2"}})
    canary = one(objs, "Deployment", "demo-model-service-canary")["spec"]["template"]["spec"]
    fetch = env_of(canary["initContainers"][0])
    assert (fetch["MODELOPS_FETCH_URI"], fetch["MODELOPS_FETCH_SHA256"]) == (model["uri"], SHA)
    # its own digest still wins, and an artifact of its own is not the model's
    own = {"enabled": True, "version": "2", "sha256": CANARY_SHA}
    objs = render(SERVICE, {"model": model, "canary": own})
    canary = one(objs, "Deployment", "demo-model-service-canary")["spec"]["template"]["spec"]
    assert env_of(canary["initContainers"][0])["MODELOPS_FETCH_SHA256"] == CANARY_SHA
    objs = render(SERVICE, {"model": model, "canary": {**own, "sha256": "", "artifact": "/m/2"}})
    canary = one(objs, "Deployment", "demo-model-service-canary")["spec"]["template"]["spec"]
    assert "initContainers" not in canary
    assert env_of(canary["containers"][0]).get("MODELOPS_MODEL_SHA256", "") == ""


def test_should_fetch_the_canary_with_its_own_fetch_keys_over_model_fetch() -> None:
    model = {"uri": "s3://models/wine/1", "sha256": SHA,
             "fetch": {"endpoint": "https://old:9000", "credentialsSecret": "old-keys",
                       "maxBytes": 5000}}  # fmt: skip
    canary_only = {"enabled": True, "version": "2", "uri": "s3://models/wine/2",
                   "sha256": CANARY_SHA}  # fmt: skip
    own = {"endpoint": "https://new:9000", "credentialsSecret": ""}
    objs = render(SERVICE, {"model": model, "canary": {**canary_only, "fetch": own}})
    stable, canary = (
        one(objs, "Deployment", n)["spec"]["template"]["spec"]
        for n in ("demo-model-service", "demo-model-service-canary")
    )
    assert env_of(stable["initContainers"][0])["MODELOPS_FETCH_ENDPOINT"] == "https://old:9000"
    assert {v["name"] for v in stable["volumes"]} >= {"fetch-credentials"}
    fetch = env_of(canary["initContainers"][0])
    assert fetch["MODELOPS_FETCH_ENDPOINT"] == "https://new:9000"
    assert fetch["MODELOPS_FETCH_MAX_BYTES"] == "5000"  # a key the canary left unset
    # an empty string set for the canary is its setting too: no Secret for its pods
    assert "fetch-credentials" not in {v["name"] for v in canary["volumes"]}
    # without canary.fetch the canary fetches with model.fetch, as before
    objs = render(SERVICE, {"model": model, "canary": canary_only})
    canary = one(objs, "Deployment", "demo-model-service-canary")["spec"]["template"]["spec"]
    assert env_of(canary["initContainers"][0])["MODELOPS_FETCH_ENDPOINT"] == "https://old:9000"
