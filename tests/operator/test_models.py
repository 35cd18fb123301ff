import re

import pytest
from pydantic import ValidationError

from modelops_operator.models import (
    DURATION_PATTERN,
    dump,
    parse_duration,
    parse_spec,
    parse_status,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("1h30m", 5400),
        ("2m5s", 125),
        ("500ms", 0.5),
        ("1m500ms", 60.5),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


BAD_DURATIONS = ["", "5", "m", "1d", "-5s", "5 s", "1s1h", "30s1m", "1m1m", "1h1h", "500ms1s"]


@pytest.mark.parametrize("text", BAD_DURATIONS)
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", BAD_DURATIONS)
def test_the_duration_pattern_refuses_what_parse_duration_refuses(text):
    # the pattern (pydantic's and the CRD's) must not admit a duration that only fails later
    assert not re.match(DURATION_PATTERN, text)


@pytest.mark.parametrize("field", ["interval", "rollbackWindow", "progressDeadline"])
@pytest.mark.parametrize("text", ["30s1m", "1m1m", "1h1h", "500ms1s"])
def test_a_duration_out_of_order_is_an_invalid_spec_naming_the_field(field, text):
    with pytest.raises(ValidationError) as caught:
        parse_spec({"model": MODEL, "rollout": {field: text}})
    assert [e["loc"] for e in caught.value.errors()] == [("rollout", field)]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1h", 3600), ("30m", 1800), ("90s", 90), ("500ms", 0.5), ("1m30s", 90),
     ("1h2m3s4ms", 3723.004), ("1m5ms", 60.005)],
)  # fmt: skip
def test_a_duration_in_order_parses(text, seconds):
    spec = parse_spec(
        {"model": MODEL, "rollout": {"interval": text, "analysis": {"deadline": text}}}
    )
    assert spec.rollout.interval_seconds == seconds
    assert spec.rollout.analysis.deadline_seconds == seconds


MODEL = {"name": "wine", "version": "2", "image": "model-service:0.1.0", "artifact": "/m/2"}


def test_spec_defaults_match_the_design():
    spec = parse_spec({"model": MODEL})
    assert spec.replicas == 1
    assert spec.paused is False
    assert spec.rollout.strategy == "Canary"
    assert spec.rollout.steps == (10, 50, 100)
    assert spec.rollout.interval_seconds == 60
    assert spec.rollout.analysis.max_error_rate == 0.05
    assert spec.rollout.analysis.max_latency_p95_seconds == 0.5
    assert spec.rollout.analysis.max_drift_score == 0.2
    assert spec.rollout.analysis.min_requests == 50
    assert spec.rollout.auto_rollback is True
    assert spec.monitoring.service_monitor.enabled is True
    assert spec.monitoring.service_monitor.interval == "15s"


@pytest.mark.parametrize(
    "rollout",
    [
        {"steps": []},
        {"steps": [50, 10]},
        {"steps": [10, 10, 100]},
        {"steps": [0, 100]},
        {"steps": [10, 101]},
        {"interval": "soon"},
        {"strategy": "BlueGreen"},
        {"analysis": {"maxErrorRate": 1.5}},
        {"analysis": {"minRequests": -1}},
    ],
)
def test_invalid_rollout_is_rejected(rollout):
    with pytest.raises(ValidationError):
        parse_spec({"model": MODEL, "rollout": rollout})


def test_missing_model_field_is_rejected():
    with pytest.raises(ValidationError):
        parse_spec({"model": {"name": "wine", "version": "1"}})


def test_status_round_trips_through_the_api_shape():
    raw = {
        "phase": "Progressing",
        "stableVersion": "1",
        "canaryVersion": "2",
        "canaryWeight": 10,
        "stable": {**MODEL, "version": "1"},
        "canary": {
            "model": MODEL,
            "step": 1,
            "startedAt": "2026-01-01T00:00:00Z",
            "stepStartedAt": "2026-01-01T00:01:00Z",
        },
        "history": [{"version": "1", "result": "Deployed", "at": "2026-01-01T00:00:00Z"}],
    }
    status = parse_status(raw)
    assert status.canary.step == 1
    assert status.canary.model.version == "2"
    again = dump(status)
    assert again["canary"]["stepStartedAt"] == "2026-01-01T00:01:00Z"
    assert parse_status(again) == status
