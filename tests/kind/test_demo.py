"""`make demo` leaves nothing running behind it (issue 17, item 3).

kind and kubectl are the stubs of tests/kind/stubs.py (no kind cluster can run here): the
stub kubectl's `get -w` prints a header and then waits like a real watch, and its jsonpath
answers report the rollout finished. The traffic is real: the demo's loadtest against the
real model service on a loopback port, standing in for the kind NodePort.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kind.stubs import Stubs
from tests.support.repo import ROOT

KUBECTL_VERSION = "v1.37.2"

# Answers of a cluster where modeldeployment/diabetes finished its rollout to version 2.
KUBECTL = r"""case "$*" in
  *" -w") echo "NAME VERSION STABLE PHASE"; exec sleep 300 ;;
  *"{.metadata.generation}"*|*"{.status.observedGeneration}"*) echo 2 ;;
  *"{.spec.model.version}"*|*"{.status.stableVersion}"*) echo 2 ;;
  *"{.status.phase}"*) echo Ready ;;
  *"{.status.canaryVersion}"*) ;;
  *"{range .status.history"*) echo "2026-01-01T00:00:00Z  2  Promoted  analysis passed" ;;
esac
exit 0"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def diabetes_service(tmp_path) -> Iterator[str]:
    """The real model service with models/diabetes/1 (the demo's model) on loopback."""
    port = free_port()
    env = {**os.environ, "MODELOPS_MODEL_DIR": str(ROOT / "models" / "diabetes" / "1")}
    log = (tmp_path / "service.log").open("w")
    service = subprocess.Popen(
        [sys.executable, "-m", "modelops_service", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert service.poll() is None, (tmp_path / "service.log").read_text()
            assert time.monotonic() < deadline, "the model service did not become ready"
            time.sleep(0.2)
        yield url
    finally:
        service.terminate()
        service.wait(timeout=30)
        log.close()


def session_members(sid: int) -> list[str]:
    """Live processes of session `sid` (zombies left out): 'pid cmdline'."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            found.append(f"{stat.parent.name} {cmdline.strip()}")
    return found


def test_demo_stops_the_watch_and_the_traffic_it_started(tmp_path, diabetes_service):
    stubs = Stubs(tmp_path)
    stubs.kind(clusters=("modelops",))
    stubs.pinned("kubectl", KUBECTL_VERSION, KUBECTL)
    env = {**stubs.env(), "TRAFFIC_URL": diabetes_service}
    # Output to a file, not a pipe: a leaked watch would hold a pipe open after make exits.
    output = tmp_path / "demo.out"
    with output.open("w") as out_file:
        proc = subprocess.Popen(
            ["make", "--no-print-directory", "demo", f"LOCALBIN={stubs.localbin}"],
            cwd=ROOT,
            env=env,
            stdout=out_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        proc.wait(timeout=120)
        out = output.read_text()
        assert proc.returncode == 0, out
        assert "result: phase=Ready stableVersion=2" in out
        assert "NAME VERSION STABLE PHASE" in out, "the watch ran"
        assert any(c.endswith(" -w") for c in stubs.calls("kubectl")), stubs.calls()
        with urllib.request.urlopen(f"{diabetes_service}/metrics", timeout=5) as answer:
            metrics = answer.read().decode()
        assert 'handler="/v1/predict"' in metrics, "the demo's traffic reached the service"
        deadline = time.monotonic() + 5
        while (left := session_members(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert left == [], f"the demo left these running: {left}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
