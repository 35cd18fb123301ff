"""VectorHistogram, SharedVectorHistogram, BulkHistogram and BulkSummary export what
prometheus_client's Histogram and Summary would; settings parsing."""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, Summary, generate_latest
from pydantic import ValidationError

from devstack.paths import REPO_ROOT
from modelops_service import catalog
from modelops_service.logs import ACCESS_LOGGER, AccessLog, JsonFormatter
from modelops_service.settings import Settings, markdown_table
from modelops_service.telemetry import (
    BATCH_BUCKETS,
    BulkHistogram,
    BulkSummary,
    SharedVectorHistogram,
    VectorHistogram,
)
from tests.support.metrics_text import registry_samples


def test_vector_histogram_matches_prometheus_client() -> None:
    buckets = (0.5, 1.0, 2.0)
    values = np.array([0.1, 0.5, 0.5000001, 1.0, 1.5, 2.0, 7.0, -3.0])
    vector = VectorHistogram(catalog.PREDICTION_VALUE, ("m", "1"), buckets)
    vector.observe_many(values[:3])
    vector.observe_many(values[3:])
    ours = CollectorRegistry()
    ours.register(vector)

    reference = CollectorRegistry()
    histogram = Histogram(
        catalog.PREDICTION_VALUE.name,
        catalog.PREDICTION_VALUE.help,
        catalog.PREDICTION_VALUE.labels,
        buckets=buckets,
        registry=reference,
    ).labels("m", "1")
    for v in values:
        histogram.observe(float(v))

    assert registry_samples(ours) == pytest.approx(registry_samples(reference))
    assert b'model_prediction_value_bucket{le="1.0",model="m",version="1"} 5.0' in (
        generate_latest(ours)
    )


def test_shared_vector_histogram_exports_what_vector_histogram_does() -> None:
    buckets = (0.5, 1.0, 2.0)
    values = np.array([0.1, 0.5, 0.5000001, 1.0, 1.5, 2.0, 7.0, -3.0])
    shared_registry = CollectorRegistry()
    shared = SharedVectorHistogram(catalog.PREDICTION_VALUE, ("m", "1"), buckets, shared_registry)
    vector = VectorHistogram(catalog.PREDICTION_VALUE, ("m", "1"), buckets)
    vector_registry = CollectorRegistry()
    vector_registry.register(vector)
    for part in (values[:3], values[3:]):
        shared.observe_many(part)
        vector.observe_many(part)

    assert registry_samples(shared_registry) == pytest.approx(registry_samples(vector_registry))


def _batch_size_histogram(registry: CollectorRegistry) -> Histogram:
    m = catalog.BATCH_SIZE
    return Histogram(m.name, m.help, m.labels, buckets=BATCH_BUCKETS, registry=registry)


# Every bound, the values just beside it, and any size a request may have.
_SIZES = st.one_of(
    st.sampled_from([x for b in BATCH_BUCKETS for x in (b - 1, b, b + 1, b + 0.5)]),
    st.integers(0, 10_000),
)


@given(st.lists(st.lists(_SIZES, max_size=20), max_size=5))
def test_bulk_histogram_matches_prometheus_client(calls: list[list[float]]) -> None:
    ours, reference = CollectorRegistry(), CollectorRegistry()
    bulk = BulkHistogram(_batch_size_histogram(ours).labels("m", "1"))
    one_by_one = _batch_size_histogram(reference).labels("m", "1")
    for values in calls:
        bulk.observe_each(values)
        for v in values:
            one_by_one.observe(v)

    got, want = registry_samples(ours), registry_samples(reference)
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert math.isclose(got[key], value), key


@given(st.lists(st.lists(st.integers(0, 1 << 20), max_size=20), max_size=5))
def test_bulk_summary_matches_prometheus_client(calls: list[list[int]]) -> None:
    m = catalog.HTTP_REQUEST_SIZE
    ours, reference = CollectorRegistry(), CollectorRegistry()
    bulk = BulkSummary(Summary(m.name, m.help, m.labels, registry=ours).labels("/", "m", "1"))
    one_by_one = Summary(m.name, m.help, m.labels, registry=reference).labels("/", "m", "1")
    for values in calls:
        if len(values) == 1:
            bulk.observe(values[0])
        else:
            bulk.add(len(values), sum(values))
        for v in values:
            one_by_one.observe(v)

    assert registry_samples(ours) == registry_samples(reference)


