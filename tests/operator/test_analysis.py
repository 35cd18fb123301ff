import math
import re

import pytest

from modelops_operator import analysis as an
from modelops_operator.constants import (
    RULE_CLASS_SHARE,
    RULE_DRIFT,
    RULE_ERROR_RATIO,
    RULE_LATENCY_P95,
    RULE_PREDICTION_BUCKETS,
    RULE_PREDICTION_MEAN,
    RULE_PREDICTIONS,
    RULE_REQUESTS,
)
from modelops_operator.models import (
    Analysis,
    CanaryState,
    Compare,
    ModelDeploymentStatus,
    parse_spec,
)
from modelops_operator.observe import analyze_canary
from modelops_operator.rollout import Observation
from modelops_operator.workloads import MISSING
from tests.support.operator_builders import at, ref, stamp

SPEC = Analysis(maxErrorRate=0.05, maxLatencyP95Seconds=0.5, maxDriftScore=0.2, minRequests=50)
COMPARE = Compare(maxErrorRateDelta=0.02, maxLatencyP95Ratio=1.5, maxPredictionShift=0.1)
GOOD = {
    "requests": 120.0,
    "errorRate": 0.01,
    "latencyP95Seconds": 0.05,
    "driftScore": 0.05,
    "sharedSeconds": 60.0,
    "sharedRequests": 120.0,
    "stableRequests": 1080.0,
    "stableErrorRate": 0.01,
    "stableLatencyP95Seconds": 0.05,
    "errorRateDelta": 0.0,
    "latencyP95Ratio": 1.0,
    "latencyP95IncreaseSeconds": 0.0,
    "predictionShift": 0.01,
    "predictionShiftStandardError": 0.01,
}
NAN = math.nan


ALIASES = {
    "rate": "errorRate",
    "p95": "latencyP95Seconds",
    "drift": "driftScore",
    "delta": "errorRateDelta",
    "ratio": "latencyP95Ratio",
    "increase": "latencyP95IncreaseSeconds",
    "shift": "predictionShift",
    "se": "predictionShiftStandardError",
    "stable": "stableRequests",
}


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
        # relative gates: the canary against the stable over the same seconds
        (figures(delta=0.02, ratio=1.5, shift=0.1), an.Verdict.PASS, "WithinThresholds"),
        (figures(delta=0.03), an.Verdict.FAIL, "ErrorRateRegression"),
        (figures(ratio=2.2, increase=0.06), an.Verdict.FAIL, "LatencyRegression"),
        (figures(shift=0.2), an.Verdict.FAIL, "PredictionShift"),
        (figures(ratio=2.2, increase=0.06, shift=0.2), an.Verdict.FAIL, "LatencyRegression"),
        # a ratio of two p95s within the histogram's resolution (4 ms against 8 ms) is noise
        (figures(ratio=1.9, increase=0.004), an.Verdict.PASS, "WithinThresholds"),
        (figures(ratio=1.9, increase=0.004, shift=0.2), an.Verdict.FAIL, "PredictionShift"),
        (figures(ratio=1.9, increase=0.025), an.Verdict.FAIL, "LatencyRegression"),
        (figures(ratio=1.9, increase=None), an.Verdict.FAIL, "LatencyRegression"),
        # an absolute breach is named first; it needs no stable traffic
        (figures(p95=0.9, shift=0.2), an.Verdict.FAIL, "LatencyTooHigh"),
        (figures(p95=0.9, stable=None), an.Verdict.FAIL, "LatencyTooHigh"),
        # too little stable traffic: nothing to compare with, even a large shift
        (figures(stable=10.0, shift=0.5), an.Verdict.INCONCLUSIVE, "TooFewRequests"),
        (figures(stable=None), an.Verdict.INCONCLUSIVE, "NoTraffic"),
        (figures(stable=NAN), an.Verdict.INCONCLUSIVE, "NoTraffic"),
        # a comparison that is empty or NaN is inconclusive, never a pass
        (figures(shift=None), an.Verdict.INCONCLUSIVE, "NoData"),
        (figures(ratio=NAN), an.Verdict.INCONCLUSIVE, "NoData"),
        (figures(delta=None), an.Verdict.INCONCLUSIVE, "NoData"),
        # a shift over its limit fails only when it is beyond 3 standard errors too
        (figures(shift=0.2, se=0.05), an.Verdict.FAIL, "PredictionShift"),  # 4 SE
        (figures(shift=0.2, se=0.0), an.Verdict.FAIL, "PredictionShift"),  # no spread at all
        (figures(shift=0.2, se=0.1), an.Verdict.INCONCLUSIVE, "TooFewPredictions"),  # 2 SE
        (figures(shift=0.2, se=None), an.Verdict.INCONCLUSIVE, "TooFewPredictions"),
        (figures(shift=0.2, se=NAN), an.Verdict.INCONCLUSIVE, "TooFewPredictions"),
        # ... and a small shift whose standard error nobody can compute is no pass either
        (figures(shift=0.05, se=None), an.Verdict.INCONCLUSIVE, "NoData"),
        (figures(shift=0.05, se=NAN), an.Verdict.INCONCLUSIVE, "NoData"),
        (figures(shift=0.05, se=0.2), an.Verdict.PASS, "WithinThresholds"),
        # another breach still fails; too little stable traffic is said first
        (figures(shift=0.2, se=0.1, delta=0.05), an.Verdict.FAIL, "ErrorRateRegression"),
        (figures(shift=0.2, se=0.1, stable=10.0), an.Verdict.INCONCLUSIVE, "TooFewRequests"),
    ],
)
def test_decide(figs, verdict, reason):
    decision = an.decide(figs, SPEC, COMPARE)
    assert decision.verdict == verdict
    assert decision.reason == reason


