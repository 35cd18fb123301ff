"""The fetcher against hostile servers and inputs: a clear failure class each, and nothing
written outside the target directory (real HTTPS servers with the rig's CA, real versitygw).
"""

from __future__ import annotations

import hashlib
import os
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.https_files import HttpsFiles
from modelops_service.fetch import Failure, FetchError, FetchSettings, fetch


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def handler(respond):
    """An HTTPS handler whose GET is ``respond(handler)``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            respond(self)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def redirect_to(location: str):
    def respond(h: BaseHTTPRequestHandler) -> None:
        h.send_response(302)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return respond


def fetch_from(server: HttpsFiles, dest: Path, path: str = "m", **kw) -> FetchError:
    with pytest.raises(FetchError) as err:
        fetch(
            FetchSettings(
                uri=f"https://{server.location}/{path}",
                sha256="00" * 32,
                dest=dest,
                ca_file=server.ca_file,
                timeout_seconds=5,
                **kw,
            )
        )
    return err.value


@pytest.mark.parametrize(
    "location",
    [
        "https://localhost:1/m/model.json",  # another host name for the same machine
        "https://127.0.0.2/m/model.json",
        "http://127.0.0.1/m/model.json",  # a downgrade to plain HTTP
        "file:///etc/passwd",
    ],
)
def test_a_redirect_to_another_origin_is_refused(location, rig_pki, tmp_path):
    with HttpsFiles(tmp_path / "www", rig_pki, handler=handler(redirect_to(location))) as server:
        before = snapshot(tmp_path)
        err = fetch_from(server, tmp_path / "model")
    assert err.failure is Failure.BAD_RESPONSE
    assert "redirect to another origin refused" in err.message
    assert snapshot(tmp_path) - before <= {"model"}
    assert list((tmp_path / "model").iterdir()) == []


def test_a_redirect_loop_in_one_origin_stops(rig_pki, tmp_path):
    with HttpsFiles(tmp_path / "www", rig_pki, handler=handler(redirect_to("/again"))) as server:
        err = fetch_from(server, tmp_path / "model")
    assert err.failure is Failure.BAD_RESPONSE
    assert "redirects" in err.message


def test_a_same_origin_redirect_is_followed(rig_pki, tmp_path):
    def respond(h: BaseHTTPRequestHandler) -> None:
        if h.path.startswith("/old/"):
            redirect_to("/new/" + h.path.removeprefix("/old/"))(h)
            return
        h.send_response(404)
        h.send_header("Content-Length", "0")
        h.end_headers()

    with HttpsFiles(tmp_path / "www", rig_pki, handler=handler(respond)) as server:
        err = fetch_from(server, tmp_path / "model", path="old")
    assert err.failure is Failure.NOT_FOUND  # it reached /new/, which has nothing
    assert "404" in err.message


TOKEN = "s3cr3t-t0ken"
AUTHORIZATION = f"Bearer {TOKEN}"


def recorded(seen: list[tuple[str, str | None]], respond):
    """``respond``, after noting each request's path and Authorization header in ``seen``."""

    def record(h: BaseHTTPRequestHandler) -> None:
        seen.append((h.path, h.headers.get("Authorization")))
        respond(h)

    return record


def answer(h: BaseHTTPRequestHandler, status: int, body: bytes = b"") -> None:
    h.send_response(status)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def with_token(tmp_path: Path) -> Path:
    """A mounted Secret holding the bearer token."""
    (tmp_path / "secret").mkdir(exist_ok=True)
    (tmp_path / "secret" / "token").write_text(TOKEN)
    return tmp_path / "secret"


@pytest.mark.parametrize(
    ("host", "spelled"),
    [
        ("127.0.0.1", "127.0.0.1"),  # the same host, another port
        ("127.0.0.2", "127.0.0.2"),  # another host
        ("127.0.0.1", "localhost"),  # another name for this host
    ],
)
def test_a_redirect_to_another_server_never_carries_the_credentials(
    host, spelled, rig_pki, tmp_path
):
    """Two real servers: A takes the token and redirects to B. The token reached A; B sees
    neither the header nor any request, and the fetch says why it stopped."""
    to_a: list[tuple[str, str | None]] = []
    to_b: list[tuple[str, str | None]] = []
    b_handler = handler(recorded(to_b, lambda h: answer(h, 200, b"{}")))
    with HttpsFiles(tmp_path / "b", rig_pki, host=host, handler=b_handler) as b:
        elsewhere = f"https://{spelled}:{b.server.server_address[1]}"

        def a_respond(h: BaseHTTPRequestHandler) -> None:
            if h.headers.get("Authorization") != AUTHORIZATION:
                answer(h, 401)
            else:
                redirect_to(elsewhere + h.path)(h)

        with HttpsFiles(tmp_path / "a", rig_pki, handler=handler(recorded(to_a, a_respond))) as a:
            err = fetch_from(a, tmp_path / "model", credentials_dir=with_token(tmp_path))
    assert to_a == [("/m/model.json", AUTHORIZATION)]
    assert [auth for _, auth in to_b if auth] == []
    assert to_b == []
    assert err.failure is Failure.BAD_RESPONSE
    assert f"redirect to another origin refused (https://{spelled}:" in err.message
    assert list((tmp_path / "model").iterdir()) == []


