"""Bad input: every class gets its 4xx with the field at fault and increments its
counter; nothing yields a 500 or takes the process down."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field

import httpx
import pytest
from sklearn.datasets import load_wine

from devstack.service_process import ServiceProcess
from modelops_service.card import read_card
from modelops_service.catalog import INPUT_ERROR_REASONS
from tests.support.metrics_text import scrape


@dataclass
class Case:
    reason: str
    status: int
    loc: list | None  # expected loc of the first detail; None: only check the reason
    content: bytes
    path: str = "/v1/predict"
    headers: dict = field(default_factory=lambda: {"content-type": "application/json"})


@pytest.fixture(scope="module")
def instance(wine: ServiceProcess) -> dict:
    return {f.name: f.mean for f in read_card(wine.model_dir).features}


def cases(inst: dict) -> list[Case]:
    def body(obj) -> bytes:
        return json.dumps(obj).encode()

    def one(**change) -> dict:
        return {**inst, **change}

    missing = dict(inst)
    del missing["proline"]
    tensor = {"name": "input-0", "shape": [1, 13], "datatype": "FP64", "data": list(inst.values())}
    return [
        Case("malformed_json", 400, ["body"], b'{"instances": [{"alcohol": 13.2,'),
        Case(
            "wrong_content_type",
            415,
            ["header", "content-type"],
            body({"instances": [inst]}),
            headers={"content-type": "text/plain"},
        ),
        # The service reads identity bodies only: a compressed body (or one labelled so)
        # is refused by its header, neither decompressed nor read as JSON.
        Case(
            "wrong_content_type",
            415,
            ["header", "content-encoding"],
            gzip.compress(body({"instances": [inst]})),
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        ),
        Case(
            "wrong_content_type",
            415,
            ["header", "content-encoding"],
            body({"instances": [inst]}),
            headers={"content-type": "application/json", "content-encoding": "br"},
        ),
        Case("body_too_large", 413, ["body"], body({"instances": [inst] * 300})),
        Case(
            "missing_field",
            422,
            ["body", "instances", 0, "proline"],
            body({"instances": [missing]}),
        ),
        Case(
            "extra_field",
            422,
            ["body", "instances", 1, "colour"],
            body({"instances": [inst, one(colour=3)]}),
        ),
        Case(
            "wrong_type",
            422,
            ["body", "instances", 0, "alcohol"],
            body({"instances": [one(alcohol="13.2")]}),
        ),
        Case(
            "wrong_type", 422, ["body", "instances", 0, "hue"], body({"instances": [one(hue=True)]})
        ),
        Case(
            "wrong_type", 422, ["body", "instances", 0, "ash"], body({"instances": [one(ash=None)]})
        ),
        # Python's json.dumps writes NaN and Infinity; they are numbers, just not finite ones.
        Case(
            "not_finite",
            422,
            ["body", "instances", 0, "alcohol"],
            body({"instances": [one(alcohol=float("nan"))]}),
        ),
        Case(
            "not_finite",
            422,
            ["body", "instances", 0, "proline"],
            body({"instances": [one(proline=float("inf"))]}),
        ),
        Case(
            "not_finite",
            422,
            ["body", "alcohol"],
            body(one(alcohol=12345.5)).replace(b"12345.5", b"1e999"),
        ),
        Case(
            "not_finite",
            422,
            ["body", "instances", 0, "ash"],
            body({"instances": [one(ash=10**400)]}),
        ),
        Case(
            "out_of_range",
            422,
            ["body", "instances", 0, "alcohol"],
            body({"instances": [one(alcohol=1000.0)]}),
        ),
        Case("empty_batch", 422, ["body", "instances"], body({"instances": []})),
        Case(
            "too_many_instances",
            422,
            ["body", "instances"],
            body({"instances": [list(inst.values())] * 201}),
        ),
        # The same validation on the Open Inference Protocol route:
        Case("malformed_json", 400, ["body"], b"{", path="/v2/models/wine/infer"),
        Case(
            "missing_field",
            422,
            ["body", "inputs"],
            body({"id": "x"}),
            path="/v2/models/wine/infer",
        ),
        Case(
            "wrong_type",
            422,
            ["body", "inputs", 0, "datatype"],
            body({"inputs": [{**tensor, "datatype": "BYTES"}]}),
            path="/v2/models/wine/infer",
        ),
        Case(
            "missing_field",
            422,
            ["body", "inputs", 0, "shape"],
            body({"inputs": [{**tensor, "shape": [1, 12], "data": tensor["data"][:12]}]}),
            path="/v2/models/wine/infer",
        ),
        Case(  # 12 values then 14: as many as [2, 13] holds, but not rows of 13
            "wrong_type",
            422,
            ["body", "inputs", 0, "data", 0],
            body(
                {
                    "inputs": [
                        {
                            **tensor,
                            "shape": [2, 13],
                            "data": [tensor["data"][:12], tensor["data"][12:] + tensor["data"]],
                        }
                    ]
                }
            ),
            path="/v2/models/wine/infer",
        ),
        Case(
            "not_finite",
            422,
            ["body", "inputs", 0, "data", 0],
            body({"inputs": [{**tensor, "data": [float("nan"), *tensor["data"][1:]]}]}),
            path="/v2/models/wine/infer",
        ),
        Case(
            "out_of_range",
            422,
            ["body", "inputs", 0, "data", 12],
            body({"inputs": [{**tensor, "data": [*tensor["data"][:12], 1e6]}]}),
            path="/v2/models/wine/infer",
        ),
        Case(
            "wrong_type",
            422,
            ["body", "outputs", 0],
            body({"inputs": [tensor], "outputs": ["predict"]}),
            path="/v2/models/wine/infer",
        ),
        Case(
            "extra_field",
            422,
            ["body", "outputs", 1, "name"],
            body({"inputs": [tensor], "outputs": [{"name": "predict"}, {"name": "predict"}]}),
            path="/v2/models/wine/infer",
        ),
    ]


TEMPLATE = cases(dict.fromkeys(load_wine().feature_names, 1.0))  # the cases, for collection
CASE_IDS = [f"{i}-{c.path.split('/')[1]}-{c.reason}" for i, c in enumerate(TEMPLATE)]


def test_every_catalog_reason_has_a_case() -> None:
    assert set(INPUT_ERROR_REASONS) == {c.reason for c in TEMPLATE}


@pytest.mark.parametrize("index", range(len(TEMPLATE)), ids=CASE_IDS)
def test_bad_input_gets_4xx_with_field_and_is_counted(
    index: int, wine_client: httpx.Client, instance: dict
) -> None:
    case = cases(instance)[index]
    labels = {"model": "wine", "version": "1", "reason": case.reason}
    before = scrape(wine_client).value("model_input_errors_total", **labels)
    errors_before = scrape(wine_client).value(
        "model_predictions_total", model="wine", version="1", outcome="ok"
    )

    resp = wine_client.post(case.path, content=case.content, headers=case.headers)

    assert resp.status_code == case.status, resp.text
    body = resp.json()
    assert case.reason in body["reasons"]
    assert body["error"]
    reasons_in_detail = {d["type"] for d in body["detail"]}
    assert case.reason in reasons_in_detail
    if case.loc is not None:
        assert body["detail"][0]["loc"] == case.loc, body["detail"]
    after = scrape(wine_client)
    assert after.value("model_input_errors_total", **labels) == before + 1
    # nothing was predicted for a refused request
    assert after.value("model_predictions_total", model="wine", version="1", outcome="ok") == (
        errors_before
    )


GARBAGE = [
    b"",
    b"null",
    b"1",
    b'"instances"',
    b"[]",
    b"[1, 2, 3]",
    b'{"instances": null}',
    b'{"instances": {"alcohol": 1}}',
    b'{"instances": [null, "x", 3, true]}',
    b'{"instances": [[1, 2]]}',
    b'{"instances": [[[1, 2]]]}',
    b'{"instances": [{}], "extra": 1}',
    b"[" * 5000 + b"]" * 5000,
    b'{"instances": [' + b"9" * 5000 + b"]}",
    '{"alcohol": "\u00e9\u4e2d"}'.encode(),
    b"\xff\xfe\x00garbage",
]


@pytest.mark.parametrize("content", GARBAGE, ids=range(len(GARBAGE)))
@pytest.mark.parametrize("path", ["/v1/predict", "/v2/models/wine/infer"])
def test_garbage_never_yields_a_500(content: bytes, path: str, wine_client: httpx.Client) -> None:
    resp = wine_client.post(path, content=content, headers={"content-type": "application/json"})
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    assert resp.json()["reasons"]
    assert wine_client.get("/healthz").status_code == 200


def test_flag_policy_answers_and_counts_out_of_range(diabetes: ServiceProcess) -> None:
    card = read_card(diabetes.model_dir)
    inst = {f.name: f.mean for f in card.features} | {"bmi": 10.0}
    labels = {"model": "diabetes", "version": "1", "reason": "out_of_range"}
    with httpx.Client(base_url=diabetes.url, timeout=30) as client:
        before = scrape(client).value("model_input_errors_total", **labels)
        resp = client.post("/v1/predict", json={"instances": [inst]})
        assert resp.status_code == 200, resp.text
        warning = resp.json()["warnings"][0]
        assert warning["type"] == "out_of_range"
        assert warning["loc"] == ["body", "instances", 0, "bmi"]
        assert scrape(client).value("model_input_errors_total", **labels) == before + 1


@pytest.mark.parametrize(
    ("encoding", "status"),
    [("gzip", 415), ("GZIP", 415), ("gzip, identity", 415), ("identity, br", 415),
     ("identity", 200), ("Identity", 200), ("identity, identity", 200)],
)  # fmt: skip
def test_only_an_identity_content_encoding_is_read(
    encoding: str, status: int, wine_client: httpx.Client, instance: dict
) -> None:
    resp = wine_client.post(
        "/v1/predict",
        content=json.dumps({"instances": [instance]}).encode(),
        headers={"content-type": "application/json", "content-encoding": encoding},
    )
    assert resp.status_code == status, resp.text
    if status == 415:
        detail = resp.json()["detail"]
        assert [(d["loc"], d["type"]) for d in detail] == [
            (["header", "content-encoding"], "wrong_content_type")
        ]
        assert "identity" in detail[0]["msg"]
        assert encoding in detail[0]["msg"]
