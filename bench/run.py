"""Benchmark the model service against Seldon MLServer, KServe and a bare FastAPI floor.

One run starts every server on the same model.joblib (one worker each, pinned to one core),
drives each with the same load generator (wrk, pinned to the other core) at several
concurrencies with single-row and 100-row payloads, interleaving the servers cell by cell so
that background load on a shared machine falls on all of them alike. It prints a table
(requests/s, rows/s, p50, p99), the ratios of ours against each peer, the verdicts of the
performance goals in DESIGN.md and the service's resident memory under load, and writes the
raw results (JSON) and a plot (PNG) under bench-results/.

Run it through `make bench` (which installs the peers first); `make bench BENCH_ARGS=--help`
lists the knobs. Runs in the project's .venv; the peers run in their own venvs under
.cache/bench/ (bench/requirements-*.txt), the plot in .cache/bench/report-venv.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.drive import (
    Scraper,
    measure,
    measure_open_loop_run,
    progress_line,
    rss_mib,
    schedule,
    wrk,
)
from bench.floor import (
    ModelCounters,
    model_counters,
    model_ms_per_call,
    ms_per_call_in_service,
    next_filler_ms,
    paced_share_ms,
    rows_per_call,
)
from bench.model import Model, load_model
from bench.profile import profile_ours
from bench.report import (
    GOAL_CONCURRENCY,
    GOAL_OPEN_LOOP_LOAD,
    Cell,
    capacities,
    label,
    open_loop_rates,
    plot,
    render_report,
)
from bench.servers import (
    ALL_SERVERS,
    ECHO_ANSWERS,
    WORKERS_VARIANT,
    Server,
    build_servers,
    check_answers,
    check_installed,
    set_pace,
    start,
    stop,
    tail,
    wait_ready,
)
from devstack.paths import REPO_ROOT as REPO


def cpus(args: argparse.Namespace) -> tuple[int | None, int | None]:
    if args.no_pin:
        return None, None
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return None, None
    return available[0], available[1]


def run(args: argparse.Namespace) -> int:
    model = load_model(Path(args.model).resolve())
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = Path(args.out).resolve()
    run_dir = out_dir / f"run-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    server_cpu, load_cpu = cpus(args)
    wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    row_counts = [int(r) for r in args.rows.split(",")]
    if any(n > len(model.rows) for n in row_counts):
        raise SystemExit(f"at most {len(model.rows)} rows per request")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: run `make bench-setup` (installs the Debian package)")

    servers = build_servers(model, run_dir, wanted, parse_variants(args.variant))
    check_installed(servers)
    n_cells = len(servers) * len(concurrencies) * len(row_counts) * args.reps
    per_cell = args.duration + args.warmup + 0.5
    print(
        f">> model {model.name}/{model.version} ({type(model.estimator).__name__}, "
        f"{len(model.feature_names)} features) from {model.directory}",
        flush=True,
    )
    print(
        f">> servers {', '.join(s.key for s in servers)} on CPU {server_cpu}, wrk on CPU "
        f"{load_cpu}; {n_cells} measurements of {args.duration:g}s (+{args.warmup:g}s warm-up) "
        f"= about {n_cells * per_cell / 60:.1f} min",
        flush=True,
    )
    try:
        start_all(servers, server_cpu, args.start_timeout)
        bodies = prepare(servers, model, row_counts, run_dir)
        print(f">> warm-up: {args.initial_warmup:g}s per server and payload", flush=True)
        for server in servers:
            for n in row_counts:
                wrk(server.predict_url, bodies[server.key][n], 16, args.initial_warmup, load_cpu)
        with Scraper([], args.scrape_interval) as scraper:
            cells = measure_all(args, servers, bodies, row_counts, concurrencies, load_cpu, scraper)
            paced = measure_paced_echo(args, servers, bodies, cells, load_cpu, scraper)
            pinned = (server_cpu, load_cpu)
            tails = measure_open_loop(args, servers, bodies, cells, pinned, scraper)
            workers = measure_workers(args, servers, bodies, cells, pinned, scraper)
        for server in servers:
            assert server.proc is not None
            server.notes.append(f"RSS after the run {rss_mib(server.proc.pid):.0f} MiB")
    finally:
        for server in servers:
            stop(server)
    model_cost = model_costs(model, cells)
    profiles = {}
    if "ours" in wanted and args.profile > 0:
        print(f">> profiling ours: {args.profile:g}s per payload at 16 clients", flush=True)
        profiles = profile_ours(
            model, run_dir, bodies["ours"], 16, args.profile, server_cpu, load_cpu
        )

    report = {
        "started": stamp,
        "command": " ".join(sys.argv),
        "host": {
            "cpus": os.cpu_count(),
            "loadavg_end": os.getloadavg(),
            "python": platform.python_version(),
            "server_cpu": server_cpu,
            "load_cpu": load_cpu,
        },
        "model": {
            "name": model.name,
            "version": model.version,
            "dir": str(model.directory),
            "estimator": type(model.estimator).__name__,
        },
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "reps": args.reps,
            "concurrency": concurrencies,
            "rows": row_counts,
            "load_generator": "wrk -t1 (closed loop), bench/wrk_post.lua",
            "scrape_interval_s": args.scrape_interval,
            "settle_s": args.settle,
            "scrapes": scraper.scrapes,
            "scrape_failures": scraper.failures,
        },
        "servers": {
            s.key: {
                "label": label(s.key),
                "env": {k: s.env[k] for k in s.env_overrides},
                "command": s.command,
                "url": s.predict_url,
                "idle_rss_mib": s.idle_rss_mib,
                "notes": s.notes,
            }
            for s in servers
        },
        "results": [cell.summary() for cell in cells.values()],
        "paced_echo": paced,
        "open_loop": tails,
        "workers": workers,
        "model_ms_per_call": model_cost,
        "profile": profiles,
    }
    write_outputs(report, out_dir, run_dir, stamp)
    return 0


def model_costs(model: Model, cells: dict[tuple[str, int, int], Cell]) -> dict[str, float]:
    """CPU milliseconds of one model call at each batch size ours (or its two-worker
    variant) reached (rows per call, rounded), measured once the servers are stopped."""
    batches = set()
    workers = f"ours:{WORKERS_VARIANT[0]}"
    for (key, _, _), cell in cells.items():
        per_call = cell.summary()["rows_per_call"] if key in ("ours", workers) else None
        if per_call:
            batches.add(round(per_call))
    return {str(b): model_ms_per_call(model.directory, model.rows, b) for b in sorted(batches)}


def start_all(servers: list[Server], cpu: int | None, timeout: float) -> None:
    """Start every server at once (they load in parallel), then wait for each."""
    for server in servers:
        start(server, cpu)
    for server in servers:
        wait_ready(server, timeout)
        assert server.proc is not None
        server.idle_rss_mib = rss_mib(server.proc.pid)
        print(f">> {server.key} ready (idle RSS {server.idle_rss_mib:.0f} MiB)", flush=True)


def prepare(
    servers: list[Server], model: Model, row_counts: list[int], run_dir: Path
) -> dict[str, dict[int, Path]]:
    """Each server's request bodies as files for wrk, once its answers to them are checked;
    then one scrape of each, whose one-time costs stay out of the measurements."""
    bodies: dict[str, dict[int, Path]] = {}
    for server in servers:  # ours first: the echo answers what ours answered
        raw = {n: server.encode(model.rows[:n]) for n in row_counts}
        answers = check_answers(server, model, raw)
        if server.key == "ours":
            table = {len(raw[n]): answers[n].decode() for n in row_counts}
            (run_dir / ECHO_ANSWERS).write_text(json.dumps(table))
        bodies[server.key] = {}
        for n, body in raw.items():
            path = run_dir / f"{server.key.replace(':', '-')}-{n}.json"
            path.write_bytes(body)
            bodies[server.key][n] = path
    print(">> every server answers what model.predict answers", flush=True)
    for server in servers:
        if server.metrics_url:
            with urllib.request.urlopen(server.metrics_url, timeout=30) as answer:
                answer.read()
    return bodies


def scraped(server: Server) -> list[str]:
    """What the scraper GETs while ``server`` is measured: its own /metrics only (the
    servers share one core: MLServer's /metrics under load took ~100 ms of it, a stall in
    ours' open-loop tail; bench/scrape_stall.py --neighbours shows it)."""
    return [server.metrics_url] if server.metrics_url else []


def ours_counters(server: Server) -> ModelCounters | None:
    """The model call counters of ours (or a variant of it) from its /metrics; None for
    the peers, whose calls are not counted."""
    if not server.key.startswith("ours") or not server.metrics_url:
        return None
    return model_counters(server.metrics_url)


def warm_up(
    args: argparse.Namespace, server: Server, body: Path, c: int, load_cpu: int | None
) -> None:
    """Before a closed-loop measurement: ``--warmup`` seconds of the same load, then a pause.
    wrk hangs up with c requests in flight; measuring at once would count the server
    finishing those, and the new connections arriving meanwhile (p99 of 100 rows x 64
    clients: 40 ms with a pause, 170-200 ms without, for the same server)."""
    if args.warmup > 0:
        wrk(server.predict_url, body, c, args.warmup, load_cpu)
    time.sleep(args.settle)


def measure_all(
    args: argparse.Namespace,
    servers: list[Server],
    bodies: dict[str, dict[int, Path]],
    row_counts: list[int],
    concurrencies: list[int],
    load_cpu: int | None,
    scraper: Scraper,
) -> dict[tuple[str, int, int], Cell]:
    cells: dict[tuple[str, int, int], Cell] = {}
    n_cells = len(servers) * len(concurrencies) * len(row_counts) * args.reps
    started = time.monotonic()
    measurements = schedule(args.reps, row_counts, concurrencies, servers)
    for done, (rep, n, c, server) in enumerate(measurements, start=1):
        assert server.proc is not None
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.key} died:\n{tail(server.log)}")
        body = bodies[server.key][n]
        scraper.urls = scraped(server)
        warm_up(args, server, body, c, load_cpu)
        before = ours_counters(server)  # the model's rows per call, for the floor
        result, rss = measure(server.proc.pid, server.predict_url, body, c, args.duration, load_cpu)
        after = ours_counters(server)
        if before is not None and after is not None:
            result["rows_per_call"] = rows_per_call(before, after)
            result["model_ms_in_service"] = ms_per_call_in_service(
                before, after, result["core_share"]
            )
        cell = cells.setdefault((server.key, n, c), Cell(server.key, n, c))
        cell.reps.append(result)
        cell.rss_mib.extend(rss)
        eta = (time.monotonic() - started) / done * (n_cells - done)
        line = progress_line(done, n_cells, rep, args.reps, n, c, server.key, result, eta)
        print(line, flush=True)
    return cells


