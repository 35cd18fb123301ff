"""bench/report.py: medians of a cell, ratios, the goals' PASS/FAIL, the printed report."""

from __future__ import annotations

from typing import Any

import pytest

from bench.report import (
    GOAL_BATCH_ROWS_SPEEDUP,
    GOAL_CONCURRENCY,
    GOAL_SINGLE_ROW_SPEEDUP,
    GOAL_WORKERS_CPU_RATIO,
    Cell,
    capacities,
    label,
    one_client_verdicts,
    open_loop_rates,
    open_loop_table,
    ordered_servers,
    paired_ratios,
    ratios,
    render_report,
    spread,
    verdicts,
    workers_verdicts,
)

C = GOAL_CONCURRENCY


def rep(rps: float, p50_us: int, p99_us: int, errors: int = 0, cpu: float | None = 0.5) -> dict:
    return {
        "rps": rps,
        "latency_us": {"p50": p50_us, "p99": p99_us},
        "error_count": errors,
        "cpu_ms_per_req": cpu,
        "core_share": 0.9,
    }


def row(server: str, rows: int, rps: float, p99_ms: float, **extra: Any) -> dict:
    base = {
        "server": server,
        "rows": rows,
        "concurrency": C,
        "rps": rps,
        "rows_per_s": rps * rows,
        "p50_ms": p99_ms / 4,
        "p99_ms": p99_ms,
        "cpu_ms_per_req": 0.5,
        "core_share": 0.9,
        "errors": 0,
        "rss_mib_max": 150.0,
    }
    return base | extra


def report(results: list[dict]) -> dict:
    servers = list(dict.fromkeys(r["server"] for r in results))
    return {
        "started": "20260101-000000",
        "model": {"name": "wine", "version": "1", "estimator": "HistGradientBoostingClassifier"},
        "settings": {
            "reps": 3,
            "duration_s": 4.0,
            "load_generator": "wrk -t1",
            "rows": sorted({r["rows"] for r in results}),
            "concurrency": [C],
            "scrape_interval_s": 5,
        },
        "servers": {s: {"idle_rss_mib": 120.0} for s in servers},
        "results": results,
    }


def test_cell_summary_takes_medians_and_sums_errors() -> None:
    cell = Cell(
        "ours",
        100,
        16,
        reps=[
            rep(900, 1000, 9000),
            rep(1000, 2000, 5000, errors=2),
            rep(1100, 3000, 7000, cpu=None),
        ],
    )
    cell.rss_mib.extend([150.0, 170.0, 160.0])
    summary = cell.summary()
    assert summary["rps"] == 1000
    assert summary["rows_per_s"] == 100_000
    assert summary["p50_ms"] == 2.0
    assert summary["p99_ms"] == 7.0
    assert summary["cpu_ms_per_req"] == 0.5  # the repetition without a figure is left out
    assert summary["errors"] == 2
    assert summary["rss_mib_max"] == 170.0


def test_cell_without_memory_samples_has_no_rss() -> None:
    assert Cell("floor", 1, 1, reps=[rep(10, 1, 1)]).summary()["rss_mib_max"] is None


def test_ratios_of_ours_against_a_peer() -> None:
    ours = row("ours", 1, 3000, 4.0, cpu_ms_per_req=0.25)
    peer = row("kserve", 1, 1000, 8.0, cpu_ms_per_req=1.0)
    assert ratios(ours, peer) == (3.0, 0.5, 4.0)


@pytest.mark.parametrize(
    "peer", [None, row("kserve", 1, 0, 8.0), row("kserve", 1, 1000, 0.0)], ids=str
)
def test_no_ratios_against_a_peer_without_figures(peer: dict | None) -> None:
    assert ratios(row("ours", 1, 3000, 4.0), peer) is None


def test_no_cpu_ratio_unless_both_were_measured() -> None:
    ours = row("ours", 1, 3000, 4.0, cpu_ms_per_req=None)
    assert ratios(ours, row("kserve", 1, 1000, 8.0)) == (3.0, 0.5, None)


