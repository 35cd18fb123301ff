"""The canary analysis compares the two versions over the same seconds, on a real Prometheus.

The real service for wine 1 (stable) and wine 3 (v1 with a few more boosting rounds: the
same predictions, so the truth is "no shift"), a real Prometheus scraping both with the
recording rules of alerts/. Traffic with a structure in time, as real traffic has: first
the stable alone gets wines of class 0 (as if the canary's pods were still starting), then
both get the same wines of classes 1 and 2. Over the whole window the stable's class shares
hold class 0 and the canary's cannot: comparing those two spans is the false rollback this
module guards against. The analysis must compare only the seconds both served.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.canary import Traffic, dataset_rows, start_prometheus
from devstack.prometheus import Target
from devstack.service_process import ServiceProcess, demo_model_dir, start_service
from modelops_operator import analysis as an
from modelops_operator.constants import RULE_CLASS_SHARE
from modelops_operator.models import Analysis, Compare
from modelops_operator.prom import PrometheusClient

pytestmark = pytest.mark.process

NAMESPACE = "compare"
ALONE_SECONDS = 25  # the stable alone, class 0
WINDOW = 120  # the analysis window: both phases


@pytest.fixture(scope="module")
def analyzed(tmp_path_factory) -> Iterator[tuple[dict, dict]]:
    """(the analysis' query results, naive class shares by side) once both phases have run."""
    env = {"MODELOPS_DRIFT_MIN_ROWS": "50"}
    workdir: Path = tmp_path_factory.mktemp("compare")
    stable: ServiceProcess = start_service(demo_model_dir("wine", "1"), env=env, log_dir=workdir)
    prom = start_prometheus(workdir, [stable.url], NAMESPACE)
    canary: ServiceProcess | None = None
    try:
        rows = dataset_rows("wine")  # ordered by class: 59 of class 0, then 71 and 48
        with Traffic([stable.url], rows[:59]):
            # meanwhile the canary starts; Prometheus finds it once it serves, as a Ready pod
            canary = start_service(demo_model_dir("wine", "3"), env=env, log_dir=workdir)
            time.sleep(ALONE_SECONDS)
        prom.set_targets(Target(u.removeprefix("http://"), {"namespace": NAMESPACE})
                         for u in (stable.url, canary.url))  # fmt: skip
        queries = an.build_queries(NAMESPACE, "wine", "3", "wine", "1", WINDOW)
        client = PrometheusClient()  # the operator's own client, as the analysis queries

        def query(promql: str) -> list[dict]:
            return client.query(prom.url, promql)

        with Traffic([stable.url, canary.url], rows[59:]):
            # until both have served a whole rule range and the seconds both served hold
            # enough requests (the rule range is 1m; bounded by the fixture's timeout)
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline:
                shared = an.scalar_from_vector(query(queries[an.SHARED_REQUESTS]))
                if shared is not None and shared >= 150:
                    break
                time.sleep(2)
            results = {key: query(promql) for key, promql in queries.items()}
            naive = {
                side: an.shares_from_vector(query(
                    f'avg by (class) (avg_over_time({RULE_CLASS_SHARE}{{namespace="{NAMESPACE}",'
                    f'version="{version}"}}[{WINDOW}s]))'))
                for side, version in (("canary", "3"), ("stable", "1"))
            }  # fmt: skip
        yield results, naive
    finally:
        prom.stop()
        if canary is not None:
            canary.stop()
        stable.stop()


def test_the_whole_window_would_compare_other_wines(analyzed):
    # the trap is set: over the whole window the stable's class 0 share is large, the
    # canary's nothing, so comparing the two spans would see a large shift
    _, naive = analyzed
    assert naive["stable"].get("0", 0) > 0.2, naive
    assert 0 <= naive["canary"].get("0", 0) < 0.05, naive
    assert an.class_distance(naive["canary"], naive["stable"]) > 0.2


def test_the_comparison_covers_the_seconds_both_served_and_passes(analyzed):
    results, _ = analyzed
    figures = an.figures_from(results)
    # the seconds compared: a part of the window, after both had served a whole 1m
    assert 0 < figures[an.SHARED_SECONDS] < WINDOW - 60 + 5, figures
    assert figures[an.SHARED_REQUESTS] >= 150
    assert figures[an.STABLE_REQUESTS] >= 150
    # the same rows to both in those seconds: about the same requests each
    assert figures[an.SHARED_REQUESTS] == pytest.approx(figures[an.STABLE_REQUESTS], rel=0.2)
    # the canary's own figures cover more: its whole window
    assert figures[an.REQUESTS] >= figures[an.SHARED_REQUESTS]
    # wine 3 predicts as wine 1 on the same wines: no shift in the seconds both served
    assert figures[an.PREDICTION_SHIFT] < 0.05, figures
    decision = an.decide(figures, Analysis(minRequests=100, maxDriftScore=None), Compare())
    assert decision.verdict == an.Verdict.PASS, decision.message
    assert "predictionShift" in decision.message
