"""Fuzz the REAL service with raw bytes: mutated request bodies and headers, both protocols.

schemathesis (test_fuzz_api.py) only sends valid JSON built from the OpenAPI schema; the
bugs it cannot reach live in the bytes: a key that is not UTF-8 answered 500 on
/v1/predict. Here hypothesis mutates valid bodies of the served model (truncation,
invalid UTF-8, lone surrogate escapes, control bytes, huge numbers, NaN, deep nesting,
duplicate keys, a byte order mark) and the headers around them (content types, request
ids, chunked transfer encoding), and sends each request over a raw socket to the
service process on loopback. Every request must get a whole HTTP answer below 500;
afterwards the process is alive and ready, counted no 5xx and no failed prediction, and
logged no traceback.

Bounded and repeatable: MODELOPS_BYTE_FUZZ_EXAMPLES (default 300) per target and
protocol, derandomized (set MODELOPS_BYTE_FUZZ_SEED to explore other cases). A failure
prints the shrunk request.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from devstack.processes import http_status
from devstack.service_process import ServiceProcess
from modelops_service.card import read_card
from tests.support.hardening_targets import TARGETS
from tests.support.metrics_text import scrape

EXAMPLES = int(os.environ.get("MODELOPS_BYTE_FUZZ_EXAMPLES", "300"))
SEED = os.environ.get("MODELOPS_BYTE_FUZZ_SEED")
PROTOCOLS = ("v1", "v2")

INVALID_UTF8 = [b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80"]
ESCAPES = [b"\\ud800", b"\\udfff", b"\\u0000", b"\\", b"\\x41"]
CONTROL = [bytes([c]) for c in (*range(0x20), 0x7F)]
NUMBERS = [
    *(b"1e999", b"-1e999", b"9" * 400, b"18446744073709551616", b"-9223372036854775809"),
    *(b"NaN", b"Infinity", b"-Infinity", b"1e-400", b"-0", b"0.0e0", b"1E+2", b"01", b".5"),
]
CONTENT_TYPES = [
    *(b"application/json", b"application/json; charset=utf-8", b"APPLICATION/JSON"),
    *(b"application/vnd.api+json", b"application/json;;", b"text/plain", b"", b"\xffjson"),
    b"application/json; charset=latin-1",
]
REQUEST_IDS = [b"abc-1", b"", b"x" * 300, b"\xff\xfe", b"a b", b"../../etc", b"id;drop"]
KEY = re.compile(rb'"[^"\\]*"\s*:')
NUMBER = re.compile(rb"-?\d+(\.\d+)?([eE][-+]?\d+)?")
PAIR = re.compile(rb'"[^"\\]*"\s*:\s*[^,{}\[\]]+')


def valid_bodies(model_dir: Path) -> dict[str, list[bytes]]:
    card = read_card(model_dir)
    row = {f.name: round(f.mean, 3) for f in card.features}
    values = list(row.values())
    tensor = {"name": "input-0", "shape": [2, len(values)], "datatype": "FP64"}
    columns = [
        {"name": name, "shape": [1], "datatype": "FP32", "data": [value]}
        for name, value in row.items()
    ]
    bodies = {
        "v1": [
            {"instances": [row, row]},
            {"instances": [values]},
            row,
        ],
        "v2": [
            {"id": "r-1", "inputs": [{**tensor, "data": values * 2}]},
            {"inputs": [{**tensor, "data": [values, values]}], "outputs": [{"name": "predict"}]},
            {"inputs": columns, "parameters": {}},
        ],
    }
    return {k: [json.dumps(b).encode() for b in v] for k, v in bodies.items()}


@st.composite
def mutated(draw: st.DrawFn, bodies: list[bytes]) -> bytes:
    """One valid body with one to three mutations."""
    body = draw(st.sampled_from(bodies))
    for _ in range(draw(st.integers(1, 3))):
        body = draw(st.sampled_from(MUTATIONS))(draw, body)
    return body


def _at(draw: st.DrawFn, body: bytes) -> int:
    return draw(st.integers(0, len(body)))


def truncate(draw: st.DrawFn, body: bytes) -> bytes:
    return body[: _at(draw, body)]


def insert(draw: st.DrawFn, body: bytes) -> bytes:
    junk = draw(st.sampled_from(INVALID_UTF8 + ESCAPES + CONTROL + [b"\xef\xbb\xbf"]))
    at = _at(draw, body)
    return body[:at] + junk + body[at:]


def flip(draw: st.DrawFn, body: bytes) -> bytes:
    if not body:
        return body
    at = draw(st.integers(0, len(body) - 1))
    return body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1 :]


def bad_key(draw: st.DrawFn, body: bytes) -> bytes:
    """A key's text replaced by bytes that are not UTF-8, or by an escape."""
    keys = list(KEY.finditer(body))
    if not keys:
        return body
    key = draw(st.sampled_from(keys))
    text = draw(st.sampled_from(INVALID_UTF8 + ESCAPES))
    return body[: key.start()] + b'"' + text + b'":' + body[key.end() :]


