"""The user's tour on the real node (issue 15), with prometheus-operator for real.

A rig whose only node is real (tests/node/conftest.py). devstack.prometheus_operator runs
prometheus-operator in-cluster as kube-prometheus-stack does, with a `Prometheus` and an
`Alertmanager` whose specs (selectors among them) come from
deploy/kube-prometheus-stack-values.yaml. Nothing in this module writes a scrape
configuration: the chart's ServiceMonitor and PrometheusRule are what configure Prometheus.
The images of the monitoring stack are local stand-ins around the real binaries (the
module's docstring there says why). One of show 2's canaries goes through a Gateway:
Traefik (devstack/gateway.py) on the node, weighing the HTTPRoute the operator writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import urllib.request
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import yaml
from kubernetes.utils import parse_quantity
from prometheus_client.parser import text_string_to_metric_families

from devstack.cluster import Cluster
from devstack.gateway import Gateway, running_gateway
from devstack.images import build_images
from devstack.node import RealNode
from devstack.node_config import HOST_IP, NODE_NAME
from devstack.object_store import ObjectStore
from devstack.paths import MODELS_ROOT, OPERATOR_CHART, REPO_ROOT, RULES, SERVICE_CHART
from devstack.prometheus_operator import MonitoringStack
from modelops_operator import constants
from modelops_operator.analysis import window_seconds
from modelops_operator.metrics import RECONCILES
from modelops_operator.reasons import Reason, Result
from modelops_service.__main__ import EXIT_CONFIG
from modelops_service.card import read_card
from tests.support import node_load, promql
from tests.support import operator_rig as rig
from tests.support.routes import PINNED, STABLE_SVC, rule_of, traefik_has, weights_in
from tests.support.rows import instances
from tests.support.s3_fetch import prepare_fetch
from tests.support.webhook import Receiver

# The first test's setup starts the node, the monitoring stack and show 1's traffic: minutes
# on a quiet machine, many more on a loaded one.
pytestmark = [pytest.mark.node, pytest.mark.timeout(1800)]

NS = "tour"
MODELS = ("wine", "diabetes")  # a classifier and a regressor
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
APPLIES = {constants.RULE_CLASS_SHARE: {"wine"}, constants.RULE_PREDICTION_MEAN: {"diabetes"}}
# The series of the stack beside the service's own: the kubelet's cAdvisor (labelled by pod
# and container: the node's kubelet is told its containerd's socket) and kube-state-metrics.
STACK_SERIES = ("container_", "kube_")
# The operator's own series: there once it runs (show 2), asserted after its rollouts.
OPERATOR_SERIES = "modelops_operator_"
DATA_TIMEOUT = 240.0  # 15s scrapes and evaluations (the kps values), then 1m rates


def applies(rule: str) -> set[str]:
    return APPLIES.get(rule, set(MODELS))


def finite_for(samples: list[dict]) -> set[str]:
    """The models with a finite figure (NaN where a rule does not apply: no prediction mean
    for a classifier, no class share for a regressor)."""
    return {s["metric"]["model"] for s in samples if np.isfinite(s["value"])}


def panel_queries(keep: Callable[[set[str]], bool]) -> dict[str, str]:
    """The dashboards' queries (where -> PromQL) whose metric names ``keep`` accepts."""
    queries = promql.dashboard_queries()
    analyses = promql.analyse(promql.expand_grafana(q.expr) for q in queries)
    return {
        f"{q.source}: {q.where}": promql.expand_grafana(q.expr)
        for q, a in zip(queries, analyses, strict=True)
        if keep(set(a.metrics))
    }


def alerts_panel(metrics: set[str]) -> bool:
    """Data only while an alert fires: show 3."""
    return "ALERTS" in metrics


def operator_panel(metrics: set[str]) -> bool:
    """The operator's own series alone: there once it runs, after its rollouts (show 2)."""
    return all(m.startswith(OPERATOR_SERIES) for m in metrics)


def alert_panel_queries() -> list[str]:
    return list(panel_queries(alerts_panel).values())


def fullname(model: str) -> str:
    return f"{model}-model-service"


def install(cluster: Cluster, model: str, ns: str = NS, *args: str) -> None:
    """`helm install` of charts/model-service for version 1 of ``model`` (in the image); the
    caller waits for its rollout (several start side by side)."""
    card = read_card(MODELS_ROOT / model / "1")
    cluster.helm(
        "install", model, SERVICE_CHART, "-n", ns,
        "--set", f"model.name={model}", "--set", "model.version=1",
        "--set", f"model.artifact=/models/{model}/1", "--set", f"model.sha256={card.sha256}",
        *args,
    )  # fmt: skip


