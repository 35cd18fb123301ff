"""The operator's log lines: one JSON object each, in the service's shape."""

from __future__ import annotations

import json
import logging
import sys

from modelops_operator import logs
from tests.support.operator_rig import refused_lines


def line(record: logging.LogRecord) -> dict:
    text = logs.JsonFormatter().format(record)
    assert "\n" not in text
    return json.loads(text)


def test_a_line_has_the_service_keys_and_the_kopf_object():
    record = logging.LogRecord(
        "kopf.objects", logging.WARNING, __file__, 1, "held %s", ("x",), None
    )
    record.k8s_ref = {"apiVersion": "modelops.io/v1alpha1", "namespace": "models", "name": "wine"}
    doc = line(record)
    assert doc["level"] == "warning"
    assert doc["logger"] == "kopf.objects"
    assert doc["msg"] == "held x"
    assert doc["object"] == {"namespace": "models", "name": "wine"}
    assert doc["ts"].endswith("+00:00")


def test_a_traceback_stays_inside_the_one_line():
    try:
        raise RuntimeError('API said: "forbidden"\nsecond line')
    except RuntimeError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "reconcile failed", (), exc_info)
    doc = line(record)
    assert "RuntimeError" in doc["exc"]
    assert "second line" in doc["exc"]


def test_configure_leaves_one_json_handler_on_the_root_logger():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        root.addHandler(logging.StreamHandler())  # as kopf's CLI does before our startup
        logs.configure("warning")
        assert len(root.handlers) == 1
        assert isinstance(root.handlers[0].formatter, logs.JsonFormatter)
        assert root.level == logging.WARNING
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def test_the_hardening_tests_find_a_refusal_and_not_a_port_or_time_with_403():
    def text(msg: str) -> str:
        record = logging.LogRecord(
            "kopf.activities.startup", logging.INFO, __file__, 1, msg, (), None
        )
        return logs.JsonFormatter().format(record)

    startup = text("modelops operator: prometheus http://127.0.0.1:9, metrics :40397")
    kopf = text("Not enough permissions to watch for resources: changes will not be noticed")
    api = text("APIForbiddenError('pods is forbidden', {'reason': 'Forbidden', 'code': 403})")
    status = text("403, message='Forbidden', url='https://a/apis/apps/v1/deployments'")
    record = logging.LogRecord("kopf", logging.INFO, __file__, 1, "authentication", (), None)
    record.created = 1796687588.403  # 2026-12-07T23:53:08.403: a time with 403 in it
    at_403 = logs.JsonFormatter().format(record)
    assert ".403+" in at_403
    lines = [startup, at_403, kopf, api, status]
    assert refused_lines("\n".join(lines)) == [kopf, api, status]
