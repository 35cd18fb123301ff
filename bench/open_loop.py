"""The open-loop load generator: requests sent at a constant arrival rate, whatever the server
does, over keep-alive HTTP/1.1 connections (bench/soak.py's mix, `make bench`'s tail goal).

A closed loop (wrk) waits for each answer before it sends the next request, so a server
that stalls is sent less and its stall hides in a lower rate ("coordinated omission").
Here the schedule never waits: each request has its due time (start + i / rate), a free
connection sends it, and its latency counts from the due time, so a stall, or a backlog
beyond every connection, shows as latency. Late sends (the generator itself more than
``LATE_S`` behind its schedule) are counted: many of them mean the figures describe the
generator, not the server.

Run as a command (one server, one body, a JSON result line like bench/wrk_post.lua's):

    python -m bench.open_loop --url http://127.0.0.1:P/v1/predict --body-file F \\
        --rate 700 --seconds 10 [--connections 64]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import sys
import time
import urllib.parse
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path

import uvloop

HOST = "127.0.0.1"
LATE_S = 0.002  # a send this far behind its due time counts as late
RESULT_PREFIX = "BENCH_JSON "


def http_post(host: str, path: str, body: bytes, content_type: str = "application/json") -> bytes:
    """A whole HTTP/1.1 POST, built once and sent as is."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by the nearest-rank method; NaN without values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _parse_head(head: bytes | bytearray) -> tuple[int, int, bool]:
    """(status, Content-Length, Connection: close) of an HTTP/1.1 response head."""
    lines = bytes(head).decode("latin-1").split("\r\n")
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            close = True
    return int(lines[0].split(" ", 2)[1]), length, close


class Connection:
    """One keep-alive connection; reconnects when the server closes it."""

    def __init__(self, port: int, host: str = HOST) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def send(self, raw: bytes, timeout: float) -> int:
        """Status code of one exchange; 0 for a transport error."""
        try:
            # asyncio.timeout, not wait_for: no task of its own per request (the
            # generator's cost per request bounds the rate it can hold)
            async with asyncio.timeout(timeout):
                return await self._exchange(raw)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            await self.close()
            return 0

    async def _exchange(self, raw: bytes) -> int:
        if self.writer is None:
            await self.connect()
        assert self.reader is not None
        assert self.writer is not None
        self.writer.write(raw)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status, length, close = _parse_head(head)
        if length:
            await self.reader.readexactly(length)
        if close:
            await self.close()
        return status