def rolled_out(cluster: Cluster, model: str, ns: str = NS) -> None:
    cluster.kubectl(
        "rollout", "status", f"deployment/{fullname(model)}", "-n", ns, "--timeout=240s"
    )


def service_url(cluster: Cluster, node: RealNode, release: str, ns: str) -> str:
    """The ClusterIP URL of ``release``'s Service once kube-proxy routes it to a pod: a
    Deployment is rolled out before that (node.routes), and a load started in between
    counts connections refused against the test."""
    ip = cluster.get("service", fullname(release), "-n", ns)["spec"]["clusterIP"]
    rig.wait_for(lambda: node.routes(ip, 8080), f"kube-proxy routing {ns}/{release}", 60)
    return f"http://{ip}:8080"


def start_load(
    cluster: Cluster, node: RealNode, release: str, ns: str, rows: list[dict], rate: float
) -> subprocess.Popen:
    """tests/node/load.py inside the node's network namespace, through the Service of
    ``release`` (its ClusterIP), until terminated."""
    return node_load.start_load(node, service_url(cluster, node, release, ns), rows, rate, 1800)


def service_loads(
    cluster: Cluster, node: RealNode, targets: dict[str, str], rate: float = 10
) -> dict[str, subprocess.Popen]:
    """start_load of each target ("namespace/release" -> data set), its rows shaped like
    the training data."""
    procs = {}
    for target, model in targets.items():
        ns, _, release = target.partition("/")
        procs[target] = start_load(cluster, node, release, ns, instances(model), rate)
    return procs


@contextlib.contextmanager
def traffic(procs: dict[str, subprocess.Popen]) -> Iterator[dict]:
    """The loads ``procs`` (name -> load.py) until the block ends; then the dict holds each
    one's summary under its name."""
    summaries: dict = {}
    try:
        yield summaries
    finally:
        for target, proc in procs.items():
            proc.terminate()
            out, _ = proc.communicate(timeout=30)
            summaries[target] = json.loads(out)


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
    for model in MODELS:
        rolled_out(cluster, model)
    prom = stack.prometheus()
    sel = f'{{namespace="{NS}"}}'
    with traffic(service_loads(cluster, node, {f"{NS}/{m}": m for m in MODELS})) as load:
        figures = {
            r: prom.wait_for(
                f"{r}{sel}", lambda got, r=r: finite_for(got) == applies(r), DATA_TIMEOUT
            )
            for r in ANALYSIS_RULES
        }
        now = panel_queries(lambda m: not (alerts_panel(m) or operator_panel(m)))
        dashboards: dict[str, list] = {}
        for where, expr in now.items():
            try:
                dashboards[where] = prom.wait_for(expr, timeout=90)
            except TimeoutError:
                dashboards[where] = []
        targets, rules = prom.targets(), prom.rules()
        info = prom.query(f"model_info{sel}")
    # The node has two CPUs and a pod of the chart requests 0.1: show 2's canaries need room.
    for model in MODELS:
        cluster.helm("uninstall", model, "-n", NS, "--wait")
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
        assert all(s["metric"]["namespace"] == NS for s in samples), rule
        assert finite_for(samples) == applies(rule), (rule, samples)
    requests = {s["metric"]["model"]: s["value"] for s in show1["figures"][constants.RULE_REQUESTS]}
    assert set(requests) == set(MODELS)
    assert all(v > 0 for v in requests.values()), requests
    for model, summary in show1["load"].items():
        assert summary["ok"] > 100, (model, summary)
        assert summary["failed"] == 0, (model, summary)


def test_every_dashboard_query_the_rig_can_serve_returns_data(show1):
    empty = [where for where, samples in show1["dashboards"].items() if not samples]
    kubelet = [
        (t["scrapeUrl"], t["health"], t["lastError"])
        for t in show1["targets"]
        if t["labels"].get("job") == "kubelet"
    ]
    assert empty == []
    # the panels on cAdvisor's and kube-state-metrics' series among them (memory against
    # the limit, CPU throttling, restarts, replicas per track)
    stack = panel_queries(lambda m: any(n.startswith(STACK_SERIES) for n in m))
    assert len(stack) == 6, list(stack)
    assert stack.keys() <= show1["dashboards"].keys(), list(stack)
    # the kubelet Service the operator maintains is scraped, /metrics and /metrics/cadvisor
    assert sorted(url.rsplit("/", 1)[-1] for url, _, _ in kubelet) == ["cadvisor", "metrics"]
    assert all(health == "up" for _, health, _ in kubelet), kubelet


