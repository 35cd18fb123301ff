"""A real HTTPS server over a directory, with a serving cert from the rig's CA.

    from devstack.https_files import HttpsFiles

    with HttpsFiles(root, pki) as files:     # pki: a directory of devstack.pki
        files.url                            # https://127.0.0.1:PORT; GET /wine/2/model.json

    HttpsFiles(root, pki, authorization="Bearer t0ken")   # 401 without that header

Python's http.server with TLS, in a thread of the calling process: what a team's plain
web server of model files looks like to the fetcher (https:// model URIs), optionally one
that serves only requests with a given Authorization header. ``handler`` takes another
BaseHTTPRequestHandler class for servers that misbehave on purpose.
"""

from __future__ import annotations

import functools
import os
import secrets
import ssl
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devstack.pki import issue_server_cert
from devstack.processes import HOST

__all__ = ["HttpsFiles"]


class _QuietFiles(SimpleHTTPRequestHandler):
    def __init__(self, *args: Any, authorization: str | None = None, **kwargs: Any) -> None:
        self.authorization = authorization  # set before the base class serves the request
        super().__init__(*args, **kwargs)

    def send_head(self) -> Any:
        if self.authorization is not None and not secrets.compare_digest(
            self.headers.get("Authorization", "").encode(), self.authorization.encode()
        ):
            self.send_error(HTTPStatus.UNAUTHORIZED)
            return None
        return super().send_head()

    def log_message(self, format: str, *args: object) -> None:
        pass


class HttpsFiles:
    def __init__(
        self,
        root: str | os.PathLike,
        pki: Path,
        *,
        host: str = HOST,
        handler: type[BaseHTTPRequestHandler] | None = None,
        authorization: str | None = None,
    ) -> None:
        self.root = Path(root)
        self.pki = Path(pki)
        self.host = host
        self.handler = handler
        self.authorization = authorization
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self.server is not None, "not started"
        return f"https://{self.host}:{self.server.server_address[1]}"

    @property
    def location(self) -> str:
        """host:port, as an https:// model uri spells it."""
        return self.url.removeprefix("https://")

    @property
    def ca_file(self) -> Path:
        return self.pki / "ca.crt"

    def start(self) -> HttpsFiles:
        tls = self.pki / "https-files"
        issue_server_cert(self.pki, "https-files", [f"IP:{self.host}", "DNS:localhost"], tls)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls / "https-files.crt", tls / "https-files.key")
        handler = self.handler or functools.partial(
            _QuietFiles, directory=str(self.root), authorization=self.authorization
        )
        self.server = ThreadingHTTPServer((self.host, 0), handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self) -> HttpsFiles:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