def test_labels_and_order_ours_then_variants_then_peers() -> None:
    rows = [row(s, 1, 1, 1) for s in ("floor", "kserve", "ours:nobatch", "mlserver", "ours")]
    assert ordered_servers(report(rows)) == ["ours", "ours:nobatch", "mlserver", "kserve", "floor"]
    assert label("ours:nobatch") == "ours [nobatch]"
    assert label("mlserver") == "MLServer"


def goal_results(ours_rps: float, ours_p99: float, ours_rows_100: float) -> list[dict]:
    return [
        row("ours", 1, ours_rps, ours_p99),
        row("mlserver", 1, 800, 9.0),
        row("kserve", 1, 1000, 6.0),
        row("ours", 100, ours_rows_100 / 100, 20.0),
        row("mlserver", 100, 100, 50.0),  # 10000 rows/s: the faster peer at 100 rows
        row("kserve", 100, 50, 40.0),
    ]


def test_goals_pass_at_exactly_the_thresholds() -> None:
    results = goal_results(GOAL_SINGLE_ROW_SPEEDUP * 1000, 6.0, GOAL_BATCH_ROWS_SPEEDUP * 10000)
    lines = verdicts(report(results))
    assert lines[0] == f"Goals of modelops (ours) (DESIGN.md, Performance goals) at {C} clients:"
    assert [line.split("]")[0].strip() for line in lines if "[" in line] == ["[PASS"] * 3
    assert "2.5x KServe (1000) = 2500  (ratio 2.50x)" in lines[1]
    assert "<= KServe's 6.00 ms" in "\n".join(lines)
    assert "1.5x MLServer (10000) = 15000" in lines[-1]


def test_goals_fail_just_below_the_thresholds() -> None:
    results = goal_results(GOAL_SINGLE_ROW_SPEEDUP * 1000 - 1, 6.01, 14999)
    lines = [line for line in verdicts(report(results)) if "[" in line]
    assert [line.split("]")[0].strip() for line in lines] == ["[FAIL"] * 3


def test_errors_fail_the_throughput_goals_however_fast() -> None:
    results = goal_results(10_000, 1.0, 10**6)
    results[0]["errors"] = 1
    results[3]["errors"] = 1
    lines = [line for line in verdicts(report(results)) if "[" in line]
    assert [line[:8] for line in lines] == ["  [FAIL]", "  [PASS]", "  [FAIL]"]


def test_goals_not_evaluated_without_a_peer() -> None:
    lines = verdicts(report([row("ours", 1, 3000, 4.0), row("floor", 1, 5000, 2.0)]))
    assert lines[-1] == ("  not evaluated: needs ours and at least one peer at this concurrency")


def test_render_report_prints_table_ratios_goals_and_memory() -> None:
    text = render_report(report(goal_results(3000, 5.0, 20000)))
    lines = text.splitlines()
    assert lines[1] == (
        "Benchmark 20260101-000000: model wine/1 (HistGradientBoostingClassifier), "
        "median of 3 x 4s, wrk -t1, /metrics scraped every 5s"
    )
    assert "   1   16  modelops (ours)           3000       3000     1.25     5.00" in text
    # thr 3000/800, p99 5/9, cpu 0.5/0.5 against MLServer; 3.00, 0.83, 1.00 against KServe
    assert "   1   16 " + "    3.75   0.56   1.00    3.00   0.83   1.00" in lines
    assert "  [PASS] single-row throughput 3000 req/s >= 2.5x KServe (1000) = 2500" in text
    assert "  modelops (ours)         120 MiB /    150 MiB" in lines


def test_ab_pairs_each_rep_of_ours_with_the_same_rep_of_the_variant() -> None:
    ours = {"reps": [rep(1000, 1, 2, cpu=0.20), rep(500, 1, 2, cpu=0.22), rep(900, 1, 2)]}
    old = {"reps": [rep(800, 1, 2, cpu=0.25), rep(500, 1, 2, cpu=0.20), rep(1000, 1, 2)]}
    assert paired_ratios(ours, old, "cpu_ms_per_req") == pytest.approx([0.8, 1.1, 1.0])
    assert paired_ratios(ours, old, "rps") == pytest.approx([1.25, 1.0, 0.9])
    assert spread([0.8, 1.1, 1.0]) == "1.000 [0.800..1.100]  +0.0%"
    assert spread([]) == "-"