def test_fail_message_carries_figure_and_threshold():
    decision = an.decide(figures(rate=0.3), SPEC, COMPARE)
    assert "errorRate 0.3 > maxErrorRate 0.05" in decision.message
    decision = an.decide(figures(shift=0.2), SPEC, COMPARE)
    assert decision.message == (
        "predictionShift 0.2 > maxPredictionShift 0.1"
        " (20 standard errors of 0.01 >= minPredictionShiftStandardErrors 3)"
    )
    decision = an.decide(figures(stable=10.0), SPEC, COMPARE)
    assert decision.message == "stable requests in the seconds both served 10 < minRequests 50"
    # every breach is named, absolute first; the reason is the first
    decision = an.decide(figures(drift=0.7, shift=0.3), SPEC, COMPARE)
    assert decision.reason == "DriftTooHigh"
    assert decision.message == (
        "driftScore 0.7 > maxDriftScore 0.2; predictionShift 0.3 > maxPredictionShift 0.1"
        " (30 standard errors of 0.01 >= minPredictionShiftStandardErrors 3)"
    )


def test_a_shift_within_chance_says_why_it_waits():
    decision = an.decide(figures(shift=0.2, se=0.1), SPEC, COMPARE)
    assert decision.message == (
        "predictionShift 0.2 > maxPredictionShift 0.1 but only 2 standard errors"
        " (predictionShiftStandardError 0.1) < minPredictionShiftStandardErrors 3:"
        " too few predictions to tell it from chance"
    )
    passed = an.decide(figures(shift=0.02, se=0.01), SPEC, COMPARE)
    assert "predictionShift 0.02 <= maxPredictionShift 0.1 (standard error 0.01)" in passed.message


def test_zero_standard_errors_is_the_threshold_alone():
    alone = COMPARE.model_copy(update={"min_prediction_shift_standard_errors": 0})
    assert an.decide(figures(shift=0.2, se=None), SPEC, alone).reason == "PredictionShift"
    assert an.decide(figures(shift=0.05, se=None), SPEC, alone).verdict == an.Verdict.PASS


def test_relative_gates_can_be_switched_off():
    off = Compare(maxErrorRateDelta=None, maxLatencyP95Ratio=None, maxPredictionShift=None)
    decision = an.decide(figures(delta=0.5, ratio=9.0, shift=None), SPEC, off)
    assert decision.verdict == an.Verdict.PASS


def test_drift_threshold_can_be_switched_off():
    spec = SPEC.model_copy(update={"max_drift_score": None})
    assert an.decide(figures(drift=None), spec, COMPARE).verdict == an.Verdict.PASS


