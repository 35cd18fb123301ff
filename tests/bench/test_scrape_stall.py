"""bench/scrape_stall.py: the intervals, the summary over repetitions and the printed tables;
the Scraper times each scrape (against a loopback HTTP server)."""

from __future__ import annotations

import http.server
import math
import threading
import time

import pytest

from bench.drive import Scraper
from bench.scrape_stall import NO_SCRAPE, modes, split_table, summarize_runs, tail_table


def run_result(p99_ms: float, scrape_ms: list[float], others: float = 0.0) -> dict:
    return {
        "rps": 4000.0,
        "cpu_ms_per_req": 0.2,
        "others_on_server_core": others,
        "scrape_ms": scrape_ms,
        "latency_us": {
            "p50": 2000.0,
            "p99": p99_ms * 1000,
            "p999": p99_ms * 2000,
            "max": p99_ms * 3000,
        },
    }


def test_modes_scrape_nothing_ours_then_every_server() -> None:
    assert modes(1, neighbours=False) == [NO_SCRAPE, "ours every 1s"]
    assert modes(0.5, neighbours=True) == [NO_SCRAPE, "ours every 0.5s", "all every 0.5s"]
    with pytest.raises(ValueError, match="must be > 0"):
        modes(0, neighbours=False)


def test_summary_takes_medians_the_worst_others_and_every_scrape() -> None:
    runs = [run_result(5, [8.0]), run_result(50, [90.0, 10.0], 0.04), run_result(7, [])]
    s = summarize_runs(runs)
    assert s["p99"] == 7.0
    assert s["p999"] == 14.0
    assert s["others"] == 0.04
    assert s["scrapes"] == 3
    assert s["scrape_ms_median"] == 10.0
    assert s["scrape_ms_max"] == 90.0


def test_summary_without_scrapes_has_no_scrape_times() -> None:
    s = summarize_runs([run_result(5, [])])
    assert s["scrapes"] == 0
    assert math.isnan(s["scrape_ms_median"])


def test_tail_table_has_one_row_per_mode() -> None:
    by_mode = {NO_SCRAPE: [run_result(5, [])], "ours every 1s": [run_result(9, [12.0, 30.0])]}
    lines = tail_table(4386, 8, by_mode)
    assert "4386 req/s" in lines[0]
    assert lines[2].startswith("no scrape")
    assert lines[3].startswith("ours every 1s")
    assert "21.0 / 30.0" in lines[3]  # median / max
    assert lines[2].rstrip().endswith("-")


def test_split_table_shares_add_up() -> None:
    split = {
        "drift report": 1.0,
        "other series": 2.0,
        "text exposition": 1.0,
        "bytes": 20480,
        "samples": 300,
    }
    lines = split_table(split)
    assert ["25%" in lines[1], "50%" in lines[2], "25%" in lines[3]] == [True] * 3
    assert lines[4].split() == ["total", "4.000", "ms", "(20", "KiB,", "300", "samples)"]


def test_scraper_scrapes_what_it_is_given_and_times_each_scrape() -> None:
    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(0.05)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with Scraper([], 0.05) as scraper:
            time.sleep(0.2)
            assert scraper.scrapes == 0
            # make bench points it at the server it measures, one after the other
            scraper.urls = [f"http://127.0.0.1:{server.server_address[1]}/metrics"]
            time.sleep(0.5)
    finally:
        server.shutdown()
        server.server_close()
    assert scraper.scrapes >= 2
    assert len(scraper.seconds) == scraper.scrapes
    assert all(s >= 0.05 for s in scraper.seconds)
