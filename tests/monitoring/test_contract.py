"""Contract: every PromQL expression of the rules and the dashboards parses (with Prometheus'
own parser) and names only metrics the service's catalog defines, standard series (up, kube_*,
container_*, process_*, ...), recording rules of the recording-rule catalog, or the
operator's own metrics; and the rules record exactly the recording-rule catalog.
"""

from __future__ import annotations

import dataclasses

import pytest

from modelops_service import catalog, recording_rules
from tests.support import promql

pytestmark = pytest.mark.render

DASHBOARDS = "charts/model-service/files/dashboards"


@pytest.fixture(scope="module")
def queries() -> list[promql.Query]:
    found = promql.rule_queries() + promql.dashboard_queries()
    sources = {q.source for q in found}
    # all three dashboards and the rule file are read (a glob that finds nothing proves nothing)
    assert sources == {
        "alerts/modelops.rules.yaml",
        f"{DASHBOARDS}/modelops-overview.json",
        f"{DASHBOARDS}/modelops-model.json",
        f"{DASHBOARDS}/modelops-rollout.json",
    }
    return found


@pytest.fixture(scope="module")
def analyses(queries: list[promql.Query]) -> list[promql.Analysis]:
    return promql.analyse(promql.expand_grafana(q.expr) for q in queries)


@pytest.fixture(scope="module")
def extra_names() -> set[str]:
    return set(recording_rules.recorded_names()) | promql.operator_series()


def test_the_parser_is_prometheus_own() -> None:
    good, bad = promql.analyse(['sum by (le) (rate(x_bucket{a="b"}[5m]))', "rate(x[5m]"])
    assert good.error == ""
    assert good.metrics == ("x_bucket",)
    assert "unclosed left parenthesis" in bad.error


def test_every_expression_parses(queries, analyses) -> None:
    pairs = zip(queries, analyses, strict=True)
    errors = [f"{q.source}: {q.where}: {a.error}" for q, a in pairs if a.error]
    assert not errors, "\n".join(errors)
    assert len(queries) > 80


def test_no_expression_picks_metrics_by_a_name_pattern(queries, analyses) -> None:
    pairs = zip(queries, analyses, strict=True)
    found = [f"{q.where}: {a.name_matchers}" for q, a in pairs if a.name_matchers]
    assert not found, "a __name__ regex cannot be checked against the catalog:\n" + "\n".join(found)


def test_every_metric_comes_from_the_catalog(queries, analyses, extra_names) -> None:
    problems = promql.unknown_metrics(queries, analyses, catalog.catalog_series(), extra_names)
    assert not problems, "\n".join(problems)


def test_every_model_metric_of_the_catalog_is_on_a_dashboard(queries, analyses) -> None:
    on_dashboards = {
        m
        for q, a in zip(queries, analyses, strict=True)
        if q.source.startswith(DASHBOARDS)
        for m in a.metrics
    }
    missing = [m.name for m in catalog.ALL_METRICS if not set(m.series_names) & on_dashboards]
    assert not missing, f"catalog metrics no dashboard shows: {missing}"


@pytest.mark.parametrize(
    "metric", [catalog.FEATURE_DRIFT, catalog.HTTP_REQUESTS, catalog.PREDICTION_CONFIDENCE]
)
def test_a_metric_renamed_in_the_catalog_breaks_the_contract(
    queries, analyses, extra_names, metric
) -> None:
    renamed = dataclasses.replace(metric, name=metric.name.replace("_", "_renamed_", 1))
    metrics = [renamed if m is metric else m for m in catalog.ALL_METRICS]
    series = frozenset(s for m in metrics for s in m.series_names)
    problems = promql.unknown_metrics(queries, analyses, series, extra_names)
    assert problems
    assert all(any(s in p for s in metric.series_names) for p in problems)
    assert any(p.startswith("alerts/") for p in problems)
    assert any(p.startswith(DASHBOARDS) for p in problems)


def test_the_rules_record_exactly_the_recording_rule_catalog() -> None:
    assert promql.recorded_names() == recording_rules.recorded_names()


def test_a_recording_rule_missing_from_the_catalog_breaks_the_contract(queries, analyses) -> None:
    dropped = recording_rules.ERROR_RATIO_RATE1M.name
    extra = (set(recording_rules.recorded_names()) - {dropped}) | promql.operator_series()
    problems = promql.unknown_metrics(queries, analyses, catalog.catalog_series(), extra)
    assert problems
    assert all(dropped in p for p in problems)
    assert any(p.startswith(DASHBOARDS) for p in problems)


def test_grafana_variables_expand_like_grafana() -> None:
    expr = 'rate(x{ns=~"$namespace", v=~"${version}", m=~"[[model]]"}[$__rate_interval])'
    assert promql.expand_grafana(expr, {"namespace": "prod"}) == (
        'rate(x{ns=~"prod", v=~".*", m=~".*"}[1m])'
    )
