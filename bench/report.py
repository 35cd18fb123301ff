"""The report of a run: the median of each (server, rows, concurrency) cell, the table, the
ratios of ours against each peer, the verdicts of DESIGN.md's performance goals, and the plot."""

from __future__ import annotations

import math
import statistics
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.floor import GOAL_FLOOR_RATIO, floor_ms, model_share_ms
from bench.servers import ALL_SERVERS, BENCH, CACHE, PEERS, WORKERS_VARIANT

LABELS = {
    "ours": "modelops (ours)",
    "mlserver": "MLServer",
    "kserve": "KServe",
    "floor": "FastAPI floor",
    "echo": "raw ASGI echo",
}
# DESIGN.md, "Performance goals".
GOAL_CONCURRENCY = 16
GOAL_SINGLE_ROW_SPEEDUP = 2.5
GOAL_BATCH_ROWS_SPEEDUP = 1.5
# Issue 21, goal 2: at one client (nothing to batch), single-row.
GOAL_ONE_CLIENT_SPEEDUP = 1.5
# Issue 21, goal 4: CPU per request with two workers at most this many times one worker's.
GOAL_WORKERS_CPU_RATIO = 1.15
# Issue 21, goal 5: the open loop's rate, as a share of each server's capacity (run.py's
# --open-loop-load default); ours must have the lowest p99 and p99.9 there.
GOAL_OPEN_LOOP_LOAD = 0.7
# Other processes' share of the servers' core in an open-loop rep above which the report
# says the tails are the shared machine's as much as the servers'.
NOISY_SHARE = 0.05


@dataclass
class Cell:
    server: str
    rows: int
    concurrency: int
    reps: list[dict[str, Any]] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)

    def median(self, key: str) -> float:
        return statistics.median(r[key] for r in self.reps)

    def median_latency_ms(self, pct: str) -> float:
        return statistics.median(r["latency_us"][pct] for r in self.reps) / 1000

    def _median_of(self, key: str) -> float | None:
        values = [r[key] for r in self.reps if r.get(key) is not None]
        return statistics.median(values) if values else None

    def summary(self) -> dict[str, Any]:
        rps = self.median("rps")
        return {
            "server": self.server,
            "rows": self.rows,
            "concurrency": self.concurrency,
            "rps": rps,
            "rows_per_s": rps * self.rows,
            "p50_ms": self.median_latency_ms("p50"),
            "p99_ms": self.median_latency_ms("p99"),
            "cpu_ms_per_req": self._median_of("cpu_ms_per_req"),
            "core_share": self._median_of("core_share"),
            "rows_per_call": self._median_of("rows_per_call"),
            "model_ms_in_service": self._median_of("model_ms_in_service"),
            "errors": sum(r["error_count"] for r in self.reps),
            "rss_mib_max": max(self.rss_mib) if self.rss_mib else None,
            "reps": self.reps,
        }


def index(report: dict) -> dict[tuple[str, int, int], dict]:
    return {(r["server"], r["rows"], r["concurrency"]): r for r in report["results"]}


def ordered_servers(report: dict) -> list[str]:
    """Ours, then its variants (--variant), then the peers and the floor."""
    keys = list(report["servers"])
    variants = [k for k in keys if k.startswith("ours:")]
    return [k for k in ("ours", *variants, *ALL_SERVERS[1:]) if k in keys]


def label(key: str) -> str:
    if key.startswith("ours:"):
        return f"ours [{key.removeprefix('ours:')}]"
    return LABELS[key]


def ratios(ours: dict, peer: dict | None) -> tuple[float, float, float | None] | None:
    """Ours against a peer in one cell: req/s ours/peer (>1 better), p99 ours/peer (<1
    better) and CPU per request peer/ours (>1 better; None unless both were measured).
    None when the peer has no usable figures there."""
    if peer is None or not peer["rps"] or not peer["p99_ms"]:
        return None
    ours_cpu, peer_cpu = ours.get("cpu_ms_per_req"), peer.get("cpu_ms_per_req")
    cpu = peer_cpu / ours_cpu if ours_cpu and peer_cpu else None
    return ours["rps"] / peer["rps"], ours["p99_ms"] / peer["p99_ms"], cpu


