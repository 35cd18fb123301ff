"""bench/floor.py and bench/peers/echo_app.py: the stack floor of issue 21's goal 1."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import pytest

from bench.floor import (
    ModelCounters,
    floor_ms,
    model_ms_per_call,
    ms_per_call_in_service,
    next_filler_ms,
    paced_share_ms,
    rows_per_call,
)
from bench.servers import BENCH
from devstack.service_process import demo_model_dir


def test_rows_per_call_is_the_rows_over_the_calls_between_two_scrapes() -> None:
    before = ModelCounters(rows=100.0, calls=10.0, seconds=1.0)
    assert rows_per_call(before, ModelCounters(260.0, 20.0, 1.5)) == 16.0
    assert rows_per_call(before, before) is None  # no call in between


def test_a_call_in_the_service_is_its_timed_share_scaled_by_the_core_it_got() -> None:
    before = ModelCounters(rows=100.0, calls=10.0, seconds=1.0)
    after = ModelCounters(rows=260.0, calls=20.0, seconds=1.008)
    assert ms_per_call_in_service(before, after, core_share=1.0) == pytest.approx(0.8)
    assert ms_per_call_in_service(before, after, core_share=0.5) == pytest.approx(0.4)
    # a share above one core (a measurement's rounding) never inflates the call
    assert ms_per_call_in_service(before, after, core_share=1.02) == pytest.approx(0.8)
    assert ms_per_call_in_service(before, before, core_share=1.0) is None


def test_the_floor_is_the_echo_plus_the_request_share_of_a_model_call() -> None:
    assert floor_ms(0.1, 1.6, rows=1, per_call=16.0) == pytest.approx(0.2)
    assert floor_ms(0.1, 1.6, rows=100, per_call=400.0) == pytest.approx(0.5)
    # a request larger than the batches counted is a call of its own, at least
    assert floor_ms(0.1, 1.6, rows=100, per_call=50.0) == pytest.approx(1.7)


def test_the_filler_makes_the_echo_cost_what_ours_costs_and_the_share_is_the_rest() -> None:
    # from the echo's own pace, then from the share measured with that filler
    assert next_filler_ms(ours_ms=0.1, share_ms=0.022) == pytest.approx(0.078)
    assert next_filler_ms(ours_ms=0.1, share_ms=0.04) == pytest.approx(0.06)
    assert next_filler_ms(ours_ms=0.02, share_ms=0.03) == 0.0  # never below zero
    assert paced_share_ms(cpu_ms=0.1, filler_ms=0.06) == pytest.approx(0.04)
    # a filler preempted by another process counts less CPU than asked: no negative share
    assert paced_share_ms(cpu_ms=0.05, filler_ms=0.06) == 0.0


def test_a_model_call_costs_cpu_time() -> None:
    rows = np.ones((3, 13))
    assert model_ms_per_call(demo_model_dir("wine", "1"), rows, 16, calls=5) > 0


def echo_app():
    spec = importlib.util.spec_from_file_location("echo_app", BENCH / "peers/echo_app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


def call(app, method: str, chunks: list[bytes], path: str = "/v1/predict") -> tuple[int, bytes]:
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app({"type": "http", "method": method, "path": path}, receive, send))
    return sent[0]["status"], sent[1]["body"]


def test_the_echo_answers_ours_answer_to_a_body_of_that_length(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = tmp_path / "echo-answers.json"
    monkeypatch.setenv("BENCH_ANSWERS_FILE", str(answers))
    app = echo_app()
    assert call(app, "POST", [b"abc"]) == (404, b"")  # ours has not answered yet
    answers.write_text(json.dumps({"5": '{"predictions":[1]}'}))
    assert call(app, "POST", [b"ab", b"cde"]) == (200, b'{"predictions":[1]}')
    assert call(app, "GET", [b""]) == (200, b"ok")


def test_the_echo_spends_its_pace_filler_on_each_request_until_set_back_to_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = tmp_path / "echo-answers.json"
    answers.write_text(json.dumps({"3": '{"predictions":[1]}'}))
    monkeypatch.setenv("BENCH_ANSWERS_FILE", str(answers))
    app = echo_app()

    def a_request() -> tuple[float, float]:
        """Its wall time and CPU time."""
        wall, cpu = time.perf_counter(), time.process_time()
        assert call(app, "POST", [b"abc"]) == (200, b'{"predictions":[1]}')
        return time.perf_counter() - wall, time.process_time() - cpu

    assert call(app, "POST", [b"0.05"], path="/pace") == (204, b"")
    wall, cpu = a_request()
    assert wall >= 0.05
    # Spun on the clock, not slept: CPU all along, as much as this busy machine gave (a
    # sleep spends none).
    assert cpu >= 0.01
    assert call(app, "POST", [b"0"], path="/pace") == (204, b"")
    wall, cpu = a_request()
    assert wall < 0.04
    assert cpu < 0.04
