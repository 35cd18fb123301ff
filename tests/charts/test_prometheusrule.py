"""templates/prometheusrule.yaml: the rule groups of alerts/, from files/rules/ (written by
`make generate`, read with tpl)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.support.charts import SERVICE, chart_copy, find, one, render, run
from tests.support.repo import tool

pytestmark = pytest.mark.render

PLAIN_RULES = """\
groups:
  - name: fixture.recording
    rules:
      - record: model_version:requests:rate1m
        expr: sum by (namespace, model, version) (rate(http_requests_total[1m]))
  - name: fixture.alerts
    rules:
      - alert: FixtureDown
        expr: up == 0
        for: 1m
        labels: {severity: critical}
        annotations:
          summary: "{{`{{ $labels.instance }}`}} is down ({{`{{ $value }}`}})"
"""

TEMPLATED_RULES = """\
groups:
  - name: fixture.templated
    rules:
      - alert: FixtureErrors
        expr: >-
          model_version:error_ratio:rate1m{
          {{- tpl .Values.monitoring.prometheusRule.params.metricSelector $ -}}
          } > {{ .Values.monitoring.prometheusRule.params.errorRatioThreshold }}
        annotations:
          summary: "{{`{{ $labels.model }}`}} errs in {{ .Release.Namespace }}"
"""


@pytest.fixture
def fixture_chart(tmp_path: Path) -> Path:
    """The chart with two fixture rule files instead of the generated one: one without Helm
    expressions (but Prometheus templates, escaped) and one that reads the params."""
    chart = chart_copy(tmp_path)
    rules = chart / "files" / "rules"
    shutil.rmtree(rules, ignore_errors=True)
    rules.mkdir(parents=True)
    (rules / "fixture.yaml").write_text(PLAIN_RULES)
    (rules / "templated.yaml").write_text(TEMPLATED_RULES)
    return chart


PARAMS = {"metricSelector": 'model!=""', "errorRatioThreshold": 0.05}


def rule(chart: Path, values: dict | None = None) -> dict:
    base = {"monitoring": {"prometheusRule": {"params": PARAMS}}}
    if values:
        base["monitoring"]["prometheusRule"].update(values)
    return one(render(chart, base), "PrometheusRule")


def test_should_carry_rules_without_helm_expressions_unchanged(fixture_chart: Path) -> None:
    groups = {g["name"]: g for g in rule(fixture_chart)["spec"]["groups"]}
    plain = yaml.safe_load(PLAIN_RULES)["groups"]

    assert groups["fixture.recording"] == plain[0]
    alert = groups["fixture.alerts"]["rules"][0]
    assert alert["annotations"]["summary"] == "{{ $labels.instance }} is down ({{ $value }})"
    assert {k: v for k, v in alert.items() if k != "annotations"} == {
        k: v for k, v in plain[1]["rules"][0].items() if k != "annotations"
    }


def test_should_render_templated_rule_files_with_the_params(fixture_chart: Path) -> None:
    values = {
        "params": {**PARAMS, "metricSelector": 'namespace="{{ .Release.Namespace }}"'},
    }
    groups = {g["name"]: g for g in rule(fixture_chart, values)["spec"]["groups"]}
    alert = groups["fixture.templated"]["rules"][0]

    assert alert["expr"] == 'model_version:error_ratio:rate1m{namespace="models"} > 0.05'
    assert alert["annotations"]["summary"] == "{{ $labels.model }} errs in models"


def test_should_carry_the_labels_kube_prometheus_stack_selects(fixture_chart: Path) -> None:
    labels = rule(fixture_chart, {"labels": {"release": "kps"}})["metadata"]["labels"]

    assert labels["release"] == "kps"
    assert labels["app.kubernetes.io/instance"] == "demo"


def test_should_not_render_when_disabled(fixture_chart: Path) -> None:
    values = {"monitoring": {"prometheusRule": {"enabled": False, "params": PARAMS}}}

    assert not find(render(fixture_chart, values), "PrometheusRule")


def test_should_not_render_an_empty_rule_without_rule_files(tmp_path: Path) -> None:
    chart = chart_copy(tmp_path)
    shutil.rmtree(chart / "files" / "rules", ignore_errors=True)

    assert not find(render(chart), "PrometheusRule")


@pytest.mark.parametrize("source", ["fixture", "repo"])
def test_rendered_rules_pass_promtool_check_rules(
    source: str, fixture_chart: Path, tmp_path: Path
) -> None:
    if source == "fixture":
        groups = rule(fixture_chart)["spec"]["groups"]
    else:
        objs = render(SERVICE)
        rules = find(objs, "PrometheusRule")
        has_sources = any((SERVICE / "files" / "rules").glob("*.yaml"))
        assert bool(rules) == has_sources
        if not rules:
            return
        groups = rules[0]["spec"]["groups"]
    rule_file = tmp_path / "rules.yaml"
    rule_file.write_text(yaml.safe_dump({"groups": groups}))

    proc = run([tool("promtool"), "check", "rules", rule_file])

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr
