"""Issue 21 goal 5's lead: ours' open-loop tail with and without a Prometheus-like scrape of
/metrics, and what one scrape costs.

    python -m bench.scrape_stall --model models/wine/1 [--rate R | --load 0.7]
        [--interval 1] [--neighbours mlserver,kserve,floor,echo] [--seconds 8] [--reps 3]

Ours (pinned like ``make bench``: the servers on one CPU, the generator on the other) gets
single-row requests at a constant arrival rate (bench/open_loop.py) at ``--load`` of its
closed-loop capacity at 64 clients, in each mode per repetition, the modes interleaved and
rotated: no scrape; ours' /metrics every ``--interval`` s; and, with ``--neighbours``
(other servers started idle on ours' core, as ``make bench`` runs them), every server's
/metrics, as ``make bench``'s scraper does. The chart scrapes every 15 s; at 1 s an 8 s run
holds 8 scrapes, so what one costs shows within a short run (at 15 s the same stall falls
on 15 times fewer requests). Printed per mode: answered req/s, p50/p99/p99.9/max (median
over reps), CPU per request, ``others`` (other processes on the servers' core, the most of
any rep) and the wall time of each scrape under that load.

Then the split of one scrape's CPU time, measured in this process on the same service
(``create_app`` behind Starlette's TestClient, its window and series filled by real
requests): the drift report (window snapshot and scores), the collection of every
other series, and the text exposition. Idle CPU time, median of many: under load the
scrape's wall time is that CPU plus its turns for the GIL with the event loop.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.drive import Scraper, measure, measure_open_loop_run, schedule
from bench.model import Model, load_model
from bench.servers import ALL_SERVERS, build_servers, start, stop, wait_ready
from devstack.paths import REPO_ROOT

NO_SCRAPE = "no scrape"
CAPACITY_CONNECTIONS = 64  # the closed-loop concurrency ours' capacity comes from
JSON = {"Content-Type": "application/json"}


def modes(interval: float, neighbours: bool) -> list[str]:
    """What each run scrapes: nothing, ours, and (with neighbours) every server, as
    ``make bench``'s scraper does while it measures one of them."""
    if interval <= 0:
        raise ValueError(f"the scrape interval must be > 0 seconds: {interval!r}")
    found = [NO_SCRAPE, f"ours every {interval:g}s"]
    return [*found, f"all every {interval:g}s"] if neighbours else found


def summarize_runs(runs: list[dict[str, Any]]) -> dict[str, float]:
    """One mode's repetitions: median of each latency percentile (ms), of req/s and of
    CPU per request, the most ``others`` took, and every scrape's wall time (ms)."""
    scrapes = [s for run in runs for s in run["scrape_ms"]]
    summary = {
        pct: statistics.median(run["latency_us"][pct] for run in runs) / 1000
        for pct in ("p50", "p99", "p999", "max")
    }
    summary["rps"] = statistics.median(run["rps"] for run in runs)
    summary["cpu_ms_per_req"] = statistics.median(run["cpu_ms_per_req"] for run in runs)
    summary["others"] = max(run.get("others_on_server_core", 0.0) for run in runs)
    summary["scrapes"] = len(scrapes)
    summary["scrape_ms_median"] = statistics.median(scrapes) if scrapes else float("nan")
    summary["scrape_ms_max"] = max(scrapes, default=float("nan"))
    return summary


def tail_table(rate: float, seconds: float, by_mode: dict[str, list[dict]]) -> list[str]:
    lines = [
        f"Open-loop tail of ours at {rate:.0f} req/s, {seconds:g}s per run, median over reps",
        f"{'':<20} {'answered':>8} {'p50 ms':>7} {'p99 ms':>7} {'p99.9 ms':>8} {'max ms':>7} "
        f"{'cpu ms/req':>10} {'others':>6} {'scrapes':>7} {'scrape ms med/max':>18}",
    ]
    for mode, runs in by_mode.items():
        s = summarize_runs(runs)
        scrape = f"{s['scrape_ms_median']:.1f} / {s['scrape_ms_max']:.1f}" if s["scrapes"] else "-"
        lines.append(
            f"{mode:<20} {s['rps']:>8.0f} {s['p50']:>7.2f} {s['p99']:>7.2f} "
            f"{s['p999']:>8.2f} {s['max']:>7.2f} {s['cpu_ms_per_req']:>10.3f} "
            f"{s['others']:>6.0%} {s['scrapes']:>7.0f} {scrape:>18}"
        )
    return lines


def split_table(split: dict[str, float]) -> list[str]:
    """The CPU of one scrape by part (ms), and the exposition's size."""
    parts = ("drift report", "other series", "text exposition")
    total = sum(split[p] for p in parts)
    lines = [
        "One scrape's CPU time, idle, by part (median; the drift report is computed at most "
        "every drift_refresh_seconds, other scrapes read it cached)"
    ]
    for part in parts:
        share = split[part] / total if total else 0.0
        lines.append(f"  {part:<16} {split[part]:7.3f} ms  {share:4.0%}")
    lines.append(
        f"  {'total':<16} {total:7.3f} ms  ({split['bytes'] / 1024:.0f} KiB, "
        f"{split['samples']:.0f} samples)"
    )
    return lines


def cpu_ms(call: Callable[[], object], repeat: int) -> float:
    """Median CPU time of ``call`` on this thread, in ms."""
    times = []
    for _ in range(repeat):
        start_ns = time.thread_time_ns()
        call()
        times.append((time.thread_time_ns() - start_ns) / 1e6)
    return statistics.median(times)


def scrape_split(model: Model, requests: int = 1500, repeat: int = 200) -> dict[str, float]:
    """One scrape's CPU by part, on ours built in this process with its default settings
    and ``requests`` single-row requests answered (the window full, every series there)."""
    from fastapi.testclient import TestClient
    from prometheus_client import generate_latest

    from bench.servers import keyed_rows
    from modelops_service.app import create_app
    from modelops_service.settings import Settings
    from modelops_service.telemetry import DriftCollector

    encode = keyed_rows(model.feature_names)
    bodies = [encode(model.rows[i : i + 1]) for i in range(len(model.rows))]
    app = create_app(Settings(model_dir=model.directory))
    with TestClient(app) as client:
        for i in range(requests):
            answer = client.post("/v1/predict", content=bodies[i % len(bodies)], headers=JSON)
            answer.raise_for_status()
        client.get("/metrics").raise_for_status()
        service = app.state.service
        registry, monitor = service.registry, service.drift
        drift_ms = cpu_ms(lambda: monitor._compute(*monitor.window.snapshot()[:2]), repeat)
        monitor.report()  # cached from here on: the window no longer changes
        collect_ms = cpu_ms(lambda: list(registry.collect()), repeat)
        drift = DriftCollector(monitor, service.name, service.version)  # the registered one's twin
        drift_collect_ms = cpu_ms(lambda: list(drift.collect()), repeat)
        expose_ms = cpu_ms(lambda: generate_latest(registry), repeat)
        text = generate_latest(registry)
    return {
        "drift report": drift_ms + drift_collect_ms,
        "other series": max(collect_ms - drift_collect_ms, 0.0),
        "text exposition": max(expose_ms - collect_ms, 0.0),
        "bytes": len(text),
        "samples": sum(
            1 for line in text.decode().splitlines() if line and not line.startswith("#")
        ),
    }


def run(args: argparse.Namespace) -> int:
    model = load_model(Path(args.model).resolve())
    neighbour_keys = [k.strip() for k in args.neighbours.split(",") if k.strip()]
    if "ours" in neighbour_keys or not set(neighbour_keys) <= set(ALL_SERVERS):
        raise SystemExit(f"--neighbours: some of {', '.join(ALL_SERVERS[1:])}")
    by_mode: dict[str, list[dict]] = {m: [] for m in modes(args.interval, bool(neighbour_keys))}
    out_dir = Path(args.out).resolve() / f"scrape-stall-{time.strftime('%Y%m%d-%H%M%S')}"
    out_dir.mkdir(parents=True, exist_ok=True)
    server_cpu, load_cpu = sorted(os.sched_getaffinity(0))[:2]  # as bench/run.py pins
    servers = build_servers(model, out_dir, ["ours", *neighbour_keys], {})
    server = servers[0]
    body = out_dir / "ours-1.json"
    body.write_bytes(server.encode(model.rows[:1]))
    try:
        for each in servers:  # the neighbours idle on ours' core, as in make bench
            start(each, server_cpu)
        for each in servers:
            wait_ready(each, 180)
        assert server.proc is not None
        assert server.metrics_url is not None
        every = [s.metrics_url for s in servers if s.metrics_url]
        # no scrape, ours, every server: as many as there are modes
        scraped = dict(zip(by_mode, ([], [server.metrics_url], every), strict=False))
        capacity, _ = measure(
            server.proc.pid, server.predict_url, body, CAPACITY_CONNECTIONS, 3, load_cpu
        )
        rate = args.rate or capacity["rps"] * args.load
        print(
            f">> ours' capacity {capacity['rps']:.0f} req/s at {CAPACITY_CONNECTIONS} clients; "
            f"open loop at {rate:.0f} req/s, {args.seconds:g}s x {len(by_mode)} modes x "
            f"{args.reps} reps; neighbours on its core: {', '.join(neighbour_keys) or 'none'}",
            flush=True,
        )
        for rep, _, _, mode in schedule(args.reps, [1], [0], list(by_mode)):
            time.sleep(0.5)
            scraper = Scraper(scraped[mode], args.interval)
            with scraper:
                result = measure_open_loop_run(
                    server.proc.pid, server.predict_url, body, rate, args.seconds,
                    CAPACITY_CONNECTIONS, (server_cpu, load_cpu),
                )  # fmt: skip
            result["scrape_ms"] = [s * 1000 for s in scraper.seconds]
            by_mode[mode].append(result)
            lat = result["latency_us"]
            print(
                f"[rep {rep + 1}/{args.reps}] {mode:<20} p99 {lat['p99'] / 1000:6.2f} p99.9 "
                f"{lat['p999'] / 1000:6.2f} max {lat['max'] / 1000:6.2f} ms  scrapes (ms) "
                f"{' '.join(f'{s:.1f}' for s in result['scrape_ms']) or '-'}  others "
                f"{result.get('others_on_server_core', 0):.0%}",
                flush=True,
            )
    finally:
        for each in servers:
            stop(each)
    print()
    print("\n".join(tail_table(rate, args.seconds, by_mode)))
    print()
    print("\n".join(split_table(scrape_split(model))))
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(REPO_ROOT / "models/wine/1"))
    parser.add_argument("--rate", type=float, default=0, help="req/s (default: --load)")
    parser.add_argument(
        "--load", type=float, default=0.7, help="share of ours' capacity at 64 clients (0.7)"
    )
    parser.add_argument("--interval", type=float, default=1, help="seconds between scrapes (1)")
    parser.add_argument(
        "--neighbours",
        default="",
        help="servers started idle on ours' core, scraped in the 'all' mode, as make bench "
        "runs them (e.g. mlserver,kserve,floor,echo; default none)",
    )
    parser.add_argument("--seconds", type=float, default=8, help="per run (8)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (3)")
    parser.add_argument("--out", default="bench-results", help="output directory")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
