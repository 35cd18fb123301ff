"""The one HTTP middleware: request id, HTTP metrics and the access log line, for every route.

A pure ASGI middleware (no per-request ``Request`` object, no task), outermost of the
app's own middleware, so its latency covers routing, validation and the model call.
It records prometheus-fastapi-instrumentator's standard series with its meaning (handler
= the route template, ``none`` for no route; status grouped as ``2xx``; duration until
the app returned; sizes from the Content-Length headers), with ``model`` and ``version``
labels the instrumentator's own middleware cannot add. An exception that escapes the
app counts as ``5xx`` and goes on to the app's error handler (its 500 answer).
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from typing import Any

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelops_service.logs import AccessLog
from modelops_service.telemetry import HttpMetrics

REQUEST_ID_HEADER = b"x-request-id"
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_CACHE_LIMIT = (
    4096  # distinct (method, path) pairs remembered; a scan of random paths stays bounded
)


def route_name(routes: list[BaseRoute], scope: Scope) -> str:
    """The template of the route that serves ``scope`` (a full match first, else one that
    matches the path but not the method), or ``none``."""
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return getattr(route, "path", "none")
        if match == Match.PARTIAL and partial is None:
            partial = getattr(route, "path", None)
    return partial or "none"


def content_length(header: bytes | None) -> int:
    """A Content-Length header's value (missing, empty or not a number: 0)."""
    try:
        return int(header or 0)
    except ValueError:
        return 0


def _header(headers: Any, name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


class RequestTelemetry:
    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: list[BaseRoute],
        metrics: HttpMetrics,
        model: str,
        version: str,
        log_features: bool = False,
    ) -> None:
        self.app = app
        self.routes = routes
        self.metrics = metrics
        self.model = model
        self.version = version
        self.log_features = log_features
        self.access_log = AccessLog()
        self._handlers: dict[tuple[str, str], str] = {}
        # Request ids: a random prefix per process and a counter, 32 hex digits like a
        # token_hex(16), unique across replicas without a urandom call per request.
        self._id_prefix = secrets.token_hex(8)
        self._ids = itertools.count()

    def handler(self, scope: Scope) -> str:
        key = (scope["method"], scope["path"])
        name = self._handlers.get(key)
        if name is None:
            name = route_name(self.routes, scope)
            if len(self._handlers) < _CACHE_LIMIT:
                self._handlers[key] = name
        return name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        given, received = None, 0
        for key, value in scope["headers"]:  # one pass, the first of each
            if key == REQUEST_ID_HEADER and given is None:
                given = value.decode("latin-1")
            elif key == b"content-length" and not received:
                received = content_length(value)
        request_id = given if given is not None and _REQUEST_ID_OK.match(given) else ""
        request_id = request_id or f"{self._id_prefix}{next(self._ids):016x}"
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        raw_id = request_id.encode()
        method = scope["method"]
        handler = self.handler(scope)
        status = 500
        sent = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", ())  # optional in ASGI
                sent = content_length(_header(headers, b"content-length"))
                message["headers"] = [*headers, (REQUEST_ID_HEADER, raw_id)]
            await send(message)

        self.metrics.started(handler, method)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = max(time.perf_counter() - start, 0.0)
            self.metrics.observe(handler, method, f"{status // 100}xx", seconds, received, sent)
            self._log(scope, state, request_id, handler, status, seconds)

    def _log(
        self, scope: Scope, state: dict, request_id: str, handler: str, status: int, seconds: float
    ) -> None:
        level = logging.ERROR if status >= 500 else logging.INFO
        if not self.access_log.enabled(level):
            return
        fields: dict[str, Any] = {
            "request_id": request_id,
            "model": self.model,
            "version": self.version,
            "method": scope["method"],
            "route": handler,
            "path": scope["path"],
            "status": status,
            "latency_ms": round(seconds * 1000.0, 3),
            "batch_size": state.get("batch_size"),
        }
        client = scope.get("client")
        if client:
            fields["client"] = client[0]
        if "reasons" in state:
            fields["reasons"] = state["reasons"]
        if self.log_features and "features" in state:
            fields["features"] = state["features"]
        self.access_log.write(level, fields)