def test_min_requests_zero_still_needs_data():
    spec = SPEC.model_copy(update={"min_requests": 0})
    decision = an.decide(figures(requests=0.0, rate=NAN), spec, COMPARE)
    assert decision.verdict == an.Verdict.INCONCLUSIVE


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
    queries = an.build_queries("models", 'wi"ne', "2", 'wi"ne', "1", 60)
    canary_keys = {"requests", "errorRate", "latencyP95Seconds", "driftScore", "sharedRequests",
                   "sharedErrorRate", "sharedLatencyP95Seconds", "predictionMean", "classShares",
                   "predictedRows", "predictionBuckets"}  # fmt: skip
    stable_keys = {"stableRequests", "stableErrorRate", "stableLatencyP95Seconds",
                   "stablePredictionMean", "stableClassShares", "stablePredictedRows",
                   "stablePredictionBuckets"}  # fmt: skip
    assert set(queries) == canary_keys | stable_keys | {"sharedSeconds"}
    rules = {RULE_REQUESTS, RULE_ERROR_RATIO, RULE_LATENCY_P95, RULE_DRIFT,
             RULE_PREDICTION_MEAN, RULE_CLASS_SHARE, RULE_PREDICTIONS,
             RULE_PREDICTION_BUCKETS}  # fmt: skip
    for key, promql in queries.items():
        # the rule measured comes first; the only other is the request rate, as a filter
        measured = min((r for r in rules if r in promql), key=promql.index)
        assert {r for r in rules if r in promql} <= {measured, RULE_REQUESTS}
        version = "1" if key in stable_keys else "2"
        assert f'{measured}{{namespace="models",model="wi\\"ne",version="{version}"}}' in promql
        assert "[60s" in promql
        # no raw metric name from the service catalog
        assert "http_requests_total" not in promql
        assert "model_feature_drift_score" not in promql
    # the same PromQL for both versions, the versions swapped
    canary = queries["sharedErrorRate"]
    assert queries["stableErrorRate"] == canary.replace('"2"', "V").replace('"1"', '"2"').replace(
        "V", '"1"'
    )


def test_both_sides_of_a_comparison_cover_the_seconds_both_served():
    queries = an.build_queries("models", "wine", "2", "wine", "1", 60)
    for v in ("2", "1"):
        rate = f'{RULE_REQUESTS}{{namespace="models",model="wine",version="{v}"}}'
        # serving now, and a whole rule range before (its rate covers its own traffic)
        served = f"({rate} > 0 and on() {rate} offset 1m > 0)"
        for key in ("sharedSeconds", "sharedRequests", "sharedErrorRate", "predictionMean",
                    "classShares", "stableRequests", "stableClassShares"):  # fmt: skip
            assert served in queries[key], queries[key]
            assert "[60s:5s]" in queries[key]
    # the canary's own figures (the absolute gates) cover the whole window
    for key in ("requests", "errorRate", "latencyP95Seconds", "driftScore"):
        assert "and on()" not in queries[key]
        assert "[60s]" in queries[key]


def test_a_renamed_model_is_queried_by_each_side_by_its_own_name():
    # the canary renames the model: the stable's series keep the old name
    queries = an.build_queries("models", "wine-gbm", "3", "wine", "2", 60)
    canary = 'namespace="models",model="wine-gbm",version="3"'
    stable = 'namespace="models",model="wine",version="2"'
    for key, promql in queries.items():
        selectors = set(re.findall(r"\{([^}]*)\}", promql))
        if key.startswith("stable"):
            assert stable in selectors, promql  # its own, filtered by the canary's serving
        else:
            assert canary in selectors, promql
        assert selectors <= {canary, stable}, promql
    assert 'model="wine",version="3"' not in "".join(queries.values())
    assert 'model="wine-gbm",version="2"' not in "".join(queries.values())
    # each side's figures measure its own series: the first selector names it
    assert re.search(r"\{([^}]*)\}", queries["stableErrorRate"])[1] == stable
    assert re.search(r"\{([^}]*)\}", queries["sharedErrorRate"])[1] == canary


