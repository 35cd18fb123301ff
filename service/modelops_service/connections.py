"""Keep-alive connections that end: a pod started after a client connected gets its share.

kube-proxy balances connections, not requests. A client that keeps its connections open
(httpx, requests.Session, a Java pool: most do) would send everything to the pods that
existed when it connected, and a canary or a scaled-up replica behind the same Service would
get nothing. ``ConnectionAge`` answers `Connection: close` on the first response of a
connection after it has served ``max_age`` seconds; the client reconnects and kube-proxy
picks a pod again. gRPC servers do the same with MAX_CONNECTION_AGE, nginx with
keepalive_time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CLOSE = (b"connection", b"close")
PRUNE_AT = 4096  # connections remembered before the ones past their age are forgotten


class ConnectionAge:
    """A pure ASGI middleware: ``Connection: close`` once a connection is ``max_age`` old.

    A connection is known by its client address and port (the ASGI scope has no connection
    id); its age counts from its first request. A port the client reuses later may be
    closed one request early: harmless, it reconnects.
    """

    def __init__(
        self, app: ASGIApp, max_age: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.app = app
        self.max_age = max_age
        self.clock = clock
        self.born: dict[tuple[str, int], float] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] != "http" or not client or self.max_age <= 0:
            await self.app(scope, receive, send)
            return
        now = self.clock()
        key = (client[0], client[1])
        born = self.born.get(key)
        if born is None:
            if len(self.born) >= PRUNE_AT:
                self._prune(now)
            self.born[key] = now
        elif now - born >= self.max_age:
            del self.born[key]
            await self.app(scope, receive, _closing(send))
            return
        await self.app(scope, receive, send)

    def _prune(self, now: float) -> None:
        """Forget the connections past their age: closed ones (most of them), or live ones
        that then live up to twice ``max_age``."""
        self.born = {k: t for k, t in self.born.items() if now - t < self.max_age}


def _closing(send: Send) -> Send:
    async def send_closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [h for h in message.get("headers", []) if h[0].lower() != b"connection"]
            message = {**message, "headers": [*headers, CLOSE]}
        await send(message)

    return send_closing