def render_report(report: dict) -> str:
    """The printed report: the table, then per ours (and each variant) its ratios against
    every peer and its goals, then the resident memory of each server."""
    servers = ordered_servers(report)
    lines = ["", headline(report), "", *table(report, servers)]
    for subject in [s for s in servers if s.startswith("ours")]:
        others = [s for s in servers if not s.startswith("ours")]
        lines += [*ratio_table(report, subject, others), "", *verdicts(report, subject), ""]
    lines += [*floor_table(report), "", *profile_table(report), ""]
    lines += [*one_client_verdicts(report), ""]
    lines += [*workers_verdicts(report), ""]
    lines += [*open_loop_table(report), ""]
    for variant in [s for s in servers if s.startswith("ours:")]:
        lines += [*ab_table(report, "ours", variant), ""]
    lines += memory(report, servers)
    return "\n".join(lines)


def headline(report: dict) -> str:
    settings = report["settings"]
    scrapes = settings.get("scrape_interval_s")
    return (
        f"Benchmark {report['started']}: model {report['model']['name']}/"
        f"{report['model']['version']} ({report['model']['estimator']}), median of "
        f"{settings['reps']} x {settings['duration_s']:g}s, {settings['load_generator']}"
        + (f", /metrics scraped every {scrapes:g}s" if scrapes else "")
    )


def cells_in_order(report: dict) -> list[tuple[int, int]]:
    return [(n, c) for n in report["settings"]["rows"] for c in report["settings"]["concurrency"]]


def table(report: dict, servers: list[str]) -> list[str]:
    idx = index(report)
    lines = [
        f"{'rows':>4} {'conc':>4}  {'server':<20} {'req/s':>9} {'rows/s':>10} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'cpu ms/req':>10} {'core':>5} {'RSS MiB':>8}"
    ]
    for n, c in cells_in_order(report):
        for s in servers:
            r = idx.get((s, n, c))
            if r is None:
                continue
            rss = f"{r['rss_mib_max']:.0f}" if r["rss_mib_max"] is not None else "-"
            cpu = r.get("cpu_ms_per_req")
            cpu_text = f"{cpu:.3f}" if cpu is not None else "-"
            share = r.get("core_share")
            share_text = f"{share:.0%}" if share is not None else "-"
            flag = f"  errors={r['errors']}" if r["errors"] else ""
            lines.append(
                f"{n:>4} {c:>4}  {label(s):<20} {r['rps']:>9.0f} {r['rows_per_s']:>10.0f} "
                f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {cpu_text:>10} {share_text:>5} "
                f"{rss:>8}{flag}"
            )
        lines.append("")
    return lines


def ratio_table(report: dict, subject: str, others: list[str]) -> list[str]:
    idx = index(report)
    lines = [
        f"{label(subject)} against each peer: thr = req/s ours/peer (>1 better), "
        "p99 = p99 ours/peer (<1 better),",
        "cpu = CPU per request peer/ours (>1 better; moves least with background load)",
        f"{'':>10}" + "".join(f"  {label(s):^20}" for s in others),
        f"{'rows':>4} {'conc':>4} "
        + "".join(f"  {'thr':>6} {'p99':>6} {'cpu':>6}" for _ in others),
    ]
    for n, c in cells_in_order(report):
        ours = idx.get((subject, n, c))
        if ours is None:
            continue
        parts = []
        for s in others:
            found = ratios(ours, idx.get((s, n, c)))
            if found is None:
                parts.append(f"  {'-':>6} {'-':>6} {'-':>6}")
                continue
            thr, p99, cpu = found
            cpu_text = f"{cpu:6.2f}" if cpu is not None else f"{'-':>6}"
            parts.append(f"  {thr:6.2f} {p99:6.2f} {cpu_text}")
        lines.append(f"{n:>4} {c:>4} " + "".join(parts))
    return lines