def test_the_analysis_of_a_renamed_model_queries_the_stable_by_its_recorded_name():
    class Recording:
        def query(self, url, promql):
            return []

    stable = ref("2")  # status.stable: deployed as "wine"
    renamed = stable.model_copy(update={"name": "wine-gbm", "version": "3"})
    canary = CanaryState(model=renamed, step=0, startedAt=stamp(0), stepStartedAt=stamp(0))
    status = ModelDeploymentStatus(stable=stable, canary=canary)
    spec = parse_spec({"model": renamed.model_dump()})
    obs = Observation(spec, status, at(60), MISSING, MISSING)
    _, queries, _ = analyze_canary(Recording(), obs, "models", "http://prometheus")  # type: ignore[arg-type]
    assert 'model="wine",version="2"' in queries["stableErrorRate"]
    assert 'model="wine-gbm",version="3"' in queries["errorRate"]


def test_a_step_the_stable_does_not_serve_queries_the_canary_alone():
    queries = an.build_queries("models", "wine", "2", "wine", "1", 60, compared=False)
    assert set(queries) == {"requests", "errorRate", "latencyP95Seconds", "driftScore"}
    assert not any('version="1"' in q for q in queries.values())


def vec(value, **labels):
    return [{"metric": labels, "value": [1, value]}]


def shares(**by_class):
    return [{"metric": {"class": c}, "value": [1, str(v)]} for c, v in by_class.items()]


def results(**changes):
    out = {
        "requests": vec("100"),
        "errorRate": vec("0.01"),
        "latencyP95Seconds": vec("0.02"),
        "driftScore": vec("0.05"),
        "sharedSeconds": vec("60"),
        "sharedRequests": vec("100"),
        "sharedErrorRate": vec("0.01"),
        "sharedLatencyP95Seconds": vec("0.02"),
        "predictionMean": [],
        "classShares": [],
        "stableRequests": vec("300"),
        "stableErrorRate": vec("0"),
        "stableLatencyP95Seconds": vec("0.01"),
        "stablePredictionMean": [],
        "stableClassShares": [],
    }
    out.update(changes)
    return out


def test_compared_figures_of_a_regressor():
    figs = an.figures_from(results(predictionMean=vec("180"), stablePredictionMean=vec("150")))
    assert figs["trafficSharePercent"] == pytest.approx(25.0)
    assert figs["errorRateDelta"] == pytest.approx(0.01)
    assert figs["latencyP95Ratio"] == pytest.approx(2.0)
    assert figs["latencyP95IncreaseSeconds"] == pytest.approx(0.01)
    assert figs["predictionShift"] == pytest.approx(0.2)
    assert figs["predictionMean"] == 180.0
    assert figs["stablePredictionMean"] == 150.0
    lower = an.figures_from(results(predictionMean=vec("120"), stablePredictionMean=vec("150")))
    assert lower["predictionShift"] == pytest.approx(0.2)  # a shift down counts the same


def test_compared_figures_of_a_classifier():
    figs = an.figures_from(
        results(classShares=shares(a=0.5, b=0.5), stableClassShares=shares(a=0.3, b=0.3, c=0.4))
    )
    # total variation: (|0.5-0.3| + |0.5-0.3| + |0-0.4|) / 2
    assert figs["predictionShift"] == pytest.approx(0.4)
    same = an.figures_from(
        results(classShares=shares(a=0.3, b=0.7), stableClassShares=shares(b=0.7, a=0.3))
    )
    assert same["predictionShift"] == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        # an empty side: no data, never 0
        ({"predictionMean": vec("180")}, "predictionShift"),
        ({"classShares": shares(a=1.0)}, "predictionShift"),
        ({}, "predictionShift"),
        ({"stableErrorRate": []}, "errorRateDelta"),
        ({"stableLatencyP95Seconds": []}, "latencyP95Ratio"),
        ({"stableRequests": []}, "trafficSharePercent"),
    ],
)
def test_an_empty_side_gives_no_figure(changes, key):
    assert an.figures_from(results(**changes))[key] is None


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"predictionMean": vec("NaN"), "stablePredictionMean": vec("NaN")}, "predictionShift"),
        ({"predictionMean": vec("NaN"), "stablePredictionMean": []}, "predictionShift"),
        ({"predictionMean": [], "stablePredictionMean": vec("NaN")}, "predictionShift"),
        ({"predictionMean": vec("10"), "stablePredictionMean": vec("0")}, "predictionShift"),
        ({"classShares": shares(a="NaN"), "stableClassShares": shares(a=1)}, "predictionShift"),
        ({"stableLatencyP95Seconds": vec("0")}, "latencyP95Ratio"),
        ({"stableLatencyP95Seconds": vec("NaN")}, "latencyP95Ratio"),
        ({"sharedRequests": vec("0"), "stableRequests": vec("0")}, "trafficSharePercent"),
    ],
)
def test_a_zero_or_nan_side_gives_nan(changes, key):
    assert math.isnan(an.figures_from(results(**changes))[key])


