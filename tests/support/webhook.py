"""A webhook sink: what Alertmanager's receivers post to in the tests."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """A webhook sink standing in for the pager gateway and the chat service: on loopback,
    or on ``host`` where the Alertmanager runs in a pod (the real node's HOST_IP)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.posts: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.posts.append(
                    {"path": self.path, "headers": dict(self.headers), "body": json.loads(body)}
                )
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, path: str, text: str, timeout: float = 90.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for post in list(self.posts):
                if post["path"] == path and text in json.dumps(post["body"]):
                    return post
            time.sleep(0.5)
        raise TimeoutError(
            f"no POST to {path} mentioning {text!r}: {[p['path'] for p in self.posts]}"
        )

    def alerts(self) -> list[dict]:
        """Every alert of every post (Alertmanager's webhook body)."""
        return [a for post in self.posts for a in post["body"]["alerts"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()  # the listening socket too (a ResourceWarning otherwise)