def test_render_report_prints_the_ab_against_each_variant() -> None:
    cpu = (0.20, 0.30, 0.19)
    results = [
        row("ours", 1, 1000, 5.0, reps=[rep(1000, 1, 2, cpu=c) for c in (0.19, 0.2, 0.2)]),
        row("ours:old", 1, 900, 5.0, reps=[rep(900, 1, 2, cpu=c) for c in cpu]),
    ]
    lines = render_report(report(results)).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("A/B: modelops (ours)"))
    assert "against ours [old]" in lines[at]
    expected = "1 16 0.950 [0.667..1.053] -5.0% 1.111 [1.111..1.111] +11.1%"
    assert lines[at + 2].split() == expected.split()


def test_the_floor_table_passes_within_twice_the_floor_and_fails_beyond() -> None:
    results = [
        row("ours", 1, 3000, 5.0, cpu_ms_per_req=0.3, rows_per_call=16.2),
        row("echo", 1, 9000, 1.0, cpu_ms_per_req=0.1),
        row("ours", 100, 800, 9.0, cpu_ms_per_req=1.3, rows_per_call=200.0),
        row("echo", 100, 3000, 2.0, cpu_ms_per_req=0.1),
    ]
    text = render_report(report(results) | {"model_ms_per_call": {"16": 1.6, "200": 1.0}})
    lines = text.splitlines()
    # a report without ours' own timing of the calls is judged on the call timed alone
    one = "   1   16     0.100      16.2        -    1.600    0.199    0.300   1.51  [PASS]"
    hundred = " 100   16     0.100     200.0        -    1.000    0.600    1.300   2.17  [FAIL]"
    assert one in lines
    assert hundred in lines


def test_the_floor_takes_the_model_call_as_ours_timed_it_and_shows_the_call_alone() -> None:
    results = [
        row("ours", 1, 3000, 5.0, cpu_ms_per_req=0.3, rows_per_call=16.0, model_ms_in_service=2.4),
        row("echo", 1, 9000, 1.0, cpu_ms_per_req=0.1),
    ]
    text = render_report(report(results) | {"model_ms_per_call": {"16": 1.6}})
    expected = (
        "   1   16     0.100      16.0    2.400    1.600    0.250    0.300   1.20  [PASS]"
        "  (model alone: floor 0.200, 1.50x)"
    )
    assert expected in text.splitlines()


def test_at_ours_pace_the_floor_takes_the_echos_share_less_its_filler_and_is_the_verdict() -> None:
    results = [
        row("ours", 1, 3000, 5.0, cpu_ms_per_req=0.3, rows_per_call=16.0, model_ms_in_service=1.6),
        row("echo", 1, 9000, 1.0, cpu_ms_per_req=0.05),
    ]

    def at_pace(share: float, rps: float) -> dict:
        return {"filler_ms": 0.3 - share, "rps": rps, "share_ms": share}

    paced = {"1": {"concurrency": C, "reps": [at_pace(0.09, 2990), at_pace(0.1, 3000)]}}
    paced["1"]["reps"].append(at_pace(0.12, 3010))
    lines = render_report(report(results) | {"paced_echo": paced}).splitlines()
    # at its own pace the echo's share gives 2x the floor: shown, not judged
    own = "   1   16     0.050      16.0    1.600        -    0.150    0.300   2.00"
    assert f"{own}  (judged at ours' pace)" in lines
    # at ours' pace the median share is 0.1: floor 0.1 + 1.6 / 16
    paced_line = "   1   16      0.200      3000      3000    0.100    0.200    0.300   1.50"
    assert f"{paced_line}  [PASS]" in lines
    slower = {"1": {"concurrency": C, "reps": [at_pace(0.04, 3000)]}}
    lines = render_report(report(results) | {"paced_echo": slower}).splitlines()
    paced_line = "   1   16      0.260      3000      3000    0.040    0.140    0.300   2.14"
    assert f"{paced_line}  [FAIL]" in lines


def test_the_floor_is_not_evaluated_without_the_echo() -> None:
    text = render_report(report([row("ours", 1, 3000, 5.0, rows_per_call=16.0)]))
    assert "  not evaluated: needs ours (with /metrics) and the echo server" in text