def huge_number(draw: st.DrawFn, body: bytes) -> bytes:
    numbers = list(NUMBER.finditer(body))
    if not numbers:
        return body
    number = draw(st.sampled_from(numbers))
    return body[: number.start()] + draw(st.sampled_from(NUMBERS)) + body[number.end() :]


def nest(draw: st.DrawFn, body: bytes) -> bytes:
    depth = draw(st.sampled_from([2, 64, 1000, 5000, 100_000]))
    if draw(st.booleans()):
        return b"[" * depth + body + b"]" * depth
    numbers = list(NUMBER.finditer(body))
    if not numbers:
        return body
    n = draw(st.sampled_from(numbers))
    return body[: n.start()] + b"[" * depth + n.group() + b"]" * depth + body[n.end() :]


def duplicate_key(draw: st.DrawFn, body: bytes) -> bytes:
    pairs = list(PAIR.finditer(body))
    if not pairs:
        return body
    pair = draw(st.sampled_from(pairs))
    return body[: pair.end()] + b"," + pair.group() + body[pair.end() :]


MUTATIONS = [truncate, insert, flip, bad_key, huge_number, nest, duplicate_key]


def send(url: str, path: str, body: bytes, headers: list[tuple[bytes, bytes]], chunked: bool):
    """One request over a fresh socket; the parsed answer (status, headers, body)."""
    parts = urlsplit(url)
    head = [b"POST " + path.encode() + b" HTTP/1.1", b"Host: " + parts.netloc.encode()]
    head += [name + b": " + value for name, value in headers]
    if chunked:
        half = len(body) // 2
        chunks = [c for c in (body[:half], body[half:]) if c]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
        head.append(b"Transfer-Encoding: chunked")
    else:
        payload = body
        head.append(b"Content-Length: %d" % len(body))
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(b"\r\n".join(head) + b"\r\n\r\n" + payload)
        answer = http.client.HTTPResponse(sock)
        answer.begin()  # RemoteDisconnected / ConnectionResetError: a dropped connection
        return answer.status, answer.getheaders(), answer.read()


def headers_strategy() -> st.SearchStrategy:
    return st.tuples(
        st.lists(st.sampled_from(CONTENT_TYPES), min_size=1, max_size=2),
        st.lists(st.sampled_from(REQUEST_IDS), max_size=2),
        st.booleans(),
    )


@pytest.fixture(scope="module", params=sorted(TARGETS))
def target(
    request: pytest.FixtureRequest, hardening_services: dict[str, ServiceProcess]
) -> ServiceProcess:
    return hardening_services[request.param]


def fuzz_settings(test):
    bounded = settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=SEED is None,
        suppress_health_check=list(HealthCheck),
    )
    return bounded(seed(int(SEED))(test) if SEED is not None else test)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_no_bytes_get_a_5xx_or_a_dropped_connection(target: ServiceProcess, protocol: str) -> None:
    card = read_card(target.model_dir)
    path = "/v1/predict" if protocol == "v1" else f"/v2/models/{card.name}/infer"
    bodies = valid_bodies(target.model_dir)[protocol]
    # Every seed body is valid: the mutations start from bodies the service answers 200.
    for body in bodies:
        status, _, answer = send(
            target.url, path, body, [(b"Content-Type", CONTENT_TYPES[0])], False
        )
        assert status == 200, answer

    @fuzz_settings
    @given(body=mutated(bodies), head=headers_strategy())
    def fuzz(body: bytes, head: tuple) -> None:
        content_types, request_ids, chunked = head
        headers = [(b"Content-Type", c) for c in content_types]
        headers += [(b"X-Request-ID", r) for r in request_ids]
        status, answer_headers, answer = send(target.url, path, body, headers, chunked)
        assert status < 500, (status, answer[:2000])
        names = {name.lower() for name, _ in answer_headers}
        assert "x-request-id" in names  # answered by the app, not refused by the server
        if status >= 400:
            assert json.loads(answer)["reasons"], answer[:2000]

    fuzz()
    assert target.returncode is None, target.logs()[-4000:]
    assert http_status(f"{target.url}/readyz") == 200


def test_the_service_is_unharmed_after_byte_fuzzing(target: ServiceProcess) -> None:
    """Runs after the fuzz tests of the same target (module order)."""
    assert target.returncode is None, target.logs()[-4000:]
    assert http_status(f"{target.url}/readyz") == 200
    with httpx.Client(base_url=target.url, timeout=10) as client:
        metrics = scrape(client)
    readiness = {"/readyz", "/v2/health/ready"}  # 503 while the start-up poll races warm-up
    assert not [
        s
        for s in metrics.series("http_requests_total")
        if s.labels["status"] == "5xx" and s.labels["handler"] not in readiness
    ]
    assert metrics.value("model_predictions_total", outcome="error") == 0
    assert metrics.value("model_input_errors_total", reason="malformed_json") > 0
    log = target.logs()
    assert "Traceback" not in log, log[-4000:]