def paired_ratios(ours: dict, other: dict, key: str) -> list[float]:
    """``key`` of ours over the other's, rep by rep: the reps of a run are interleaved
    (rep i of every server runs before rep i+1 of any), so a pair shared the machine's
    background load and its ratio moves less than either figure."""
    pairs = zip(ours["reps"], other["reps"], strict=False)
    return [a[key] / b[key] for a, b in pairs if a.get(key) and b.get(key)]


def spread(values: list[float]) -> str:
    """``median [min..max]`` of ratios, and the median as a change in percent."""
    if not values:
        return "-"
    mid = statistics.median(values)
    return f"{mid:5.3f} [{min(values):.3f}..{max(values):.3f}] {mid - 1:+6.1%}"


def ab_table(report: dict, subject: str, variant: str) -> list[str]:
    """Ours against a variant (e.g. the previous main), per interleaved rep."""
    idx = index(report)
    lines = [
        f"A/B: {label(subject)} against {label(variant)}, ours/variant per interleaved rep, "
        "median [min..max] and change (cpu: <1 better, req/s: >1 better)",
        f"{'rows':>4} {'conc':>4}  {'cpu ms/req':<30} {'req/s':<30}",
    ]
    for n, c in cells_in_order(report):
        ours, other = idx.get((subject, n, c)), idx.get((variant, n, c))
        if ours is None or other is None:
            continue
        cpu = spread(paired_ratios(ours, other, "cpu_ms_per_req"))
        rps = spread(paired_ratios(ours, other, "rps"))
        lines.append(f"{n:>4} {c:>4}  {cpu:<30} {rps:<30}")
    return lines


def floor_table(report: dict) -> list[str]:
    """Goal 1 of issue 21: ours' CPU per request against the stack floor, per cell (see
    bench/floor.py), PASS within GOAL_FLOOR_RATIO. The model's share is a call as ours
    timed it at its batch size; the floor with a call timed alone is printed beside it
    (a report written before ours reported its calls' time is judged on that one).

    The first table takes the echo at its own pace. Where the run also measured it at
    ours' pace (``paced_echo``: GOAL_CONCURRENCY clients), the verdict is the second
    table's, on the server's share at that pace; a report without it is judged on the
    first."""
    idx = index(report)
    costs = report.get("model_ms_per_call") or {}
    paced = report.get("paced_echo") or {}
    lines = [
        f"Stack floor (issue 21 goal 1): ours' CPU per request at most {GOAL_FLOOR_RATIO:g}x "
        "the raw ASGI echo's plus its share of a model call at the batch ours reached",
        f"{'':>20}{'model ms/call':>17}",
        f"{'rows':>4} {'conc':>4}  {'echo ms':>8} {'rows/call':>9} {'in ours':>8} {'alone':>8} "
        f"{'floor ms':>8} {'ours ms':>8} {'ratio':>6}",
    ]
    rows_out, paced_out = [], []
    for n, c in cells_in_order(report):
        ours, echo = idx.get(("ours", n, c)), idx.get(("echo", n, c))
        if ours is None or echo is None:
            continue
        per_call = ours.get("rows_per_call")
        alone, in_ours = call_alone_ms(ours, costs), ours.get("model_ms_in_service")
        ours_ms, echo_ms = ours.get("cpu_ms_per_req"), echo.get("cpu_ms_per_req")
        call_ms = model_call_ms(ours, costs)
        if per_call is None or call_ms is None or not ours_ms or not echo_ms:
            continue
        floor = floor_ms(echo_ms, call_ms, n, per_call)
        at_pace = paced.get(str(n), {})
        paced_reps = at_pace.get("reps") if at_pace.get("concurrency") == c else None
        line = (
            f"{n:>4} {c:>4}  {echo_ms:>8.3f} {per_call:>9.1f} {fmt(in_ours, 8)} "
            f"{fmt(alone, 8)} {floor:>8.3f} {ours_ms:>8.3f} {ours_ms / floor:>6.2f}"
        )
        line += "  (judged at ours' pace)" if paced_reps else f"  [{floor_verdict(ours_ms, floor)}]"
        if in_ours is not None and alone is not None:
            floor_alone = floor_ms(echo_ms, alone, n, per_call)
            line += f"  (model alone: floor {floor_alone:.3f}, {ours_ms / floor_alone:.2f}x)"
        rows_out.append(line)
        if paced_reps:
            share = median_of(paced_reps, "share_ms")
            paced_floor = floor_ms(share, call_ms, n, per_call)
            paced_out.append(
                f"{n:>4} {c:>4}  {median_of(paced_reps, 'filler_ms'):>9.3f} "
                f"{median_of(paced_reps, 'rps'):>9.0f} {ours['rps']:>9.0f} {share:>8.3f} "
                f"{paced_floor:>8.3f} {ours_ms:>8.3f} {ours_ms / paced_floor:>6.2f}  "
                f"[{floor_verdict(ours_ms, paced_floor)}]"
            )
    if not rows_out:
        return [lines[0], "  not evaluated: needs ours (with /metrics) and the echo server"]
    lines += rows_out
    if paced_out:
        lines += [
            "At ours' pace: the echo spends a filler of CPU on each request, so that it costs",
            "what ours costs; the server's share is its CPU per request less the filler",
            f"{'rows':>4} {'conc':>4}  {'filler ms':>9} {'echo rq/s':>9} {'ours rq/s':>9} "
            f"{'share ms':>8} {'floor ms':>8} {'ours ms':>8} {'ratio':>6}",
            *paced_out,
        ]
    return lines


