"""model-operator templates/prometheusrule.yaml: the operator's alerts, from files/rules/
(written by `make generate` from alerts/operator.rules.tmpl, read with tpl)."""

from __future__ import annotations

import re

import pytest
import yaml

from alerts import render as rules
from tests.support.charts import OPERATOR, find, one, render, template

pytestmark = pytest.mark.render

# the rules read the operator's scrape job: the chart asks for its ServiceMonitor with them
ON = {"prometheusRule": {"enabled": True}, "metrics": {"serviceMonitor": {"enabled": True}}}


def normalized(groups: list[dict]) -> list[dict]:
    """The rules with blanks dropped from their strings (the Helm flavour pads `{ ... }`)."""
    return [
        {k: re.sub(r"\s+", "", v) if isinstance(v, str) else v for k, v in r.items()}
        for g in groups
        for r in g["rules"]
    ]


def test_should_not_create_a_prometheus_rule_by_default() -> None:
    assert not find(render(OPERATOR), "PrometheusRule")


def test_should_skip_the_prometheus_rule_without_the_api() -> None:
    assert not find(render(OPERATOR, ON, api_versions=[]), "PrometheusRule")


def test_should_carry_the_operator_alerts_scoped_to_the_release() -> None:
    rule = one(render(OPERATOR, ON), "PrometheusRule")
    plain = yaml.safe_load(rules.render_rules(
        {"operatorSelector": 'namespace="models", job="demo-model-operator-metrics"'},
        operator=True,
    ))  # fmt: skip

    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert normalized(rule["spec"]["groups"]) == normalized(plain["groups"])
    down = {r["alert"]: r for r in rule["spec"]["groups"][0]["rules"]}["ModelOperatorDown"]
    assert 'job="demo-model-operator-metrics"' in down["expr"]


def test_should_template_the_parameters() -> None:
    values = {**ON, "prometheusRule": {"enabled": True, "params": {"rolloutStuckFor": "7m"}}}
    rule = one(render(OPERATOR, values), "PrometheusRule")
    stuck = {r["alert"]: r for r in rule["spec"]["groups"][0]["rules"]}["ModelRolloutStuck"]

    assert stuck["for"] == "7m"


@pytest.mark.parametrize(
    "metrics",
    [
        {"serviceMonitor": {"enabled": False}},
        {"service": {"enabled": False}, "serviceMonitor": {"enabled": True}},
    ],
    ids=["no-servicemonitor", "no-service"],
)
def test_should_refuse_the_rules_without_the_scrape_they_read(metrics: dict) -> None:
    err = template(
        OPERATOR, {"prometheusRule": {"enabled": True}, "metrics": metrics}, expect_failure=True
    )

    assert (
        "prometheusRule.enabled needs metrics.service.enabled and metrics.serviceMonitor.enabled"
        in err
    )


def test_the_service_monitor_keeps_the_model_deployment_s_namespace() -> None:
    objs = render(OPERATOR, {"metrics": {"serviceMonitor": {"enabled": True}}})

    assert one(objs, "ServiceMonitor")["spec"]["endpoints"][0]["honorLabels"] is True
