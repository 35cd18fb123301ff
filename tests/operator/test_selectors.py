"""Which Prometheus / Grafana sidecar picks up our objects, and the labels to add."""

from __future__ import annotations

import pytest

from modelops_operator.selectors import (
    explain,
    grafana_sidecars,
    labels_to_match,
    monitoring_report,
    needed_labels,
    selector_matches,
)


def prom(name="kps", ns="monitoring", **spec):
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def expr(op, *values):
    return {"matchExpressions": [{"key": "t", "operator": op, "values": list(values)}]}


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({}, {}, True),
        (None, {"a": "1"}, True),
        ({"matchLabels": {"release": "kps"}}, {"release": "kps"}, True),
        ({"matchLabels": {"release": "kps"}}, {"release": "other"}, False),
        (expr("In", "a", "b"), {"t": "b"}, True),
        (expr("In", "a"), {}, False),
        (expr("NotIn", "a"), {}, True),
        (expr("NotIn", "a"), {"t": "a"}, False),
        (expr("Exists"), {"t": ""}, True),
        (expr("DoesNotExist"), {"t": "x"}, False),
    ],
)  # fmt: skip
def test_selector_matches(selector, labels, matches):
    assert selector_matches(selector, labels) is matches


KPS = prom(
    serviceMonitorSelector={"matchLabels": {"release": "kps"}},
    serviceMonitorNamespaceSelector={},
    ruleSelector={"matchLabels": {"release": "kps", "role": "alert-rules"}},
    ruleNamespaceSelector={"matchLabels": {"team": "ml"}},
)
NS = {"models": {"team": "ml"}, "other": {}}


@pytest.mark.parametrize(
    ("p", "kind", "labels", "ns", "selected", "why"),
    [
        (KPS, "ServiceMonitor", {"release": "kps"}, "models", True, "serviceMonitorSelector"),
        (KPS, "ServiceMonitor", {}, "models", False, "does not match labels"),
        (KPS, "PrometheusRule", {"release": "kps", "role": "alert-rules"}, "other", False,
         "does not match namespace other"),
        (prom(serviceMonitorNamespaceSelector={}), "ServiceMonitor", {}, "models", False,
         "serviceMonitorSelector is null"),
        (prom(serviceMonitorSelector={}), "ServiceMonitor", {}, "models", False,
         "only namespace monitoring"),
        (prom(serviceMonitorSelector={}), "ServiceMonitor", {}, "monitoring", True, "selects all"),
    ],
)  # fmt: skip
def test_explain(p, kind, labels, ns, selected, why):
    ns_labels = {**NS, "monitoring": {}}
    sel = explain(p, kind, labels, ns, ns_labels)
    assert sel.selected is selected
    assert why in sel.why
    assert sel.prometheus == f"{p['metadata']['namespace']}/{p['metadata']['name']}"


def test_labels_to_match():
    assert labels_to_match({"matchLabels": {"release": "kps"}}) == {"release": "kps"}
    assert labels_to_match(
        {"matchExpressions": [{"key": "r", "operator": "In", "values": ["b", "a"]}]}
    ) == {"r": "a"}
    assert labels_to_match(None) is None
    # a selector no label set can satisfy
    assert (
        labels_to_match({"matchExpressions": [{"key": "r", "operator": "In", "values": []}]})
        is None
    )


def test_needed_labels_only_from_prometheus_watching_the_namespace():
    blind = prom("blind", serviceMonitorSelector={"matchLabels": {"x": "y"}})  # own ns only
    assert needed_labels([KPS, blind], "ServiceMonitor", "models", NS) == {"release": "kps"}
    assert needed_labels([KPS], "PrometheusRule", "models", NS) == {
        "release": "kps",
        "role": "alert-rules",
    }
    assert needed_labels([KPS], "PrometheusRule", "other", NS) == {}


def grafana(env, name="grafana-sc-dashboard"):
    return {
        "metadata": {"name": "kps-grafana", "namespace": "monitoring"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "grafana"},
                        {"name": name, "env": [{"name": k, "value": v} for k, v in env.items()]},
                    ]
                }
            }
        },
    }


def test_grafana_sidecar_discovery():
    (sc,) = grafana_sidecars([grafana({"LABEL": "grafana_dashboard", "LABEL_VALUE": "1",
                                       "NAMESPACE": "ALL"})])  # fmt: skip
    assert (sc.label, sc.label_value, sc.namespaces) == ("grafana_dashboard", "1", None)
    assert sc.selects({"grafana_dashboard": "1"})
    assert not sc.selects({"grafana_dashboard": "0"})
    (own,) = grafana_sidecars([grafana({"LABEL": "dash"})])
    assert own.namespaces == ("monitoring",)
    assert own.label_value is None
    assert not own.watches("models")
    assert grafana_sidecars([grafana({"LABEL": "x"}, name="grafana-sc-datasources")]) == []


def test_monitoring_report():
    missing = monitoring_report(missing_kinds=["ServiceMonitor"], selections=[])
    assert (missing.ok, missing.reason) == (False, "MonitoringCRDsMissing")
    assert "ServiceMonitor" in missing.message
    sel_ok = explain(KPS, "ServiceMonitor", {"release": "kps"}, "models", NS)
    sel_bad = explain(KPS, "PrometheusRule", {}, "models", NS)
    report = monitoring_report(
        missing_kinds=[],
        selections=[sel_ok, sel_bad],
        enabled_kinds=["ServiceMonitor", "PrometheusRule"],
    )
    assert (report.ok, report.reason) == (False, "NotSelected")
    assert "PrometheusRule: monitoring/kps ignores it (ruleSelector" in report.message
    assert "ServiceMonitor: monitoring/kps selects it" in report.message
    good = monitoring_report(
        missing_kinds=[], selections=[sel_ok], enabled_kinds=["ServiceMonitor"]
    )
    assert (good.ok, good.reason) == (True, "Applied")