def floor_verdict(ours_ms: float, floor: float) -> str:
    return "PASS" if ours_ms / floor <= GOAL_FLOOR_RATIO else "FAIL"


def model_call_ms(cell: dict, costs: dict) -> float | None:
    """The model call's cost for a cell of ours: as ours timed it in the run (its own
    histogram), else a call of its batch size timed alone (a report from before ours
    reported its calls)."""
    in_service = cell.get("model_ms_in_service")
    return in_service if in_service is not None else call_alone_ms(cell, costs)


def call_alone_ms(cell: dict, costs: dict) -> float | None:
    """A model call of the cell's batch size, timed alone after the run."""
    per_call = cell.get("rows_per_call")
    return costs.get(str(round(per_call))) if per_call else None


def fmt(value: float | None, width: int) -> str:
    return f"{value:>{width}.3f}" if value is not None else f"{'-':>{width}}"


def one_client_verdicts(report: dict) -> list[str]:
    """Issue 21 goal 2: single-row at one client, ours at least GOAL_ONE_CLIENT_SPEEDUP x
    the faster peer's req/s, and the lowest p50 of every server that predicts (the echo
    does not)."""
    idx = index(report)
    head = "Goal 2 (issue 21) of modelops (ours), single-row at 1 client:"
    ours = idx.get(("ours", 1, 1))
    peers = [p for p in PEERS if (p, 1, 1) in idx]
    if ours is None or not peers:
        return [head, "  not evaluated: needs ours and at least one peer at 1 client"]
    fastest = max(peers, key=lambda p: idx[(p, 1, 1)]["rps"])
    want = GOAL_ONE_CLIENT_SPEEDUP * idx[(fastest, 1, 1)]["rps"]
    ok = ours["rps"] >= want and not ours["errors"]
    others = [s for s in (*PEERS, "floor") if (s, 1, 1) in idx]
    lowest = min(others, key=lambda s: idx[(s, 1, 1)]["p50_ms"])
    p50_ok = ours["p50_ms"] < idx[(lowest, 1, 1)]["p50_ms"]
    return [
        head,
        f"  [{'PASS' if ok else 'FAIL'}] throughput {ours['rps']:.0f} req/s >= "
        f"{GOAL_ONE_CLIENT_SPEEDUP}x {label(fastest)} ({idx[(fastest, 1, 1)]['rps']:.0f}) = "
        f"{want:.0f}",
        f"  [{'PASS' if p50_ok else 'FAIL'}] p50 {ours['p50_ms']:.2f} ms, the lowest: next is "
        f"{label(lowest)}'s {idx[(lowest, 1, 1)]['p50_ms']:.2f} ms",
    ]