# --- the operator in-cluster: shows 2, 3, 4 and 5 -----------------------------------

OPERATOR_NS, OPERATOR_RELEASE = "modelops-system", "modelops"
MODELS_NS = "models"  # the examples' namespace
S3_NS = "models-s3"  # wine-from-s3.yaml's (its name is the failing wine's too)
GATEWAY_NS = "models-gateway"  # diabetes-gateway-canary.yaml's (its name is diabetes')
GATEWAY_EXAMPLE = "diabetes-gateway-canary.yaml"
GATEWAY_LOAD = f"{GATEWAY_NS}/diabetes through Traefik"
HOSTNAME = "models.example.com"  # the example route's hostname
# At the 10% step the canary must serve minRequests (50) in one analysis window (30 s).
GATEWAY_RATE = 40.0
SHARE_TOLERANCE = 4.0  # percentage points, at the 10% step
EXAMPLES = REPO_ROOT / "manifests" / "examples"
# The examples step every minute; the tour at the shortest window the analysis judges
# (analysis.window_seconds: two rule evaluations): the same verdicts, sooner.
STEP_INTERVAL = f"{window_seconds(0)}s"
CANARY_TIMEOUT = 600.0  # a failsafe: the gateway's 4 steps end in about 4 min on a quiet machine
ENDED = {Result.PROMOTED, Result.ROLLED_BACK, Result.ABORTED}


def example_objects(name: str, ns: str = MODELS_NS) -> list[dict]:
    """manifests/examples/``name``'s objects in ``ns``, its ModelDeployment stepping every
    STEP_INTERVAL."""
    objects = [o for o in yaml.safe_load_all((EXAMPLES / name).read_text()) if o]
    for body in objects:
        body["metadata"]["namespace"] = ns
        if body["kind"] == "ModelDeployment":
            body["spec"]["rollout"]["interval"] = STEP_INTERVAL
    return objects


def example(name: str, ns: str = MODELS_NS) -> dict:
    """The example ``name`` whose one object is a ModelDeployment."""
    (body,) = example_objects(name, ns)
    return body


def operator_pod(cluster: Cluster) -> dict:
    (pod,) = cluster.get(
        "pods", "-n", OPERATOR_NS, "-l", f"app.kubernetes.io/instance={OPERATOR_RELEASE}"
    )["items"]
    return pod


def operator_logs(cluster: Cluster) -> str:
    """The operator pod's log, without the access lines of the kubelet's probes."""
    proc = cluster.kubectl(
        "logs", "-n", OPERATOR_NS, f"deployment/{OPERATOR_RELEASE}-model-operator", check=False
    )
    lines = (proc.stdout + proc.stderr).splitlines()
    return "\n".join(line for line in lines if "kube-probe/" not in line)


def operator_metric(cluster: Cluster, metric: str, **labels: str) -> float:
    """The sum of ``metric``'s samples with ``labels`` on the operator pod's /metrics, read at
    the pod's address (no scrape interval in between)."""
    url = f"http://{operator_pod(cluster)['status']['podIP']}:{constants.METRICS_PORT}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == metric and labels.items() <= sample.labels.items()
    )


def status(cluster: Cluster, name: str, ns: str = MODELS_NS) -> dict:
    return rig.status_of(cluster, ns, name)


def _explain(cluster: Cluster, name: str, ns: str) -> Callable[[], str]:
    return lambda: json.dumps(status(cluster, name, ns), indent=1) + operator_logs(cluster)[-3000:]


def wait_status(
    cluster: Cluster, name: str, timeout: float = CANARY_TIMEOUT, ns: str = MODELS_NS, **expect
) -> dict:
    def probe() -> dict | None:
        got = status(cluster, name, ns)
        return got if all(got.get(k) == v for k, v in expect.items()) else None

    return rig.wait_for(probe, f"{ns}/{name} {expect}", timeout, _explain(cluster, name, ns))


