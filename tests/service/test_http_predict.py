"""The real service under uvicorn: predictions equal model.predict, in every request form."""

from __future__ import annotations

import json

import httpx
import joblib
import numpy as np
import pytest

from devstack.service_process import ServiceProcess
from modelops_service.card import read_card
from tests.support.rows import in_range_rows


@pytest.fixture(params=["wine", "diabetes"])
def served(request, services: dict[str, ServiceProcess]):
    svc = services[request.param]
    model = joblib.load(svc.model_dir / "model.joblib")
    rows = in_range_rows(svc.model_dir, request.param)[:50]
    with httpx.Client(base_url=svc.url, timeout=30) as client:
        yield request.param, svc, client, model, rows


def test_instances_as_objects_equal_model_predict(served) -> None:
    name, svc, client, model, rows = served
    card = read_card(svc.model_dir)
    instances = [dict(zip(card.feature_names, map(float, r), strict=True)) for r in rows]
    resp = client.post("/v1/predict", json={"instances": instances})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["model"], body["version"]) == (name, "1")
    assert np.array_equal(np.array(body["predictions"]), model.predict(rows))
    if name == "wine":
        assert body["classes"] == [0, 1, 2]
        np.testing.assert_allclose(body["probabilities"], model.predict_proba(rows), rtol=1e-12)
    else:
        assert "probabilities" not in body


def test_one_instance_and_positional_lists_equal_model_predict(served) -> None:
    _, svc, client, model, rows = served
    card = read_card(svc.model_dir)
    one = dict(zip(card.feature_names, map(float, rows[0]), strict=True))
    resp = client.post("/v1/predict", json=one)
    assert resp.status_code == 200, resp.text
    assert resp.json()["predictions"] == model.predict(rows[:1]).tolist()

    resp = client.post("/v1/predict", json={"instances": rows[:7].tolist()})
    assert resp.status_code == 200, resp.text
    assert resp.json()["predictions"] == model.predict(rows[:7]).tolist()


def test_open_inference_protocol_equals_model_predict(served) -> None:
    name, svc, client, model, rows = served
    card = read_card(svc.model_dir)
    batch = rows[:9]
    tensor = {"name": "input-0", "shape": list(batch.shape), "datatype": "FP64"}
    flat = client.post(
        f"/v2/models/{name}/infer",
        json={"id": "r-1", "inputs": [{**tensor, "data": batch.ravel().tolist()}]},
    )
    nested = client.post(
        f"/v2/models/{name}/versions/1/infer",
        json={"inputs": [{**tensor, "data": batch.tolist()}], "outputs": [{"name": "predict"}]},
    )
    columns = client.post(
        f"/v2/models/{name}/infer",
        json={
            "inputs": [
                {"name": f, "shape": [len(batch)], "datatype": "FP32", "data": batch[:, j].tolist()}
                for j, f in enumerate(card.feature_names)
            ]
        },
    )
    expected = model.predict(batch).tolist()
    for resp in (flat, nested, columns):
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert (body["model_name"], body["model_version"]) == (name, "1")
        predict = next(o for o in body["outputs"] if o["name"] == "predict")
        assert predict["shape"] == [len(batch)]
        assert predict["data"] == expected
    assert flat.json()["id"] == "r-1"
    assert [o["name"] for o in nested.json()["outputs"]] == ["predict"]
    if name == "wine":
        proba = next(o for o in flat.json()["outputs"] if o["name"] == "predict_proba")
        assert proba["shape"] == [len(batch), 3]
        np.testing.assert_allclose(
            np.reshape(proba["data"], proba["shape"]), model.predict_proba(batch), rtol=1e-12
        )


def test_v2_metadata_health_and_unknown_model(wine: ServiceProcess) -> None:
    with httpx.Client(base_url=wine.url, timeout=30) as client:
        meta = client.get("/v2/models/wine").json()
        assert meta["name"] == "wine"
        assert meta["versions"] == ["1"]
        assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 13]}]
        assert {o["name"] for o in meta["outputs"]} == {"predict", "predict_proba"}
        assert client.get("/v2/models/wine/versions/1").status_code == 200
        assert client.get("/v2/health/ready").json() == {"ready": True}
        assert client.get("/v2/health/live").status_code == 200
        assert client.get("/v2/models/wine/ready").status_code == 200
        assert client.get("/v2").json()["name"] == "modelops-service"
        for path in ("/v2/models/iris", "/v2/models/wine/versions/7"):
            resp = client.get(path)
            assert resp.status_code == 404
            assert "error" in resp.json()
        resp = client.post("/v2/models/iris/infer", json={"inputs": []})
        assert resp.status_code == 404


def test_health_model_card_and_openapi(wine: ServiceProcess) -> None:
    with httpx.Client(base_url=wine.url, timeout=30) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json()["status"] == "ready"
        card = client.get("/v1/model").json()
        on_disk = json.loads((wine.model_dir / "model.json").read_text())
        assert card["sha256"] == on_disk["sha256"]
        assert card["features"] == on_disk["features"]
        assert card["serving"]["range_policy"] == "reject"
        assert card["ready"] is True

        schema = client.get("/openapi.json").json()
        body = schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
        one_instance = body["application/json"]["schema"]["oneOf"][0]
        assert one_instance["required"] == [f["name"] for f in on_disk["features"]]
        assert "od280/od315_of_diluted_wines" in one_instance["properties"]
        assert "/v2/models/{model_name}/infer" in schema["paths"]
