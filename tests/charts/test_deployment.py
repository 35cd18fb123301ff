"""templates/deployment.yaml: the stable Deployment."""

from __future__ import annotations

import pytest

from tests.support.charts import SERVICE, one, render, selects

pytestmark = pytest.mark.render

SHA = "ab" * 32


def stable(values: dict | None = None, **kw) -> dict:
    name = f"{kw.get('release', 'demo')}-model-service"
    return one(render(SERVICE, values, **kw), "Deployment", name)


def container(deploy: dict) -> dict:
    return deploy["spec"]["template"]["spec"]["containers"][0]


def env(deploy: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(deploy).get("env", [])}


def test_should_render_one_deployment_named_after_the_release() -> None:
    objs = render(SERVICE)
    deploys = [o for o in objs if o["kind"] == "Deployment"]

    assert [d["metadata"]["name"] for d in deploys] == ["demo-model-service"]
    assert deploys[0]["metadata"]["namespace"] == "models"


@pytest.mark.parametrize(
    ("release", "values", "name"),
    [
        ("wine", {}, "wine-model-service"),
        ("wine-model-service", {}, "wine-model-service"),
        ("wine", {"fullnameOverride": "wine-quality"}, "wine-quality"),
        ("wine", {"nameOverride": "svc"}, "wine-svc"),
    ],
)
def test_should_name_the_deployment_from_release_and_overrides(release, values, name) -> None:
    assert one(render(SERVICE, values, release=release), "Deployment")["metadata"]["name"] == name


def test_should_label_pods_with_model_version_and_stable_track() -> None:
    deploy = stable({"model": {"name": "wine", "version": "3"}})
    labels = deploy["spec"]["template"]["metadata"]["labels"]

    assert labels["modelops.io/model"] == "wine"
    assert labels["modelops.io/version"] == "3"
    assert labels["modelops.io/track"] == "stable"
    assert labels["app.kubernetes.io/version"] == "3"
    for key in ("name", "instance", "version", "managed-by", "part-of"):
        assert f"app.kubernetes.io/{key}" in labels


def test_should_select_name_instance_and_track_only() -> None:
    deploy = stable({"model": {"version": "3"}})
    selector = deploy["spec"]["selector"]["matchLabels"]

    assert selector == {
        "app.kubernetes.io/name": "model-service",
        "app.kubernetes.io/instance": "demo",
        "modelops.io/track": "stable",
    }
    assert selects(selector, deploy["spec"]["template"]["metadata"]["labels"])


def test_should_default_to_the_images_model_whatever_the_release_and_tag() -> None:
    deploy = stable({"image": {"tag": "0.2.0"}}, release="iris")
    labels = deploy["spec"]["template"]["metadata"]["labels"]

    # the image's default model (service/Dockerfile's MODELOPS_MODEL_DIR) is wine 1
    assert (labels["modelops.io/model"], labels["modelops.io/version"]) == ("wine", "1")
    assert (env(deploy)["MODELOPS_MODEL_NAME"], env(deploy)["MODELOPS_MODEL_VERSION"]) == (
        "wine",
        "1",
    )


def test_should_declare_the_model_its_labels_name_to_the_service() -> None:
    deploy = stable({"model": {"name": "diabetes", "version": 3}})
    labels = deploy["spec"]["template"]["metadata"]["labels"]

    assert env(deploy)["MODELOPS_MODEL_NAME"] == labels["modelops.io/model"] == "diabetes"
    assert env(deploy)["MODELOPS_MODEL_VERSION"] == labels["modelops.io/version"] == "3"


def test_should_pass_artifact_and_sha256_as_service_settings() -> None:
    deploy = stable({"model": {"artifact": "/models/wine/2", "sha256": SHA}})

    assert env(deploy)["MODELOPS_MODEL_DIR"] == "/models/wine/2"
    assert env(deploy)["MODELOPS_MODEL_SHA256"] == SHA


def test_should_leave_the_image_default_model_when_no_artifact_is_given() -> None:
    assert "MODELOPS_MODEL_DIR" not in env(stable())


@pytest.mark.parametrize(
    ("image", "ref"),
    [
        ({}, "model-service:0.1.0"),
        ({"repository": "reg.example/ms", "tag": "9"}, "reg.example/ms:9"),
        ({"digest": "sha256:" + "c" * 64}, "model-service@sha256:" + "c" * 64),
    ],
)
def test_should_build_the_image_reference(image: dict, ref: str) -> None:
    assert container(stable({"image": image}))["image"] == ref


