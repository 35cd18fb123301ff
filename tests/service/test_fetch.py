"""`python -m modelops_service fetch` against a real S3 server (versitygw) and a real HTTPS server.

Each failure class has its own JSON line (also in the termination log) and exit code; a
digest mismatch leaves nothing under the name the service loads; a cap stops a larger
object, even one that never ends, without filling the disk.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.https_files import HttpsFiles
from devstack.object_store import ObjectStore
from modelops_service.artifact import load_model
from modelops_service.card import read_card
from modelops_service.fetch import EXIT_CODES, Failure, FetchError, FetchSettings, fetch
from modelops_service.model_uri import ARTIFACT_FILES


@pytest.fixture(scope="module")
def wine_v1(object_store: ObjectStore, model_root: Path) -> str:
    """wine/1 in the bucket; its declared sha256."""
    object_store.put_dir("models", "wine/1", model_root / "wine" / "1")
    return read_card(model_root / "wine" / "1").sha256


@pytest.fixture(scope="module")
def creds(object_store: ObjectStore, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return object_store.write_credentials(tmp_path_factory.mktemp("secret"))


def s3_settings(store: ObjectStore, creds: Path, dest: Path, uri: str, sha256: str, **kw):
    return FetchSettings(
        uri=uri,
        sha256=sha256,
        dest=dest,
        endpoint=store.endpoint,
        ca_file=store.ca_file,
        credentials_dir=creds,
        **kw,
    )


def run_cli(env: dict[str, str]) -> tuple[int, dict, str]:
    """Run the command as the init container does: (exit code, its JSON line, termination log)."""
    term = Path(env["MODELOPS_FETCH_DEST"]).parent / "termination-log"
    full = {**os.environ, "MODELOPS_FETCH_TERMINATION_LOG": str(term), **env}
    proc = subprocess.run(
        [sys.executable, "-m", "modelops_service", "fetch"],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, (proc.stdout, proc.stderr)
    said = term.read_text() if term.exists() else ""
    return proc.returncode, json.loads(lines[0]), said


def test_fetch_from_s3_gives_a_model_that_loads(object_store, creds, wine_v1, tmp_path):
    dest = tmp_path / "model"
    digests = fetch(s3_settings(object_store, creds, dest, "s3://models/wine/1", wine_v1))
    assert digests["model.joblib"] == wine_v1
    assert sorted(p.name for p in dest.iterdir()) == sorted(ARTIFACT_FILES)
    assert load_model(dest, wine_v1).card.version == "1"


def test_fetch_from_https_with_the_rigs_ca(https_files: HttpsFiles, model_root, tmp_path):
    sha = copy_version(model_root, https_files.root, "team/wine/1")
    uri = f"https://{https_files.location}/team/wine/1"
    dest = tmp_path / "model"
    fetch(FetchSettings(uri=uri, sha256=sha, dest=dest, ca_file=https_files.ca_file))
    assert load_model(dest, sha).card.name == "wine"
    # the same server without the rig's CA: TLS refuses it, and says so
    with pytest.raises(FetchError) as err:
        fetch(FetchSettings(uri=uri, sha256=sha, dest=tmp_path / "untrusted"))
    assert err.value.failure is Failure.UNREACHABLE
    assert "CERTIFICATE_VERIFY_FAILED" in err.value.message


def copy_version(model_root: Path, root: Path, prefix: str, version: str = "1") -> str:
    """wine/<version> under ``root/prefix``, as a web server of model files holds it; its sha256."""
    target = root / prefix
    target.mkdir(parents=True, exist_ok=True)
    for name in ARTIFACT_FILES:
        (target / name).write_bytes((model_root / "wine" / version / name).read_bytes())
    return read_card(target).sha256


def secret_dir(path: Path, **keys: str) -> Path:
    """The files a mounted Secret with these keys holds (as kubelet writes them)."""
    path.mkdir(parents=True)
    for key, value in keys.items():
        (path / key).write_text(value)
    return path


PASSWORD = "pa ss:wörd"  # a space, a colon and UTF-8: all fine in a password
BASIC = "Basic " + base64.b64encode(f"model-reader:{PASSWORD}".encode()).decode()


@pytest.mark.parametrize(
    ("header", "keys", "wrong"),
    [
        # a trailing newline, as `kubectl create secret --from-file` often leaves one
        ("Bearer ey.J0-b~k+e/n==", {"token": "ey.J0-b~k+e/n==\n"}, {"token": "ey.J0"}),
        (
            BASIC,
            {"username": "model-reader", "password": PASSWORD},
            {"username": "model-reader", "password": "pa ss"},
        ),
    ],
    ids=["bearer", "basic"],
)
def test_https_credentials_from_the_secret_open_a_server_that_requires_them(
    header, keys, wrong, rig_pki, model_root, tmp_path
):
    with HttpsFiles(tmp_path / "www", rig_pki, authorization=header) as server:
        sha = copy_version(model_root, server.root, "private/wine/1")
        env = {
            "MODELOPS_FETCH_URI": f"https://{server.location}/private/wine/1",
            "MODELOPS_FETCH_SHA256": sha,
            "MODELOPS_FETCH_CA_FILE": str(server.ca_file),
            "MODELOPS_FETCH_CREDENTIALS_DIR": str(secret_dir(tmp_path / "secret", **keys)),
        }
        dest = tmp_path / "with" / "model"
        code, line, _ = run_cli({**env, "MODELOPS_FETCH_DEST": str(dest)})
        assert (code, line["level"]) == (0, "info"), line
        assert load_model(dest, sha).card.version == "1"
        # without the Secret: the server's 401 is the forbidden class, exit 11
        env["MODELOPS_FETCH_CREDENTIALS_DIR"] = str(tmp_path / "no-secret")
        dest = tmp_path / "without" / "model"
        code, line, termination = run_cli({**env, "MODELOPS_FETCH_DEST": str(dest)})
        assert code == Failure.FORBIDDEN.exit_code == 11
        assert line["failure"] == "forbidden"
        assert "HTTP 401" in line["msg"]
        assert json.loads(termination) == line
        assert list(dest.iterdir()) == []
        # a wrong credential is refused the same way
        env["MODELOPS_FETCH_CREDENTIALS_DIR"] = str(secret_dir(tmp_path / "wrong", **wrong))
        code, line, _ = run_cli({**env, "MODELOPS_FETCH_DEST": str(tmp_path / "wrong-dest")})
        assert (code, line["failure"]) == (11, "forbidden")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when this returns


CASES = {
    # class: (uri, declared sha256 or None for the right one, extra env)
    Failure.NOT_FOUND: ("s3://models/wine/404", None, {}),
    Failure.FORBIDDEN: ("s3://models/wine/1", None, {"wrong_secret": "1"}),
    Failure.DIGEST_MISMATCH: ("s3://models/wine/1", "ab" * 32, {}),
    Failure.TOO_LARGE: ("s3://models/wine/1", None, {"MODELOPS_FETCH_MAX_BYTES": "4096"}),
    Failure.TIMEOUT: ("s3://models/wine/1", None, {"silent": "1"}),
    Failure.UNREACHABLE: ("s3://models/wine/1", None, {"closed": "1"}),
    Failure.INVALID: ("s3://models/../etc", None, {}),
}


@pytest.mark.parametrize("failure", list(CASES), ids=str)
def test_each_failure_class_has_its_line_and_exit_code(
    failure, object_store, creds, wine_v1, silent_port, tmp_path
):
    uri, sha, extra = CASES[failure]
    env = {
        "MODELOPS_FETCH_URI": uri,
        "MODELOPS_FETCH_SHA256": sha or wine_v1,
        "MODELOPS_FETCH_DEST": str(tmp_path / "model"),
        "MODELOPS_FETCH_ENDPOINT": object_store.endpoint,
        "MODELOPS_FETCH_CA_FILE": str(object_store.ca_file),
        "MODELOPS_FETCH_CREDENTIALS_DIR": str(creds),
        "MODELOPS_FETCH_TIMEOUT_SECONDS": "2",
    }
    if extra.pop("wrong_secret", None):
        env["MODELOPS_FETCH_CREDENTIALS_DIR"] = str(
            object_store.write_credentials(tmp_path / "wrong", secret_key="not-the-secret")
        )
    if extra.pop("silent", None):
        env["MODELOPS_FETCH_ENDPOINT"] = f"https://127.0.0.1:{silent_port}"
    if extra.pop("closed", None):
        env["MODELOPS_FETCH_ENDPOINT"] = f"https://127.0.0.1:{closed_port()}"
    env.update(extra)

    code, line, termination = run_cli(env)

    assert code == EXIT_CODES[failure] == failure.exit_code
    assert line["level"] == "error"
    assert line["failure"] == str(failure)
    assert line["msg"].startswith(f"fetch failed: {failure}: ")
    assert json.loads(termination) == line
    dest = tmp_path / "model"
    assert not dest.exists() or list(dest.iterdir()) == []  # nothing, not even a partial file


def test_exit_codes_are_distinct():
    assert len(set(EXIT_CODES.values())) == len(Failure)


def test_a_digest_mismatch_never_loads(object_store, creds, wine_v1, tmp_path, monkeypatch):
    """Nothing is unpickled while fetching, and nothing is left for the service to load."""
    import pickle

    import joblib

    def refuse(*args, **kwargs):
        raise AssertionError("unpickled during a fetch")

    monkeypatch.setattr(joblib, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    dest = tmp_path / "model"
    with pytest.raises(FetchError) as err:
        fetch(s3_settings(object_store, creds, dest, "s3://models/wine/1", "cd" * 32))
    assert err.value.failure is Failure.DIGEST_MISMATCH
    assert wine_v1 in err.value.message
    assert "cd" * 32 in err.value.message
    assert list(dest.iterdir()) == []


class _Endless:
    """An HTTPS handler that streams zeros forever (chunked, no length): only the cap stops it."""

    sent: int = 0

    @classmethod
    def handler(cls):
        from http.server import BaseHTTPRequestHandler

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                block = b"\0" * 65536
                try:
                    while True:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                        cls.sent += len(block)
                except OSError:
                    return  # the client hung up: that is the point

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def test_a_cap_stops_an_endless_object_without_filling_the_disk(rig_pki, tmp_path):
    cap = 1 << 20
    with HttpsFiles(tmp_path / "www", rig_pki, handler=_Endless.handler()) as server:
        dest = tmp_path / "model"
        with pytest.raises(FetchError) as err:
            fetch(
                FetchSettings(
                    uri=f"https://{server.location}/huge",
                    sha256="00" * 32,
                    dest=dest,
                    ca_file=server.ca_file,
                    max_bytes=cap,
                )
            )
    assert err.value.failure is Failure.TOO_LARGE
    assert list(dest.iterdir()) == []
    # it stopped near the cap (kernel buffers hold a little more), not after gigabytes
    assert _Endless.sent < 64 * cap


def test_the_cap_refuses_a_declared_length_before_reading_it(object_store, creds, tmp_path):
    object_store.put("models", "big/model.json", b"{}")
    object_store.put("models", "big/model.joblib", b"\0" * 300_000)
    with pytest.raises(FetchError) as err:
        fetch(
            s3_settings(
                object_store, creds, tmp_path / "m", "s3://models/big", "00" * 32, max_bytes=100_000
            )
        )
    assert err.value.failure is Failure.TOO_LARGE
    assert "300000 bytes" in err.value.message


def test_pvc_source_reads_the_mounted_claim(model_root, tmp_path):
    claim = tmp_path / "claim"
    (claim / "wine").mkdir(parents=True)
    os.symlink(model_root / "wine" / "1", claim / "wine" / "1")  # outside the claim
    (claim / "wine" / "2").mkdir()
    for name in ARTIFACT_FILES:
        (claim / "wine" / "2" / name).write_bytes((model_root / "wine" / "1" / name).read_bytes())
    sha = read_card(model_root / "wine" / "1").sha256
    dest = tmp_path / "model"
    fetch(FetchSettings(uri="pvc://models/wine/2", sha256=sha, dest=dest, pvc_root=claim))
    assert load_model(dest, sha).card.name == "wine"
    with pytest.raises(FetchError) as err:
        fetch(FetchSettings(uri="pvc://models/wine/1", sha256=sha, dest=dest, pvc_root=claim))
    assert err.value.failure is Failure.NOT_FOUND
    assert "outside the claim" in err.value.message


def test_a_slow_drip_is_a_timeout_not_a_hang(rig_pki, tmp_path):
    from http.server import BaseHTTPRequestHandler

    stop = threading.Event()

    class Drip(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            while not stop.wait(0.2):
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return

        def log_message(self, *args: object) -> None:
            pass

    with HttpsFiles(tmp_path / "www", rig_pki, handler=Drip) as server:
        with pytest.raises(FetchError) as err:
            fetch(
                FetchSettings(
                    uri=f"https://{server.location}/drip",
                    sha256="00" * 32,
                    dest=tmp_path / "model",
                    ca_file=server.ca_file,
                    timeout_seconds=1.5,
                )
            )
        stop.set()
    assert err.value.failure is Failure.TIMEOUT


def test_the_fetch_command_imports_no_numpy_or_scikit_learn(tmp_path):
    """The init container starts in a fraction of the service's import time."""
    code = (
        "import sys\n"
        "from modelops_service.__main__ import main\n"
        "rc = main(['fetch'])\n"
        "heavy = sorted(m for m in ('numpy', 'sklearn', 'joblib', 'fastapi') if m in sys.modules)\n"
        "print(rc, heavy)\n"
    )
    env = {
        **os.environ,
        "MODELOPS_FETCH_URI": "s3://models/../x",
        "MODELOPS_FETCH_SHA256": "00" * 32,
        "MODELOPS_FETCH_DEST": str(tmp_path / "model"),
        "MODELOPS_FETCH_TERMINATION_LOG": str(tmp_path / "term"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert proc.stdout.splitlines()[-1] == f"{Failure.INVALID.exit_code} []"
