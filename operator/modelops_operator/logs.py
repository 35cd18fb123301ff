"""Logs as JSON lines, one object per line, in the service's shape.

`{"ts", "level", "logger", "msg"}` as modelops_service.logs writes them (the two
images share no code, so the few lines live in both), plus `object`: the
namespace and name kopf's per-object loggers carry, and `exc` for a traceback.
One handler on the root logger, so kopf's own loggers write the same lines.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        doc: dict[str, Any] = {
            "ts": stamp,
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        ref = getattr(record, "k8s_ref", None)  # set by kopf's per-object logger
        if isinstance(ref, dict):
            doc["object"] = {k: ref[k] for k in ("namespace", "name") if ref.get(k)}
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def configure(level: str = "info") -> None:
    """Every record of the process to stdout as one JSON line (replaces other handlers,
    kopf's CLI handler included)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