def workers_verdicts(report: dict) -> list[str]:
    """Issue 21 goal 4: the CPU per request of ours with two workers over that of one worker
    at the same load (bench/run.py's measure_workers: one constant arrival rate for both),
    single-row and 100-row, median of the ratios of the interleaved reps, PASS within
    GOAL_WORKERS_CPU_RATIO. Both run on the same pinned core: this machine has no spare core
    to show throughput scaling, so the cost of a second process is what is measured.

    Below them, for reference and without a verdict, the closed loop at GOAL_CONCURRENCY
    clients: not the same load (each answers as fast as it can), and each worker batches only
    the requests of the connections the kernel gave it, so the line shows rows per call and
    the CPU per request without the model's share (the call as each timed it,
    bench/floor.py), which tells that dilution apart from the cost of the processes and
    their shared metric files."""
    key = f"ours:{WORKERS_VARIANT[0]}"

    def per_call(found: dict) -> str:
        value = median_of(found["reps"], "rows_per_call")
        return "-" if math.isnan(value) else f"{value:.1f}"

    lines = [
        f"Workers (issue 21 goal 4): CPU per request with 2 workers at most "
        f"{GOAL_WORKERS_CPU_RATIO:g}x one worker's at the same load"
    ]
    equal = report.get("workers") or {}
    for n, found in (equal.get("rows") or {}).items():
        one, two = found["servers"].get("ours"), found["servers"].get(key)
        ratios = paired_ratios(two, one, "cpu_ms_per_req") if one and two else []
        if not ratios:
            continue
        ratio = statistics.median(ratios)
        lines.append(
            f"  [{'PASS' if ratio <= GOAL_WORKERS_CPU_RATIO else 'FAIL'}] {int(n):>3} rows at "
            f"{found['rate']:.0f} req/s ({equal['load']:.0%} of the lower capacity, a constant "
            f"arrival rate): {median_of(two['reps'], 'cpu_ms_per_req'):.3f} ms against "
            f"{median_of(one['reps'], 'cpu_ms_per_req'):.3f} ms, {ratio:.2f}x ({spread(ratios)}); "
            f"rows per call {per_call(two)} against {per_call(one)}"
        )
    if len(lines) == 1:
        lines.append(f"  not evaluated: needs ours, {key} and the open loop (--open-loop > 0)")
    return lines + closed_loop_workers(report, key)


def closed_loop_workers(report: dict, key: str) -> list[str]:
    """The two-worker line of the closed loop at GOAL_CONCURRENCY clients (no verdict)."""
    idx = index(report)
    costs = report.get("model_ms_per_call") or {}
    c = GOAL_CONCURRENCY

    def without_model(cell: dict, rows: int) -> str:
        per_call = cell.get("rows_per_call")
        call_ms = model_call_ms(cell, costs)
        if per_call is None or call_ms is None or not cell.get("cpu_ms_per_req"):
            return "-"
        return f"{cell['cpu_ms_per_req'] - model_share_ms(call_ms, rows, per_call):.3f}"

    lines = []
    for n in report["settings"]["rows"]:
        one, two = idx.get(("ours", n, c)), idx.get((key, n, c))
        ratios = paired_ratios(two, one, "cpu_ms_per_req") if one and two else []
        if not ratios:
            continue
        lines.append(
            f"        {n:>3} rows: {two['cpu_ms_per_req']:.3f} ms against "
            f"{one['cpu_ms_per_req']:.3f} ms, {statistics.median(ratios):.2f}x "
            f"({spread(ratios)}); rows per call {two.get('rows_per_call') or 0:.1f} against "
            f"{one.get('rows_per_call') or 0:.1f}, without the model {without_model(two, n)} "
            f"ms against {without_model(one, n)} ms"
        )
    if lines:
        lines.insert(
            0,
            f"  for reference, the closed loop at {c} clients (not the same load: no verdict):",
        )
    return lines


