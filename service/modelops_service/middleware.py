"""The one HTTP layer: every request's id, metrics, access log line, connection age and
500 answer, and the way into the predict routes, in one ASGI frame with one ``send``.

Outermost of the app, so its latency covers routing, validation and the model call. Its
own layers before (Starlette's error middleware, the telemetry, the connection age, the
predict routes' dispatcher) each added a frame that every await of a request resumes
through and a ``send`` wrapper per message (issue 21 goal 1, bench/README.md).

It records prometheus-fastapi-instrumentator's standard series with its meaning (handler
= the route template, ``none`` for no route; status grouped as ``2xx``; duration until
the app returned; sizes from the Content-Length headers), with ``model`` and ``version``
labels the instrumentator's own middleware cannot add. An exception that escapes the app
before it answered is a 500 JSON answer with the request id, logged with its traceback and
counted as ``5xx``; after it answered, it goes on to the server, which drops the
connection. A request for a ``PredictRoute`` goes to the route itself: a prediction uses
none of the exception middleware, FastAPI's exit stack and the router (no dependency to
close, no HTTPException; ``predict_step`` answers a client that hangs up); anything else,
a predict route's path with a method it does not allow (405) included, goes to them.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelops_service.connections import ConnectionAges, closing
from modelops_service.logs import AccessLog
from modelops_service.routes.common import PredictRoute, json_response
from modelops_service.telemetry import HttpMetrics

log = logging.getLogger("modelops_service")

REQUEST_ID_HEADER = b"x-request-id"
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_CACHE_LIMIT = 4096  # distinct request targets remembered; a scan of random paths stays bounded

# What a request target resolves to: the handler name for the metrics and the log, and the
# predict route that serves it with the scope keys the router's match would have set.
Target = tuple[str, PredictRoute | None, Scope]


def resolve(routes: list[BaseRoute], scope: Scope) -> Target:
    """The template of the route that serves ``scope`` (a full match first, else one that
    matches the path but not the method, else ``none``), and the ``PredictRoute`` of a
    full match."""
    partial = None
    for route in routes:
        match, child = route.matches(scope)
        if match == Match.FULL:
            fast = route if isinstance(route, PredictRoute) else None
            return getattr(route, "path", "none"), fast, child
        if match == Match.PARTIAL and partial is None:
            partial = getattr(route, "path", None)
    return partial or "none", None, {}


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


class HttpLayer:
    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: list[BaseRoute],
        metrics: HttpMetrics,
        model: str,
        version: str,
        log_features: bool = False,
        max_connection_age: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.routes = routes
        self.metrics = metrics
        self.model = model
        self.version = version
        self.log_features = log_features
        self.access_log = AccessLog()
        self.ages = ConnectionAges(max_connection_age, clock)
        self._targets: dict[tuple[str, str, str], Target] = {}
        # Request ids: a random prefix per process and a counter, 32 hex digits like a
        # token_hex(16), unique across replicas without a urandom call per request.
        self._id_prefix = secrets.token_hex(8)
        self._ids = itertools.count()

    def target(self, scope: Scope) -> Target:
        key = (scope["method"], scope["path"], scope.get("root_path", ""))
        target = self._targets.get(key)
        if target is None:
            target = resolve(self.routes, scope)
            if len(self._targets) < _CACHE_LIMIT:
                self._targets[key] = target
        return target

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
        close = self.ages.expired(scope.get("client"))
        method = scope["method"]
        handler, route, child = self.target(scope)
        status: int | None = None  # until the answer starts
        sent = 0

        async def send_once(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", ())  # optional in ASGI
                sent = content_length(_header(headers, b"content-length"))
                if close:
                    headers = closing(headers)
                message["headers"] = [*headers, (REQUEST_ID_HEADER, raw_id)]
            await send(message)

        in_progress = self.metrics.in_progress(handler, method)
        in_progress.inc()
        try:
            if route is not None:
                scope.update(child)
                await route.serve(scope, receive, send_once)
            else:
                await self.app(scope, receive, send_once)
        except Exception as exc:
            if status is not None:
                raise
            fields = {"request_id": request_id, "path": scope["path"]}
            log.error("unhandled error", exc_info=exc, extra={"fields": fields})
            answer = json_response({"error": "internal error", "request_id": request_id}, 500)
            await answer(scope, receive, send_once)
        finally:
            in_progress.dec()
            seconds = max(time.perf_counter() - start, 0.0)
            code = 500 if status is None else status
            self.metrics.observe(handler, method, f"{code // 100}xx", seconds, received, sent)
            self._log(scope, state, request_id, handler, code, seconds)

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
