"""Structured logs: every line one JSON object on stdout, one line per request.

Promtail/Loki (``| json``), Fluent Bit and Vector parse them with no
configuration. Request lines carry request id, model, version, route, status,
latency and batch size (written by ``middleware.RequestTelemetry``); feature
values only when ``MODELOPS_LOG_FEATURES`` is set.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

ACCESS_LOGGER = "modelops_service.access"


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
