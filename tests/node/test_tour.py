"""The user's tour on the real node (issue 15), with prometheus-operator for real.

A rig whose only node is real (tests/node/conftest.py). devstack.prometheus_operator runs
prometheus-operator in-cluster as kube-prometheus-stack does, with a `Prometheus` and an
`Alertmanager` whose specs (selectors among them) come from
deploy/kube-prometheus-stack-values.yaml. Nothing in this module writes a scrape
configuration: the chart's ServiceMonitor and PrometheusRule are what configure Prometheus.
The images of the monitoring stack are local stand-ins around the real binaries (the
module's docstring there says why).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
import yaml
from sklearn.datasets import load_diabetes, load_wine

from devstack.cluster import Cluster
from devstack.node import RealNode
from devstack.paths import MODELS_ROOT, RULES, SERVICE_CHART
from devstack.prometheus_operator import MonitoringStack
from modelops_operator import constants
from modelops_service.card import read_card
from tests.monitoring import promql
from tests.node.test_service_on_node import LOAD

pytestmark = pytest.mark.node

NS = "tour"
MODELS = {"wine": load_wine, "diabetes": load_diabetes}  # a classifier and a regressor
# What the canary analysis reads (operator/modelops_operator/analysis.py): class shares for
# a classifier, the prediction mean for a regressor, the rest for both.
ANALYSIS_RULES = (
    constants.RULE_REQUESTS,
    constants.RULE_ERROR_RATIO,
    constants.RULE_LATENCY_P95,
    constants.RULE_DRIFT,
    constants.RULE_CLASS_SHARE,
    constants.RULE_PREDICTION_MEAN,
)
# Series this rig does not serve: no kube-state-metrics is built (issue 15 lists it as left).
NOT_SERVED = ("kube_",)
DATA_TIMEOUT = 240.0  # 15s scrapes and evaluations (the kps values), then 1m rates


def fullname(model: str) -> str:
    return f"{model}-model-service"


def instances(model: str, n: int = 40) -> list[dict[str, float]]:
    """Rows of the model's data set inside its training range (the service refuses others)."""
    card = read_card(MODELS_ROOT / model / "1")
    data = MODELS[model]().data
    lo, hi = np.array([f.min for f in card.features]), np.array([f.max for f in card.features])
    rows = data[((data >= lo) & (data <= hi)).all(axis=1)][:n]
    return [dict(zip(card.feature_names, map(float, r), strict=True)) for r in rows]


def install(cluster: Cluster, model: str) -> None:
    """`helm install` of charts/model-service for version 1 of ``model`` (in the image)."""
    card = read_card(MODELS_ROOT / model / "1")
    cluster.helm(
        "install", model, SERVICE_CHART, "-n", NS,
        "--set", f"model.name={model}", "--set", "model.version=1",
        "--set", f"model.artifact=/models/{model}/1", "--set", f"model.sha256={card.sha256}",
    )  # fmt: skip
    cluster.kubectl(
        "rollout", "status", f"deployment/{fullname(model)}", "-n", NS, "--timeout=240s"
    )


@contextlib.contextmanager
def traffic(cluster: Cluster, node: RealNode, rate: float = 10) -> Iterator[dict]:
    """tests/node/load.py for each model, inside the node's namespace, through the Services'
    ClusterIPs; on exit the dict holds each summary."""
    procs = {}
    for model in MODELS:
        ip = cluster.get("service", fullname(model), "-n", NS)["spec"]["clusterIP"]
        body = json.dumps(instances(model))
        argv = node.in_netns(
            sys.executable, LOAD, f"http://{ip}:8080", body, "--rate", rate, "--seconds", 600
        )
        procs[model] = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    summaries: dict = {}
    try:
        yield summaries
    finally:
        for model, proc in procs.items():
            proc.terminate()
            out, _ = proc.communicate(timeout=30)
            summaries[model] = json.loads(out)


@pytest.fixture(scope="module")
def stack(node_rig: tuple[Cluster, RealNode]) -> MonitoringStack:
    cluster, node = node_rig
    return MonitoringStack.install(cluster, node)


