"""The service image, run the way the charts run it: read-only, user 10001, no capabilities."""

from __future__ import annotations

import time

import httpx
import joblib
import pytest

from devstack.images import Images, container_logs, run_docker, running_container
from devstack.processes import free_port
from devstack.service_process import demo_model_dir
from modelops_service.card import read_card
from tests.support.image_checks import BYTECODE_CHECK, RESTRICTED, UNREADABLE
from tests.support.rows import in_range_rows

pytestmark = pytest.mark.images

READY_TIMEOUT = 120.0  # a ceiling for importing scikit-learn on a busy 2-core machine


def wait_ready(url: str, cid: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        state = run_docker("inspect", "--format", "{{.State.Status}}", cid, check=False)
        assert state.stdout.strip() == "running", container_logs(cid)
        time.sleep(0.5)
    raise AssertionError(f"/readyz never answered 200:\n{container_logs(cid)}")


def test_serves_readyz_and_predictions_equal_to_model_predict(images: Images) -> None:
    port = free_port()
    with running_container(images.service, *RESTRICTED, "-p", f"127.0.0.1:{port}:8080") as cid:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, cid)
        model_dir = demo_model_dir("wine", "1")
        card = read_card(model_dir)
        rows = in_range_rows(model_dir, "wine")[:20]
        instances = [dict(zip(card.feature_names, map(float, r), strict=True)) for r in rows]

        resp = httpx.post(f"{url}/v1/predict", json={"instances": instances}, timeout=30)

        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert (body["model"], body["version"]) == ("wine", "1")
        model = joblib.load(model_dir / "model.joblib")
        assert body["predictions"] == model.predict(rows).tolist()
        # the root file system really is read-only for the service's user
        probe = run_docker("exec", cid, "python", "-c", "open('/opt/app/x', 'w')", check=False)
        assert probe.returncode != 0
        assert "Read-only file system" in probe.stderr
        logs = container_logs(cid)
        assert '"msg":"model ready"' in logs, logs


def test_listens_on_modelops_port(images: Images) -> None:
    """The chart's `port` reaches the process as MODELOPS_PORT; the image fixes no port."""
    port = free_port()
    published = ("-p", f"127.0.0.1:{port}:9000", "-e", "MODELOPS_PORT=9000")
    with running_container(images.service, *RESTRICTED, *published) as cid:
        wait_ready(f"http://127.0.0.1:{port}", cid)


def test_the_python_code_runs_from_compiled_bytecode(images: Images) -> None:
    modules = ["modelops_service.app", "modelops_service.__main__", "uvicorn", "sklearn.ensemble"]
    proc = run_docker(
        "run", "--rm", *RESTRICTED, "--entrypoint", "python", images.service,
        "-c", BYTECODE_CHECK, *modules,
    )  # fmt: skip
    checked, *bad = proc.stdout.strip().split("\n")
    assert int(checked) > 500, proc.stdout  # the app, FastAPI, numpy, scikit-learn...
    assert not [b for b in bad if b], "\n".join(bad)


def test_its_user_reads_every_file_of_the_app_and_the_models(images: Images) -> None:
    proc = run_docker(
        "run", "--rm", *RESTRICTED, "--entrypoint", "find", images.service,
        "/opt/app", "/opt/venv", "/models", *UNREADABLE,
    )  # fmt: skip
    assert proc.stdout == ""