def test_settings_come_from_modelops_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELOPS_MODEL_DIR", "/models/wine/2")
    monkeypatch.setenv("MODELOPS_MODEL_SHA256", "AB" * 32)
    monkeypatch.setenv("MODELOPS_RANGE_POLICY", "reject")
    monkeypatch.setenv("MODELOPS_LOG_LEVEL", "DEBUG")
    settings = Settings()
    assert str(settings.model_dir) == "/models/wine/2"
    assert settings.model_sha256 == "ab" * 32
    assert settings.range_policy == "reject"
    assert settings.log_level == "debug"
    assert settings.port == 8080
    assert settings.drift_window == 1000


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MODELOPS_MODEL_SHA256", "not-a-digest"),
        ("MODELOPS_RANGE_POLICY", "ignore"),
        ("MODELOPS_MAX_INSTANCES", "0"),
        ("MODELOPS_PORT", "70000"),
    ],
)
def test_invalid_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv("MODELOPS_MODEL_DIR", "/models/wine/1")
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize("field", ["model_sha256", "model_name", "model_version"])
def test_an_empty_declaration_means_not_declared(
    monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    monkeypatch.setenv("MODELOPS_MODEL_DIR", "/m")
    monkeypatch.setenv(f"MODELOPS_{field.upper()}", " ")
    assert getattr(Settings(), field) is None


def test_log_lines_are_single_json_objects_with_their_fields() -> None:
    record = logging.LogRecord(
        "modelops_service.access", logging.INFO, __file__, 1, "request", (), None
    )
    record.fields = {"request_id": "r1", "features": np.array([[1.5, 2.0]]), "path": "/v1/predict"}
    line = JsonFormatter().format(record)
    assert "\n" not in line
    doc = json.loads(line)
    assert doc["level"] == "info"
    assert doc["logger"] == "modelops_service.access"
    assert doc["msg"] == "request"
    assert doc["features"] == [[1.5, 2.0]]
    assert doc["ts"].endswith("+00:00")


def test_request_lines_are_the_formatters_lines_written_to_stdout_at_the_loggers_level(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logger = logging.getLogger(ACCESS_LOGGER)
    before = logger.level
    access = AccessLog()
    try:
        logger.setLevel(logging.INFO)
        access.write(logging.INFO, {"request_id": "r1", "features": np.array([[1.5, 2.0]])})
        access.write(logging.ERROR, {"request_id": "r2", "status": 500})
        logger.setLevel(logging.WARNING)
        assert not access.enabled(logging.INFO)
        access.write(logging.INFO, {"request_id": "r3"})
    finally:
        logger.setLevel(before)
    lines = capsys.readouterr().out.splitlines()
    docs = [json.loads(line) for line in lines]
    assert [d["request_id"] for d in docs] == ["r1", "r2"]
    assert [d["level"] for d in docs] == ["info", "error"]
    assert docs[0] | {"ts": None} == {
        "ts": None,
        "level": "info",
        "logger": ACCESS_LOGGER,
        "msg": "request",
        "request_id": "r1",
        "features": [[1.5, 2.0]],
    }
    assert docs[0]["ts"].endswith("+00:00")


def test_log_timestamps_are_iso_8601_utc_with_milliseconds() -> None:
    formatter = JsonFormatter()
    for created in (0.0, 1_700_000_000.25, 1_700_000_000.5, 1_700_000_001.0625, 1_800_000_000.75):
        expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
        assert formatter.timestamp(created) == expected


def test_the_readme_settings_table_is_generated_from_the_settings() -> None:
    readme = (REPO_ROOT / "service" / "README.md").read_text()
    section = readme.split("<!-- settings:begin -->\n", 1)[1].split("\n<!-- settings:end -->")[0]
    assert section == markdown_table(), "regenerate: python -m modelops_service.settings"
