"""Keep-alive connections end after max_connection_age_seconds (connections.py).

kube-proxy picks a pod per connection: without an end, a client's connections stay on the
pods that existed when it connected and a canary behind the same Service gets nothing (the
real-node demo's canary stayed at NoTraffic for five minutes before this existed).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from devstack.service_process import ServiceProcess, start_service
from modelops_service.connections import CLOSE, PRUNE_AT, ConnectionAge
from modelops_service.settings import Settings

# --- the middleware alone: a fake clock and an app that answers 200 -----------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def ok_app(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x", b"1")]})
    await send({"type": "http.response.body", "body": b"ok"})


def answer(mw: ConnectionAge, client=("10.0.0.1", 40000), kind: str = "http") -> list[tuple]:
    """The response headers ``mw`` sends for one request from ``client``."""
    sent: list[dict] = []

    async def send(message) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    asyncio.run(mw({"type": kind, "client": client}, receive, send))
    return next((m["headers"] for m in sent if m["type"] == "http.response.start"), [])


def test_a_connection_is_closed_by_its_first_response_past_its_age():
    clock = Clock()
    mw = ConnectionAge(ok_app, max_age=10, clock=clock)
    assert CLOSE not in answer(mw)  # born at 0
    clock.now = 9.9
    assert CLOSE not in answer(mw)
    clock.now = 10.0
    assert answer(mw) == [(b"x", b"1"), CLOSE]
    # the client reconnects (the same port again here): a new connection, a new age
    clock.now = 10.5
    assert CLOSE not in answer(mw)


def test_connections_age_apart_and_zero_keeps_them_open():
    clock = Clock()
    mw = ConnectionAge(ok_app, max_age=5, clock=clock)
    answer(mw, ("10.0.0.1", 1))
    clock.now = 4
    answer(mw, ("10.0.0.1", 2))
    clock.now = 6
    assert CLOSE in answer(mw, ("10.0.0.1", 1))
    assert CLOSE not in answer(mw, ("10.0.0.1", 2))
    never = ConnectionAge(ok_app, max_age=0, clock=clock)
    answer(never)
    clock.now = 1e9
    assert CLOSE not in answer(never)
    assert never.born == {}


def test_the_apps_own_connection_header_gives_way_and_other_scopes_pass():
    async def keep_alive_app(scope, receive, send) -> None:
        headers = [(b"Connection", b"keep-alive")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    clock = Clock()
    mw = ConnectionAge(keep_alive_app, max_age=1, clock=clock)
    answer(mw)
    clock.now = 2
    assert answer(mw) == [CLOSE]
    lifespan = ConnectionAge(ok_app, max_age=1, clock=clock)
    answer(lifespan, kind="websocket")
    assert lifespan.born == {}


def test_memory_stays_bounded_by_forgetting_connections_past_their_age():
    clock = Clock()
    mw = ConnectionAge(ok_app, max_age=10, clock=clock)
    for port in range(PRUNE_AT):
        answer(mw, ("10.0.0.1", port))
    clock.now = 11
    answer(mw, ("10.0.0.2", 1))  # one more: the old ones are forgotten first
    assert set(mw.born) == {("10.0.0.2", 1)}


def test_the_default_is_a_few_seconds_and_documented():
    field = Settings.model_fields["max_connection_age_seconds"]
    assert isinstance(field.default, float)
    assert 0 < field.default <= 30
    assert "kube-proxy" in (field.description or "")


# --- a real service and a real socket ----------------------------------------------


@pytest.fixture(scope="module")
def short_lived(
    model_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    env = {"MODELOPS_MAX_CONNECTION_AGE_SECONDS": "1"}
    svc = start_service(model_root / "wine" / "1", env=env, log_dir=tmp_path_factory.mktemp("log"))
    yield svc
    svc.stop()


def get(sock: socket.socket, host: str) -> bytes:
    """One GET /healthz on ``sock``; the response head and body as they came."""
    sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )  # fmt: skip
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_a_keep_alive_connection_is_closed_by_the_server_after_its_age(short_lived):
    parts = urlsplit(short_lived.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        first = get(sock, parts.netloc)
        assert b"connection: close" not in first.lower()
        for _ in range(3):  # the same connection serves on
            assert b"200" in get(sock, parts.netloc).split(b"\r\n")[0]
        time.sleep(1.1)
        last = get(sock, parts.netloc)
        assert b"200" in last.split(b"\r\n")[0]
        assert b"connection: close" in last.lower()
        assert sock.recv(1) == b""  # and the server closed it
