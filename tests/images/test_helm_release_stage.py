"""operator/Dockerfile's helm-release stage (the users' path), run against a loopback server.

The stage's Python is taken from the Dockerfile itself, the build arguments substituted as
the shell does, and the release host replaced by a local server that serves a helm archive
and its sha256 file: the right archive is unpacked, a wrong checksum stops the build.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import re
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.images import REPO_ROOT

RELEASE_HOST = "https://get.helm.sh"
ARGS = {"HELM_VERSION": "v4.1.4", "TARGETOS": "linux", "TARGETARCH": "arm64"}


def stage_python() -> str:
    """The `python -c` program of the helm-release stage, build arguments substituted."""
    text = (REPO_ROOT / "operator" / "Dockerfile").read_text().replace("\\\n", "")
    stage = text.split("AS helm-release", 1)[1].split("\nFROM ", 1)[0]
    code = re.search(r'python -c "(.*?)"', stage, re.S)
    assert code, "no python -c in the helm-release stage"
    assert RELEASE_HOST in code.group(1)
    return re.sub(r"\$\{(\w+)\}", lambda m: ARGS[m.group(1)], code.group(1))


def helm_archive() -> bytes:
    data = b"\x7fELF fake helm"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(f"{ARGS['TARGETOS']}-{ARGS['TARGETARCH']}/helm")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def release_server(tmp_path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "srv"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()


def run_stage(url: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    code = stage_python().replace(RELEASE_HOST, url)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, timeout=60
    )


def publish(root: Path, archive: bytes, sha256: str) -> None:
    name = f"helm-{ARGS['HELM_VERSION']}-{ARGS['TARGETOS']}-{ARGS['TARGETARCH']}.tar.gz"
    (root / name).write_bytes(archive)
    (root / f"{name}.sha256sum").write_text(f"{sha256}  {name}\n")


def test_the_archive_for_the_target_architecture_is_unpacked(release_server, tmp_path) -> None:
    url, root = release_server
    archive = helm_archive()
    publish(root, archive, hashlib.sha256(archive).hexdigest())

    proc = run_stage(url, tmp_path)

    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "linux-arm64" / "helm").read_bytes() == b"\x7fELF fake helm"


def test_a_checksum_that_differs_from_the_published_one_stops_the_build(
    release_server, tmp_path
) -> None:
    url, root = release_server
    publish(root, helm_archive(), "0" * 64)

    proc = run_stage(url, tmp_path)

    assert proc.returncode != 0
    assert "is not the published" in proc.stderr
    assert not (tmp_path / "linux-arm64").exists()
