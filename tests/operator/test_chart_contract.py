"""The operator's values against the real charts/model-service (helm template, no cluster)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from devstack.paths import find_tool
from modelops_operator.applyset import Owner, build_apply_set
from modelops_operator.models import FetchSpec, ModelRef
from modelops_operator.render import ChartRenderer, RenderError
from modelops_operator.rollout import Workloads
from modelops_operator.settings import OperatorSettings
from modelops_operator.values import chart_values
from tests.support.operator_builders import ref, spec_for

pytestmark = pytest.mark.render

OWNER = Owner("wine", "models", "uid-1")


@pytest.fixture(scope="module")
def renderer() -> ChartRenderer:
    return ChartRenderer(OperatorSettings().chart_path, str(find_tool("helm")))


def env_of(dep: dict) -> dict[str, str]:
    container = dep["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container.get("env") or []}


def test_stable_and_canary_render_from_the_operator_values(renderer):
    spec = spec_for("2")
    v1 = ref("1").model_copy(update={"sha256": "a" * 64})
    values = chart_values(
        spec, Workloads(v1, 3, ref("2"), 1), service_monitor_labels={"release": "kps"}
    )
    aset = build_apply_set(renderer.render("wine", "models", values), OWNER)
    deps = aset.deployments()
    stable, canary = deps["stable"], deps["canary"]
    assert stable["spec"]["replicas"] == 3
    assert canary["spec"]["replicas"] == 1
    assert canary["metadata"]["name"] == stable["metadata"]["name"] + "-canary"
    assert env_of(stable)["MODELOPS_MODEL_DIR"] == "/m/1"
    assert env_of(stable)["MODELOPS_MODEL_SHA256"] == "a" * 64
    assert env_of(canary)["MODELOPS_MODEL_DIR"] == "/m/2"
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == "model-service:1"
    assert canary["spec"]["template"]["spec"]["containers"][0]["image"] == "model-service:2"
    for dep, track, version in ((stable, "stable", "1"), (canary, "canary", "2")):
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert labels["modelops.io/track"] == track
        assert labels["modelops.io/version"] == version
        assert labels["modelops.io/model"] == "wine"
        # the service refuses an artifact that is not the model its labels name
        assert env_of(dep)["MODELOPS_MODEL_NAME"] == "wine"
        assert env_of(dep)["MODELOPS_MODEL_VERSION"] == version
    kinds = {o["kind"] for o in aset.objects}
    assert {"Service", "ServiceMonitor", "PrometheusRule"} <= kinds
    sm = next(o for o in aset.objects if o["kind"] == "ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "kps"
    # the Service selects both tracks
    svc = next(o for o in aset.objects if o["kind"] == "Service")
    assert "modelops.io/track" not in svc["spec"]["selector"]


def test_monitoring_switches_remove_the_objects(renderer):
    spec = spec_for(
        "1",
        monitoring={
            "serviceMonitor": {"enabled": False},
            "alerts": {"enabled": False},
            "dashboards": {"enabled": False},
        },
    )
    objects = renderer.render("wine", "models", chart_values(spec, Workloads(ref("1"), 1)))
    kinds = {o["kind"] for o in objects}
    assert "ServiceMonitor" not in kinds
    assert "PrometheusRule" not in kinds
    assert not [o for o in objects if "dashboard" in o["metadata"]["name"]]


def test_a_bad_value_is_a_render_error_with_helms_message(renderer):
    values = chart_values(spec_for("1"), Workloads(ref("1"), 1))
    values["replicaCount"] = "many"
    with pytest.raises(RenderError, match="replicaCount"):
        renderer.render("wine", "models", values)


@pytest.mark.parametrize("interval", ["2s", "5s", "30s"])
def test_a_short_scrape_interval_renders_with_a_timeout_within_it(renderer, interval):
    spec = spec_for("1")
    monitoring = spec.monitoring.model_copy(
        update={
            "service_monitor": spec.monitoring.service_monitor.model_copy(
                update={"interval": interval}
            )
        }
    )
    spec = spec.model_copy(update={"monitoring": monitoring})
    values = chart_values(spec, Workloads(ref("1"), 1, None, 0))
    aset = build_apply_set(renderer.render("wine", "models", values), OWNER)
    sm = next(o for o in aset.objects if o["kind"] == "ServiceMonitor")
    endpoint = sm["spec"]["endpoints"][0]
    assert endpoint["interval"] == interval
    assert endpoint["scrapeTimeout"] == ("10s" if interval == "30s" else interval)


def fetched(version: str, **fetch) -> ModelRef:
    return ref(version).model_copy(
        update={
            "artifact": "",
            "uri": f"s3://models/wine/{version}",
            "sha256": version * 64,
            "fetch": FetchSpec.model_validate(fetch),
        }
    )


def test_a_canary_with_other_fetch_settings_leaves_the_stables_init_container(renderer):
    old = fetched("1", endpoint="https://old:9000", credentialsSecret="old-keys",
                  maxBytes=5000, timeoutSeconds=60)  # fmt: skip
    new = fetched("2", endpoint="https://new:9000", credentialsSecret="new-keys")

    def deployments(workloads: Workloads) -> dict[str, dict]:
        values = chart_values(spec_for("2"), workloads)
        return build_apply_set(renderer.render("wine", "models", values), OWNER).deployments()

    alone = deployments(Workloads(old, 3))["stable"]
    during = deployments(Workloads(old, 3, new, 1))
    stable, canary = during["stable"]["spec"]["template"], during["canary"]["spec"]["template"]
    assert stable == alone["spec"]["template"]
    init = {e["name"]: e["value"] for e in stable["spec"]["initContainers"][0]["env"]}
    assert init["MODELOPS_FETCH_ENDPOINT"] == "https://old:9000"
    assert (init["MODELOPS_FETCH_MAX_BYTES"], init["MODELOPS_FETCH_TIMEOUT_SECONDS"]) == (
        "5000",
        "60",
    )
    secret = {v["name"]: v for v in stable["spec"]["volumes"]}["fetch-credentials"]["secret"]
    assert secret["secretName"] == "old-keys"
    init = {e["name"]: e["value"] for e in canary["spec"]["initContainers"][0]["env"]}
    assert init["MODELOPS_FETCH_ENDPOINT"] == "https://new:9000"
    assert init["MODELOPS_FETCH_URI"] == "s3://models/wine/2"
    assert init["MODELOPS_FETCH_MAX_BYTES"] == str(1 << 30)  # its own default, not the stable's
    secret = {v["name"]: v for v in canary["spec"]["volumes"]}["fetch-credentials"]["secret"]
    assert secret["secretName"] == "new-keys"


def test_closed_it_leaves_none_of_helms_homes_behind(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    renderer = ChartRenderer(OperatorSettings().chart_path, str(find_tool("helm")))
    renderer.render("wine", "models", chart_values(spec_for("1"), Workloads(ref("1"), 1)))
    assert [p.name[:13] for p in tmp_path.iterdir()] == ["modelops-helm"]

    renderer.close()

    assert list(tmp_path.iterdir()) == []