def capacities(
    cells: dict[tuple[str, int, int], Cell], keys: list[str], rows: int
) -> dict[str, float]:
    """Each server's capacity at ``rows`` rows per request: its best closed-loop req/s
    over the concurrencies of the run (median over repetitions per cell)."""
    best: dict[str, float] = {}
    for (key, n, _), cell in cells.items():
        if key in keys and n == rows:
            best[key] = max(best.get(key, 0.0), cell.median("rps"))
    return {key: best[key] for key in keys if key in best}


def open_loop_rates(
    capacity: dict[str, float], load: float, rate: float | None
) -> dict[str, dict[str, float]]:
    """Goal 5's subjects and their arrival rates: each server at ``load`` of its
    ``capacity`` (or every one at ``rate``); the echo, which predicts nothing, at ours'
    rate, as the reference: the tail the generator and the machine add at that rate."""
    found = {
        key: {"capacity_rps": rps, "rate": rate or rps * load}
        for key, rps in capacity.items()
        if key != "echo"
    }
    if "echo" in capacity and "ours" in found:
        found["echo"] = {"capacity_rps": capacity["echo"], "rate": found["ours"]["rate"]}
    return found


def median_of(reps: list[dict], key: str) -> float:
    values = [r[key] for r in reps if r.get(key) is not None]
    return statistics.median(values) if values else math.nan


def max_of(reps: list[dict], key: str, missing: float = math.nan) -> float:
    values = [r[key] for r in reps if r.get(key) is not None]
    return max(values) if values else missing