def test_a_same_origin_redirect_carries_the_credentials_to_the_file(rig_pki, tmp_path):
    files = {"model.json": b"{}", "model.joblib": b"not unpickled while fetching"}
    seen: list[tuple[str, str | None]] = []

    def respond(h: BaseHTTPRequestHandler) -> None:
        if h.headers.get("Authorization") != AUTHORIZATION:
            answer(h, 401)
        elif h.path.startswith("/old/"):
            redirect_to("/new/" + h.path.removeprefix("/old/"))(h)
        elif h.path.startswith("/new/m/") and h.path.rsplit("/", 1)[1] in files:
            answer(h, 200, files[h.path.rsplit("/", 1)[1]])
        else:
            answer(h, 404)

    with HttpsFiles(tmp_path / "www", rig_pki, handler=handler(recorded(seen, respond))) as www:
        digests = fetch(
            FetchSettings(
                uri=f"https://{www.location}/old/m",
                sha256=hashlib.sha256(files["model.joblib"]).hexdigest(),
                dest=tmp_path / "model",
                ca_file=www.ca_file,
                credentials_dir=with_token(tmp_path),
                timeout_seconds=5,
            )
        )
    assert set(digests) == set(files)
    assert {p.name: p.read_bytes() for p in (tmp_path / "model").iterdir()} == files
    assert seen == [
        (f"/{where}/m/{name}", AUTHORIZATION) for name in files for where in ("old", "new")
    ]


@pytest.mark.parametrize(
    ("headers", "what"),
    [
        ([("X-Big", "a" * 200_000)], "one oversize header"),
        ([(f"X-{i}", "b" * 100) for i in range(2000)], "too many headers"),
    ],
)
def test_oversize_response_headers_are_a_bad_response(headers, what, rig_pki, tmp_path):
    def respond(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        for name, value in headers:
            h.send_header(name, value)
        h.send_header("Content-Length", "2")
        h.end_headers()
        h.wfile.write(b"{}")

    with HttpsFiles(tmp_path / "www", rig_pki, handler=handler(respond)) as server:
        err = fetch_from(server, tmp_path / "model")
    assert err.failure is Failure.BAD_RESPONSE, what
    assert list((tmp_path / "model").iterdir()) == []


def test_a_short_body_is_a_bad_response_and_leaves_no_partial_file(rig_pki, tmp_path):
    def respond(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "1000")
        h.end_headers()
        h.wfile.write(b"x" * 10)
        h.close_connection = True

    with HttpsFiles(tmp_path / "www", rig_pki, handler=handler(respond)) as server:
        err = fetch_from(server, tmp_path / "model")
    assert err.failure is Failure.BAD_RESPONSE
    assert list((tmp_path / "model").iterdir()) == []


KEYS = st.lists(
    st.sampled_from(["..", ".", "", "etc", "passwd", "a", "%2e%2e", "..\\..", "model.joblib", "~"]),
    min_size=1,
    max_size=6,
).map("/".join)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(key=KEYS, scheme=st.sampled_from(["s3", "https", "pvc"]))
def test_fuzz_keys_never_write_outside_the_target(key, scheme, object_store, https_files, tmp_path):
    """Traversal-shaped keys: refused as invalid or fetched (and then not found); the only
    thing that may appear under the sandbox is the target directory itself."""
    sandbox = tmp_path / f"sandbox-{os.urandom(4).hex()}"
    sandbox.mkdir()
    dest = sandbox / "target"
    location = {"s3": "models", "https": https_files.location, "pvc": "claim"}[scheme]
    before = snapshot(tmp_path)
    with pytest.raises(FetchError) as err:
        fetch(
            FetchSettings(
                uri=f"{scheme}://{location}/{key}",
                sha256="00" * 32,
                dest=dest,
                endpoint=object_store.endpoint,
                ca_file=object_store.ca_file,  # one rig CA signs both servers
                credentials_dir=tmp_path / "no-credentials",
                pvc_root=sandbox / "claim",
                timeout_seconds=5,
            )
        )
    assert err.value.failure in (Failure.INVALID, Failure.NOT_FOUND, Failure.FORBIDDEN)
    created = snapshot(tmp_path) - before
    assert created <= {sandbox.name + "/target"}, created
    assert not dest.exists() or list(dest.iterdir()) == []
