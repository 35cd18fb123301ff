"""Structured logs: every line one JSON object on stdout, one line per request.

Promtail/Loki (``| json``), Fluent Bit and Vector parse them with no
configuration. Request lines carry request id, model, version, route, status,
latency and batch size (written by ``middleware.RequestTelemetry`` through
``AccessLog``); feature values only when ``MODELOPS_LOG_FEATURES`` is set.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

import orjson

ACCESS_LOGGER = "modelops_service.access"
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text


def timestamp(created: float) -> str:
    """ISO 8601 in UTC with milliseconds (``2026-01-02T03:04:05.678+00:00``); the date
    and time of day are formatted once per second, not once per line."""
    global _second
    second = int(created)
    cached = _second
    if cached[0] != second:
        text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        cached = _second = (second, text)
    return f"{cached[1]}.{int((created - second) * 1000):03d}+00:00"


def json_line(created: float, level: str, logger: str, msg: str, fields: dict[str, Any]) -> str:
    """One log line: ``{"ts", "level", "logger", "msg", ...fields}``, no newline."""
    doc = {"ts": timestamp(created), "level": level, "logger": logger, "msg": msg, **fields}
    return orjson.dumps(doc, default=str, option=_OPTIONS).decode()


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...fields}``; structured fields come from
    ``extra={"fields": {...}}``."""

    timestamp = staticmethod(timestamp)

    def format(self, record: logging.LogRecord) -> str:
        fields = dict(getattr(record, "fields", None) or {})
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        level = record.levelname.lower()
        return json_line(record.created, level, record.name, record.getMessage(), fields)


class AccessLog:
    """The request lines, one per request: the ``modelops_service.access`` logger's level
    decides (MODELOPS_LOG_LEVEL, as for every logger), the line is JsonFormatter's, and it
    is written straight to stdout, where the root handler of ``log_config`` writes. Not
    through the logging module: a LogRecord, the logger walk, the handler's lock and
    formatter call cost more than the line itself, a tenth of a single-row request's CPU
    (bench/README.md, issue 21 goal 1)."""

    def __init__(self) -> None:
        self.logger = logging.getLogger(ACCESS_LOGGER)

    def enabled(self, level: int) -> bool:
        return self.logger.isEnabledFor(level)

    def write(self, level: int, fields: dict[str, Any]) -> None:
        if not self.logger.isEnabledFor(level):
            return
        name = "error" if level >= logging.ERROR else "info"
        stream = sys.stdout  # looked up per line: a redirected stdout gets the lines
        stream.write(json_line(time.time(), name, ACCESS_LOGGER, "request", fields) + "\n")
        stream.flush()


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
