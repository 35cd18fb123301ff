"""The chart's `port` is the port the service image listens on (one source: MODELOPS_PORT).

The Deployment's command and args are combined with service/Dockerfile's ENTRYPOINT and CMD
the way the kubelet combines them, and the process's settings are read from the rendered
environment the way the service reads them: probes and Service follow `port`, so the
process must too (a fixed `--port` in the image once beat it, and pods never became Ready).
"""

from __future__ import annotations

import json

import pytest

from modelops_service.settings import Settings
from tests.support.charts import ROOT, SERVICE, one, render

pytestmark = pytest.mark.render


def image_exec_form(instruction: str) -> list[str]:
    """The JSON (exec) form of the last ENTRYPOINT or CMD of service/Dockerfile, else []."""
    found: list[str] = []
    for line in (ROOT / "service" / "Dockerfile").read_text().splitlines():
        if line.startswith(instruction + " "):
            found = json.loads(line[len(instruction) + 1 :])
    return found


def process_argv(container: dict) -> list[str]:
    """What the container runs: `command` replaces ENTRYPOINT (and drops CMD), `args` CMD."""
    if "command" in container:
        return [*container["command"], *container.get("args", [])]
    return [*image_exec_form("ENTRYPOINT"), *container.get("args", image_exec_form("CMD"))]


def listening_port(container: dict, monkeypatch: pytest.MonkeyPatch) -> int:
    argv = process_argv(container)
    assert argv[:3] == ["python", "-m", "modelops_service"], argv
    if "--port" in argv:
        return int(argv[argv.index("--port") + 1])
    for var in container["env"]:
        if "value" in var:
            monkeypatch.setenv(var["name"], var["value"])
    return Settings().port


@pytest.mark.parametrize("port", [8080, 9000])
def test_the_image_listens_on_the_port_the_chart_probes_and_serves(port, monkeypatch) -> None:
    model = {"artifact": "/models/wine/1", "sha256": "ab" * 32}
    objs = render(SERVICE, {"port": port, "model": model})
    container = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    service = one(objs, "Service")

    assert listening_port(container, monkeypatch) == port
    assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"]["port"] == "http"
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_the_image_fixes_no_port() -> None:
    argv = [*image_exec_form("ENTRYPOINT"), *image_exec_form("CMD")]
    assert argv == ["python", "-m", "modelops_service"]