def measure_paced_echo(
    args: argparse.Namespace,
    servers: list[Server],
    bodies: dict[str, dict[int, Path]],
    cells: dict[tuple[str, int, int], Cell],
    load_cpu: int | None,
    scraper: Scraper,
) -> dict[str, Any]:
    """Issue 21 goal 1, the server's share at ours' pace: at GOAL_CONCURRENCY clients, each
    payload, the echo with a filler of CPU per request that makes it cost what ours cost in
    its cells (bench/floor.py): one run to calibrate the filler from the echo's own pace,
    then ``--reps`` runs, each with the filler from the share the run before it measured."""
    keys = {s.key: s for s in servers}
    echo = keys.get("echo")
    if echo is None or "ours" not in keys:
        return {}
    assert echo.proc is not None
    scraper.urls = scraped(echo)
    found: dict[str, Any] = {}
    c = GOAL_CONCURRENCY
    for n, body in bodies["echo"].items():
        ours, own = cells.get(("ours", n, c)), cells.get(("echo", n, c))
        if ours is None or own is None:
            continue
        summary = ours.summary()
        ours_rps, ours_ms = summary["rps"], summary["cpu_ms_per_req"]
        share = own.summary()["cpu_ms_per_req"]
        if not ours_ms or not share:
            continue
        reps: list[dict[str, Any]] = []
        for run in range(args.reps + 1):  # the first calibrates the filler
            filler = next_filler_ms(ours_ms, share)
            set_pace(echo, filler)
            warm_up(args, echo, body, c, load_cpu)
            result, _ = measure(echo.proc.pid, echo.predict_url, body, c, args.duration, load_cpu)
            share = paced_share_ms(result["cpu_ms_per_req"] or 0.0, filler)
            result |= {"filler_ms": filler, "share_ms": share}
            if run:
                reps.append(result)
            print(
                f"[paced] rows={n:<3d} c={c:<3d} echo with a filler of {filler:.3f} ms: "
                f"{result['rps']:8.0f} req/s (ours {ours_rps:.0f}), server share "
                f"{share:.3f} ms{'' if run else ' (calibration)'}",
                flush=True,
            )
        set_pace(echo, 0.0)
        found[str(n)] = {"concurrency": c, "reps": reps}
    return found


