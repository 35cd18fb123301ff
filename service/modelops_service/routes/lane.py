"""The fast lane of POST /v1/predict: the hot path without the framework's per-request work.

FastAPI's route for POST /v1/predict stays registered (it documents the operation in
the OpenAPI schema, and serves it when this lane does not apply), but the requests go
through this ASGI middleware instead of prometheus-fastapi-instrumentator's middleware,
Starlette's exception middleware, routing and FastAPI's dependency injection: together
about a third of the CPU time of a single-row request, for work that is the same every
time. It calls the very same handler (``v1.predict_endpoint``) and does what those
layers did for this route:

- the HTTP metrics, through the same ``HttpMetrics`` (handler ``/v1/predict``, status
  grouped as ``2xx``, duration until the answer is sent, request and response sizes);
- a client that hangs up mid-body: the same 499 answer as the app's handler;
- any other exception: counted as a 5xx, then re-raised to the app's error handler
  (its 500 answer and log line), as the instrumentator does.

It sits inside ``RequestContextMiddleware`` (request id, in-progress gauge, access log).
"""

from __future__ import annotations

import time

from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from modelops_service.routes.common import client_closed_response
from modelops_service.routes.v1 import PredictEndpoint
from modelops_service.service import ModelService
from modelops_service.telemetry import HttpMetrics, content_length

PATH = "/v1/predict"


class PredictLane:
    def __init__(
        self,
        app: ASGIApp,
        *,
        endpoint: PredictEndpoint,
        service: ModelService,
        http_metrics: HttpMetrics,
    ) -> None:
        self.app = app
        self.endpoint = endpoint
        self.service = service
        self.http_metrics = http_metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Only the exact route; anything else (another method, a trailing slash, a root
        # path to strip) takes the framework's way.
        if (
            scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "POST"
            or scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        sent = 0
        request = Request(scope, receive)
        try:
            try:
                response = await self.endpoint(request, self.service)
            except ClientDisconnect:
                response = client_closed_response(request)
            status, sent = response.status_code, len(response.body)
            await response(scope, receive, send)
        finally:
            self.http_metrics.observe(
                PATH,
                "POST",
                f"{str(status)[0]}xx",
                max(time.perf_counter() - start, 0.0),
                content_length(request.headers.get("content-length")),
                sent,
            )
