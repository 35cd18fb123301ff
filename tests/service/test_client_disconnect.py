"""A client that hangs up mid-body is not a server error.

Counting it as a 5xx would inflate model_version:error_ratio:rate1m, which the canary
analysis reads; logging it as an unhandled error would page someone for a client's
hang-up. A real socket sends the headers and part of the body, then closes.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import httpx

from devstack.service_process import ServiceProcess
from tests.support.metrics_text import scrape
from tests.support.service_waits import log_lines_until

HTTP = {"handler": "/v1/predict", "method": "POST", "model": "wine", "version": "1"}


def hang_up_mid_body(url: str, request_id: str) -> None:
    parts = urlsplit(url)
    partial = b'{"instances": [[13.0, 2.0, 2.4'
    head = (
        "POST /v1/predict HTTP/1.1\r\n"
        f"Host: {parts.netloc}\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: 4096\r\n"
        f"X-Request-ID: {request_id}\r\n"
        "\r\n"
    ).encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head + partial)
    # Closed with 4096 - len(partial) bytes of the body never sent.


def errors_in(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line.get("level") in ("error", "critical")]


def test_a_client_that_hangs_up_mid_body_is_not_a_5xx(wine: ServiceProcess) -> None:
    request_id = "test-client-hangs-up-mid-body"
    with httpx.Client(base_url=wine.url, timeout=30) as client:
        before = scrape(client)
        errors_before = len(errors_in(log_lines_until(wine, lambda _: True)))

        hang_up_mid_body(wine.url, request_id)
        # its access line, the last it writes (the disconnect's own line comes first)
        lines = log_lines_until(
            wine,
            lambda ls: any(
                line.get("request_id") == request_id
                and line.get("logger") == "modelops_service.access"
                for line in ls
            ),
        )
        after = scrape(client)
        # The service still answers normally.
        assert client.get("/healthz").status_code == 200

    mine = [line for line in lines if line.get("request_id") == request_id]
    access = [line for line in mine if line.get("logger") == "modelops_service.access"]
    assert len(access) == 1, mine
    assert access[0]["status"] == 499
    assert access[0]["level"] == "info"
    assert access[0]["reasons"] == ["client_disconnected"]
    assert errors_in(lines)[errors_before:] == []  # no "unhandled error", no ASGI traceback

    def delta(status: str) -> float:
        return after.value("http_requests_total", status=status, **HTTP) - before.value(
            "http_requests_total", status=status, **HTTP
        )

    assert delta("5xx") == 0
    assert delta("4xx") == 1