def test_nan_comparisons_are_inconclusive_end_to_end():
    figs = an.figures_from(results(stableLatencyP95Seconds=vec("0")))
    decision = an.decide(figs, SPEC.model_copy(update={"min_requests": 10}), COMPARE)
    assert decision.verdict == an.Verdict.INCONCLUSIVE
    assert "latencyP95Ratio is NaN" in decision.message
    assert an.Decision(decision.verdict, "", "", figs).figures_model().latency_p95_ratio is None


@pytest.mark.parametrize(("interval", "window"), [(5, 30), (30, 30), (60, 60), (90.5, 91)])
def test_window_is_at_least_two_rule_evaluations(interval, window):
    assert an.window_seconds(interval) == window


def test_error_decision_is_error_not_pass():
    decision = an.error_decision("connection refused")
    assert decision.verdict == an.Verdict.ERROR
    assert decision.reason == "PrometheusUnavailable"


def test_a_latency_ratio_within_the_resolution_says_why_it_passed():
    decision = an.decide(figures(ratio=1.9, increase=0.004), SPEC, COMPARE)
    assert decision.verdict is an.Verdict.PASS
    assert (
        "latencyP95Ratio 1.9 > maxLatencyP95Ratio 1.5 but latencyP95IncreaseSeconds 0.004"
        " < minLatencyP95IncreaseSeconds 0.025"
    ) in decision.message


# --- how far a prediction shift can be trusted ----------------------------------------------


def test_histogram_stddev_counts_each_row_at_its_buckets_midpoint():
    # 15 rows at or below 100, 30 in (100, 200], 15 above: at 100, 150 and 200
    assert an.histogram_stddev({"100": 15, "200": 45, "+Inf": 60}) == pytest.approx(
        math.sqrt((15 * 50**2 + 15 * 50**2) / 60)
    )
    # rates of one scrape's buckets, any scale, in any order
    assert an.histogram_stddev({"+Inf": 1.0, "200": 0.75, "100": 0.25}) == pytest.approx(
        math.sqrt(1250)
    )
    assert an.histogram_stddev({"10": 5, "20": 5, "+Inf": 5}) == 0.0  # all in one bucket


def test_histogram_stddev_is_close_to_the_sample_stddev_at_the_demo_bucket_width():
    import random

    rng = random.Random(7)
    values = [rng.gauss(150, 50) for _ in range(5000)]
    bounds = [25.0 * i for i in range(1, 17)]  # train.nice_buckets' width for diabetes
    cumulative = {f"{b:g}": float(sum(v <= b for v in values)) for b in bounds}
    cumulative["+Inf"] = float(len(values))
    mean = sum(values) / len(values)
    sample = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    assert an.histogram_stddev(cumulative) == pytest.approx(sample, rel=0.03)


@pytest.mark.parametrize(
    ("cumulative", "expected"),
    [
        ({}, None),  # no buckets (an empty vector)
        ({"100": 0.0, "+Inf": 0.0}, "nan"),  # no rows in the window
        ({"100": math.nan, "+Inf": 1.0}, "nan"),
        ({"+Inf": 3.0}, "nan"),  # no finite bound to place a row at
        ({"abc": 1.0}, "nan"),
    ],
)
def test_histogram_stddev_without_rows_is_not_zero(cumulative, expected):
    got = an.histogram_stddev(cumulative)
    assert got is None if expected is None else math.isnan(got)


