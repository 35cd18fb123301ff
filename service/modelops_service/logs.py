"""Structured logs: every line one JSON object on stdout, one line per request.

Promtail/Loki (``| json``), Fluent Bit and Vector parse them with no
configuration. Request lines carry request id, model, version, route, status,
latency and batch size; feature values only when ``MODELOPS_LOG_FEATURES`` is
set.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Gauge
from prometheus_fastapi_instrumentator.routing import get_route_name
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelops_service import catalog

ACCESS_LOGGER = "modelops_service.access"
REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_ROUTE_CACHE_LIMIT = 4096


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...fields}``; structured fields come from
    ``extra={"fields": {...}}``."""

    _second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text

    def timestamp(self, created: float) -> str:
        """ISO 8601 in UTC with milliseconds (``2026-01-02T03:04:05.678+00:00``); the
        date and time of day are formatted once per second, not once per line."""
        second = int(created)
        cached = self._second
        if cached[0] != second:
            text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            cached = self._second = (second, text)
        return f"{cached[1]}.{int((created - second) * 1000):03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": self.timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            doc.update(fields)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def log_config(level: str = "info") -> dict[str, Any]:
    """A dictConfig for the whole process, uvicorn's own loggers included."""
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level},
            # our middleware writes the request lines; uvicorn's access log would double them
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
        },
        "root": {"handlers": ["stdout"], "level": level},
    }


def lean_log_records() -> None:
    """Stop every log record from looking up the process, thread and multiprocessing
    names: the JSON lines never show them, and on one line per request they cost more
    than formatting the line's own fields. Process-wide: the entry point calls it."""
    logging.logMultiprocessing = False
    logging.logThreads = False
    logging.logProcesses = False


class _RouteNames:
    """path -> route template, as prometheus-fastapi-instrumentator names handlers."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], str] = {}

    def __call__(self, scope: Scope) -> str:
        key = (scope["method"], scope["path"])
        name = self._cache.get(key)
        if name is None:
            name = get_route_name(HTTPConnection(scope), should_include_root_path=False) or "none"
            if len(self._cache) < _ROUTE_CACHE_LIMIT:
                self._cache[key] = name
        return name


class RequestContextMiddleware:
    """Outermost middleware: request id, the in-progress gauge, the request log line.

    prometheus-fastapi-instrumentator's own in-progress gauge cannot carry the
    model and version labels, so this one (same name) does.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        registry: CollectorRegistry,
        model: str,
        version: str,
        log_features: bool = False,
    ) -> None:
        self.app = app
        self.model = model
        self.version = version
        self.log_features = log_features
        self.log = logging.getLogger(ACCESS_LOGGER)
        self.routes = _RouteNames()
        m = catalog.HTTP_REQUESTS_INPROGRESS
        self._inprogress = Gauge(m.name, m.help, m.labels, registry=registry)
        self._gauges: dict[tuple[str, str], Any] = {}

    def _gauge(self, handler: str, method: str):
        gauge = self._gauges.get((handler, method))
        if gauge is None:
            gauge = self._inprogress.labels(handler, method, self.model, self.version)
            if len(self._gauges) < _ROUTE_CACHE_LIMIT:
                self._gauges[(handler, method)] = gauge
        return gauge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                candidate = value.decode("latin-1")
                if _REQUEST_ID_OK.match(candidate):
                    request_id = candidate
                break
        request_id = request_id or secrets.token_hex(16)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        raw_id = request_id.encode()
        method = scope["method"]
        handler = self.routes(scope)
        gauge = self._gauge(handler, method)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", raw_id)]
            await send(message)

        gauge.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            gauge.dec()
            self._log(scope, state, request_id, handler, status, time.perf_counter() - start)

    def _log(
        self, scope: Scope, state: dict, request_id: str, handler: str, status: int, seconds: float
    ) -> None:
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
        extra = {"fields": fields}
        level = logging.ERROR if status >= 500 else logging.INFO
        log = self.log
        if log.isEnabledFor(level):
            # Logger.log, minus its walk up the stack for a caller nobody prints.
            log.handle(log.makeRecord(log.name, level, "", 0, "request", (), None, None, extra))