def wait_ended(
    cluster: Cluster,
    name: str,
    version: str,
    ns: str = MODELS_NS,
    analyses: list[dict] | None = None,
) -> dict:
    """The status once the rollout to ``version`` has ended, whichever way: each test judges
    its own outcome, so a wrong verdict fails that test at once, not the others after a
    timeout. Each status.lastAnalysis seen on the way is appended to ``analyses``."""

    def probe() -> dict | None:
        got = status(cluster, name, ns)
        last = got.get("lastAnalysis")
        if analyses is not None and last and last not in analyses:
            analyses.append(last)
        history = got.get("history") or []
        return (
            got if any(h["version"] == version and h["result"] in ENDED for h in history) else None
        )

    what = f"the rollout of {ns}/{name} to version {version} to end"
    return rig.wait_for(probe, what, CANARY_TIMEOUT, _explain(cluster, name, ns))


@pytest.fixture(scope="module")
def model_operator(node_rig: tuple[Cluster, RealNode], stack: MonitoringStack) -> Cluster:
    """charts/model-operator installed with its image and its ServiceMonitor: the operator
    runs as a pod, with the chart's ServiceAccount and RBAC, and reaches Prometheus through
    the operator-managed Service (its default prometheusUrl)."""
    cluster, node = node_rig
    node.load_image(build_images().operator)
    cluster.install_modeldeployment_crd()
    cluster.helm(
        "install", OPERATOR_RELEASE, OPERATOR_CHART, "-n", OPERATOR_NS, "--create-namespace",
        "--set", "metrics.serviceMonitor.enabled=true", "--wait", "--timeout=5m",
    )  # fmt: skip
    return cluster


@pytest.fixture(scope="module")
def store(node_rig: tuple[Cluster, RealNode], tmp_path_factory) -> Iterator[ObjectStore]:
    """The S3 store of manifests/examples/wine-from-s3.yaml: versitygw on the host end of
    the node's link, wine 1 and its healthy next version 3 uploaded side by side."""
    cluster, _ = node_rig
    assert cluster.run_dir is not None
    with ObjectStore(tmp_path_factory.mktemp("s3"), cluster.run_dir / "pki", host=HOST_IP) as s3:
        s3.make_bucket("models")
        for version in ("1", "3"):
            s3.put_dir("models", f"wine/{version}", MODELS_ROOT / "wine" / version)
        yield s3


def wine_from_s3(cluster: Cluster, s3: ObjectStore) -> None:
    """manifests/examples/wine-from-s3.yaml in S3_NS (Pod Security `restricted`: the init
    container that fetches passes it too), with the rig's store as its endpoint and the
    Secret and CA ConfigMap its comment tells the user to create."""
    cluster.create_namespace(S3_NS, labels={"pod-security.kubernetes.io/enforce": "restricted"})
    fetch = prepare_fetch(cluster, S3_NS, s3)
    body = example("wine-from-s3.yaml", S3_NS)
    body["spec"]["model"]["sha256"] = read_card(MODELS_ROOT / "wine" / "1").sha256
    body["spec"]["model"]["fetch"].update(fetch)
    cluster.apply(body)


# --- show 3's scenario: started before the canaries, judged after them ----------------

ALERTS_NS = "tour-alerts"
# ModelMemoryNearLimit's threshold for show 3's wine: a serving pod's working set is 100-200
# MiB of the chart's 512Mi limit
MEMORY_RATIO = 0.05


@dataclasses.dataclass
class DriftAlert:
    """Show 3's scenario while it runs: the webhook and the one-row load."""

    receiver: Receiver
    load: subprocess.Popen

    def stop_load(self) -> None:
        if self.load.poll() is None:
            self.load.terminate()
            self.load.communicate(timeout=30)


@pytest.fixture(scope="module")
def drift_alert(node_rig: tuple[Cluster, RealNode], stack: MonitoringStack) -> Iterator[DriftAlert]:
    """wine 1 installed by the chart with a short `for` on ModelFeatureDrift, every alert
    routed to a webhook, and one row sent over and over (a distribution far from the training
    reference). ModelMemoryNearLimit's threshold sits below what any serving pod uses, so it
    fires on this healthy pod: the rule's join of cAdvisor's working set and
    kube-state-metrics' limit is what is judged, not a pod pushed to its limit (one that
    reached it would be OOM-killed at a moment the tour cannot choose). The canaries request
    it first: the rows, the rules' `for` and the routing take minutes that the canaries'
    minutes cover."""
    cluster, node = node_rig
    cluster.create_namespace(ALERTS_NS)
    install(
        cluster, "wine", ALERTS_NS,
        "--set", "monitoring.prometheusRule.params.featureDriftFor=30s",
        "--set-json", f"monitoring.prometheusRule.params.memoryLimitRatio={MEMORY_RATIO}",
        "--set", "monitoring.prometheusRule.params.memoryNearLimitFor=30s",
    )  # fmt: skip
    # on the host end of the node's link: the operator-managed Alertmanager's pod reaches it
    # through the node, as it would a chat or pager gateway
    receiver = Receiver(HOST_IP)
    stack.route_alerts_to(f"{receiver.url}/hook")
    rolled_out(cluster, "wine", ALERTS_NS)
    one_row = instances("wine")[:1]
    scenario = DriftAlert(receiver, start_load(cluster, node, "wine", ALERTS_NS, one_row, 10))
    try:
        yield scenario
    finally:
        scenario.stop_load()
        receiver.close()