def test_mean_shift_standard_error_is_the_relative_se_of_two_independent_means():
    # sqrt(50^2/100 + 40^2/400) / 150 = sqrt(25 + 4) / 150
    got = an.mean_shift_standard_error(50.0, 40.0, 100.0, 400.0, 150.0)
    assert got == pytest.approx(math.sqrt(29) / 150)
    assert an.mean_shift_standard_error(50.0, 40.0, 100.0, 400.0, -150.0) == got


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((None, 40.0, 100.0, 400.0, 150.0), None),  # no buckets
        ((50.0, 40.0, 100.0, None, 150.0), None),  # no stable rows vector
        ((50.0, 40.0, 0.0, 400.0, 150.0), "nan"),  # zero traffic on the canary
        ((50.0, 40.0, 100.0, 1.0, 150.0), "nan"),  # one row: no spread to speak of
        ((math.nan, 40.0, 100.0, 400.0, 150.0), "nan"),
        ((50.0, 40.0, 100.0, 400.0, 0.0), "nan"),  # a zero stable mean, as the shift
    ],
)
def test_mean_shift_standard_error_needs_data_on_both_sides(args, expected):
    got = an.mean_shift_standard_error(*args)
    assert got is None if expected is None else math.isnan(got)


def test_class_shift_standard_error_of_two_classes_is_that_of_a_difference_of_shares():
    # with two classes the distance is |p_c - p_s| of one class: sqrt(pq/n_c + pq/n_s)
    got = an.class_shift_standard_error({"a": 0.6, "b": 0.4}, {"a": 0.5, "b": 0.5}, 100, 100)
    assert got == pytest.approx(math.sqrt(0.6 * 0.4 / 100 + 0.5 * 0.5 / 100))
    # three classes, a class one side never predicts counts as share 0 there
    three = an.class_shift_standard_error({"a": 0.5, "b": 0.5}, {"a": 0.3, "b": 0.3, "c": 0.4},
                                          400, 400)  # fmt: skip
    # signs (+, +, -): sum s p is 1 on the canary, 0.2 on the stable side
    assert three == pytest.approx(0.5 * math.sqrt((1 - 1**2) / 400 + (1 - 0.2**2) / 400))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (({}, {"a": 1.0}, 100, 100), None),
        (({"a": 1.0}, {"a": 1.0}, None, 100), None),
        (({"a": 1.0}, {"a": 1.0}, 0.0, 100), "nan"),  # zero traffic on the canary
        (({"a": math.nan}, {"a": 1.0}, 100, 100), "nan"),
    ],
)
def test_class_shift_standard_error_needs_data_on_both_sides(args, expected):
    got = an.class_shift_standard_error(*args)
    assert got is None if expected is None else math.isnan(got)


def buckets(*cumulative: tuple[str, float]):
    return [{"metric": {"le": le}, "value": [1, str(v)]} for le, v in cumulative]


# a regressor's spread: rows at 100, 150 and 200 (sd 35.4), the same for both versions
SPREAD = buckets(("100", 0.25), ("200", 0.75), ("+Inf", 1.0))


def regressor(rows: float, stable_rows: float, mean: str = "180"):
    return results(
        predictionMean=vec(mean), stablePredictionMean=vec("150"),
        predictedRows=vec(str(rows)), stablePredictedRows=vec(str(stable_rows)),
        predictionBuckets=SPREAD, stablePredictionBuckets=SPREAD,
    )  # fmt: skip


def test_a_regressors_shift_is_judged_against_its_standard_error():
    lenient = SPEC.model_copy(update={"min_requests": 1})
    # 20% higher over a handful of rows: chance cannot be ruled out, so wait
    few = an.figures_from(regressor(4, 4))
    assert few["predictionShift"] == pytest.approx(0.2)
    assert few["predictionStdDev"] == pytest.approx(math.sqrt(1250))
    assert few["predictionShiftStandardError"] == pytest.approx(math.sqrt(1250 / 2) / 150)
    assert an.decide(few, lenient, COMPARE).reason == "TooFewPredictions"
    # the same shift over the rig's rows (15 a second each, 30 s): a shift
    many = an.figures_from(regressor(450, 450))
    decision = an.decide(many, lenient, COMPARE)
    assert (decision.verdict, decision.reason) == (an.Verdict.FAIL, "PredictionShift")
    # a shift under the limit passes once its standard error is known
    close = an.figures_from(regressor(450, 450, mean="153"))
    assert an.decide(close, lenient, COMPARE).verdict == an.Verdict.PASS
    model = an.Decision(decision.verdict, "", "", many).figures_model()
    assert model.prediction_shift_standard_error == pytest.approx(math.sqrt(2 * 1250 / 450) / 150)
    assert model.predicted_rows == 450.0


