"""Cases the fuzzer (test_fuzz_api.py) found, kept as plain tests against the real service.

1. A v2 input tensor whose `datatype` is not a string (an object or an array) answered
   500: the validator looked it up in a frozenset and raised TypeError (unhashable).
   Found by schemathesis' coverage phase with
       POST /v2/models/diabetes/infer
       {"inputs": [{"name": "", "shape": [], "datatype": {}, "data": [null, null],
                    "parameters": {}}]}
   Now a 422 with the field at fault, counted as wrong_type.
2. The v2 infer routes declared no schema for their 200 answer, so "the response
   conforms to the schema" held vacuously; they now declare the Open Inference
   Protocol's response, and real answers are checked against the served document.
"""

from __future__ import annotations

import httpx
import jsonschema
import pytest

from devstack.service_process import ServiceProcess
from modelops_service.card import read_card
from tests.support.metrics_text import scrape

V2_INFER_ROUTES = ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer")


def infer_url(svc: ServiceProcess, route: str) -> str:
    card = read_card(svc.model_dir)
    return svc.url + route.format(name=card.name, version=card.version)


def tensor(svc: ServiceProcess, rows: int = 1) -> dict:
    features = read_card(svc.model_dir).features
    data = [f.mean for f in features] * rows
    return {"name": "input-0", "shape": [rows, len(features)], "datatype": "FP64", "data": data}


def instance(svc: ServiceProcess) -> dict:
    return {f.name: f.mean for f in read_card(svc.model_dir).features}


@pytest.mark.parametrize("route", V2_INFER_ROUTES)
@pytest.mark.parametrize("datatype", [{}, [], ["FP64"], {"FP64": 1}])
def test_a_tensor_datatype_that_is_not_a_string_is_a_422(
    wine: ServiceProcess, route: str, datatype: object
) -> None:
    with httpx.Client(base_url=wine.url, timeout=10) as client:
        before = scrape(client).value("model_input_errors_total", reason="wrong_type")
        answer = client.post(
            infer_url(wine, route), json={"inputs": [{**tensor(wine), "datatype": datatype}]}
        )
        after = scrape(client).value("model_input_errors_total", reason="wrong_type")

    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["reasons"] == ["wrong_type"]
    assert body["detail"][0]["loc"] == ["body", "inputs", 0, "datatype"]
    assert after == before + 1
    assert wine.returncode is None


def test_the_fuzzers_first_500_is_now_a_422(diabetes: ServiceProcess) -> None:
    """The exact request schemathesis sent (empty shape, nulls, an object as datatype)."""
    answer = httpx.post(
        infer_url(diabetes, V2_INFER_ROUTES[0]),
        json={
            "inputs": [
                {"name": "", "shape": [], "datatype": {}, "data": [None, None], "parameters": {}}
            ]
        },
        timeout=10,
    )

    assert answer.status_code == 422, answer.text
    locs = {tuple(d["loc"]) for d in answer.json()["detail"]}
    assert ("body", "inputs", 0, "datatype") in locs
    assert ("body", "inputs", 0, "shape") in locs


def declared_200_schema(svc: ServiceProcess, path: str) -> dict:
    document = httpx.get(f"{svc.url}/openapi.json", timeout=10).json()
    schema = document["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]
    return schema["schema"]


@pytest.mark.parametrize("which", ["wine", "diabetes"])
@pytest.mark.parametrize(
    ("path", "request_body"),
    [
        ("/v2/models/{model_name}/infer", lambda svc: {"inputs": [tensor(svc, rows=3)]}),
        (
            "/v2/models/{model_name}/infer",
            lambda svc: {"id": "r-1", "inputs": [tensor(svc)], "outputs": [{"name": "predict"}]},
        ),
        ("/v1/predict", lambda svc: {"instances": [instance(svc), instance(svc)]}),
    ],
)
def test_answers_conform_to_the_declared_200_schema(
    request: pytest.FixtureRequest, which: str, path: str, request_body
) -> None:
    svc: ServiceProcess = request.getfixturevalue(which)
    schema = declared_200_schema(svc, path)
    assert schema.get("properties"), f"{path} declares no 200 schema"
    card = read_card(svc.model_dir)

    answer = httpx.post(
        svc.url + path.replace("{model_name}", card.name), json=request_body(svc), timeout=10
    )

    assert answer.status_code == 200, answer.text
    jsonschema.validate(answer.json(), schema)


def test_a_wrong_answer_would_fail_the_declared_schema(wine: ServiceProcess) -> None:
    """The v2 schema has teeth: another model's name or an unknown output is a violation."""
    schema = declared_200_schema(wine, "/v2/models/{model_name}/infer")
    good = httpx.post(
        infer_url(wine, V2_INFER_ROUTES[0]), json={"inputs": [tensor(wine)]}, timeout=10
    ).json()
    jsonschema.validate(good, schema)

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, "model_name": "other"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, "outputs": [{**good["outputs"][0], "name": "x"}]}, schema)
