"""deploy/kube-prometheus-stack-values.yaml selects what charts/model-service renders.

kube-prometheus-stack turns prometheus.prometheusSpec.<kind>Selector into the selector of
its Prometheus object: the selector when one is given, else `release: <its release>` when
<kind>SelectorNilUsesHelmValues is true (the chart's default), else everything. The
Grafana sidecar loads ConfigMaps whose `label` has `labelValue`, from `searchNamespace`.
These tests apply that logic to the labels the chart renders.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.repo import ROOT, run, tool

VALUES = ROOT / "deploy" / "kube-prometheus-stack-values.yaml"
CHART = ROOT / "charts" / "model-service"
KPS_RELEASE = "kube-prometheus-stack"  # the release name `make up` installs
# prometheusSpec field prefix of each monitoring kind the chart may render
SELECTORS = {"ServiceMonitor": "serviceMonitor", "PrometheusRule": "rule"}


def effective_selector(values: dict, prefix: str, release: str) -> dict:
    spec = (values.get("prometheus") or {}).get("prometheusSpec") or {}
    selector = spec.get(f"{prefix}Selector") or {}
    if selector:
        return selector
    if spec.get(f"{prefix}SelectorNilUsesHelmValues", True):
        return {"matchLabels": {"release": release}}
    return {}


def selects(selector: dict, labels: dict[str, str]) -> bool:
    """metav1.LabelSelector semantics; the empty selector selects everything."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, vals = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in vals,
            "NotIn": key not in labels or labels[key] not in vals,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def namespace_selected(values: dict, prefix: str, namespace: str) -> bool:
    spec = values["prometheus"]["prometheusSpec"]
    ns_selector = spec.get(f"{prefix}NamespaceSelector")
    # kube-prometheus-stack: {} = every namespace; absent/nil = only its own namespace.
    if ns_selector is None:
        return namespace == "monitoring"
    return selects(ns_selector, {"kubernetes.io/metadata.name": namespace})


def sidecar(values: dict) -> dict:
    return values["grafana"]["sidecar"]["dashboards"]


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load(VALUES.read_text())


# --- the selector logic itself ---------------------------------------------------------


def test_chart_defaults_select_only_their_own_release():
    """Control: without our values, kube-prometheus-stack would miss an unlabelled object."""
    labels = {"app.kubernetes.io/name": "model-service"}
    assert not selects(effective_selector({}, "serviceMonitor", KPS_RELEASE), labels)
    assert selects(
        effective_selector({}, "serviceMonitor", KPS_RELEASE), {**labels, "release": KPS_RELEASE}
    )
    assert not selects({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, labels)


@pytest.mark.parametrize("prefix", ["serviceMonitor", "podMonitor", "rule", "probe"])
def test_values_select_every_object_in_every_namespace(values, prefix):
    spec = values["prometheus"]["prometheusSpec"]
    assert spec[f"{prefix}SelectorNilUsesHelmValues"] is False
    for release in (KPS_RELEASE, "some-other-release"):
        selector = effective_selector(values, prefix, release)
        assert selects(selector, {}), f"{prefix}: {selector} misses an object without labels"
    for namespace in ("models", "default", "team-a"):
        assert namespace_selected(values, prefix, namespace)


def test_grafana_sidecar_loads_labelled_dashboards_from_all_namespaces_into_folders(values):
    dashboards = sidecar(values)
    assert dashboards["enabled"] is True
    assert dashboards["label"] == "grafana_dashboard"
    assert dashboards["labelValue"] == "1"
    assert dashboards["searchNamespace"] == "ALL"
    assert dashboards["folderAnnotation"]
    assert dashboards["provider"]["foldersFromFilesStructure"] is True


def test_chart_defaults_agree_with_the_sidecar(values):
    chart = yaml.safe_load((CHART / "values.yaml").read_text())["monitoring"]["dashboards"]
    dashboards = sidecar(values)
    assert chart["label"] == dashboards["label"]
    assert str(chart["labelValue"]) == dashboards["labelValue"]
    assert chart["folderAnnotation"] == dashboards["folderAnnotation"]
    assert chart["folder"]


# --- against what helm renders ----------------------------------------------------------


def render(chart: Path, *args: str) -> list[dict]:
    proc = run(
        [
            tool("helm"),
            "template",
            "wine",
            str(chart),
            "--namespace",
            "models",
            "--api-versions",
            "monitoring.coreos.com/v1",
            *args,
        ]
    )
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def assert_selected(values: dict, docs: list[dict]) -> dict[str, int]:
    seen = {"ServiceMonitor": 0, "PrometheusRule": 0, "dashboard": 0}
    dashboards = sidecar(values)
    for doc in docs:
        meta = doc["metadata"]
        labels = meta.get("labels") or {}
        if doc["kind"] in SELECTORS:
            prefix = SELECTORS[doc["kind"]]
            assert selects(effective_selector(values, prefix, KPS_RELEASE), labels), meta
            assert namespace_selected(values, prefix, meta["namespace"]), meta
            seen[doc["kind"]] += 1
        elif doc["kind"] == "ConfigMap" and dashboards["label"] in labels:
            assert labels[dashboards["label"]] == dashboards["labelValue"], meta
            assert (meta.get("annotations") or {}).get(dashboards["folderAnnotation"]), meta
            seen["dashboard"] += 1
    return seen


@pytest.mark.render
def test_kps_selects_the_monitoring_objects_the_chart_renders(values):
    seen = assert_selected(values, render(CHART))
    dashboards = sorted((CHART / "files" / "dashboards").glob("*.json"))
    assert dashboards, "the chart carries the dashboards of dashboards/"
    assert seen == {"ServiceMonitor": 1, "PrometheusRule": 1, "dashboard": len(dashboards)}


@pytest.mark.render
def test_kps_selects_them_without_the_release_label(values):
    """An install that drops `release: ...` (or names another release) is still seen."""
    docs = render(
        CHART,
        "--set-json",
        'monitoring.serviceMonitor.labels={"release":"another"}',
        "--set",
        "monitoring.prometheusRule.labels.release=null",
        "--set",
        "monitoring.dashboards.namespace=grafana-elsewhere",
    )
    seen = assert_selected(values, docs)
    assert seen["ServiceMonitor"] == 1
    assert seen["PrometheusRule"] == 1
    assert seen["dashboard"] >= 1
    # and the control: kube-prometheus-stack's defaults would have missed them
    for kind, prefix in SELECTORS.items():
        (obj,) = [d for d in docs if d["kind"] == kind]
        assert not selects(effective_selector({}, prefix, KPS_RELEASE), obj["metadata"]["labels"])
