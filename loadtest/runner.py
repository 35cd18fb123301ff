"""Send a scenario's requests to a running model service, open loop, bounded.

Requests go out at the scenario's rate whether or not earlier ones have been answered
(open loop: a slow server does not slow the generator down, as real clients would not),
with at most ``concurrency`` in flight; a request due while that many are in flight is
counted as ``dropped`` instead of queued. A progress line goes to ``progress`` every
second; ``run`` returns a ``Summary``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import sys
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import urlsplit

import httpx

from loadtest.scenarios import SCENARIOS, Request, Scenario, make_scenario, percentile

# Bounds of one run: the generator is a test tool, not a stress cannon.
MAX_RATE = 500.0  # requests/s asked for (a spike may multiply it, up to MAX_PEAK_RATE)
MAX_PEAK_RATE = 2000.0
MAX_DURATION = 3600.0  # seconds
MAX_CONCURRENCY = 256
MAX_BATCH = 1000
# Independent clients taking turns, each with its own keep-alive connection. A Service
# splits traffic per connection (kube-proxy picks a pod when one opens), so a lone client
# reaches one pod at a time: a canary by replicas would see its traffic in blocks of a
# connection's life (the service's max connection age) instead of its share. (A client whose
# requests overlap, a stall of the server, opens another, as any HTTP/1.1 client pool does.)
DEFAULT_CLIENTS = 8


class LoadTestError(RuntimeError):
    """The run could not start (bad bounds, service unreachable)."""


@dataclass
class Summary:
    scenario: str
    url: str
    model: str
    version: str
    rate: float
    duration_s: float
    sent: int = 0
    completed: int = 0
    dropped: int = 0
    transport_errors: int = 0
    by_status: Counter = field(default_factory=Counter)
    by_kind: dict[str, Counter] = field(default_factory=dict)
    latencies_ms: array = field(default_factory=lambda: array("d"), repr=False)
    sending_s: float = 0.0  # the schedule: from the first send to the end of the duration
    elapsed_s: float = 0.0  # and until the last answer came back (or timed out)

    def status_class(self, cls: str) -> int:
        """Responses whose status code starts with ``cls`` ("2", "4", "5")."""
        return sum(n for code, n in self.by_status.items() if str(code).startswith(cls))

    @property
    def achieved_rate(self) -> float:
        # over the schedule only: the wait for the last answers sends nothing
        return self.sent / self.sending_s if self.sending_s else 0.0

    def latency_ms(self, q: float) -> float:
        return percentile(sorted(self.latencies_ms), q)

    def to_dict(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)

        def pct(q: float) -> float | None:
            v = percentile(lat, q)
            return None if math.isnan(v) else round(v, 3)

        return {
            "scenario": self.scenario,
            "url": self.url,
            "model": self.model,
            "version": self.version,
            "rate": self.rate,
            "duration_s": self.duration_s,
            "sending_s": round(self.sending_s, 3),
            "elapsed_s": round(self.elapsed_s, 3),
            "sent": self.sent,
            "completed": self.completed,
            "dropped": self.dropped,
            "transport_errors": self.transport_errors,
            "achieved_rate": round(self.achieved_rate, 2),
            "status": {str(k): v for k, v in sorted(self.by_status.items())},
            "2xx": self.status_class("2"),
            "4xx": self.status_class("4"),
            "5xx": self.status_class("5"),
            "by_kind": {
                kind: dict(sorted(codes.items())) for kind, codes in sorted(self.by_kind.items())
            },
            "latency_ms": {"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99), "max": pct(1.0)},
        }

    def format(self) -> str:
        d = self.to_dict()
        lat = d["latency_ms"]
        lines = [
            f"scenario {self.scenario} against {self.url} ({self.model} version {self.version})",
            f"  sent       {self.sent} in {self.sending_s:.1f}s ({d['achieved_rate']} req/s, "
            f"asked {self.rate:g} req/s); the last answer after {self.elapsed_s:.1f}s",
            f"  answered   {self.completed}: 2xx {d['2xx']}, 4xx {d['4xx']}, 5xx {d['5xx']}",
            f"  status     {', '.join(f'{k}: {v}' for k, v in d['status'].items()) or '-'}",
            f"  failed     {self.transport_errors} transport errors, {self.dropped} dropped "
            f"(concurrency limit)",
            f"  latency    p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms, "
            f"max {lat['max']} ms",
        ]
        for kind, codes in d["by_kind"].items():
            if kind != "ok":
                lines.append(
                    f"  bad input  {kind:<20} -> {', '.join(f'{k}: {v}' for k, v in codes.items())}"
                )
        return "\n".join(lines)


def check_bounds(
    rate: float, duration: float, concurrency: int, batch: int, peak: float, clients: int
) -> None:
    problems = []
    if not 0 < rate <= MAX_RATE:
        problems.append(f"--rate must be in (0, {MAX_RATE:g}]")
    if not 0 < duration <= MAX_DURATION:
        problems.append(f"--duration must be in (0, {MAX_DURATION:g}] seconds")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        problems.append(f"--concurrency must be in [1, {MAX_CONCURRENCY}]")
    if clients < 1:
        problems.append("--clients must be at least 1")
    if not 1 <= batch <= MAX_BATCH:
        problems.append(f"--batch must be in [1, {MAX_BATCH}]")
    if peak > MAX_PEAK_RATE:
        problems.append(f"the peak rate {peak:g} req/s is above {MAX_PEAK_RATE:g}")
    if problems:
        raise LoadTestError("; ".join(problems))


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def fetch_card(client: httpx.AsyncClient) -> dict[str, Any]:
    try:
        response = await client.get("/v1/model")
    except httpx.HTTPError as err:
        raise LoadTestError(f"cannot reach the model service: {err!r}") from err
    if response.status_code != 200:
        raise LoadTestError(f"GET /v1/model answered {response.status_code}: {response.text[:200]}")
    return response.json()


async def _send(client: httpx.AsyncClient, req: Request, summary: Summary) -> None:
    started = time.perf_counter()
    try:
        response = await client.request(
            req.method, req.path, content=req.body, headers={"content-type": req.content_type}
        )
    except httpx.HTTPError:
        summary.transport_errors += 1
        summary.by_kind.setdefault(req.kind, Counter())["transport error"] += 1
        return
    summary.latencies_ms.append((time.perf_counter() - started) * 1000)
    summary.completed += 1
    summary.by_status[response.status_code] += 1
    summary.by_kind.setdefault(req.kind, Counter())[str(response.status_code)] += 1


def _progress_line(summary: Summary, elapsed: float, rate: float, in_flight: int) -> str:
    recent = sorted(summary.latencies_ms[-2000:])
    p95 = percentile(recent, 0.95)
    p95_text = "-" if math.isnan(p95) else f"{p95:.1f}ms"
    return (
        f"[{elapsed:6.1f}s/{summary.duration_s:g}s] sent {summary.sent} "
        f"2xx {summary.status_class('2')} 4xx {summary.status_class('4')} "
        f"5xx {summary.status_class('5')} err {summary.transport_errors} "
        f"dropped {summary.dropped} | {rate:g} req/s p95 {p95_text} in-flight {in_flight}"
    )


async def arun(
    url: str,
    scenario: str,
    rate: float,
    duration: float,
    *,
    batch: int = 1,
    concurrency: int = 32,
    clients: int = DEFAULT_CLIENTS,
    seed: int = 0,
    timeout: float = 10.0,
    progress: TextIO | None = sys.stderr,
    allow_remote: bool = False,
    **scenario_options: Any,
) -> Summary:
    """Run one scenario against ``url`` (the service's base URL); see ``run``."""
    if not allow_remote and not is_loopback(url):
        raise LoadTestError(
            f"{url} is not a loopback address; port-forward the service (kubectl port-forward) "
            "or pass --allow-remote for a server you run"
        )
    if scenario not in SCENARIOS:
        raise LoadTestError(f"unknown scenario {scenario!r}; choose one of {SCENARIOS}")
    spike = scenario_options.get("spike_factor", 4.0) if scenario == "spike" else 1.0
    check_bounds(rate, duration, concurrency, batch, rate * spike, clients)
    url = url.rstrip("/")
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with contextlib.AsyncExitStack() as stack:
        pool = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits)
            )
            for _ in range(min(clients, concurrency))  # no more than can be in flight
        ]
        card = await fetch_card(pool[0])
        plan: Scenario = make_scenario(
            scenario, card, rate=rate, duration=duration, batch=batch, seed=seed,
            **scenario_options,
        )  # fmt: skip
        summary = Summary(scenario, url, plan.schema.name, plan.schema.version, rate, duration)
        in_flight: set[asyncio.Task] = set()
        loop = asyncio.get_running_loop()
        start = loop.time()
        next_send = start
        next_report = start + 1.0
        while True:
            now = loop.time()
            elapsed = now - start
            if elapsed >= duration:
                break
            current_rate = plan.rate_at(elapsed)
            if next_send < now - 1.0:  # fell behind by more than a second: do not burst
                missed = int((now - next_send) * current_rate)
                summary.dropped += missed
                next_send = now
            while next_send <= now:
                if len(in_flight) >= concurrency:
                    summary.dropped += 1
                else:
                    client = pool[summary.sent % len(pool)]
                    task = asyncio.create_task(_send(client, plan.request(elapsed), summary))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                    summary.sent += 1
                next_send += 1.0 / current_rate
            if progress is not None and now >= next_report:
                print(_progress_line(summary, elapsed, current_rate, len(in_flight)), file=progress)
                progress.flush()
                next_report += 1.0
            wake = min(next_send, next_report, start + duration)
            await asyncio.sleep(max(0.0, wake - loop.time()))
        summary.sending_s = loop.time() - start
        if in_flight:
            await asyncio.wait(in_flight, timeout=timeout + 1)
        summary.elapsed_s = loop.time() - start
    if progress is not None:
        print(_progress_line(summary, summary.elapsed_s, rate, 0), file=progress)
    return summary


def run(url: str, scenario: str, rate: float, duration: float, **kwargs: Any) -> Summary:
    """Run ``scenario`` at ``rate`` requests/s for ``duration`` seconds; blocks.

    Keyword arguments: ``batch`` (rows per request), ``concurrency`` (most requests in
    flight), ``clients`` (independent clients taking turns, each with its own connection:
    see DEFAULT_CLIENTS), ``seed``, ``timeout`` (per request, seconds), ``progress`` (a
    text stream for the once-a-second progress line, None for silence), ``allow_remote`` (permit a
    non-loopback URL), and the scenario's options (``drift_shift``, ``drift_ramp``,
    ``drift_features``, ``bad_fraction``, ``spike_factor``, ``spike_width``, ``base_rows``).
    """
    return asyncio.run(arun(url, scenario, rate, duration, **kwargs))
