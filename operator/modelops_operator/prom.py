"""A minimal Prometheus HTTP API client: instant queries for the canary analysis.

Whatever comes back is parsed at this boundary (`parse_query_response`, pure):
an answer that is not the documented JSON shape (HTML from a proxy, a 500,
JSON of another shape) is a `PrometheusError` naming what was wrong, so the
analysis holds; it never reaches the decision as a number and never crashes a
reconcile.
"""

from __future__ import annotations

import json
import math
from typing import Any

import httpx

SNIPPET = 120  # characters of an unexpected body quoted in the error


class PrometheusError(RuntimeError):
    """Prometheus unreachable, an HTTP error, or a query error: the analysis holds."""


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return repr(flat[:SNIPPET] + ("..." if len(flat) > SNIPPET else ""))


def _sample_value(raw: Any, where: str) -> list[Any]:
    """A `[<unix time>, "<value>"]` pair, checked; the value stays a string (float() later)."""
    if not isinstance(raw, list) or len(raw) != 2:
        raise PrometheusError(
            f"{where}: a sample value is not [time, value]: {_snippet(repr(raw))}"
        )
    stamp, value = raw
    if isinstance(stamp, bool) or not isinstance(stamp, (int, float)) or not math.isfinite(stamp):
        raise PrometheusError(f"{where}: a sample time is not a number: {_snippet(repr(stamp))}")
    if not isinstance(value, str):
        raise PrometheusError(f"{where}: a sample value is not a string: {_snippet(repr(value))}")
    return [stamp, value]


def parse_query_response(
    status_code: int, content_type: str, body: bytes, where: str = "prometheus"
) -> list[dict[str, Any]]:
    """The instant-vector result of a /api/v1/query answer, or a PrometheusError.

    A scalar result becomes a one-sample vector with no labels. Sample values
    stay the strings Prometheus sent ("NaN", "+Inf" included): judging them
    is the analysis' business.
    """
    text = body.decode("utf-8", errors="replace")
    try:
        doc = json.loads(text)
    except ValueError:
        kind = content_type.split(";")[0].strip() or "no content type"
        raise PrometheusError(
            f"{where} answered HTTP {status_code} with a body that is not JSON ({kind}): "
            f"{_snippet(text)}"
        ) from None
    if not isinstance(doc, dict):
        raise PrometheusError(
            f"{where} answered HTTP {status_code} with JSON that is not an API response: "
            f"{_snippet(text)}"
        )
    if status_code != 200 or doc.get("status") != "success":
        detail = f"{doc.get('errorType', '')} {doc.get('error', '')}".strip()
        raise PrometheusError(
            f"{where} query failed (HTTP {status_code}, status {doc.get('status')!r})"
            + (f": {detail}" if detail else f": {_snippet(text)}")
        )
    data = doc.get("data")
    if not isinstance(data, dict):
        raise PrometheusError(f"{where} answered success without a data object: {_snippet(text)}")
    result_type = data.get("resultType")
    result = data.get("result")
    if result_type == "scalar":
        return [{"metric": {}, "value": _sample_value(result, where)}]
    if result_type != "vector":
        raise PrometheusError(f"{where}: unexpected result type {result_type!r} (want vector)")
    if not isinstance(result, list):
        raise PrometheusError(f"{where}: the vector result is not a list: {_snippet(repr(result))}")
    samples = []
    for item in result:
        if not isinstance(item, dict) or not isinstance(item.get("metric", {}), dict):
            raise PrometheusError(f"{where}: a vector sample is malformed: {_snippet(repr(item))}")
        samples.append(
            {"metric": item.get("metric") or {}, "value": _sample_value(item.get("value"), where)}
        )
    return samples


class PrometheusClient:
    def __init__(self, timeout: float = 5.0) -> None:
        self._client = httpx.Client(timeout=timeout)

    def query(self, base_url: str, promql: str) -> list[dict[str, Any]]:
        """The instant-vector result of `promql` (a list of {metric, value})."""
        url = base_url.rstrip("/") + "/api/v1/query"
        try:
            resp = self._client.get(url, params={"query": promql})
        except httpx.HTTPError as exc:
            raise PrometheusError(
                f"{base_url} unreachable: {exc.__class__.__name__}: {exc}"
            ) from exc
        return parse_query_response(
            resp.status_code, resp.headers.get("content-type", ""), resp.content, where=base_url
        )

    def close(self) -> None:
        self._client.close()