def one_client(ours_rps: float, ours_p50_ms: float) -> dict:
    def at_one(server: str, rps: float, p50: float) -> dict:
        return row(server, 1, rps, p50 * 4) | {"concurrency": 1}

    return report(
        [
            at_one("ours", ours_rps, ours_p50_ms),
            at_one("mlserver", 400, 2.0),
            at_one("kserve", 500, 1.8),
            at_one("floor", 700, 1.2),
        ]
    ) | {"settings": {"rows": [1], "concurrency": [1]}}


def test_goal_two_passes_at_one_and_a_half_times_the_faster_peer_and_the_lowest_p50() -> None:
    lines = one_client_verdicts(one_client(750, 1.1))
    assert lines[1] == "  [PASS] throughput 750 req/s >= 1.5x KServe (500) = 750"
    assert lines[2] == "  [PASS] p50 1.10 ms, the lowest: next is FastAPI floor's 1.20 ms"


def test_goal_two_fails_below_the_speedup_or_behind_the_floor() -> None:
    lines = one_client_verdicts(one_client(749, 1.2))
    assert [line[:8] for line in lines[1:]] == ["  [FAIL]", "  [FAIL]"]


def workers(cpu_one: float, cpu_two: float) -> dict:
    """Ours with one and two workers: at one arrival rate (the verdict) and in the closed
    loop (for reference, CPU per request 1.0 and 1.5 ms)."""

    def cell(server: str, cpu: float, per_call: float) -> dict:
        reps = [rep(900, 1000, 4000, cpu=cpu)]
        return row(server, 1, 900, 4.0, cpu_ms_per_req=cpu, rows_per_call=per_call, reps=reps)

    def at_rate(cpu: float, per_call: float) -> dict:
        first = rep(630, 1000, 4000, cpu=cpu * 0.99) | {"rows_per_call": per_call}
        return {"capacity_rps": 900, "rate": 630, "reps": [first, rep(630, 900, 3000, cpu=cpu)]}

    results = [cell("ours", 1.0, 10.0), cell("ours:workers2", 1.5, 5.0)]
    equal = {
        "seconds": 10,
        "load": 0.7,
        "connections": 64,
        "rows": {
            "1": {
                "rate": 630,
                "servers": {"ours": at_rate(cpu_one, 4.0), "ours:workers2": at_rate(cpu_two, 2.0)},
            }
        },
    }
    return report(results) | {"model_ms_per_call": {"10": 2.0, "5": 1.5}, "workers": equal}


def test_goal_four_is_judged_at_one_arrival_rate_for_both() -> None:
    lines = workers_verdicts(workers(1.0, GOAL_WORKERS_CPU_RATIO))

    assert lines[1] == (
        "  [PASS]   1 rows at 630 req/s (70% of the lower capacity, a constant arrival rate): "
        "1.144 ms against 0.995 ms, 1.15x (1.150 [1.150..1.150] +15.0%); "
        "rows per call 2.0 against 4.0"
    )


def test_the_closed_loop_is_shown_for_reference_without_a_verdict() -> None:
    lines = workers_verdicts(workers(1.0, 1.0))

    assert lines[2] == (
        "  for reference, the closed loop at 16 clients (not the same load: no verdict):"
    )
    # the model's share: 1.5 ms / 5 rows, 2.0 ms / 10 rows
    assert lines[3] == (
        "          1 rows: 1.500 ms against 1.000 ms, 1.50x (1.500 [1.500..1.500] +50.0%); "
        "rows per call 5.0 against 10.0, without the model 1.200 ms against 0.800 ms"
    )
    assert not any("FAIL" in line for line in lines)


def test_goal_four_takes_the_model_share_from_the_calls_as_each_server_timed_them() -> None:
    timed = workers(1.0, GOAL_WORKERS_CPU_RATIO)
    for cell, call_ms in zip(timed["results"], (3.0, 2.0), strict=True):
        cell["model_ms_in_service"] = call_ms  # the calls timed alone: 2.0 and 1.5 ms

    # 3.0 ms / 10 rows, 2.0 ms / 5 rows
    assert workers_verdicts(timed)[3].endswith("without the model 1.100 ms against 0.700 ms")


