"""Start-up of the real process: digest refusal, readiness, logs."""

from __future__ import annotations

import importlib
import shutil
import signal
from pathlib import Path

import httpx
import pytest

from devstack.service_process import ServiceProcess, start_service
from modelops_service.card import read_card
from tests.support.metrics_text import scrape
from tests.support.service_waits import log_lines_until


def refused(model_dir: Path, tmp_path: Path, env: dict[str, str] | None = None) -> str:
    """The logs of a service that exited, status 2, before it served anything."""
    svc = start_service(model_dir, env=env or {}, wait=False, log_dir=tmp_path)
    try:
        code = svc.wait_exit()
    finally:
        svc.stop()
    logs = svc.logs()
    assert code == 2, logs
    assert "Uvicorn running" not in logs  # nothing was ever served
    return logs


@pytest.mark.parametrize(
    ("declared", "said"),
    [
        ({"MODELOPS_MODEL_SHA256": "0" * 64}, ["refusing to load", "0" * 64]),
        (
            {"MODELOPS_MODEL_NAME": "wine", "MODELOPS_MODEL_VERSION": "2"},
            ["MODELOPS_MODEL_VERSION declares version '2' but its model.json says '1'"],
        ),
    ],
    ids=["sha256", "version"],
)
def test_an_artifact_other_than_the_declared_one_refuses_to_start(
    model_root: Path, tmp_path: Path, declared: dict[str, str], said: list[str]
) -> None:
    logs = refused(model_root / "wine" / "1", tmp_path, declared)
    for words in said:
        assert words in logs, logs


def test_artifact_not_matching_its_card_refuses_to_start(model_root: Path, tmp_path: Path) -> None:
    tampered = tmp_path / "wine-1"
    shutil.copytree(model_root / "wine" / "1", tampered)
    with open(tampered / "model.joblib", "ab") as fh:
        fh.write(b"\0")  # any change to the pickle
    assert "model.json declares" in refused(tampered, tmp_path)


def test_a_missing_model_refuses_to_start(tmp_path: Path) -> None:
    assert "cannot read the model card" in refused(tmp_path / "no-such-model", tmp_path)


def test_matching_declared_sha256_serves(diabetes: ServiceProcess) -> None:
    # the session's diabetes service runs with MODELOPS_MODEL_SHA256 set (upper case)
    card = httpx.get(f"{diabetes.url}/v1/model", timeout=30).json()
    assert card["sha256"] == read_card(diabetes.model_dir).sha256
    assert card["ready"] is True


def test_readyz_is_503_before_the_model_is_ready(not_ready: ServiceProcess) -> None:
    with httpx.Client(base_url=not_ready.url, timeout=30) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "not ready"
        assert client.get("/healthz").status_code == 200
        assert client.get("/v2/health/ready").status_code == 503
        assert client.get("/v2/models/wine/ready").status_code == 503
        predict = client.post("/v1/predict", json={"instances": [[13.0] * 13]})
        assert predict.status_code == 503
        assert scrape(client).value("model_ready", model="wine", version="1") == 0

    code = not_ready.stop()
    # uvicorn finishes the shutdown, then re-raises the signal it caught (exit 143 in a pod)
    assert code in (0, -signal.SIGTERM), not_ready.logs()
    assert "Application shutdown complete." in not_ready.logs()


def test_one_json_log_line_per_request(wine: ServiceProcess) -> None:
    with httpx.Client(base_url=wine.url, timeout=30) as client:
        resp = client.post(
            "/v1/predict",
            json={
                "instances": [[13.0, 2.0, 2.4, 19.0, 100, 2.3, 2.0, 0.36, 1.6, 5.0, 1.0, 2.6, 750]]
                * 3
            },
            headers={"x-request-id": "test-log-line-1"},
        )
        assert resp.status_code == 200
        assert resp.headers["x-request-id"] == "test-log-line-1"
        bad = client.post(
            "/v1/predict",
            content=b"{",
            headers={"x-request-id": "test-log-line-2", "content-type": "application/json"},
        )
        assert bad.status_code == 400
    lines = log_lines_until(
        wine,
        lambda ls: (
            {"test-log-line-1", "test-log-line-2"} <= {line.get("request_id") for line in ls}
        ),
    )
    assert all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    ok = [line for line in lines if line.get("request_id") == "test-log-line-1"]
    assert len(ok) == 1
    assert ok[0] | {"ts": None, "latency_ms": None, "client": None} == {
        "ts": None,
        "level": "info",
        "logger": "modelops_service.access",
        "msg": "request",
        "request_id": "test-log-line-1",
        "model": "wine",
        "version": "1",
        "method": "POST",
        "route": "/v1/predict",
        "path": "/v1/predict",
        "status": 200,
        "latency_ms": None,
        "batch_size": 3,
        "client": None,
    }
    assert ok[0]["latency_ms"] > 0
    refused = [line for line in lines if line.get("request_id") == "test-log-line-2"]
    assert len(refused) == 1
    assert refused[0]["status"] == 400
    assert refused[0]["reasons"] == ["malformed_json"]
    assert "features" not in ok[0]  # not logged unless MODELOPS_LOG_FEATURES asks


def test_the_venv_holds_the_bytecode_of_what_the_service_imports() -> None:
    """`make venv` compiles bytecode: this environment sets PYTHONDONTWRITEBYTECODE, so
    without it every service start (and every test that starts one) compiles
    scikit-learn, FastAPI and numpy from source, twice the start time."""
    names = ("sklearn.ensemble", "fastapi.routing", "numpy.linalg", "uvicorn.server")
    modules = [importlib.import_module(name) for name in (*names, "modelops_service.app")]
    missing = [m.__name__ for m in modules if not Path(m.__cached__).is_file()]
    assert not missing, f"no bytecode for {missing}: make venv compiles it"