CRASHING = "diabetes"  # in ALERTS_NS, beside show 3's wine: a release whose pod crash-loops


@pytest.fixture(scope="module")
def crash_loop(node_rig: tuple[Cluster, RealNode], drift_alert: DriftAlert) -> str:
    """diabetes 1 installed by the chart in ALERTS_NS with a sha256 that is not its
    artifact's: the service refuses the artifact and exits, the kubelet restarts it with a
    growing back-off. A short `for` on ModelPodRestarting; the alerts go to show 3's webhook.
    The canaries request it first: the restarts take minutes that the canaries' cover."""
    cluster, _ = node_rig
    install(
        cluster, CRASHING, ALERTS_NS,
        "--set", f"model.sha256={'0' * 64}",
        "--set", "monitoring.prometheusRule.params.podRestartsFor=30s",
        "--set", "resources.requests.cpu=10m",  # it never serves: room for the canaries' pods
    )  # fmt: skip
    return fullname(CRASHING)


# --- show 2: the canaries -----------------------------------------------------------


@pytest.fixture(scope="module")
def gateway(node_rig: tuple[Cluster, RealNode], tmp_path_factory) -> Iterator[Gateway]:
    """Traefik on the node, its Gateway (the one the gateway example's route names)
    admitting the routes of GATEWAY_NS."""
    cluster, node = node_rig
    cluster.create_namespace(GATEWAY_NS)
    work = tmp_path_factory.mktemp("gateway")
    with running_gateway(cluster, node, work, routes_from=GATEWAY_NS) as gw:
        yield gw


@pytest.fixture(scope="module")
def canaries(
    node_rig: tuple[Cluster, RealNode],
    model_operator: Cluster,
    store: ObjectStore,
    gateway: Gateway,
    drift_alert: DriftAlert,  # show 3's scenarios run beside the canaries
    crash_loop: str,
) -> dict:
    """The examples at version 1, then under traffic, side by side: the healthy canary
    (diabetes 1 -> 3), the drifting one (wine 1 -> 2), the healthy one from a new uri
    (wine 1 -> 3 from S3, no image built) and the healthy one through Traefik (diabetes
    1 -> 3, split by the HTTPRoute's weights), until the operator has ended all four."""
    cluster, node = node_rig
    cluster.create_namespace(MODELS_NS)
    httproute, through_gateway = example_objects(GATEWAY_EXAMPLE, GATEWAY_NS)
    # One replica, not two: the node's two CPUs hold every pod's request (0.1 each) of the
    # four canaries at once only so.
    through_gateway["spec"]["replicas"] = 1
    cluster.apply([
        example("diabetes-canary.yaml"), example("wine-failing-canary.yaml"),
        httproute, through_gateway,
    ])  # fmt: skip
    wine_from_s3(cluster, store)
    for ns, name in (
        (MODELS_NS, "diabetes"), (MODELS_NS, "wine"), (S3_NS, "wine"), (GATEWAY_NS, "diabetes")
    ):  # fmt: skip
        wait_status(cluster, name, timeout=300, ns=ns, phase="Ready")
    route = cluster.get("httproute", "models", "-n", GATEWAY_NS)
    rig.wait_for(lambda: traefik_has(cluster, route), "Traefik to accept the route", 60)
    names = {
        f"{MODELS_NS}/diabetes": "diabetes",
        f"{MODELS_NS}/wine": "wine",
        f"{S3_NS}/wine": "wine",
    }
    loads = service_loads(cluster, node, names)
    loads[GATEWAY_LOAD] = node_load.start_load(
        node, gateway.url, instances("diabetes"), GATEWAY_RATE, 1800, host=HOSTNAME
    )
    analyses: list[dict] = []  # the gateway canary's, as the operator wrote them
    with traffic(loads) as load:
        cluster.apply(example("diabetes-canary-v3.yaml"))
        rig.set_model(cluster, MODELS_NS, "wine", "wine", "2")
        sha3 = read_card(MODELS_ROOT / "wine" / "3").sha256
        rig.patch_md(
            cluster, S3_NS, "wine",
            {"spec": {"model": {"version": "3", "uri": "s3://models/wine/3", "sha256": sha3}}},
        )  # fmt: skip
        rig.set_model(cluster, GATEWAY_NS, "diabetes", "diabetes", "3")
        # the longest first: its every analysis is seen while the others go on
        gated = wait_ended(cluster, "diabetes", "3", ns=GATEWAY_NS, analyses=analyses)
        wine = wait_ended(cluster, "wine", "2")
        diabetes = wait_ended(cluster, "diabetes", "3")
        from_s3 = wait_ended(cluster, "wine", "3", ns=S3_NS)
    return {
        "load": load,
        "diabetes": diabetes,
        "wine": wine,
        "from_s3": from_s3,
        "gateway": gated,
        "gateway_analyses": analyses,
        "gateway_route": cluster.get("httproute", "models", "-n", GATEWAY_NS),
        "s3_pods": cluster.get("pods", "-n", S3_NS, "-l", "modelops.io/version=3")["items"],
        "events": {n: rig.events_of(cluster, MODELS_NS, n) for n in ("diabetes", "wine")},
        "describe": cluster.kubectl("describe", "md", "wine", "-n", MODELS_NS).stdout,
        "logs": operator_logs(cluster),
    }