def test_goal_four_fails_beyond_the_ratio_and_is_not_evaluated_without_the_open_loop() -> None:
    assert "[FAIL]" in workers_verdicts(workers(1.0, 1.16))[1]
    closed_only = workers(1.0, 1.0) | {"workers": {"load": 0.7, "rows": {}}}
    lines = workers_verdicts(closed_only)
    assert "not evaluated: needs ours, ours:workers2 and the open loop" in lines[1]
    assert lines[2].startswith("  for reference, the closed loop")
    single = report([row("ours", 1, 900, 4.0, reps=[rep(900, 1000, 4000)])])
    assert workers_verdicts(single)[1:] == [
        "  not evaluated: needs ours, ours:workers2 and the open loop (--open-loop > 0)"
    ]


def tails(ours_p99_ms: float, ours_p999_ms: float, errors: int = 0) -> dict:
    def server(capacity: float, p99_ms: float, p999_ms: float, errors: int = 0) -> dict:
        result = {
            "rps": capacity * 0.7,
            "latency_us": {"p50": 1000, "p99": p99_ms * 1000, "p999": p999_ms * 1000},
            "error_count": errors,
            "late_sends": 0,
            "cpu_ms_per_req": 1.0,
        }
        return {"capacity_rps": capacity, "rate": capacity * 0.7, "reps": [result]}

    base = report([row("ours", 1, 900, 4.0), row("mlserver", 1, 200, 9.0)])
    base["servers"]["floor"] = {"idle_rss_mib": 100.0}
    servers = {
        "ours": server(900, ours_p99_ms, ours_p999_ms, errors),
        "mlserver": server(200, 9.0, 30.0),
        "floor": server(300, 5.0, 12.0),
    }
    return base | {
        "open_loop": {"seconds": 10, "load": 0.7, "rows": 1, "connections": 64, "servers": servers}
    }


def test_goal_five_passes_with_the_lowest_p99_and_p999_of_the_peers_and_the_floor() -> None:
    lines = open_loop_table(tails(4.9, 11.9))
    assert lines[-2] == "  [PASS] p99 4.90 ms, the lowest: next is FastAPI floor's 5.00 ms"
    assert lines[-1] == "  [PASS] p99.9 11.90 ms, the lowest: next is FastAPI floor's 12.00 ms"
    assert any(line.startswith("modelops (ours)            900     630") for line in lines)


def test_goal_five_fails_on_a_tie_a_higher_tail_or_errors() -> None:
    assert [line[:8] for line in open_loop_table(tails(5.0, 11.0))[-2:]] == ["  [FAIL]", "  [PASS]"]
    assert [line[:8] for line in open_loop_table(tails(4.0, 12.5))[-2:]] == ["  [PASS]", "  [FAIL]"]
    failed = open_loop_table(tails(1.0, 2.0, errors=3))[-2:]
    assert all(line.startswith("  [FAIL]") and "3 errors" in line for line in failed)


def test_goal_five_shows_each_verdicts_spread_over_reps_and_when_they_overlap() -> None:
    spread = tails(4.0, 11.0)
    for key, p99s, p999s in (("ours", (3.0, 4.0, 6.5), (8.0, 11.0, 11.5)),
                             ("floor", (4.5, 5.0, 5.5), (12.0, 12.0, 14.0))):  # fmt: skip
        first = spread["open_loop"]["servers"][key]["reps"][0]
        spread["open_loop"]["servers"][key]["reps"] = [
            first | {"latency_us": {"p50": 1000, "p99": a * 1000, "p999": b * 1000}}
            for a, b in zip(p99s, p999s, strict=True)
        ]

    lines = open_loop_table(spread)

    assert lines[-2] == (
        "  [PASS] p99 4.00 ms (reps 3.00-6.50), the lowest: next is FastAPI floor's 5.00 ms "
        "(reps 4.50-5.50); their reps overlap"
    )
    assert lines[-1] == (
        "  [PASS] p99.9 11.00 ms (reps 8.00-11.50), the lowest: next is FastAPI floor's "
        "12.00 ms (reps 12.00-14.00)"
    )


