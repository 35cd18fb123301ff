import math

import pytest

from modelops_operator import analysis as an
from modelops_operator.constants import (
    RULE_DRIFT,
    RULE_ERROR_RATIO,
    RULE_LATENCY_P95,
    RULE_REQUESTS,
)
from modelops_operator.models import Analysis

SPEC = Analysis(maxErrorRate=0.05, maxLatencyP95Seconds=0.5, maxDriftScore=0.2, minRequests=50)
GOOD = {"requests": 120.0, "errorRate": 0.01, "latencyP95Seconds": 0.05, "driftScore": 0.05}
NAN = math.nan


ALIASES = {"rate": "errorRate", "p95": "latencyP95Seconds", "drift": "driftScore"}


def figures(**changes):
    out = dict(GOOD)
    for key, value in changes.items():
        out[ALIASES.get(key, key)] = value
    return out


@pytest.mark.parametrize(
    ("figs", "verdict", "reason"),
    [
        (figures(), an.Verdict.PASS, "WithinThresholds"),
        (figures(rate=0.05, p95=0.5, drift=0.2), an.Verdict.PASS, "WithinThresholds"),
        (figures(rate=0.3), an.Verdict.FAIL, "ErrorRateTooHigh"),
        (figures(p95=0.9), an.Verdict.FAIL, "LatencyTooHigh"),
        (figures(drift=0.7), an.Verdict.FAIL, "DriftTooHigh"),
        (figures(rate=0.3, drift=0.7), an.Verdict.FAIL, "ErrorRateTooHigh"),
        # too little traffic: never judged, even when a figure is bad
        (figures(requests=10.0, rate=0.9), an.Verdict.INCONCLUSIVE, "TooFewRequests"),
        (figures(requests=None), an.Verdict.INCONCLUSIVE, "NoTraffic"),
        (figures(requests=NAN), an.Verdict.INCONCLUSIVE, "NoTraffic"),
        # empty vector / NaN figure: inconclusive, never a pass
        (figures(rate=None), an.Verdict.INCONCLUSIVE, "NoData"),
        (figures(p95=NAN), an.Verdict.INCONCLUSIVE, "NoData"),
        (figures(drift=math.inf), an.Verdict.INCONCLUSIVE, "NoData"),
        # a known breach wins over another figure's missing data
        (figures(rate=0.5, drift=None), an.Verdict.FAIL, "ErrorRateTooHigh"),
    ],
)
def test_decide(figs, verdict, reason):
    decision = an.decide(figs, SPEC)
    assert decision.verdict == verdict
    assert decision.reason == reason


def test_fail_message_carries_figure_and_threshold():
    decision = an.decide(figures(rate=0.3), SPEC)
    assert "errorRate 0.3 > maxErrorRate 0.05" in decision.message


def test_drift_threshold_can_be_switched_off():
    spec = SPEC.model_copy(update={"max_drift_score": None})
    assert an.decide(figures(drift=None), spec).verdict == an.Verdict.PASS


def test_min_requests_zero_still_needs_data():
    spec = SPEC.model_copy(update={"min_requests": 0})
    assert an.decide(figures(requests=0.0, rate=NAN), spec).verdict == an.Verdict.INCONCLUSIVE


@pytest.mark.parametrize(
    ("result", "value"),
    [
        ([], None),
        ([{"metric": {}, "value": [1, "0.25"]}], 0.25),
        ([{"metric": {}, "value": [1, "NaN"]}], "nan"),
        ([{"metric": {}, "value": [1, "+Inf"]}], math.inf),
        ([{"metric": {"a": "1"}, "value": [1, "0.1"]}, {"metric": {}, "value": [1, "0.4"]}], 0.4),
    ],
)
def test_scalar_from_vector(result, value):
    got = an.scalar_from_vector(result)
    if value == "nan":
        assert math.isnan(got)
    else:
        assert got == value


def test_queries_use_only_recording_rules_and_escape_labels():
    queries = an.build_queries("models", 'wi"ne', "2", 60)
    assert set(queries) == set(an.FIGURE_KEYS)
    rules = {RULE_REQUESTS, RULE_ERROR_RATIO, RULE_LATENCY_P95, RULE_DRIFT}
    for promql in queries.values():
        assert sum(rule in promql for rule in rules) == 1
        assert 'namespace="models",model="wi\\"ne",version="2"' in promql
        assert "[60s]" in promql
        # no raw metric name from the service catalog
        assert "http_requests_total" not in promql
        assert "model_feature_drift_score" not in promql


@pytest.mark.parametrize(("interval", "window"), [(5, 30), (30, 30), (60, 60), (90.5, 91)])
def test_window_is_at_least_two_rule_evaluations(interval, window):
    assert an.window_seconds(interval) == window


def test_error_decision_is_error_not_pass():
    decision = an.error_decision("connection refused")
    assert decision.verdict == an.Verdict.ERROR
    assert decision.reason == "PrometheusUnavailable"