def open_loop_table(report: dict) -> list[str]:
    """Issue 21 goal 5: every server at the same share of its own capacity, constant
    arrival rate (bench/open_loop.py); the median over repetitions of each percentile.
    PASS when ours has the lowest p99 and the lowest p99.9 of the peers and the floor;
    with several reps each verdict shows both servers' range and says when they overlap
    (a verdict inside the run's own spread)."""
    tails = report.get("open_loop") or {}
    found = tails.get("servers") or {}
    head = "Open-loop tail (issue 21 goal 5)"
    if not found:
        return [f"{head}: not run (--open-loop 0, or its rows not measured closed-loop)"]
    equal_rate = tails.get("rate")
    load = (
        f"{equal_rate:.0f} req/s for every server (equal load, not goal 5's share of each "
        "capacity: no verdict)"
        if equal_rate
        else f"{tails['load']:.0%} of each server's capacity (its best closed-loop req/s in "
        "this run)"
    )
    lines = [
        f"{head}: {tails['rows']}-row requests at {load}, a constant arrival rate, latency from "
        f"each request's due time; {tails['seconds']:g}s per server and rep, "
        f"{tails['connections']} connections, median over reps",
        f"{'server':<20} {'capacity':>9} {'rate':>7} {'answered':>9} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'p99.9 ms':>9} {'cpu ms/req':>10} {'core':>5} {'others':>6} "
        f"{'errors':>6} {'late':>5}",
    ]
    summary: dict[str, dict[str, float]] = {}
    others_most = 0.0
    for key in [k for k in ordered_servers(report) if k in found]:
        reps = found[key]["reps"]
        if not reps:
            continue
        row = {
            pct: statistics.median(r["latency_us"][pct] for r in reps) / 1000
            for pct in ("p50", "p99", "p999")
        }
        summary[key] = row
        lines.append(
            f"{label(key):<20} {found[key]['capacity_rps']:>9.0f} {found[key]['rate']:>7.0f} "
            f"{statistics.median(r['rps'] for r in reps):>9.0f} {row['p50']:>8.2f} "
            f"{row['p99']:>8.2f} {row['p999']:>9.2f} {median_of(reps, 'cpu_ms_per_req'):>10.3f} "
            f"{median_of(reps, 'core_share'):>5.0%} {max_of(reps, 'others_on_server_core'):>6.0%} "
            f"{sum(r['error_count'] for r in reps):>6} {sum(r['late_sends'] for r in reps):>5}"
        )
        others_most = max(others_most, max_of(reps, "others_on_server_core", 0.0))
    if others_most > NOISY_SHARE:
        lines.append(
            f"  note: other processes took up to {others_most:.0%} of the servers' core in a rep "
            "('others', the most of any rep): on a shared machine the tails move with them"
        )
    if "echo" in summary:
        lines.append(
            f"  {label('echo')}: at ours' rate, answering without any work: the tail the "
            "generator and the machine add (no verdict)"
        )
    others = [k for k in (*PEERS, "floor") if k in summary]
    if equal_rate:
        return lines
    if "ours" not in summary or not others:
        return [*lines, "  not evaluated: needs ours and a peer or the floor"]
    errors = sum(r["error_count"] for r in found["ours"]["reps"])
    for pct, name in (("p99", "p99"), ("p999", "p99.9")):
        nearest = min(others, key=lambda k: summary[k][pct])
        ok = summary["ours"][pct] < summary[nearest][pct] and not errors
        ours_span, their_span = (latency_span(found[k]["reps"], pct) for k in ("ours", nearest))
        lines.append(
            f"  [{'PASS' if ok else 'FAIL'}] {name} {summary['ours'][pct]:.2f} ms"
            f"{span_text(ours_span)}, the lowest: next is {label(nearest)}'s "
            f"{summary[nearest][pct]:.2f} ms{span_text(their_span)}"
            + ("; their reps overlap" if spans_overlap(ours_span, their_span) else "")
            + (f" (ours answered {errors} errors)" if errors else "")
        )
    return lines


def latency_span(reps: list[dict], pct: str) -> tuple[float, float] | None:
    """The lowest and highest of a percentile over the reps, in ms (None: fewer than two)."""
    values = [r["latency_us"][pct] / 1000 for r in reps]
    return (min(values), max(values)) if len(values) > 1 else None


def span_text(span: tuple[float, float] | None) -> str:
    return f" (reps {span[0]:.2f}-{span[1]:.2f})" if span else ""


def spans_overlap(a: tuple[float, float] | None, b: tuple[float, float] | None) -> bool:
    return a is not None and b is not None and a[0] <= b[1] and b[0] <= a[1]


def profile_table(report: dict) -> list[str]:
    """Where ours spends its CPU per request, by component (bench/profile.py): the share
    of the profile, and that share of the CPU per request measured without the profiler."""
    profiles = report.get("profile") or {}
    if not profiles:
        return ["Profile of ours: not run (--profile 0, or ours not in the run)"]
    idx = index(report)
    payloads = list(profiles)
    lines = [
        f"Profile of ours at {GOAL_CONCURRENCY} clients (cProfile, load only): share of CPU, "
        "and ms of the measured CPU per request",
        f"{'component':<42}" + "".join(f"  {f'{n} row(s)':>18}" for n in payloads),
    ]
    for component in profiles[payloads[0]]:
        parts = []
        for n in payloads:
            share = profiles[n].get(component, 0.0)
            cell = idx.get(("ours", int(n), GOAL_CONCURRENCY))
            cpu = cell.get("cpu_ms_per_req") if cell else None
            ms = f"{share * cpu:6.3f} ms" if cpu else f"{'-':>9}"
            parts.append(f"  {share:>7.1%} {ms:>10}")
        lines.append(f"{component:<42}" + "".join(parts))
    return lines