def test_the_open_loop_table_says_when_other_processes_took_the_servers_core() -> None:
    quiet = tails(4.9, 11.9)
    assert not any("note:" in line for line in open_loop_table(quiet))
    noisy = tails(4.9, 11.9)
    reps = noisy["open_loop"]["servers"]["mlserver"]["reps"]
    reps.append(reps[0] | {"core_share": 0.7, "others_on_server_core": 0.25})
    reps[0] = reps[0] | {"core_share": 0.72, "others_on_server_core": 0.01}
    lines = open_loop_table(noisy)
    row = next(line for line in lines if line.startswith("MLServer"))
    assert row.split()[-4:-2] == ["71%", "25%"]  # median core, the most the others took
    assert lines[-3].startswith("  note: other processes took up to 25% of the servers' core")
    assert lines[-2].startswith("  [PASS] p99")


def test_goal_five_asks_each_server_its_share_and_the_echo_ours_rate() -> None:
    capacity = {"ours": 10000.0, "mlserver": 1000.0, "echo": 40000.0}
    assert open_loop_rates(capacity, 0.7, None) == {
        "ours": {"capacity_rps": 10000.0, "rate": 7000.0},
        "mlserver": {"capacity_rps": 1000.0, "rate": 700.0},
        "echo": {"capacity_rps": 40000.0, "rate": 7000.0},
    }
    assert {k: v["rate"] for k, v in open_loop_rates(capacity, 0.7, 500.0).items()} == {
        "ours": 500.0,
        "mlserver": 500.0,
        "echo": 500.0,
    }
    assert "echo" not in open_loop_rates({"mlserver": 1000.0, "echo": 40000.0}, 0.7, None)


def test_the_echo_at_ours_rate_is_shown_as_the_reference_without_a_verdict() -> None:
    with_echo = tails(4.9, 11.9)
    with_echo["servers"]["echo"] = {"idle_rss_mib": 30.0}
    answered = {"rps": 630, "error_count": 0, "late_sends": 0, "cpu_ms_per_req": 0.02}
    latency = {"p50": 100, "p99": 1000, "p999": 2000}  # far below ours: still ours' PASS
    with_echo["open_loop"]["servers"]["echo"] = {
        "capacity_rps": 40000,
        "rate": 630,
        "reps": [answered | {"latency_us": latency}],
    }
    lines = open_loop_table(with_echo)
    assert any(line.startswith("raw ASGI echo            40000     630") for line in lines)
    assert lines[-3].startswith("  raw ASGI echo: at ours' rate, answering without any work")
    assert lines[-2] == "  [PASS] p99 4.90 ms, the lowest: next is FastAPI floor's 5.00 ms"
    assert lines[-1] == "  [PASS] p99.9 11.90 ms, the lowest: next is FastAPI floor's 12.00 ms"


def test_at_one_rate_for_every_server_the_tails_are_shown_without_a_verdict() -> None:
    equal = tails(4.9, 11.9)
    equal["open_loop"]["rate"] = 500.0
    lines = open_loop_table(equal)
    assert "at 500 req/s for every server (equal load" in lines[0]
    assert not any("[PASS]" in line or "[FAIL]" in line for line in lines)
    assert any(line.startswith("modelops (ours)") for line in lines)


def test_goal_five_is_not_evaluated_when_the_open_loop_did_not_run() -> None:
    assert open_loop_table(report([row("ours", 1, 900, 4.0)]))[0].endswith(
        "not run (--open-loop 0, or its rows not measured closed-loop)"
    )


def test_capacity_is_the_best_closed_loop_rate_at_those_rows() -> None:
    cells = {}
    for key, n, c, rps in (("ours", 1, 1, 300.0), ("ours", 1, 16, 900.0), ("ours", 100, 16, 50.0)):
        cells[(key, n, c)] = Cell(key, n, c, reps=[{"rps": rps}])
    cells[("kserve", 1, 16)] = Cell(
        "kserve", 1, 16, reps=[{"rps": 200.0}, {"rps": 240.0}, {"rps": 100.0}]
    )
    assert capacities(cells, ["ours", "kserve", "floor"], 1) == {"ours": 900.0, "kserve": 200.0}