def test_the_operator_runs_in_cluster_as_its_charts_service_account(model_operator):
    pod = operator_pod(model_operator)
    assert pod["spec"]["serviceAccountName"] == f"{OPERATOR_RELEASE}-model-operator"
    assert pod["spec"]["nodeName"] == NODE_NAME
    (container,) = pod["status"]["containerStatuses"]
    assert container["ready"], container
    assert container["image"].endswith("modelops-operator:0.1.0")


@pytest.mark.timeout(1200)  # the canaries fixture: four real rollouts and show 3's start
def test_show2_the_healthy_canary_is_promoted_and_wine_2_rolled_back(canaries):
    diabetes, wine = canaries["diabetes"], canaries["wine"]
    assert (diabetes["phase"], diabetes["stableVersion"]) == ("Ready", "3"), diabetes
    assert diabetes["history"][-1]["result"] == Result.PROMOTED, diabetes["history"]
    assert (wine["phase"], wine["stableVersion"]) == ("RolledBack", "1"), wine
    warnings = [e for e in canaries["events"]["wine"] if e["type"] == "Warning"]
    assert warnings, canaries["events"]["wine"]
    assert "Traceback" not in canaries["logs"], canaries["logs"][-3000:]
    # the figures, their thresholds and the PromQL that gave them
    describe = canaries["describe"]
    assert constants.RULE_DRIFT in describe, describe
    assert "prometheus-operated.monitoring.svc" in describe, describe
    assert "Rolled" in describe, describe


def test_every_rollout_dashboard_query_returns_data_after_the_rollouts(canaries, stack):
    """The operator's panels (phase, steps, figures against thresholds, rollouts by result,
    rollbacks), from the series the in-cluster operator exports through its ServiceMonitor."""
    prom = stack.prometheus()
    empty = []
    for where, expr in panel_queries(operator_panel).items():
        try:
            prom.wait_for(expr, timeout=120)
        except TimeoutError:
            empty.append(where)
    assert empty == []


def test_a_canary_from_a_new_uri_is_promoted_without_an_image_built(canaries):
    """Issue 19, show 2: wine 3 uploaded next to wine 1, the ModelDeployment's uri, version
    and sha256 changed, nothing else: a canary judged by Prometheus, promoted; the pods of
    version 3 run the image version 1 ran, with the model their init container fetched."""
    from_s3 = canaries["from_s3"]
    assert (from_s3["phase"], from_s3["stableVersion"]) == ("Ready", "3"), from_s3
    assert from_s3["history"][-1]["result"] == Result.PROMOTED, from_s3["history"]
    pods = canaries["s3_pods"]
    assert pods
    for pod in pods:
        (init,) = pod["status"]["initContainerStatuses"]
        assert (init["name"], init["state"]["terminated"]["exitCode"]) == ("model-fetch", 0)
        assert {c["image"] for c in pod["spec"]["containers"]} == {"model-service:0.1.0"}
    assert canaries["load"][f"{S3_NS}/wine"]["failed"] == 0, canaries["load"]


