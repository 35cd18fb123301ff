"""Parsing Prometheus' answers at the boundary: anything but the documented shape holds."""

from __future__ import annotations

import json
import math

import httpx
import pytest

from modelops_operator import analysis as an
from modelops_operator.models import Analysis, Compare
from modelops_operator.prom import PrometheusClient, PrometheusError, parse_query_response

JSON = "application/json"


def answer(doc) -> bytes:
    return json.dumps(doc).encode()


def vector(*values: str) -> bytes:
    return answer(
        {
            "status": "success",
            "data": {
                "resultType": "vector",
                "result": [{"metric": {"version": "2"}, "value": [1.5, v]} for v in values],
            },
        }
    )


def test_a_vector_is_parsed_with_its_values_as_sent():
    samples = parse_query_response(200, JSON, vector("0.25", "NaN"))
    assert samples == [
        {"metric": {"version": "2"}, "value": [1.5, "0.25"]},
        {"metric": {"version": "2"}, "value": [1.5, "NaN"]},
    ]


def test_a_scalar_is_a_one_sample_vector():
    body = answer({"status": "success", "data": {"resultType": "scalar", "result": [1, "3"]}})
    assert parse_query_response(200, JSON, body) == [{"metric": {}, "value": [1, "3"]}]


def test_an_empty_vector_is_empty():
    assert parse_query_response(200, JSON, vector()) == []


@pytest.mark.parametrize(
    ("status", "ctype", "body", "message"),
    [
        (200, "text/plain", b"hello, I am not Prometheus", "not JSON (text/plain): 'hello, I am"),
        (500, "text/html; charset=utf-8", b"<html><h1>Internal Server Error</h1></html>",
         "HTTP 500 with a body that is not JSON (text/html)"),
        (200, JSON, b"", "not JSON (application/json): ''"),
        (200, JSON, answer([1, 2, 3]), "JSON that is not an API response"),
        (200, JSON, answer("success"), "JSON that is not an API response"),
        (200, JSON, answer({"hello": "world"}), "status None"),
        (200, JSON, answer({"status": "success"}), "without a data object"),
        (200, JSON, answer({"status": "success", "data": []}), "without a data object"),
        (200, JSON, answer({"status": "success", "data": {"resultType": "matrix", "result": []}}),
         "unexpected result type 'matrix'"),
        (200, JSON, answer({"status": "success", "data": {"resultType": "vector",
                                                          "result": "garbage"}}),
         "the vector result is not a list"),
        (200, JSON, answer({"status": "success", "data": {"resultType": "vector",
                                                          "result": ["x"]}}),
         "a vector sample is malformed"),
        (200, JSON, answer({"status": "success", "data": {"resultType": "vector",
                                                          "result": [{"value": [1]}]}}),
         "is not [time, value]"),
        (200, JSON, answer({"status": "success", "data": {"resultType": "vector",
                                                          "result": [{"value": [1, 0.5]}]}}),
         "a sample value is not a string"),
        (200, JSON, answer({"status": "success", "data": {"resultType": "vector",
                                                          "result": [{"value": ["t", "1"]}]}}),
         "a sample time is not a number"),
        (200, JSON, answer({"status": "success", "data": {"resultType": "scalar",
                                                          "result": None}}),
         "is not [time, value]"),
        (400, JSON, answer({"status": "error", "errorType": "bad_data", "error": "parse error"}),
         "HTTP 400, status 'error'): bad_data parse error"),
        (503, JSON, answer({"status": "success", "data": {"resultType": "vector", "result": []}}),
         "query failed (HTTP 503"),
    ],
)  # fmt: skip
def test_anything_else_is_an_error_that_says_what_came_back(status, ctype, body, message):
    with pytest.raises(PrometheusError) as err:
        parse_query_response(status, ctype, body, where="http://prom")
    assert message in str(err.value)
    assert str(err.value).startswith("http://prom")


def test_a_long_body_is_quoted_short():
    with pytest.raises(PrometheusError) as err:
        parse_query_response(200, "text/html", b"<p>" + b"x" * 10_000)
    assert len(str(err.value)) < 300


@pytest.mark.parametrize(("sent", "shown"), [("NaN", "NaN"), ("+Inf", "inf"), ("-Inf", "-inf")])
def test_nan_and_inf_from_prometheus_are_never_a_pass(sent, shown):
    spec = Analysis.model_validate({"minRequests": 10})
    value = an.scalar_from_vector(parse_query_response(200, JSON, vector(sent)))
    figures = {an.REQUESTS: 100.0, an.ERROR_RATE: value, an.LATENCY_P95: 0.01, an.DRIFT: 0.01,
               an.SHARED_SECONDS: 60.0, an.SHARED_REQUESTS: 100.0, an.STABLE_REQUESTS: 100.0,
               an.ERROR_RATE_DELTA: 0.0, an.LATENCY_P95_RATIO: 1.0,
               an.PREDICTION_SHIFT: 0.0}  # fmt: skip
    compare = Compare()
    decision = an.decide(figures, spec, compare)
    assert decision.verdict == an.Verdict.INCONCLUSIVE
    assert f"errorRate is {shown}" in decision.message
    # a request count that is not a number is no traffic, whatever the other figures say
    decision = an.decide({**figures, an.REQUESTS: value, an.ERROR_RATE: 0.0}, spec, compare)
    assert decision.verdict == an.Verdict.INCONCLUSIVE
    assert f"canary requests is {shown}" in decision.message


def test_nan_among_samples_wins_over_larger_values():
    value = an.scalar_from_vector(parse_query_response(200, JSON, vector("0.1", "NaN", "5")))
    assert math.isnan(value)


def serve(handler) -> PrometheusClient:
    client = PrometheusClient()
    client._client = httpx.Client(transport=httpx.MockTransport(handler))
    return client


def test_the_client_raises_on_garbage_and_on_a_dead_server():
    html = serve(lambda req: httpx.Response(500, text="<html>oops</html>",
                                            headers={"content-type": "text/html"}))  # fmt: skip
    with pytest.raises(PrometheusError, match="HTTP 500 with a body that is not JSON"):
        html.query("http://prom", "up")

    def refuse(req):
        raise httpx.ConnectError("connection refused", request=req)

    with pytest.raises(PrometheusError, match="unreachable: ConnectError"):
        serve(refuse).query("http://prom", "up")


def test_the_client_sends_the_query_and_parses_the_vector():
    seen = []

    def ok(req: httpx.Request) -> httpx.Response:
        seen.append(req.url)
        return httpx.Response(200, content=vector("7"), headers={"content-type": JSON})

    assert serve(ok).query("http://prom/", "sum(x)") == [
        {"metric": {"version": "2"}, "value": [1.5, "7"]}
    ]
    assert seen[0].path == "/api/v1/query"
    assert seen[0].params["query"] == "sum(x)"
