"""Soak the REAL model service: mixed traffic at ~70% of its measured capacity for N minutes.

    .venv/bin/python bench/soak.py                   # 20 minutes (the issue's soak)
    .venv/bin/python bench/soak.py --minutes 3       # a short proof run
    make soak SOAK_ARGS="--minutes 3"

A benchmark, not a test. One run:

1. starts the service (`python -m modelops_service`, devstack/service_process.py) on a
   model (default models/wine/1) with its declared sha256 and default settings (metrics and
   drift on), and pins it to CPU 0 and this load generator to CPU 1 (when there are two);
2. measures capacity: closed loop, the same traffic mix, `--connections` keep-alive
   connections, `--capacity-seconds` long (after a warm-up);
3. soaks: open loop at `--load` x capacity (default 0.7) for `--minutes`, a Prometheus-like
   scrape of /metrics every 15 s (drift is computed on scrape), and every minute prints
   throughput, p50/p99 latency (from each request's scheduled send time, so a stall shows
   up as latency rather than as a quietly lower rate), status classes and the resident
   memory (RSS) of the service's process tree;
4. prints the growth from the first to the last minute (RSS, p99, throughput) and writes
   everything to bench-results/soak-STAMP.json.

The mix (per request): 60% one valid row on /v1/predict, 15% one row as an Open Inference
Protocol tensor on /v2, 15% a 100-row batch on /v1/predict, 10% bad input cycling through
every kind the loadtest scenarios know (malformed JSON, wrong content type, missing, extra
or wrongly typed field, NaN/inf, out of range, empty batch, too many rows, body too large).
Rows come from the model card's training reference (loadtest/scenarios.py), so the drift
window sees live traffic like production's.

Exit status: 0 when every answer was the expected class (2xx for valid, 4xx for bad) and
RSS grew by at most `--max-growth-mib` from the first to the last minute; 1 otherwise.
Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.drive import Scraper, rss_mib, tree_pids
from bench.open_loop import HOST, Connection, http_post, pct
from bench.open_loop import open_loop as generate
from devstack.paths import REPO_ROOT as REPO
from devstack.service_process import ServiceProcess, demo_model_dir, start_service
from loadtest.scenarios import BAD_KINDS, bad_request, dumps, make_scenario

SCRAPE_SECONDS = 15.0
MIX = (("v1-row", 0.60), ("v2-row", 0.15), ("v1-batch100", 0.15), ("bad", 0.10))


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Prepared:
    kind: str  # v1-row, v2-row, v1-batch100 or bad:<reason>
    raw: bytes  # the whole HTTP/1.1 request
    expect: str  # first digit of the right status: "2" or "4"


def prepare(card: dict[str, Any], count: int, seed: int, range_policy: str) -> list[Prepared]:
    """``count`` requests of the mix, in a shuffled order, built once before the run.

    An out-of-range value is refused (4xx) under the range policy "reject" and answered
    with a warning (2xx) under "flag", the default."""
    scenario = make_scenario("normal", card, rate=1.0, duration=1.0, seed=seed)
    schema = scenario.schema
    names = [f.name for f in schema.features]
    v2_path = f"/v2/models/{card['name']}/infer"
    rng = random.Random(seed)
    bad = list(BAD_KINDS)
    out: list[Prepared] = []
    for i in range(count):
        kind = rng.choices([k for k, _ in MIX], weights=[w for _, w in MIX])[0]
        if kind == "v1-row":
            out.append(Prepared(kind, http_post(HOST, "/v1/predict", dumps(scenario.row())), "2"))
        elif kind == "v2-row":
            row = scenario.row()
            tensor = {
                "name": "input-0",
                "shape": [1, len(names)],
                "datatype": "FP64",
                "data": [row[n] for n in names],
            }
            out.append(Prepared(kind, http_post(HOST, v2_path, dumps({"inputs": [tensor]})), "2"))
        elif kind == "v1-batch100":
            body = dumps({"instances": scenario.rows(100)})
            out.append(Prepared(kind, http_post(HOST, "/v1/predict", body), "2"))
        else:
            reason = bad[i % len(bad)]
            req = bad_request(reason, schema, scenario.row())
            raw = http_post(HOST, req.path, req.body, req.content_type)
            flagged = reason == "out_of_range" and range_policy == "flag"
            out.append(Prepared(f"bad:{reason}", raw, "2" if flagged else "4"))
    return out


# --------------------------------------------------------------------------- measuring


@dataclass
class Window:
    """What one reporting interval saw."""

    start: float
    completed: int = 0
    by_class: Counter = field(default_factory=Counter)
    unexpected: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    late_sends: int = 0

    def record(self, req: Prepared, status: int, latency_s: float) -> None:
        self.completed += 1
        cls = f"{status // 100}xx" if status else "transport"
        self.by_class[cls] += 1
        if not status or str(status)[0] != req.expect:
            self.unexpected[f"{req.kind}->{status or 'transport'}"] += 1
        self.latencies_ms.append(latency_s * 1000)


async def closed_loop(
    port: int, requests: list[Prepared], connections: int, seconds: float, timeout: float
) -> Window:
    window = Window(time.perf_counter())
    deadline = window.start + seconds
    counter = iter(range(10**12))

    async def worker() -> None:
        conn = Connection(port)
        while time.perf_counter() < deadline:
            req = requests[next(counter) % len(requests)]
            t0 = time.perf_counter()
            status = await conn.send(req.raw, timeout)
            window.record(req, status, time.perf_counter() - t0)
        await conn.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return window


@dataclass
class Minute:
    index: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    rss_mib: float
    by_class: dict[str, int]
    unexpected: dict[str, int]
    late_sends: int
    loadavg_1m: float  # the machine's load: p99 spikes on a shared machine track it

    def line(self) -> str:
        classes = " ".join(f"{k}={v}" for k, v in sorted(self.by_class.items()))
        bad = f"  UNEXPECTED {dict(self.unexpected)}" if self.unexpected else ""
        return (
            f"min {self.index:>3}  {self.rps:8.1f} req/s  p50 {self.p50_ms:7.2f} ms  "
            f"p99 {self.p99_ms:7.2f} ms  RSS {self.rss_mib:7.1f} MiB  [{classes}]"
            f"  late {self.late_sends}  load {self.loadavg_1m:.1f}{bad}"
        )


async def open_loop(
    port: int,
    requests: list[Prepared],
    rate: float,
    minutes: float,
    interval: float,
    connections: int,
    timeout: float,
    service_pid: int,
) -> list[Minute]:
    """Send at ``rate`` req/s for ``minutes``; a summary per ``interval`` seconds."""
    start = time.perf_counter()
    window = Window(start)
    minutes_out: list[Minute] = []

    def answered(i: int, status: int, latency: float) -> None:
        window.record(requests[i % len(requests)], status, latency)

    def late() -> None:
        window.late_sends += 1

    def close_window(now: float) -> None:
        nonlocal window
        done = window
        window = Window(now)
        seconds = now - done.start
        minutes_out.append(
            Minute(
                index=len(minutes_out) + 1,
                seconds=seconds,
                rps=done.completed / seconds if seconds else 0.0,
                p50_ms=pct(done.latencies_ms, 0.50),
                p99_ms=pct(done.latencies_ms, 0.99),
                rss_mib=rss_mib(service_pid),
                by_class=dict(done.by_class),
                unexpected=dict(done.unexpected),
                late_sends=done.late_sends,
                loadavg_1m=os.getloadavg()[0],
            )
        )
        print(minutes_out[-1].line(), flush=True)

    await generate(
        port, lambda i: requests[i % len(requests)].raw, rate, minutes * 60,
        connections=connections, timeout=timeout, answered=answered, late=late,
        tick=(interval, close_window), late_after=0.05,
    )  # fmt: skip
    close_window(time.perf_counter())
    return minutes_out


# --------------------------------------------------------------------------- the run


def pin_tree(pid: int, cpu: int) -> None:
    """Every thread of a process tree onto one CPU (threads already running included)."""
    for p in tree_pids(pid):
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(task.name), {cpu})


def growth(minutes: list[Minute]) -> dict[str, float]:
    # the last window may be a stub of a few seconds: compare whole minutes
    whole = [m for m in minutes if m.seconds >= 0.5 * minutes[0].seconds] or minutes
    first, last = whole[0], whole[-1]
    return {
        "rss_first_mib": first.rss_mib,
        "rss_last_mib": last.rss_mib,
        "rss_growth_mib": last.rss_mib - first.rss_mib,
        "rss_growth_pct": 100 * (last.rss_mib / first.rss_mib - 1) if first.rss_mib else 0.0,
        "rss_max_mib": max(m.rss_mib for m in minutes),
        "p99_first_ms": first.p99_ms,
        "p99_last_ms": last.p99_ms,
        "rps_first": first.rps,
        "rps_last": last.rps,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=20.0, help="soak length (default 20)")
    p.add_argument("--interval", type=float, default=60.0, help="seconds per report line")
    p.add_argument("--load", type=float, default=0.7, help="share of the measured capacity")
    p.add_argument("--capacity-seconds", type=float, default=20.0, help="capacity measurement")
    p.add_argument("--warmup-seconds", type=float, default=5.0)
    p.add_argument("--connections", type=int, default=32, help="keep-alive connections")
    p.add_argument("--model", type=Path, default=None, help="model dir (default models/wine/1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    p.add_argument("--max-growth-mib", type=float, default=20.0, help="RSS growth verdict")
    p.add_argument("--no-pin", action="store_true", help="do not pin service and generator")
    p.add_argument("--out", type=Path, default=None, help="JSON report (default bench-results/)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model_dir = args.model or demo_model_dir("wine", "1")
    card = json.loads((model_dir / "model.json").read_text())
    requests: list[Prepared] = []
    pin = not args.no_pin and len(os.sched_getaffinity(0)) >= 2
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or REPO / "bench-results" / f"soak-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)

    svc: ServiceProcess = start_service(
        model_dir, env={"MODELOPS_MODEL_SHA256": card["sha256"]}, log_dir=out.parent
    )
    try:
        with urllib.request.urlopen(f"{svc.url}/v1/model", timeout=10) as answer:
            range_policy = json.load(answer)["serving"]["range_policy"]
        requests = prepare(card, 4000, args.seed, range_policy)
        if pin:
            pin_tree(svc.pid, 0)
            os.sched_setaffinity(0, {1})
        print(
            f"soak: {card['name']} v{card['version']} on {svc.url} (pid {svc.pid}); "
            f"{'service on CPU 0, generator on CPU 1' if pin else 'unpinned'}; "
            f"{args.connections} connections; mix {dict(MIX)}; range policy {range_policy}",
            flush=True,
        )
        asyncio.run(closed_loop(svc.port, requests, args.connections, args.warmup_seconds, 30))
        cap = asyncio.run(
            closed_loop(svc.port, requests, args.connections, args.capacity_seconds, 30)
        )
        capacity = cap.completed / args.capacity_seconds
        rate = args.load * capacity
        print(
            f"capacity: {capacity:.1f} req/s closed loop (p50 {pct(cap.latencies_ms, 0.5):.2f} "
            f"ms, p99 {pct(cap.latencies_ms, 0.99):.2f} ms, {dict(cap.by_class)}); "
            f"soaking at {rate:.1f} req/s ({args.load:.0%}) for {args.minutes:g} min",
            flush=True,
        )
        with Scraper([f"{svc.url}/metrics"], SCRAPE_SECONDS) as scrapes:
            minutes = asyncio.run(
                open_loop(
                    svc.port, requests, rate, args.minutes, args.interval,
                    args.connections, args.timeout, svc.pid,
                )
            )  # fmt: skip
        alive = svc.returncode is None
        grown = growth(minutes)
        unexpected = sum(sum(m.unexpected.values()) for m in minutes) + sum(cap.unexpected.values())
        fivexx = sum(m.by_class.get("5xx", 0) for m in minutes)
        verdict_ok = alive and not unexpected and grown["rss_growth_mib"] <= args.max_growth_mib
        print(
            f"growth first->last minute: RSS {grown['rss_first_mib']:.1f} -> "
            f"{grown['rss_last_mib']:.1f} MiB ({grown['rss_growth_mib']:+.1f} MiB, "
            f"{grown['rss_growth_pct']:+.1f}%), max {grown['rss_max_mib']:.1f} MiB; "
            f"p99 {grown['p99_first_ms']:.2f} -> {grown['p99_last_ms']:.2f} ms; "
            f"throughput {grown['rps_first']:.1f} -> {grown['rps_last']:.1f} req/s",
            flush=True,
        )
        print(
            f"answers: {sum(m.by_class.get('2xx', 0) for m in minutes)} 2xx, "
            f"{sum(m.by_class.get('4xx', 0) for m in minutes)} 4xx, {fivexx} 5xx, "
            f"{sum(m.by_class.get('transport', 0) for m in minutes)} transport errors, "
            f"{unexpected} unexpected; scrapes {scrapes.scrapes} ok / {scrapes.failures} failed; "
            f"service {'alive' if alive else 'DEAD'}",
            flush=True,
        )
        print(f"verdict: {'PASS' if verdict_ok else 'FAIL'}; report {out}", flush=True)
        report = {
            "model": card["name"],
            "version": card["version"],
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "pinned": pin,
            "capacity_rps": capacity,
            "rate_rps": rate,
            "capacity_p99_ms": pct(cap.latencies_ms, 0.99),
            "minutes": [m.__dict__ for m in minutes],
            "growth": grown,
            "unexpected": unexpected,
            "scrapes": {"ok": scrapes.scrapes, "failed": scrapes.failures},
            "alive": alive,
            "loadavg_end": os.getloadavg(),
            "p99_median_ms": statistics.median(m.p99_ms for m in minutes),
            "pass": verdict_ok,
        }
        out.write_text(json.dumps(report, indent=1))
        return 0 if verdict_ok else 1
    finally:
        svc.stop()


if __name__ == "__main__":
    sys.exit(main())