def test_a_canary_through_traefik_is_judged_on_the_share_the_route_gave_it(canaries):
    """manifests/examples/diabetes-gateway-canary.yaml as its user runs it: the in-cluster
    operator (the chart's RBAC: get and patch HTTPRoutes) writes each step's weights, Traefik
    splits the requests by them, and prometheus-operator's Prometheus counts what each
    version answered. Each step's analysis reads that split back: about a tenth of the
    requests at the 10% step (the canary's first, so nothing else is in its window), more
    by the 50% step, never more than the step's weight; then promoted, the route on the
    stable alone, and no request through Traefik lost."""
    gated = canaries["gateway"]
    assert (gated["phase"], gated["stableVersion"]) == ("Ready", "3"), gated
    assert gated["history"][-1]["result"] == Result.PROMOTED, gated["history"]
    passed = {a["weight"]: a for a in canaries["gateway_analyses"] if a["result"] == "Pass"}
    assert sorted(passed) == [10, 25, 50, 100], canaries["gateway_analyses"]
    assert "prometheus-operated.monitoring.svc" in passed[10]["prometheusUrl"], passed[10]
    steps = (10, 25, 50)
    shares = [passed[w]["figures"]["trafficSharePercent"] for w in steps]
    print(f"\nthe canary's share of the requests, as Prometheus counted them: "
          f"{dict(zip(steps, shares, strict=True))}")  # fmt: skip
    assert abs(shares[0] - 10) <= SHARE_TOLERANCE, passed[10]
    # A later step's window still holds the steps before it (each instant of a rate rule
    # averages the minute before; scrapes and evaluations add their 15 s): measured 10.0,
    # 11.2, 21.2. Only the 50% step is sure to be clear of the 10% one.
    assert shares[2] > shares[0] + SHARE_TOLERANCE, shares
    assert all(s <= w + SHARE_TOLERANCE for s, w in zip(shares, steps, strict=True)), shares
    route = canaries["gateway_route"]
    assert weights_in(route) == {STABLE_SVC: 100}, route["spec"]
    assert rule_of(route, PINNED) is None, route["spec"]
    load = canaries["load"][GATEWAY_LOAD]
    assert load["failed"] == 0, load
    assert set(load["versions"]) == {"1", "3"}, load


# --- show 3 ---------------------------------------------------------------------


def at_the_webhook(receiver: Receiver, alertname: str, timeout: float = 480) -> list[dict]:
    """The webhook's alerts named ``alertname`` from ALERTS_NS, once there is one."""

    def delivered() -> list[dict]:
        return [
            a
            for a in receiver.alerts()
            if a["labels"].get("alertname") == alertname
            and a["labels"].get("namespace") == ALERTS_NS
        ]

    return rig.wait_for(delivered, f"{alertname} at the webhook", timeout)


def test_show3_the_charts_drift_alert_reaches_the_alertmanagers_webhook(drift_alert, stack):
    """The chart's ModelFeatureDrift fires in Prometheus; the Alertmanager prometheus-operator
    runs receives it and posts it to the webhook its configuration Secret names."""

    try:
        alerts = at_the_webhook(drift_alert.receiver, "ModelFeatureDrift")
    finally:
        drift_alert.stop_load()
    assert alerts[0]["status"] == "firing"
    assert alerts[0]["labels"]["model"] == "wine"
    assert alerts[0]["labels"]["severity"] == "warning"
    held = stack.alertmanager().wait_for_alert("ModelFeatureDrift", {"namespace": ALERTS_NS})
    assert held["labels"]["version"] == "1"
    # and the dashboards' alert panels show it
    for expr in alert_panel_queries():
        assert stack.prometheus().query(expr), expr


def test_show3_a_crash_looping_pod_fires_the_restart_alert(node_rig, crash_loop, drift_alert):
    """kube-state-metrics counts the restarts of a pod whose service refuses its artifact;
    the chart's ModelPodRestarting fires on them and reaches the webhook."""
    cluster, _ = node_rig

    alerts = at_the_webhook(drift_alert.receiver, "ModelPodRestarting")
    assert alerts[0]["status"] == "firing"
    assert alerts[0]["labels"]["pod"].startswith(f"{crash_loop}-"), alerts[0]["labels"]
    assert alerts[0]["labels"]["container"] == "model-service"
    # the pod's own account: restarted more than the threshold, each time refusing the model
    selector = f"app.kubernetes.io/instance={CRASHING}"
    (pod,) = cluster.get("pods", "-n", ALERTS_NS, "-l", selector)["items"]
    (container,) = pod["status"]["containerStatuses"]
    assert container["restartCount"] > 2, container
    assert container["lastState"]["terminated"]["exitCode"] == EXIT_CONFIG, container


