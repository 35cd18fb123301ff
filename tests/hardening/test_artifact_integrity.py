"""Artifact integrity end to end, as far as it goes without the operator: the sha256, name
and version declared in the chart's values reach the service process the chart describes,
and that process refuses an artifact that does not match them.

tests/charts checks the rendered env var and tests/service checks the service's refusal,
each on its own; here the container env that `helm template` renders (stable and canary
tracks) starts the real service (`python -m modelops_service`), with only the artifact
directory mapped from the image path to a local one. A wrong name on either side, or a
canary that lost its digest, fails here. The worst case is covered too: an attacker who
rewrote the whole artifact directory (model.joblib and the digest in model.json that
matches it) is stopped by the digest declared in the release.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import httpx
import pytest

from devstack.service_process import ServiceProcess, start_service
from modelops_service.card import read_card
from tests.support.charts import SERVICE, find, render

pytestmark = pytest.mark.render

IMAGE_MODELS = "/models"  # where the image keeps the demo models (service/Dockerfile)


def container_env(deploy: dict, config_maps: dict[str, dict]) -> dict[str, str]:
    """The environment the Deployment gives its container: envFrom ConfigMaps, then env."""
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    out: dict[str, str] = {}
    for source in container.get("envFrom", []):
        out.update(config_maps[source["configMapRef"]["name"]].get("data") or {})
    out.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    return out


def rendered_envs(values: dict) -> dict[str, dict[str, str]]:
    """track -> the container env of that track's Deployment."""
    objs = render(SERVICE, values)
    config_maps = {cm["metadata"]["name"]: cm for cm in find(objs, "ConfigMap")}
    out = {}
    for deploy in find(objs, "Deployment"):
        track = deploy["spec"]["template"]["metadata"]["labels"]["modelops.io/track"]
        out[track] = container_env(deploy, config_maps)
    return out


def run_as_rendered(env: dict[str, str], models: Path, logs: Path) -> ServiceProcess:
    """Start the service with a rendered env; the image's /models maps to ``models``."""
    image_dir = env.pop("MODELOPS_MODEL_DIR")
    assert image_dir.startswith(IMAGE_MODELS + "/"), image_dir
    local = models / image_dir.removeprefix(IMAGE_MODELS + "/")
    env.pop("MODELOPS_PORT")  # the helper picks a free port
    return start_service(local, env=env, wait=False, log_dir=logs)


def outcome(svc: ServiceProcess) -> tuple[str, str]:
    """("served", card sha) once ready, or ("refused", log) when it exits first."""
    try:
        svc.wait_ready()
        card = httpx.get(f"{svc.url}/v1/model", timeout=10).json()
        return "served", card["sha256"]
    except Exception:
        if svc.returncode is None:
            raise
        return "refused", svc.logs()
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from modelops_service.train import train_all

    root = tmp_path_factory.mktemp("integrity-models")
    train_all(root)
    return root


def model_values(models: Path, version: str, sha256: str) -> dict:
    return {
        "model": {
            "name": "wine",
            "version": version,
            "artifact": f"{IMAGE_MODELS}/wine/{version}",
            "sha256": sha256,
        }
    }


def test_the_declared_digest_serves_and_a_wrong_one_never_does(
    models: Path, tmp_path: Path
) -> None:
    good = read_card(models / "wine" / "1").sha256
    wrong = hashlib.sha256(b"not the model").hexdigest()

    served = run_as_rendered(
        rendered_envs(model_values(models, "1", good))["stable"], models, tmp_path
    )
    refused = run_as_rendered(
        rendered_envs(model_values(models, "1", wrong))["stable"], models, tmp_path
    )

    assert outcome(served) == ("served", good)
    state, log = outcome(refused)
    assert state == "refused"
    assert "refusing to load" in log
    assert wrong in log
    assert "Uvicorn running" not in log


def test_a_canary_with_a_wrong_digest_never_serves_beside_a_good_stable(
    models: Path, tmp_path: Path
) -> None:
    values = {
        **model_values(models, "1", read_card(models / "wine" / "1").sha256),
        "canary": {
            "enabled": True,
            "version": "2",
            "artifact": f"{IMAGE_MODELS}/wine/2",
            "sha256": read_card(models / "wine" / "1").sha256,  # v1's digest for v2's file
        },
    }
    envs = rendered_envs(values)
    assert set(envs) == {"stable", "canary"}

    stable = run_as_rendered(envs["stable"], models, tmp_path)
    canary = run_as_rendered(envs["canary"], models, tmp_path)

    assert outcome(stable)[0] == "served"
    state, log = outcome(canary)
    assert state == "refused", log
    assert "refusing to load" in log


def test_a_rewritten_artifact_directory_is_stopped_by_the_declared_digest(
    models: Path, tmp_path: Path
) -> None:
    """model.joblib replaced and model.json updated to match it: only the release knows."""
    declared = read_card(models / "wine" / "1").sha256
    evil = tmp_path / "models"
    shutil.copytree(models, evil)
    target = evil / "wine" / "1"
    shutil.copyfile(models / "wine" / "2" / "model.joblib", target / "model.joblib")
    card = json.loads((target / "model.json").read_text())
    card["sha256"] = hashlib.sha256((target / "model.joblib").read_bytes()).hexdigest()
    (target / "model.json").write_text(json.dumps(card))
    assert card["sha256"] != declared

    without_digest = run_as_rendered(
        rendered_envs(model_values(evil, "1", ""))["stable"], evil, tmp_path
    )
    with_digest = run_as_rendered(
        rendered_envs(model_values(evil, "1", declared))["stable"], evil, tmp_path
    )

    # consistent in itself, so only the declared digest can tell
    assert outcome(without_digest) == ("served", card["sha256"])
    state, log = outcome(with_digest)
    assert state == "refused"
    assert declared in log


def test_a_canary_declaring_another_version_than_its_artifact_never_serves(
    models: Path, tmp_path: Path
) -> None:
    """wine 2's directory and digest, declared as version 3: served, its metrics would say
    version="2" where the canary analysis reads version="3" (and finds nothing)."""
    values = {
        **model_values(models, "1", read_card(models / "wine" / "1").sha256),
        "canary": {
            "enabled": True,
            "version": "3",
            "artifact": f"{IMAGE_MODELS}/wine/2",
            "sha256": read_card(models / "wine" / "2").sha256,
        },
    }
    envs = rendered_envs(values)

    assert outcome(run_as_rendered(envs["stable"], models, tmp_path))[0] == "served"
    state, log = outcome(run_as_rendered(envs["canary"], models, tmp_path))
    assert state == "refused", log
    assert "MODELOPS_MODEL_VERSION declares version '3' but its model.json says '2'" in log
    assert "Uvicorn running" not in log
