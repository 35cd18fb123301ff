"""POST /v1/predict's fast lane answers and counts exactly as FastAPI's route does.

The same cases go through two fresh apps: one as built (the lane serves the route),
one with the lane's path moved away (FastAPI's routing, dependency injection and the
instrumentator's middleware serve it). Statuses, bodies, content types and every
HTTP and model counter must agree.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import httpx
import pytest

from modelops_service import telemetry
from modelops_service.app import create_app
from modelops_service.routes import lane
from modelops_service.settings import Settings

from .test_app_in_process import _until_ready

HTTP = {"handler": "/v1/predict", "method": "POST", "model": "wine", "version": "1"}


def cases(row: dict[str, float]) -> list[tuple[str, dict]]:
    names = list(row)
    big = {**row, names[0]: 1e6}
    as_json = {"content-type": "application/json"}
    return [
        ("one object", {"json": row}),
        ("a batch of objects", {"json": {"instances": [row, row, row]}}),
        ("a batch of lists", {"json": {"instances": [list(row.values())] * 2}}),
        ("flagged out of range", {"json": {"instances": [big]}}),
        ("malformed json", {"content": b"{nope", "headers": as_json}),
        ("wrong content type", {"content": b"{}", "headers": {"content-type": "text/plain"}}),
        ("too large", {"content": b"[" + b"1," * 40_000 + b"1]", "headers": as_json}),
        ("empty batch", {"json": {"instances": []}}),
        ("missing field", {"json": {"instances": [{k: row[k] for k in names[1:]}]}}),
        ("wrong type", {"json": {"instances": [{**row, names[2]: "x"}]}}),
        (
            "not finite",
            {
                "content": b'{"instances": [[NaN' + b", 1" * (len(names) - 1) + b"]]}",
                "headers": as_json,
            },
        ),
        ("extra field", {"json": {"instances": [row], "more": 1}}),
    ]


def run_cases(model_dir: Path, monkeypatch: pytest.MonkeyPatch, *, lane_on: bool):
    if not lane_on:
        monkeypatch.setattr(lane, "PATH", "/nowhere")
    instrumented: list[str] = []
    real_call = telemetry.HttpMetrics.__call__

    def spy(self, info):
        instrumented.append(info.modified_handler)
        return real_call(self, info)

    monkeypatch.setattr(telemetry.HttpMetrics, "__call__", spy)
    app = create_app(Settings(model_dir=model_dir, max_body_bytes=64 * 1024))
    svc = app.state.service
    row = {f.name: f.mean for f in svc.card.features}
    answers = []

    async def scenario() -> None:
        async with app.router.lifespan_context(app):
            await _until_ready(app)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                for name, kwargs in cases(row):
                    answer = await client.post("/v1/predict", **kwargs)
                    assert answer.headers["x-request-id"]
                    answers.append(
                        (name, answer.status_code, answer.headers["content-type"], answer.json())
                    )

    asyncio.run(scenario())
    monkeypatch.undo()
    return answers, svc.registry, instrumented


def counters(registry) -> dict[str, float]:
    def value(name: str, **labels: str) -> float:
        got = registry.get_sample_value(name, labels)
        return 0.0 if got is None else got

    model = {"model": "wine", "version": "1"}
    out = {
        f"http {status}": value("http_requests_total", status=status, **HTTP)
        for status in ("2xx", "4xx", "5xx")
    }
    http = {"handler": "/v1/predict", "model": "wine", "version": "1"}
    out["duration count"] = value("http_request_duration_seconds_count", **HTTP)
    out["request bytes"] = value("http_request_size_bytes_sum", **http)
    out["response bytes"] = value("http_response_size_bytes_sum", **http)
    out["response count"] = value("http_response_size_bytes_count", **http)
    out["rows ok"] = value("model_predictions_total", outcome="ok", **model)
    out["batch sizes"] = value("model_batch_size_sum", **model)
    for reason in ("malformed_json", "wrong_content_type", "body_too_large", "empty_batch"):
        out[reason] = value("model_input_errors_total", reason=reason, **model)
    for reason in ("missing_field", "wrong_type", "not_finite", "extra_field", "out_of_range"):
        out[reason] = value("model_input_errors_total", reason=reason, **model)
    return out


def test_the_lane_answers_and_counts_as_the_framework_route(
    model_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir = model_root / "wine" / "1"
    fast, fast_registry, fast_instrumented = run_cases(model_dir, monkeypatch, lane_on=True)
    slow, slow_registry, slow_instrumented = run_cases(model_dir, monkeypatch, lane_on=False)

    # Which path served: the instrumentator saw /v1/predict only without the lane.
    assert "/v1/predict" not in fast_instrumented
    assert slow_instrumented.count("/v1/predict") == len(slow)

    def comparable(answers):
        # Probabilities may differ in the last bits between batch shapes; round them.
        out = []
        for name, status, content_type, body in answers:
            if "probabilities" in body:
                body = {
                    **body,
                    "probabilities": [[round(p, 9) for p in r] for r in body["probabilities"]],
                }
            out.append((name, status, content_type, body))
        return out

    assert comparable(fast) == comparable(slow)
    statuses = {name: status for name, status, _, _ in fast}
    assert statuses["one object"] == 200
    assert statuses["malformed json"] == 400
    assert statuses["wrong content type"] == 415
    assert statuses["too large"] == 413
    assert statuses["not finite"] == 422
    fast_counts, slow_counts = counters(fast_registry), counters(slow_registry)
    assert fast_counts == slow_counts
    assert fast_counts["http 2xx"] == 4
    assert fast_counts["http 4xx"] == len(fast) - 4
    assert fast_counts["duration count"] == len(fast)
    assert math.isclose(fast_counts["rows ok"], 1 + 3 + 2 + 1)


def test_an_unhandled_error_in_the_lane_is_a_counted_500_with_the_request_id(
    model_root: Path,
) -> None:
    app = create_app(Settings(model_dir=model_root / "wine" / "1"))
    svc = app.state.service
    row = [f.mean for f in svc.card.features]

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with app.router.lifespan_context(app):
            await _until_ready(app)
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                real_predict = svc.predict

                async def broken(batch):
                    raise KeyError("a bug, not a model failure")

                svc.predict = broken
                failed = await client.post(
                    "/v1/predict", json={"instances": [row]}, headers={"x-request-id": "bug-1"}
                )
                svc.predict = real_predict
                ok = await client.post("/v1/predict", json={"instances": [row]})
                return failed, ok

    failed, ok = asyncio.run(scenario())
    assert failed.status_code == 500
    assert failed.json() == {"error": "internal error", "request_id": "bug-1"}
    assert ok.status_code == 200
    assert svc.registry.get_sample_value("http_requests_total", {**HTTP, "status": "5xx"}) == 1
    assert svc.registry.get_sample_value("http_requests_total", {**HTTP, "status": "2xx"}) == 1