def test_a_regressor_without_buckets_or_rows_has_no_standard_error():
    no_rows = regressor(450, 450)
    no_rows["stablePredictedRows"] = []
    assert an.figures_from(no_rows)["predictionShiftStandardError"] is None
    zero = an.figures_from(regressor(0, 450))
    assert math.isnan(zero["predictionShiftStandardError"])
    empty = regressor(450, 450)
    empty["predictionBuckets"] = buckets(("100", 0), ("+Inf", 0))
    assert math.isnan(an.figures_from(empty)["predictionStdDev"])
    assert math.isnan(an.figures_from(empty)["predictionShiftStandardError"])


def test_a_classifiers_shift_is_judged_against_its_standard_error():
    lenient = SPEC.model_copy(update={"min_requests": 1})

    def classifier(rows: float):
        return results(
            classShares=shares(a=0.5, b=0.5), stableClassShares=shares(a=0.3, b=0.3, c=0.4),
            predictedRows=vec(str(rows)), stablePredictedRows=vec(str(rows)),
        )  # fmt: skip

    few = an.figures_from(classifier(5))
    assert few["predictionShift"] == pytest.approx(0.4)
    assert "predictionStdDev" not in few  # a regressor's figure
    assert an.decide(few, lenient, COMPARE).reason == "TooFewPredictions"
    many = an.decide(an.figures_from(classifier(450)), lenient, COMPARE)
    assert (many.verdict, many.reason) == (an.Verdict.FAIL, "PredictionShift")


def test_a_step_the_stable_does_not_serve_is_judged_by_the_absolute_gates_alone():
    alone = {"requests": 300.0, "errorRate": 0.0, "latencyP95Seconds": 0.01, "driftScore": 0.01}
    decision = an.decide(an.figures_from({k: vec(str(v)) for k, v in alone.items()}), SPEC,
                         COMPARE, compared=False)  # fmt: skip
    assert decision.verdict == an.Verdict.PASS, decision.message
    assert "the stable serves nothing at this step: no comparison" in decision.message
    assert "predictionShift" not in decision.message
    bad = an.decide({**alone, "errorRate": 0.5}, SPEC, COMPARE, compared=False)
    assert (bad.verdict, bad.reason) == (an.Verdict.FAIL, "ErrorRateTooHigh")
    few = an.decide({**alone, "requests": 5.0}, SPEC, COMPARE, compared=False)
    assert (few.verdict, few.reason) == (an.Verdict.INCONCLUSIVE, "TooFewRequests")


@pytest.mark.parametrize("seconds", [None, 0.0])
def test_no_instant_both_served_is_inconclusive_however_the_canary_looks(seconds):
    decision = an.decide(figures(sharedSeconds=seconds, shift=0.9), SPEC, COMPARE)
    assert (decision.verdict, decision.reason) == (an.Verdict.INCONCLUSIVE, "NoTraffic")
    assert decision.message == "no instant of the window at which both versions had served 1m"
    # an absolute breach needs no comparison
    assert an.decide(figures(sharedSeconds=seconds, rate=0.5), SPEC, COMPARE).verdict == "Fail"


def test_the_canary_beside_the_stable_needs_min_requests_too():
    decision = an.decide(figures(sharedRequests=12.0), SPEC, COMPARE)
    assert (decision.verdict, decision.reason) == (an.Verdict.INCONCLUSIVE, "TooFewRequests")
    assert decision.message == "canary requests in the seconds both served 12 < minRequests 50"


def test_a_canary_figure_that_is_no_number_is_said_before_the_missing_comparison():
    # the comparison will come with more traffic; a NaN error ratio may never go away
    decision = an.decide(figures(sharedSeconds=None, rate=NAN), SPEC, COMPARE)
    assert (decision.verdict, decision.reason) == (an.Verdict.INCONCLUSIVE, "NoData")
    assert decision.message == "errorRate is NaN"


def test_a_drift_score_not_recorded_yet_says_why():
    decision = an.decide(figures(drift=None), SPEC, COMPARE)
    assert (decision.verdict, decision.reason) == (an.Verdict.INCONCLUSIVE, "NoData")
    assert decision.message.startswith("driftScore is no data (the drift rule waits for")
    assert "driftMinWindowRows" in decision.message