class _Link(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight, its answer parsed as
    the bytes arrive: no coroutine, task or timer per request (the generator's CPU per
    request bounds the rate it holds, and on a shared core, how late it runs)."""

    def __init__(self, finished: Callable[[_Link, int], None]) -> None:
        self.finished = finished
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.inflight: tuple[int, float, float] | None = None  # (i, due, sent at)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def send(self, i: int, due: float, raw: bytes) -> None:
        assert self.transport is not None
        self.inflight = (i, due, time.perf_counter())
        self.transport.write(raw)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        status, length, close = _parse_head(self.buffer[:end])
        if len(self.buffer) < end + 4 + length:
            return
        del self.buffer[: end + 4 + length]
        if close:
            self.abort()  # finishes the request with its status below, then reconnects
        self.finish(status)

    def finish(self, status: int) -> None:
        if self.inflight is not None:
            self.finished(self, status)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
            self.transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.finish(0)  # a request in flight on a lost connection is a transport error


async def open_loop(
    port: int,
    request: Callable[[int], bytes],
    rate: float,
    seconds: float,
    *,
    connections: int,
    timeout: float,
    answered: Callable[[int, int, float], None],
    late: Callable[[], None] = lambda: None,
    tick: tuple[float, Callable[[float], None]] | None = None,
    late_after: float = LATE_S,
    host: str = HOST,
) -> None:
    """Send ``request(i)`` at ``rate`` per second for ``seconds``, over ``connections``;
    ``answered(i, status, latency_s)`` for each answer (latency from the due time, status
    0 for a transport error or ``timeout``), ``late()`` for each send made ``late_after`` s
    late, and ``tick = (interval, call)``: ``call(boundary)`` every ``interval`` seconds."""
    loop = asyncio.get_running_loop()
    free: deque[_Link] = deque()
    backlog: deque[tuple[int, float]] = deque()
    links: list[_Link] = []
    outstanding = [0]
    all_answered = loop.create_future()

    def dispatch(link: _Link) -> None:
        if link.transport is None:  # closed: its place goes to a new connection
            link.inflight = None
            links.remove(link)
            task = asyncio.ensure_future(reconnect())
            reconnecting.add(task)
            task.add_done_callback(reconnecting.discard)
        elif backlog:
            i, due = backlog.popleft()
            link.send(i, due, request(i))
        else:
            link.inflight = None
            free.append(link)

    def finished(link: _Link, status: int) -> None:
        assert link.inflight is not None
        i, due, _ = link.inflight
        link.inflight = None
        answered(i, status, time.perf_counter() - due)
        outstanding[0] -= 1
        if outstanding[0] == 0 and sending_done[0] and not all_answered.done():
            all_answered.set_result(None)
        dispatch(link)

    reconnecting: set[asyncio.Future[None]] = set()

    async def reconnect() -> None:
        # A new protocol per connection: the old one's connection_lost may still come.
        while True:
            link = _Link(finished)
            with contextlib.suppress(OSError):
                await loop.create_connection(lambda link=link: link, host, port)
                links.append(link)
                dispatch(link)
                return
            await asyncio.sleep(0.01)  # the server refused: try again shortly

    def expire() -> None:
        """Abort every connection whose request has waited ``timeout`` for its answer."""
        now = time.perf_counter()
        for link in list(links):
            if link.inflight is not None and now - link.inflight[2] > timeout:
                link.abort()
                link.finish(0)
        expiry[0] = loop.call_later(min(timeout, 0.5), expire)

    # Connected before the first due time: a connect is not a latency of the server's.
    for _ in range(connections):
        link = _Link(finished)
        await loop.create_connection(lambda link=link: link, host, port)
        links.append(link)
        free.append(link)
    expiry = [loop.call_later(min(timeout, 0.5), expire)]
    sending_done = [False]
    start = time.perf_counter()
    end, period = start + seconds, 1.0 / rate
    next_tick = start + tick[0] if tick else math.inf
    sent = 0
    while (due := start + sent * period) < end:
        now = time.perf_counter()
        if due > now:
            await asyncio.sleep(due - now)
        elif now - due > late_after:
            late()
        # A backlog beyond every connection means the server is not keeping up: it shows
        # as latency (from `due`); the schedule is never thinned out.
        backlog.append((sent, due))
        outstanding[0] += 1
        if free:
            dispatch(free.popleft())
        sent += 1
        if tick and time.perf_counter() >= next_tick:
            tick[1](next_tick)
            next_tick += tick[0]
    sending_done[0] = True
    if outstanding[0]:
        await all_answered
    expiry[0].cancel()
    for link in links:
        link.abort()


def constant_rate(
    url: str, body: bytes, rate: float, seconds: float, connections: int, timeout: float
) -> dict:
    """One body POSTed to ``url`` at ``rate`` for ``seconds``: the result (latencies in
    microseconds, like bench/wrk_post.lua's line)."""
    parts = urllib.parse.urlsplit(url)
    raw = http_post(parts.hostname or HOST, parts.path, body)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lateness = [0]

    def answered(_: int, status: int, latency: float) -> None:
        latencies.append(latency)
        statuses[status] += 1

    def late() -> None:
        lateness[0] += 1

    started = time.perf_counter()
    # uvicorn's loop (uvicorn[standard]): the generator holds about twice asyncio's rate
    uvloop.run(
        open_loop(
            parts.port or 80, lambda _: raw, rate, seconds, connections=connections,
            timeout=timeout, answered=answered, late=late, host=parts.hostname or HOST,
        )
    )  # fmt: skip
    return summarize(latencies, statuses, time.perf_counter() - started, rate, lateness[0])


def summarize(
    latencies: list[float], statuses: Counter[int], seconds: float, rate: float, late: int
) -> dict:
    """The result of one open-loop run: the rate asked and answered, errors (transport
    and non-2xx), late sends, and the latency percentiles in microseconds."""
    errors = sum(n for status, n in statuses.items() if not 200 <= status < 300)
    return {
        "rate": rate,
        "requests": len(latencies),
        "rps": len(latencies) / seconds if seconds else 0.0,
        "error_count": errors,
        "late_sends": late,
        "latency_us": {
            name: pct(latencies, q) * 1e6
            for name, q in (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p999", 0.999))
        }
        | {"max": max(latencies, default=math.nan) * 1e6},
    }


def parse_output(stdout: str) -> dict | None:
    """The result line of a run of this module as a command; None when there is none."""
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line.removeprefix(RESULT_PREFIX))
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", type=Path, required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    args = parser.parse_args(argv)
    if urllib.parse.urlsplit(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("the open loop sends to loopback only")
    gc.disable()  # a collection in the generator would show as the servers' latency
    result = constant_rate(
        args.url, args.body_file.read_bytes(), args.rate, args.seconds,
        args.connections, args.timeout,
    )  # fmt: skip
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
