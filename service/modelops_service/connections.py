"""Keep-alive connections that end: a pod started after a client connected gets its share.

kube-proxy balances connections, not requests. A client that keeps its connections open
(httpx, requests.Session, a Java pool: most do) would send everything to the pods that
existed when it connected, and a canary or a scaled-up replica behind the same Service would
get nothing. The first response of a connection after it has served ``max_age`` seconds
answers `Connection: close` (``middleware.HttpLayer`` asks ``ConnectionAges``); the client
reconnects and kube-proxy picks a pod again. gRPC servers do the same with
MAX_CONNECTION_AGE, nginx with keepalive_time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

CLOSE = (b"connection", b"close")
PRUNE_AT = 4096  # connections remembered before the ones past their age are forgotten


class ConnectionAges:
    """The age of each connection, known by its client address and port (the ASGI scope
    has no connection id); it counts from the connection's first request. A port the
    client reuses later may be closed one request early: harmless, it reconnects."""

    def __init__(self, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self.clock = clock
        self.born: dict[tuple[str, int], float] = {}

    def expired(self, client: Sequence | None) -> bool:
        """Whether the response to this request from ``client`` ends its connection
        (never when ``max_age`` is 0 or the client is unknown); an expired connection is
        forgotten: its next request is a new connection's."""
        if not client or self.max_age <= 0:
            return False
        now = self.clock()
        key = (client[0], client[1])
        born = self.born.get(key)
        if born is None:
            if len(self.born) >= PRUNE_AT:
                self._prune(now)
            self.born[key] = now
            return False
        if now - born >= self.max_age:
            del self.born[key]
            return True
        return False

    def _prune(self, now: float) -> None:
        """Forget the connections past their age: closed ones (most of them), or live ones
        that then live up to twice ``max_age``."""
        self.born = {k: t for k, t in self.born.items() if now - t < self.max_age}


def closing(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Response headers that close the connection: the app's own Connection header gives
    way to ``Connection: close``."""
    return [*(h for h in headers if h[0].lower() != b"connection"), CLOSE]