def test_should_set_replicas_unless_autoscaled() -> None:
    assert stable({"replicaCount": 4})["spec"]["replicas"] == 4
    assert "replicas" not in stable({"replicaCount": 4, "autoscaling": {"enabled": True}})["spec"]


def test_should_drop_the_default_rolling_update_for_recreate() -> None:
    # Helm merges the user's type into the default rollingUpdate: the API server would refuse
    assert stable({"strategy": {"type": "Recreate"}})["spec"]["strategy"] == {"type": "Recreate"}
    assert stable()["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }


def test_should_probe_healthz_and_readyz_on_the_named_port() -> None:
    c = container(stable())

    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    # Probed every second (Ready within about a second of the process), with the
    # two-minute budget for a slow model load kept.
    startup = c["startupProbe"]
    assert startup["periodSeconds"] == 1
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


def test_should_keep_serving_for_the_shutdown_delay_before_sigterm() -> None:
    assert container(stable())["lifecycle"] == {"preStop": {"exec": {"command": ["sleep", "15"]}}}
    assert "lifecycle" not in container(stable({"shutdownDelaySeconds": 0}))


def test_should_run_non_root_read_only_without_capabilities() -> None:
    deploy = stable()
    pod = deploy["spec"]["template"]["spec"]
    c = container(deploy)

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["resources"]["requests"]
    assert c["resources"]["limits"]
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]


def test_should_roll_pods_when_the_settings_change() -> None:
    def checksum(values: dict) -> str:
        return stable(values)["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum({}) == checksum({})
    assert checksum({}) != checksum({"config": {"MODELOPS_LOG_LEVEL": "debug"}})


def test_should_read_settings_from_the_configmap_and_extra_env() -> None:
    node_name = {"fieldRef": {"fieldPath": "spec.nodeName"}}
    deploy = stable({"extraEnv": [{"name": "MODELOPS_X", "valueFrom": node_name}]})

    assert container(deploy)["envFrom"] == [{"configMapRef": {"name": "demo-model-service"}}]
    assert env(deploy)["MODELOPS_X"] == node_name


def test_should_add_the_selector_to_spread_constraints_without_one() -> None:
    spread = {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}
    deploy = stable({"topologySpreadConstraints": [spread]})
    tsc = deploy["spec"]["template"]["spec"]["topologySpreadConstraints"][0]

    assert tsc["labelSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "demo"


def test_should_pass_scheduling_values_through() -> None:
    pod = stable(
        {
            "nodeSelector": {"disk": "ssd"},
            "tolerations": [{"key": "gpu", "operator": "Exists"}],
            "priorityClassName": "high",
            "podAnnotations": {"a": "b"},
            "podLabels": {"team": "ml"},
        }
    )["spec"]["template"]

    assert pod["spec"]["nodeSelector"] == {"disk": "ssd"}
    assert pod["spec"]["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
    assert pod["spec"]["priorityClassName"] == "high"
    assert pod["metadata"]["annotations"]["a"] == "b"
    assert pod["metadata"]["labels"]["team"] == "ml"


def test_should_leave_workers_unset_by_default() -> None:
    names = env(stable())

    assert "MODELOPS_WORKERS" not in names
    assert "PROMETHEUS_MULTIPROC_DIR" not in names


@pytest.mark.parametrize(
    ("values", "workers"),
    [
        ({"workers": 3}, "3"),
        ({"workers": "auto", "resources": {"requests": {"cpu": "1500m"}}}, "2"),
        ({"workers": "auto", "resources": {"requests": {"cpu": "2"}}}, "2"),
        ({"workers": "auto", "resources": {"requests": {"cpu": 4}}}, "4"),
    ],
)
def test_should_set_workers_and_their_metrics_dir(values: dict, workers: str) -> None:
    values.setdefault("resources", {})["limits"] = {"cpu": "4"}
    names = env(stable(values))

    assert names["MODELOPS_WORKERS"] == workers
    # On the /tmp emptyDir, the one writable place of the read-only root filesystem.
    assert names["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")


@pytest.mark.parametrize("cpu", ["100m", "1000m", None])
def test_should_run_one_worker_when_auto_asks_for_a_core_or_less(cpu: str | None) -> None:
    requests = {"cpu": cpu} if cpu else {}
    names = env(stable({"workers": "auto", "resources": {"requests": requests}}))

    assert "MODELOPS_WORKERS" not in names
