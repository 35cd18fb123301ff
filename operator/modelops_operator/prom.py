"""A minimal Prometheus HTTP API client: instant queries for the canary analysis."""

from __future__ import annotations

from typing import Any

import httpx


class PrometheusError(RuntimeError):
    """Prometheus unreachable, an HTTP error, or a query error: the analysis holds."""


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
        try:
            body = resp.json()
        except ValueError as exc:
            raise PrometheusError(f"{base_url} answered HTTP {resp.status_code}, not JSON") from exc
        if resp.status_code != 200 or body.get("status") != "success":
            raise PrometheusError(
                f"{base_url} query failed (HTTP {resp.status_code}): "
                f"{body.get('errorType', '')} {body.get('error', '')}".strip()
            )
        data = body.get("data") or {}
        if data.get("resultType") == "scalar":
            return [{"metric": {}, "value": data.get("result")}]
        if data.get("resultType") != "vector":
            raise PrometheusError(f"unexpected result type {data.get('resultType')!r}")
        return list(data.get("result") or [])

    def close(self) -> None:
        self._client.close()
