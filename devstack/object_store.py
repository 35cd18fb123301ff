"""A REAL S3-compatible object store for the rig: versitygw (posix backend) over HTTPS.

    from devstack.object_store import ObjectStore

    with ObjectStore(workdir, pki) as store:          # pki: a directory of devstack.pki
        store.make_bucket("models")
        store.put("models", "wine/2/model.joblib", data)
        store.endpoint                                # https://127.0.0.1:PORT
        store.write_credentials(secret_dir)           # the files a mounted Secret holds

versitygw (Apache-2.0) is built from its Go module by `make tools` (hack/versions.env pins
it). It stores each bucket as a directory under ``<workdir>/data`` and serves the S3 API
with SigV4 authentication, so the fetcher's signing, errors and streaming meet a real
server. Its serving certificate comes from the rig's CA (``ca_file``) and names ``host``,
so pods on the real node can use it on the node network's host address too.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import ssl
import time
from pathlib import Path

import httpx
from httpx_auth import AWS4Auth

from devstack.paths import DevstackError, find_tool
from devstack.pki import issue_server_cert
from devstack.processes import HOST, Process, on_free_port, spawn

__all__ = ["ObjectStore"]

REGION = "us-east-1"
START_TIMEOUT = 30.0


class ObjectStore:
    name = "versitygw"

    def __init__(self, workdir: str | os.PathLike, pki: Path, *, host: str = HOST) -> None:
        self.workdir = Path(workdir)
        self.pki = Path(pki)
        self.host = host
        self.port = 0
        self.access_key = "modelops"
        self.secret_key = secrets.token_urlsafe(24)
        self.process: Process | None = None

    @property
    def endpoint(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self) -> ObjectStore:
        tls = self.workdir / "tls"
        sans = ["DNS:localhost", f"IP:{HOST}", *([f"IP:{self.host}"] if self.host != HOST else [])]
        issue_server_cert(self.pki, "object-store", sans, tls)
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        binary = find_tool("versitygw")

        def start_on(port: int) -> ObjectStore:
            self.port = port
            self.process = spawn(
                self.name,
                [
                    binary, "--access", self.access_key, "--secret", self.secret_key,
                    "--region", REGION, "--cert", tls / "object-store.crt",
                    "--key", tls / "object-store.key", "--port", f"{self.host}:{port}",
                    "--quiet", "posix", self.workdir / "data",
                ],
                self.log_path,
                die_with_parent=True,
            )  # fmt: skip
            self._wait_ready()
            return self

        return on_free_port(start_on)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        assert self.process is not None
        while True:
            if self.process.returncode is not None:
                self.stop()
                raise DevstackError(f"versitygw exited\n{self.process.log_tail()}")
            with contextlib.suppress(httpx.HTTPError), self.client() as client:
                client.get("/")  # any S3 answer (403 for an anonymous list) means it serves
                return
            if time.monotonic() > deadline:
                self.stop()
                raise DevstackError(f"versitygw not serving on {self.endpoint}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def __enter__(self) -> ObjectStore:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the S3 API, signed as the root user ---

    def client(self, *, secret_key: str | None = None) -> httpx.Client:
        auth = AWS4Auth(self.access_key, secret_key or self.secret_key, REGION, "s3")
        verify = ssl.create_default_context(cafile=str(self.ca_file))
        return httpx.Client(base_url=self.endpoint, auth=auth, verify=verify, timeout=10.0)

    def make_bucket(self, bucket: str) -> None:
        with self.client() as client:
            response = client.put(f"/{bucket}")
            if response.status_code not in (200, 409):  # 409: it exists already
                raise DevstackError(f"PUT /{bucket}: {response.status_code} {response.text}")

    def put(self, bucket: str, key: str, data: bytes) -> None:
        with self.client() as client:
            response = client.put(f"/{bucket}/{key}", content=data)
            if response.status_code != 200:
                raise DevstackError(f"PUT /{bucket}/{key}: {response.status_code} {response.text}")

    def put_dir(self, bucket: str, prefix: str, directory: Path) -> None:
        """Upload every file of ``directory`` under ``prefix/`` (a model version)."""
        for path in sorted(Path(directory).iterdir()):
            if path.is_file():
                self.put(bucket, f"{prefix.strip('/')}/{path.name}", path.read_bytes())

    def write_credentials(self, directory: Path, *, secret_key: str | None = None) -> Path:
        """The files of a mounted Secret (the fetcher's credentials_dir)."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "AWS_ACCESS_KEY_ID").write_text(self.access_key)
        (directory / "AWS_SECRET_ACCESS_KEY").write_text(secret_key or self.secret_key)
        return directory