def measure_open_loop(
    args: argparse.Namespace,
    servers: list[Server],
    bodies: dict[str, dict[int, Path]],
    cells: dict[tuple[str, int, int], Cell],
    pinned: tuple[int | None, int | None],
    scraper: Scraper,
) -> dict[str, Any]:
    """Issue 21 goal 5: each server at ``--open-loop-load`` of its capacity in this run (its
    best closed-loop req/s at ``--open-loop-rows`` rows), or all at ``--open-loop-rate``,
    and the echo at ours' rate (``open_loop_rates``), at a constant arrival rate for
    ``--open-loop`` seconds, servers interleaved and rotated per repetition like the
    closed-loop cells."""
    n = args.open_loop_rows
    settings = {"seconds": args.open_loop, "load": args.open_loop_load, "rows": n}
    settings["rate"] = args.open_loop_rate  # None: each at its share of its capacity
    settings["connections"] = args.open_loop_connections
    if args.open_loop <= 0 or n not in next(iter(bodies.values()), {}):
        return {**settings, "servers": {}}
    rates = open_loop_rates(
        capacities(cells, [s.key for s in servers], n), args.open_loop_load, args.open_loop_rate
    )
    found: dict[str, Any] = {key: {**rate, "reps": []} for key, rate in rates.items()}
    open_loop_reps(args, servers, n, found, bodies, pinned, scraper)
    return {**settings, "servers": found}