def memory(report: dict, servers: list[str]) -> list[str]:
    lines = ["Resident memory (process tree): idle after start / max under load"]
    for s in servers:
        loaded = [
            r["rss_mib_max"] for r in report["results"] if r["server"] == s and r["rss_mib_max"]
        ]
        idle = report["servers"][s]["idle_rss_mib"]
        lines.append(
            f"  {label(s):<20} {idle if idle is not None else float('nan'):6.0f} MiB / "
            f"{max(loaded) if loaded else float('nan'):6.0f} MiB"
        )
    return lines


def verdicts(report: dict, subject: str = "ours") -> list[str]:
    idx = index(report)
    c = GOAL_CONCURRENCY
    peers = [p for p in PEERS if (p, 1, c) in idx]
    lines = [f"Goals of {label(subject)} (DESIGN.md, Performance goals) at {c} clients:"]
    ours1, ours100 = idx.get((subject, 1, c)), idx.get((subject, 100, c))
    if not peers or ours1 is None:
        return [*lines, "  not evaluated: needs ours and at least one peer at this concurrency"]
    fastest = max(peers, key=lambda p: idx[(p, 1, c)]["rps"])
    best_p99 = min(peers, key=lambda p: idx[(p, 1, c)]["p99_ms"])
    want = GOAL_SINGLE_ROW_SPEEDUP * idx[(fastest, 1, c)]["rps"]
    ok = ours1["rps"] >= want and not ours1["errors"]
    lines.append(
        f"  [{'PASS' if ok else 'FAIL'}] single-row throughput {ours1['rps']:.0f} req/s >= "
        f"{GOAL_SINGLE_ROW_SPEEDUP}x {label(fastest)} ({idx[(fastest, 1, c)]['rps']:.0f}) = "
        f"{want:.0f}  (ratio {ours1['rps'] / idx[(fastest, 1, c)]['rps']:.2f}x)"
    )
    cpu_ours = ours1.get("cpu_ms_per_req")
    cpu_peers = {p: idx[(p, 1, c)].get("cpu_ms_per_req") for p in peers}
    if cpu_ours and all(cpu_peers.values()):
        leanest = min(peers, key=lambda p: cpu_peers[p])
        lines.append(
            f"         cross-check, CPU per request: ours {cpu_ours:.3f} ms, {label(leanest)} "
            f"{cpu_peers[leanest]:.3f} ms: {cpu_peers[leanest] / cpu_ours:.2f}x the requests "
            "per CPU-second"
        )
    limit = idx[(best_p99, 1, c)]["p99_ms"]
    ok = ours1["p99_ms"] <= limit
    lines.append(
        f"  [{'PASS' if ok else 'FAIL'}] single-row p99 {ours1['p99_ms']:.2f} ms <= "
        f"{label(best_p99)}'s {limit:.2f} ms"
    )
    peers100 = [p for p in PEERS if (p, 100, c) in idx]
    if ours100 is not None and peers100:
        fastest100 = max(peers100, key=lambda p: idx[(p, 100, c)]["rows_per_s"])
        peer_rows = idx[(fastest100, 100, c)]["rows_per_s"]
        want = GOAL_BATCH_ROWS_SPEEDUP * peer_rows
        ok = ours100["rows_per_s"] >= want and not ours100["errors"]
        lines.append(
            f"  [{'PASS' if ok else 'FAIL'}] 100-row batches {ours100['rows_per_s']:.0f} rows/s >= "
            f"{GOAL_BATCH_ROWS_SPEEDUP}x {label(fastest100)} ({peer_rows:.0f}) = {want:.0f}  "
            f"(ratio {ours100['rows_per_s'] / peer_rows:.2f}x)"
        )
    return lines


def plot(results_json: Path, png: Path) -> None:
    python = CACHE / "report-venv/bin/python"
    if not python.exists():
        print(f">> no plot: {python} missing (make bench-setup)", flush=True)
        return
    subprocess.run([str(python), str(BENCH / "plot.py"), str(results_json), str(png)], check=True)