def test_show3_the_memory_alert_joins_cadvisor_and_kube_state(node_rig, drift_alert, stack):
    """ModelMemoryNearLimit divides cAdvisor's working set (the kubelet's scrape) by
    kube-state-metrics' limit (its own scrape, honorLabels): it fires only if both carry the
    same namespace, pod and container. Its threshold sits below show 3's healthy pod."""
    cluster, _ = node_rig

    alerts = at_the_webhook(drift_alert.receiver, "ModelMemoryNearLimit")
    selector = "app.kubernetes.io/instance=wine"
    (pod,) = cluster.get("pods", "-n", ALERTS_NS, "-l", selector)["items"]
    (container,) = pod["spec"]["containers"]
    labels = alerts[0]["labels"]
    assert alerts[0]["status"] == "firing"
    assert (labels["pod"], labels["container"]) == (pod["metadata"]["name"], container["name"])
    assert labels["severity"] == "warning"
    # the limit kube-state-metrics reports is the pod's, and the ratio is a working set's
    where = f'namespace="{ALERTS_NS}", pod="{labels["pod"]}", container="{labels["container"]}"'
    prometheus = stack.prometheus()
    limit = prometheus.query_value(
        f'kube_pod_container_resource_limits{{resource="memory", {where}}}'
    )
    assert limit == parse_quantity(container["resources"]["limits"]["memory"])
    used = prometheus.query_value(f"max(container_memory_working_set_bytes{{{where}}})")
    assert used is not None
    assert MEMORY_RATIO < used / limit < 1, (used, limit)


# --- show 5 ---------------------------------------------------------------------


def test_show5_the_operators_servicemonitor_makes_its_metrics_a_target(stack, model_operator):
    def up() -> list[dict]:
        return [
            t
            for t in stack.prometheus().targets()
            if t["labels"].get("namespace") == OPERATOR_NS and t["health"] == "up"
        ]

    (target,) = rig.wait_for(up, "the operator's target up", timeout=180)
    assert target["scrapePool"].startswith(f"serviceMonitor/{OPERATOR_NS}/"), target
    # honorLabels (the operator chart's ServiceMonitor): each series keeps its own
    # `namespace`, the ModelDeployment's, which the operator's alerts are routed by
    samples = stack.prometheus().wait_for(RECONCILES, timeout=120)
    assert {s["metric"]["namespace"] for s in samples} >= {MODELS_NS, S3_NS}, samples


# --- show 4 ---------------------------------------------------------------------


def test_show4_rollout_restart_is_not_undone_and_loses_no_request(node_rig, canaries):
    """The restart's watch event makes the operator re-apply at once, checking for drift
    (operator/modelops_operator/applier.py): that, and a reconcile after the rollout has
    ended, must leave the restart in place and correct nothing."""
    cluster, node = node_rig
    deployment = f"deployment/{fullname('diabetes')}"
    before = status(cluster, "diabetes")
    diabetes = {f"{MODELS_NS}/diabetes": "diabetes"}
    with traffic(service_loads(cluster, node, diabetes, rate=20)) as load:
        cluster.kubectl("rollout", "restart", deployment, "-n", MODELS_NS)
        cluster.kubectl("rollout", "status", deployment, "-n", MODELS_NS, "--timeout=300s")
    reconciles = operator_metric(cluster, RECONCILES, namespace=MODELS_NS, name="diabetes")
    rig.wait_for(
        lambda: (
            operator_metric(cluster, RECONCILES, namespace=MODELS_NS, name="diabetes") > reconciles
        ),
        "a reconcile of models/diabetes after the restart's rollout",
        timeout=60,
    )
    template = cluster.get(deployment, "-n", MODELS_NS)["spec"]["template"]
    assert "kubectl.kubernetes.io/restartedAt" in template["metadata"]["annotations"], template
    assert Reason.DRIFT_CORRECTED not in rig.event_reasons(cluster, MODELS_NS, "diabetes")
    # whatever show 2's verdict left, the restart changes neither the phase nor the version
    after = status(cluster, "diabetes")
    assert (after["phase"], after["stableVersion"]) == (before["phase"], before["stableVersion"])
    print(f"\nrollout restart under load (operator in-cluster): {load}")
    assert load[f"{MODELS_NS}/diabetes"]["ok"] > 100, load
    assert load[f"{MODELS_NS}/diabetes"]["failed"] == 0, load