def measure_workers(
    args: argparse.Namespace,
    servers: list[Server],
    bodies: dict[str, dict[int, Path]],
    cells: dict[tuple[str, int, int], Cell],
    pinned: tuple[int | None, int | None],
    scraper: Scraper,
) -> dict[str, Any]:
    """Issue 21 goal 4 at the same load: ours with one worker and with two, at each payload,
    at one constant arrival rate for both (``--open-loop-load`` of the lower of their
    capacities in this run, so that neither is saturated) for ``--open-loop`` seconds,
    interleaved. A closed loop is not the same load for both: each answers as fast as it
    can, and how the kernel spreads wrk's connections over the two workers decides their
    batches (bench/README.md)."""
    pair = [s for s in servers if s.key in ("ours", f"ours:{WORKERS_VARIANT[0]}")]
    settings = {"seconds": args.open_loop, "load": args.open_loop_load}
    settings["connections"] = args.open_loop_connections
    if args.open_loop <= 0 or len(pair) != 2:
        return {**settings, "rows": {}}
    found: dict[str, Any] = {}
    for n in sorted(bodies["ours"]):
        capacity = capacities(cells, [s.key for s in pair], n)
        if len(capacity) != 2:
            continue
        rate = min(capacity.values()) * args.open_loop_load
        runs = {s.key: {"capacity_rps": capacity[s.key], "rate": rate, "reps": []} for s in pair}
        open_loop_reps(args, pair, n, runs, bodies, pinned, scraper)
        found[str(n)] = {"rate": rate, "servers": runs}
    return {**settings, "rows": found}


def open_loop_reps(
    args: argparse.Namespace,
    subjects: list[Server],
    n: int,
    runs: dict[str, Any],
    bodies: dict[str, dict[int, Path]],
    pinned: tuple[int | None, int | None],
    scraper: Scraper,
) -> None:
    """``--reps`` open-loop runs of ``n``-row requests for each subject in ``runs`` at its
    ``rate``, interleaved and rotated like the closed-loop cells; each result is appended to
    its ``reps``, with ours' rows per model call (from its /metrics around the run)."""
    subjects = [s for s in subjects if s.key in runs]
    total = args.reps * len(subjects)
    for done, (rep, _, _, server) in enumerate(schedule(args.reps, [n], [0], subjects), start=1):
        assert server.proc is not None
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.key} died:\n{tail(server.log)}")
        scraper.urls = scraped(server)
        time.sleep(args.settle)
        rate = runs[server.key]["rate"]
        before = ours_counters(server)
        result = measure_open_loop_run(
            server.proc.pid, server.predict_url, bodies[server.key][n], rate, args.open_loop,
            args.open_loop_connections, pinned,
        )  # fmt: skip
        after = ours_counters(server)
        if before is not None and after is not None:
            result["rows_per_call"] = rows_per_call(before, after)
        runs[server.key]["reps"].append(result)
        lat = result["latency_us"]
        print(
            f"[open {done:2d}/{total}] rep {rep + 1}/{args.reps} rows={n:<3d} {server.key:<14s} "
            f"{rate:7.0f}/s asked {result['rps']:7.0f}/s answered  p50 {lat['p50'] / 1000:6.2f} "
            f"p99 {lat['p99'] / 1000:6.2f} p99.9 {lat['p999'] / 1000:6.2f} ms  "
            f"errors {result['error_count']} late {result['late_sends']}  core "
            f"{result['core_share']:4.0%} generator {result['generator_core_share']:4.0%} "
            f"others {result.get('others_on_server_core', 0):4.0%}/"
            f"{result.get('others_on_generator_core', 0):4.0%}",
            flush=True,
        )


