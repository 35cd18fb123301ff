"""The app in process (ASGI, no socket): what needs a broken model or a controlled clock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from modelops_service.app import create_app
from modelops_service.settings import Settings
from tests.support.service_waits import until_ready


def test_a_model_failure_is_a_500_counted_as_error_and_the_next_request_works(
    model_root: Path,
) -> None:
    app = create_app(Settings(model_dir=model_root / "diabetes" / "1"))
    svc = app.state.service
    row = [f.mean for f in svc.card.features]

    async def scenario() -> None:
        async with app.router.lifespan_context(app):
            await until_ready(app)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                real_infer = svc.model.infer

                def broken(features):
                    raise RuntimeError("injected")

                svc.model.infer = broken
                failed = await client.post("/v1/predict", json={"instances": [row, row]})
                failed_v2 = await client.post(
                    "/v2/models/diabetes/infer",
                    json={
                        "inputs": [{"name": "x", "shape": [1, 10], "datatype": "FP64", "data": row}]
                    },
                )
                svc.model.infer = real_infer
                ok = await client.post("/v1/predict", json={"instances": [row]})
                metrics = (await client.get("/metrics")).text

        assert failed.status_code == 500
        assert failed.json() == {"error": "prediction failed", "model": "diabetes", "version": "1"}
        assert failed_v2.status_code == 500
        assert ok.status_code == 200
        labels = 'model="diabetes",outcome="error",version="1"'
        assert f"model_predictions_total{{{labels}}} 3.0" in metrics
        assert (
            'http_requests_total{handler="/v1/predict",method="POST",model="diabetes",'
            'status="5xx",version="1"} 1.0'
        ) in metrics

    asyncio.run(scenario())


def test_predictions_are_served_under_a_root_path_and_on_both_protocols(
    model_root: Path,
) -> None:
    """PredictRoutes serves the predict routes ahead of the router; a root path (a proxy's
    prefix) takes the router's way, and v2's path parameter reaches the endpoint."""
    app = create_app(Settings(model_dir=model_root / "diabetes" / "1"))
    row = [f.mean for f in app.state.service.card.features]
    tensor = {"inputs": [{"name": "x", "shape": [1, 10], "datatype": "FP64", "data": row}]}

    async def scenario() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            await until_ready(app)
            plain = httpx.ASGITransport(app=app)
            prefixed = httpx.ASGITransport(app=app, root_path="/m")
            async with (
                httpx.AsyncClient(transport=plain, base_url="http://t") as client,
                httpx.AsyncClient(transport=prefixed, base_url="http://t") as behind_proxy,
            ):
                return [
                    await client.post("/v1/predict", json={"instances": [row]}),
                    await behind_proxy.post("/m/v1/predict", json={"instances": [row]}),
                    await client.post("/v2/models/diabetes/infer", json=tensor),
                    await client.post("/v2/models/other/infer", json=tensor),
                ]

    plain, prefixed, v2, other = asyncio.run(scenario())
    assert plain.status_code == prefixed.status_code == v2.status_code == 200
    assert prefixed.json()["predictions"] == plain.json()["predictions"]
    assert v2.json()["outputs"][0]["data"] == plain.json()["predictions"]
    assert other.status_code == 404
