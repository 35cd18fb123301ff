"""bench/open_loop.py: the schedule keeps its rate whatever the server does, and a stall
shows as the latency of every request due during it (no coordinated omission)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import uvloop

from bench.open_loop import RESULT_PREFIX, http_post, open_loop, parse_output, pct, summarize

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"


CLOSING = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"


async def serve(
    stall_on: int | None = None, stall_s: float = 0.0, close: bool = False
) -> asyncio.Server:
    """A loopback HTTP/1.1 server that answers every request at once, except the
    ``stall_on``-th (counted over all connections), which it holds ``stall_s``;
    ``close``: each answer says Connection: close, and the server closes."""
    seen = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                await reader.readexactly(length)
                seen[0] += 1
                if seen[0] == stall_on:
                    await asyncio.sleep(stall_s)
                writer.write(CLOSING if close else ANSWER)
                await writer.drain()
                if close:
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def run(
    rate: float, seconds: float, connections: int, timeout: float = 5, **server: float
) -> list[float]:
    latencies, statuses = exchange(rate, seconds, connections, timeout, **server)
    assert statuses == {200: len(latencies)}
    return latencies


def exchange(
    rate: float, seconds: float, connections: int, timeout: float, **server: float
) -> tuple[list[float], Counter[int]]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()

    async def go() -> None:
        srv = await serve(**server)  # type: ignore[arg-type]
        port = srv.sockets[0].getsockname()[1]
        raw = http_post("127.0.0.1", "/v1/predict", b"{}")

        def answered(_: int, status: int, latency: float) -> None:
            statuses[status] += 1
            latencies.append(latency)

        async with srv:
            await open_loop(
                port, lambda _: raw, rate, seconds, connections=connections, timeout=timeout,
                answered=answered,
            )  # fmt: skip

    uvloop.run(go())  # the loop bench/open_loop.py runs on
    return latencies, statuses


def test_the_schedule_sends_rate_times_seconds_requests() -> None:
    latencies = run(rate=200, seconds=0.5, connections=4)
    assert len(latencies) == 100
    assert 0 < pct(latencies, 0.5) < 0.05


def test_a_stall_is_the_latency_of_every_request_due_during_it() -> None:
    # One connection: a closed loop would send nothing while the server holds request 10,
    # and count one slow request; here the ~20 requests due in those 0.2 s wait their turn
    # and each counts its wait from its due time.
    latencies = run(rate=100, seconds=1.0, connections=1, stall_on=10, stall_s=0.2)
    assert len(latencies) == 100
    # libuv's timers (uvloop) have millisecond resolution: the server's sleep and the
    # schedule's due times may each fire up to a millisecond early
    assert max(latencies) >= 0.2 - 0.002
    assert sum(latency >= 0.1 for latency in latencies) >= 8


def test_a_server_that_closes_after_each_answer_is_reconnected_to() -> None:
    latencies = run(rate=200, seconds=0.5, connections=2, close=True)
    assert len(latencies) == 100


def test_an_answer_that_never_comes_is_a_transport_error_after_the_timeout() -> None:
    latencies, statuses = exchange(100, 0.5, 2, timeout=0.3, stall_on=5, stall_s=30)
    assert statuses == {200: 49, 0: 1}
    assert 0.3 <= max(latencies) < 1.5


def test_summary_counts_errors_and_percentiles_in_microseconds() -> None:
    latencies = [i / 1000 for i in range(1, 1001)]  # 1..1000 ms
    result = summarize(latencies, Counter({200: 990, 503: 8, 0: 2}), 2.0, 600.0, late=3)
    assert result["requests"] == 1000
    assert result["rps"] == 500
    assert result["error_count"] == 10
    assert result["late_sends"] == 3
    assert result["latency_us"]["p50"] == 500_000
    assert result["latency_us"]["p99"] == 990_000
    assert result["latency_us"]["p999"] == 999_000
    assert result["latency_us"]["max"] == 1_000_000


def test_the_result_line_is_read_back() -> None:
    result = {"requests": 3, "latency_us": {"p99": 1.5}}
    assert parse_output(f"noise\n{RESULT_PREFIX}{json.dumps(result)}\n") == result
    assert parse_output("no result here\n") is None
