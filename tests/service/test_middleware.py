"""The one HTTP middleware (middleware.RequestTelemetry) counts every route alike.

In-process (httpx's ASGI transport): POST /v1/predict with every kind of answer, the
v2 infer route, a GET route, an unknown path and a wrong method; every request carries
a request id and moves http_requests_total, the duration histogram and both size
summaries, with the handler named by its route template.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import httpx

from modelops_service.app import create_app
from modelops_service.settings import Settings
from tests.support.service_waits import until_ready

MODEL = {"model": "wine", "version": "1"}
HTTP = {"handler": "/v1/predict", "method": "POST", **MODEL}


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


def run_cases(model_dir: Path):
    app = create_app(Settings(model_dir=model_dir, max_body_bytes=64 * 1024))
    svc = app.state.service
    row = {f.name: f.mean for f in svc.card.features}
    answers = []

    async def scenario() -> None:
        async with app.router.lifespan_context(app):
            await until_ready(app)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                for name, kwargs in cases(row):
                    answer = await client.post("/v1/predict", **kwargs)
                    assert answer.headers["x-request-id"]
                    answers.append(
                        (name, answer.status_code, answer.headers["content-type"], answer.json())
                    )
                tensor = {"name": "x", "shape": [1, len(row)], "datatype": "FP64"}
                infer = await client.post(
                    "/v2/models/wine/infer",
                    json={"inputs": [{**tensor, "data": list(row.values())}]},
                )
                assert infer.status_code == 200, infer.text
                assert (await client.get("/healthz")).status_code == 200
                assert (await client.get("/nowhere/7")).status_code == 404
                assert (await client.get("/v1/predict")).status_code == 405

    asyncio.run(scenario())
    return answers, svc.registry


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


def test_every_answer_of_predict_is_counted_once_with_its_status_group(
    model_root: Path,
) -> None:
    answers, registry = run_cases(model_root / "wine" / "1")

    statuses = {name: status for name, status, _, _ in answers}
    assert statuses["one object"] == 200
    assert statuses["malformed json"] == 400
    assert statuses["wrong content type"] == 415
    assert statuses["too large"] == 413
    assert statuses["not finite"] == 422
    assert {content_type for _, _, content_type, _ in answers} == {"application/json"}
    counts = counters(registry)
    assert counts["http 2xx"] == 4
    assert counts["http 4xx"] == len(answers) - 4
    assert counts["http 5xx"] == 0
    assert counts["duration count"] == len(answers)
    assert counts["response count"] == len(answers) + 1  # and the GET (405): no method label
    assert counts["request bytes"] > 40_000 * 2  # the too-large body's declared length
    assert counts["response bytes"] > 0
    assert math.isclose(counts["rows ok"], 1 + 3 + 2 + 1 + 1)  # and the v2 row
    for reason in ("malformed_json", "wrong_content_type", "body_too_large", "empty_batch"):
        assert counts[reason] == 1, reason


def test_every_route_is_counted_under_its_template(model_root: Path) -> None:
    _, registry = run_cases(model_root / "wine" / "1")

    def requests(handler: str, method: str, status: str) -> float | None:
        labels = {"handler": handler, "method": method, "status": status}
        return registry.get_sample_value("http_requests_total", {**labels, **MODEL})

    assert requests("/v2/models/{model_name}/infer", "POST", "2xx") == 1
    assert requests("/healthz", "GET", "2xx") == 1
    assert requests("none", "GET", "4xx") == 1  # no route: not one series per path
    assert requests("/v1/predict", "GET", "4xx") == 1  # the path's route, wrong method
    in_progress = {"handler": "/healthz", "method": "GET", **MODEL}
    assert registry.get_sample_value("http_requests_inprogress", in_progress) == 0


def test_an_unhandled_error_is_a_counted_500_with_the_request_id(
    model_root: Path,
) -> None:
    app = create_app(Settings(model_dir=model_root / "wine" / "1"))
    svc = app.state.service
    row = [f.mean for f in svc.card.features]

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with app.router.lifespan_context(app):
            await until_ready(app)
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