def write_outputs(report: dict, out_dir: Path, run_dir: Path, stamp: str) -> None:
    """Print the report; keep it, the raw results and the plot (also as latest.*)."""
    text = render_report(report)
    print(text)
    (run_dir / "report.txt").write_text(text)
    results_json = out_dir / f"bench-{stamp}.json"
    results_json.write_text(json.dumps(report, indent=1))
    plot_png = out_dir / f"bench-{stamp}.png"
    plot(results_json, plot_png)
    for src, name in ((results_json, "latest.json"), (plot_png, "latest.png")):
        if src.exists():
            shutil.copyfile(src, out_dir / name)
    print(f">> raw results {results_json}\n>> plot        {plot_png}\n>> logs        {run_dir}")


def parse_variants(specs: list[list[str]] | None) -> dict[str, dict[str, str]]:
    variants: dict[str, dict[str, str]] = {}
    for name, *assignments in specs or []:
        overrides = {}
        for assignment in assignments:
            key, sep, value = assignment.partition("=")
            if not sep:
                raise SystemExit(f"--variant {name}: expected ENV=VALUE, got {assignment!r}")
            overrides[key] = value
        variants[name] = overrides
    return variants


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/wine/1", help="model directory (model.joblib)")
    parser.add_argument("--servers", default=",".join(ALL_SERVERS), help="comma-separated subset")
    parser.add_argument("--concurrency", help="comma-separated (default 1,4,16,64)")
    parser.add_argument("--rows", default="1,100", help="rows per request, comma-separated")
    parser.add_argument("--reps", type=int, help="repetitions, the median is reported (3)")
    parser.add_argument("--duration", type=float, help="seconds per measurement (4)")
    parser.add_argument("--warmup", type=float, help="warm-up s per measurement (1)")
    parser.add_argument(
        "--settle",
        type=float,
        default=0.5,
        help="pause in s between each warm-up and its measurement (0.5)",
    )
    parser.add_argument("--initial-warmup", type=float, default=2, help="warm-up s at start")
    parser.add_argument("--start-timeout", type=float, default=180, help="seconds to become ready")
    parser.add_argument("--out", default="bench-results", help="output directory (ignored by git)")
    parser.add_argument(
        "--scrape-interval",
        type=float,
        default=5,
        help="seconds between GETs of the measured server's /metrics during the run (0: none)",
    )
    parser.add_argument(
        "--profile",
        type=float,
        default=6,
        help="seconds of cProfile of ours per payload at 16 clients, for the component "
        "breakdown (0: none)",
    )
    parser.add_argument(
        "--open-loop",
        type=float,
        help="seconds per server and repetition at a constant arrival rate, for the tail "
        "goal (10; 0: none)",
    )
    parser.add_argument(
        "--open-loop-load",
        type=float,
        default=GOAL_OPEN_LOOP_LOAD,
        help="the open loop's rate, as a share of each server's capacity in this run "
        f"(issue 21 goal 5: {GOAL_OPEN_LOOP_LOAD:g})",
    )
    parser.add_argument(
        "--open-loop-rate",
        type=float,
        help="one arrival rate (req/s) for every server instead of --open-loop-load: the "
        "tails at equal load (no goal 5 verdict: that goal is at a share of each capacity)",
    )
    parser.add_argument(
        "--open-loop-rows", type=int, default=1, help="rows per open-loop request (1)"
    )
    parser.add_argument(
        "--open-loop-connections",
        type=int,
        default=64,
        help="keep-alive connections of the open loop, opened before it starts (64)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and wrk to CPUs")
    parser.add_argument(
        "--variant",
        nargs="+",
        action="append",
        metavar=("NAME", "ENV=VALUE"),
        help="also run ours with these environment overrides, e.g. --variant nobatch "
        "MODELOPS_BATCH_MAX_ROWS=0 (repeatable; PYTHONPATH=DIR runs other code; "
        "BENCH_INSTANCES=list sends positional rows instead of objects)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 repetition of 2s at 1 and 16 clients"
    )
    parser.add_argument(
        "--report", metavar="JSON", help="only print the report (and plot) of an earlier run"
    )
    args = parser.parse_args(argv)
    defaults = {
        "reps": 3, "duration": 4.0, "warmup": 1.0, "concurrency": "1,4,16,64", "open_loop": 10.0,
    }  # fmt: skip
    if args.quick:
        defaults = {
            "reps": 1, "duration": 2.0, "warmup": 0.5, "concurrency": "1,16", "open_loop": 4.0,
        }  # fmt: skip
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(REPO)
    if args.report:
        report = json.loads(Path(args.report).read_text())
        print(render_report(report))
        plot(Path(args.report), Path(args.report).with_suffix(".png"))
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