@pytest.fixture(scope="module")
def show1(node_rig: tuple[Cluster, RealNode], stack: MonitoringStack) -> dict:
    """Both models installed by the chart, under traffic until every analysis rule and
    every dashboard query this rig can serve has data."""
    cluster, node = node_rig
    cluster.create_namespace(NS)
    for model in MODELS:
        install(cluster, model)
    prom = stack.prometheus()
    sel = f'{{namespace="{NS}"}}'
    with traffic(cluster, node) as load:
        figures = {r: prom.wait_for(f"{r}{sel}", timeout=DATA_TIMEOUT) for r in ANALYSIS_RULES}
        queries = promql.dashboard_queries()
        analyses = promql.analyse(promql.expand_grafana(q.expr) for q in queries)
        dashboards, not_served = {}, []
        for q, a in zip(queries, analyses, strict=True):
            if any(m.startswith(NOT_SERVED) for m in a.metrics):
                not_served.append(f"{q.where}: {a.metrics}")
                continue
            expr = promql.expand_grafana(q.expr)
            try:
                dashboards[f"{q.source}: {q.where}"] = prom.wait_for(expr, timeout=90)
            except TimeoutError:
                dashboards[f"{q.source}: {q.where}"] = []
        targets, rules = prom.targets(), prom.rules()
        info = prom.query(f"model_info{sel}")
    print(f"\ndashboard queries not served on this rig (no kube-state-metrics): {not_served}")
    return {
        "load": load,
        "figures": figures,
        "dashboards": dashboards,
        "targets": targets,
        "rules": rules,
        "info": info,
    }


# --- show 1 ---------------------------------------------------------------------


def test_the_charts_servicemonitor_is_a_target_that_is_up_with_the_modelops_labels(show1):
    ours = [t for t in show1["targets"] if t["labels"].get("namespace") == NS]
    assert {t["labels"]["job"] for t in ours} == {fullname(m) for m in MODELS}, ours
    assert all(t["health"] == "up" for t in ours), ours
    # made by prometheus-operator from the ServiceMonitor, not by hand
    assert all(t["scrapePool"].startswith(f"serviceMonitor/{NS}/") for t in ours), ours
    labels = {
        (s["metric"]["modelops_io_model"], s["metric"]["modelops_io_version"],
         s["metric"]["modelops_io_track"])
        for s in show1["info"]
    }  # fmt: skip
    assert labels == {(m, "1", "stable") for m in MODELS}, show1["info"]


def test_the_charts_rule_groups_are_loaded_and_healthy(show1):
    groups = [g for g in show1["rules"] if f"/{NS}-" in g["file"]]
    assert groups, [g["file"] for g in show1["rules"]]
    names = {g["name"] for g in groups}
    expected = {g["name"] for g in yaml.safe_load(RULES.read_text())["groups"]}
    assert expected <= names, (expected, names)
    bad = [
        (r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r["health"] == "err"
    ]
    assert bad == []


def test_every_recording_rule_the_analysis_reads_has_data_under_traffic(show1):
    for rule, samples in show1["figures"].items():
        assert samples, rule
        assert all(s["metric"]["namespace"] == NS for s in samples), rule
        assert all(np.isfinite(s["value"]) for s in samples), (rule, samples)
    requests = {s["metric"]["model"]: s["value"] for s in show1["figures"][constants.RULE_REQUESTS]}
    assert set(requests) == set(MODELS)
    assert all(v > 0 for v in requests.values()), requests
    for model, summary in show1["load"].items():
        assert summary["ok"] > 100, (model, summary)
        assert summary["failed"] == 0, (model, summary)


def test_every_dashboard_query_the_rig_can_serve_returns_data(show1):
    empty = [where for where, samples in show1["dashboards"].items() if not samples]
    assert empty == []
    # the cAdvisor panels too: the kubelet Service the operator maintains is scraped
    cadvisor = [w for w in show1["dashboards"] if "Memory vs limit [A]" in w]
    assert cadvisor
    assert all(show1["dashboards"][w] for w in cadvisor)
