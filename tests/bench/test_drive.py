"""bench/drive.py: the wrk result line, CPU figures, the measurement order, progress lines."""

from __future__ import annotations

import json
import os

import pytest

from bench.drive import cores_busy_seconds, parse_wrk_output, progress_line, schedule, with_cpu


def wrk_line(
    requests: int = 2000, duration_us: int = 2_000_000, read: int = 0, status: int = 0
) -> str:
    body = {
        "requests": requests,
        "duration_us": duration_us,
        "bytes": 123456,
        "errors": {"connect": 0, "read": read, "write": 0, "status": status, "timeout": 0},
        "latency_us": {
            "min": 300,
            "mean": 900.5,
            "max": 9000,
            "p50": 800,
            "p90": 1500,
            "p99": 4000,
            "p999": 8000,
        },
    }
    return f"BENCH_JSON {json.dumps(body)}"


def test_wrk_result_line_gives_requests_per_second_and_error_total() -> None:
    stdout = f"Running 2s test @ http://127.0.0.1:1/v1/predict\n{wrk_line(read=1, status=3)}\n"
    result = parse_wrk_output(stdout)
    assert result is not None
    assert result["rps"] == pytest.approx(1000.0)
    assert result["error_count"] == 4  # one read error, three bad statuses
    assert result["latency_us"]["p99"] == 4000


def test_wrk_output_without_result_line_is_none() -> None:
    assert parse_wrk_output("unable to connect to 127.0.0.1:1 Connection refused\n") is None


def test_wrk_result_of_zero_duration_has_zero_rate() -> None:
    result = parse_wrk_output(wrk_line(requests=0, duration_us=0))
    assert result is not None
    assert result["rps"] == 0.0


def test_cpu_figures_per_request_and_share_of_a_core() -> None:
    result = with_cpu(parse_wrk_output(wrk_line()) or {}, cpu_used=1.0)
    assert result["server_cpu_s"] == 1.0
    assert result["cpu_ms_per_req"] == pytest.approx(0.5)  # 1000 ms over 2000 requests
    assert result["core_share"] == pytest.approx(0.5)  # 1 s of CPU in 2 s


def test_cpu_per_request_is_none_without_requests() -> None:
    result = with_cpu(parse_wrk_output(wrk_line(requests=0)) or {}, cpu_used=0.3)
    assert result["cpu_ms_per_req"] is None


def test_schedule_measures_every_cell_of_every_server_once_per_repetition() -> None:
    order = list(schedule(2, [1, 100], [1, 16], ["a", "b", "c"]))
    assert len(order) == 2 * 2 * 2 * 3
    assert len(set(order)) == len(order)


def test_schedule_rotates_the_server_order_each_repetition() -> None:
    firsts = [s for rep, n, c, s in schedule(3, [1], [4], ["a", "b", "c"])]
    assert firsts == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]


def test_progress_line_flags_errors_only_when_there_are_some() -> None:
    clean = with_cpu(parse_wrk_output(wrk_line()) or {}, 1.0)
    failed = with_cpu(parse_wrk_output(wrk_line(status=2)) or {}, 1.0)
    line = progress_line(3, 8, 0, 2, 1, 16, "ours", clean, eta=90)
    assert line.startswith("[  3/8] rep 1/2 rows=1   c=16  ours")
    assert "1000 req/s" in line
    assert "p99    4.00 ms" in line
    assert "( 50% of a core)" in line
    assert "(ETA  1.5 min)" in line
    assert "ERRORS" not in line
    assert "ERRORS {'connect': 0, 'read': 0, 'write': 0, 'status': 2" in progress_line(
        3, 8, 0, 2, 1, 16, "ours", failed, 0
    )


def test_each_cores_busy_time_leaves_out_idle_and_iowait() -> None:
    stat = (
        "cpu  300 0 60 1000 40 0 10 0 0 0\n"
        "cpu0 100 0 20 500 20 0 5 0 0 0\n"
        "cpu1 200 0 40 500 20 0 5 3 0 0\n"
        "intr 12345 0 0\n"
    )
    hz = os.sysconf("SC_CLK_TCK")
    assert cores_busy_seconds(stat) == {0: 125 / hz, 1: 248 / hz}
