"""The operator's Kubernetes client against an API server that accepts and never answers.

Every reconcile thread shares the client's discovery lock, so one call that waits forever
stops every ModelDeployment's rollout without a log line. The server here is a real
socket that accepts connections and sends nothing: what a half-open connection to a
restarting API server looks like from the client.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import kubernetes.client
import pytest

from modelops_operator.kube import KubeClient, KubeError

pytestmark = pytest.mark.timeout(60)  # a call without a bound hangs: this fails it


@pytest.fixture
def silent_server() -> Iterator[str]:
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def client_of(url: str) -> KubeClient:
    cfg = kubernetes.client.Configuration(host=url)
    cfg.retries = False  # one attempt: the bound under test is the timeout, not the retries
    return KubeClient(cfg, timeout=(1.0, 1.0))


def test_discovery_gives_up_at_the_clients_timeout(silent_server):
    """The dynamic client's discovery passes no timeout of its own."""
    client = client_of(silent_server)
    try:
        with pytest.raises(KubeError, match=r"discovery: .*timed out"):
            client.get("v1", "ConfigMap", "settings", "default")
    finally:
        client.close()


def test_a_discovery_that_gave_up_is_tried_again_on_the_next_call(silent_server):
    """Nothing half-built is kept: the next reconcile discovers again (and fails again,
    with the same clear error, while the API server stays silent)."""
    client = client_of(silent_server)
    try:
        for _ in range(2):
            with pytest.raises(KubeError, match="discovery"):
                client.served_kinds("apps/v1")
    finally:
        client.close()
