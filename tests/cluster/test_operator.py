"""The operator on the test rig: a real control plane, the operator as a real local process.

`kopf run --standalone` runs against the rig's API server; Deployments roll on
KWOK nodes. For the canary tests the metrics are real: the model service runs as
two local processes (the stable and the canary release), a real Prometheus
scrapes them with the `namespace` label the analysis selects on and evaluates
the recording rules of alerts/, and the operator queries that Prometheus.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.rig.control_plane import Cluster, find_tool, free_port
from tests.support.service_process import ServiceProcess, demo_model_dir, start_service

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "manifests/crd/modeldeployments.modelops.io.yaml"
RULES = ROOT / "alerts/modelops.rules.yaml"
TICK = "1"
WAIT = 120.0


def wait_for(
    probe: Callable[[], Any], what: str, timeout: float = WAIT, explain: Callable[[], str] = str
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}\n{explain()}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (OSError, urllib.error.URLError):
        return False


# --- the operator as a process ----------------------------------------------


@dataclass
class OperatorProcess:
    cluster: Cluster
    workdir: Path
    prometheus_url: str = "http://127.0.0.1:9"  # discard port: unreachable
    kubeconfig: Path | None = None  # default: the rig's admin kubeconfig
    proc: subprocess.Popen | None = None
    health_port: int = 0
    metrics_port: int = 0
    starts: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)  # wins over the defaults below

    @property
    def log(self) -> Path:
        return self.workdir / "operator.log"

    def start(self) -> None:
        self.health_port, self.metrics_port = free_port(), free_port()
        env = dict(self.cluster.env)
        env.update(
            MODELOPS_OPERATOR_TICK_SECONDS=TICK,
            MODELOPS_OPERATOR_RESYNC_SECONDS="2",
            MODELOPS_OPERATOR_METRICS_PORT=str(self.metrics_port),
            MODELOPS_OPERATOR_PROMETHEUS_URL=self.prometheus_url,
            MODELOPS_OPERATOR_CHART_PATH=str(ROOT / "charts/model-service"),
            PATH=f"{find_tool('helm').parent}{os.pathsep}{env.get('PATH', '')}",
        )
        env.update(self.extra_env)
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        kopf = Path(sys.executable).with_name("kopf")
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                [
                    str(kopf), "run", "--standalone", "--all-namespaces",
                    "-m", "modelops_operator.handlers",
                    f"--liveness=http://127.0.0.1:{self.health_port}/healthz",
                ],
                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        self.starts += 1
        wait_for(
            lambda: http_ok(f"http://127.0.0.1:{self.health_port}/healthz"),
            "operator liveness",
            explain=self.tail,
        )

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def tail(self, lines: int = 60) -> str:
        text = self.log.read_text() if self.log.exists() else ""
        return "operator log tail:\n" + "\n".join(text.splitlines()[-lines:])

    def metric(self, metric: str, **labels: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics") as resp:
            body = resp.read().decode()
        total = 0.0
        for line in body.splitlines():
            if not line.startswith(metric + "{"):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total


@pytest.fixture(scope="module")
def operator(cluster: Cluster) -> Iterator[OperatorProcess]:
    cluster.kubectl("apply", "-f", CRD)
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd/modeldeployments.modelops.io",
    )  # fmt: skip
    cluster.install_monitoring_crds()
    with tempfile.TemporaryDirectory(prefix="modelops-operator-") as tmp:
        op = OperatorProcess(cluster, Path(tmp))
        op.start()
        try:
            yield op
        finally:
            op.stop()


# --- ModelDeployment helpers ------------------------------------------------


def md_body(name: str, ns: str, model: str = "wine", version: str = "1", **spec: Any) -> dict:
    body: dict[str, Any] = {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "model": {
                "name": model,
                "version": version,
                "image": "model-service:0.1.0",
                "artifact": f"/models/{model}/{version}",
            },
            "replicas": 2,
            **spec,
        },
    }
    return body


def get_md(cluster: Cluster, ns: str, name: str) -> dict:
    return cluster.get("modeldeployment", name, "-n", ns)


def status_of(cluster: Cluster, ns: str, name: str) -> dict:
    return get_md(cluster, ns, name).get("status") or {}


def condition(status: dict, type_: str) -> dict:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def set_model(cluster: Cluster, ns: str, name: str, model: str, version: str, **extra: Any):
    patch = {"spec": {"model": {"version": version, "artifact": f"/models/{model}/{version}"}}}
    patch["spec"].update(extra)
    cluster.kubectl("patch", "md", name, "-n", ns, "--type", "merge", "-p", json.dumps(patch))


def wait_phase(cluster, op, ns, name, phase, **expect) -> dict:
    def probe():
        status = status_of(cluster, ns, name)
        ok = status.get("phase") == phase and all(status.get(k) == v for k, v in expect.items())
        return status if ok else None

    def explain() -> str:
        status = status_of(cluster, ns, name)
        return f"status: {json.dumps(status, indent=1)}\n{op.tail(25)}"

    return wait_for(probe, f"{ns}/{name} phase {phase} {expect}", explain=explain)


def events_of(cluster: Cluster, ns: str, name: str) -> list[dict]:
    items = cluster.get(
        "events", "-n", ns, "--field-selector",
        f"involvedObject.kind=ModelDeployment,involvedObject.name={name}",
    )["items"]  # fmt: skip
    return sorted(items, key=lambda e: e.get("lastTimestamp") or "")


def wait_event(cluster, op, ns: str, name: str, reason: str) -> dict:
    def probe():
        return next((e for e in events_of(cluster, ns, name) if e["reason"] == reason), None)

    return wait_for(probe, f"a {reason} Event on {ns}/{name}", explain=op.tail)


def deployment_env(dep: dict) -> dict[str, str]:
    container = dep["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container.get("env") or []}


# --- lifecycle ---------------------------------------------------------------


def test_create_gives_ready_and_owned_objects(cluster, operator, namespace):
    cluster.apply(md_body("wine", namespace, rollout={"strategy": "RollingUpdate"}))
    status = wait_phase(cluster, operator, namespace, "wine", "Ready")
    md = get_md(cluster, namespace, "wine")
    uid = md["metadata"]["uid"]
    assert status["stableVersion"] == "1"
    assert status["observedGeneration"] == md["metadata"]["generation"]
    assert status["ready"] == "2/2"
    assert condition(status, "Ready")["status"] == "True"
    assert condition(status, "MonitoringReady")["status"] == "True"
    assert condition(status, "Degraded")["status"] == "False"
    assert condition(status, "Ready")["lastTransitionTime"]
    assert [h["result"] for h in status["history"]] == ["Deployed"]
    for kind in ("deployment", "service", "serviceaccount", "servicemonitor", "prometheusrule"):
        items = cluster.get(
            kind, "-n", namespace, "-l", "modelops.io/modeldeployment=wine", "--show-managed-fields"
        )
        assert items["items"], f"no {kind}"
        for item in items["items"]:
            refs = item["metadata"]["ownerReferences"]
            assert [(r["kind"], r["uid"], r["controller"]) for r in refs] == [
                ("ModelDeployment", uid, True)
            ]
            managers = {m["manager"] for m in item["metadata"]["managedFields"]}
            assert "modelops-operator" in managers
    # the printer columns
    table = cluster.kubectl("get", "md", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "VERSION", "STABLE", "PHASE", "READY", "AGE"]
    assert table[1].split()[:5] == ["wine", "1", "1", "Ready", "2/2"]
    assert cluster.kubectl("get", "modeldeployments.modelops.io", "-n", namespace).stdout


def test_rolling_update_changes_the_version(cluster, operator, namespace):
    cluster.apply(md_body("wine", namespace, rollout={"strategy": "RollingUpdate"}))
    wait_phase(cluster, operator, namespace, "wine", "Ready")
    set_model(cluster, namespace, "wine", "wine", "2")
    status = wait_phase(cluster, operator, namespace, "wine", "Ready", stableVersion="2")
    assert [h["result"] for h in status["history"]] == ["Deployed", "Deployed"]
    assert status["history"][-1]["version"] == "2"
    assert "canary" not in status
    deps = cluster.get("deployments", "-n", namespace)["items"]
    assert [d["metadata"]["name"] for d in deps] == ["wine-model-service"]
    assert deployment_env(deps[0])["MODELOPS_MODEL_DIR"] == "/models/wine/2"
    labels = deps[0]["spec"]["template"]["metadata"]["labels"]
    assert labels["modelops.io/version"] == "2"


def test_deleted_servicemonitor_and_edited_rule_are_put_back(cluster, operator, namespace):
    cluster.apply(md_body("wine", namespace))
    wait_phase(cluster, operator, namespace, "wine", "Ready")
    old = cluster.get("servicemonitor", "wine-model-service", "-n", namespace)
    cluster.kubectl("delete", "servicemonitor", "wine-model-service", "-n", namespace)

    def recreated():
        proc = cluster.kubectl(
            "get", "servicemonitor", "wine-model-service", "-n", namespace, "-o", "json",
            check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            return None
        sm = json.loads(proc.stdout)
        return sm if sm["metadata"]["uid"] != old["metadata"]["uid"] else None

    sm = wait_for(recreated, "the ServiceMonitor to come back", explain=operator.tail)
    assert sm["spec"] == old["spec"]
    rule = cluster.get("prometheusrule", "wine-model-service", "-n", namespace)
    groups = rule["spec"]["groups"]
    cluster.kubectl(
        "patch", "prometheusrule", "wine-model-service", "-n", namespace, "--type", "merge",
        "-p", json.dumps({"spec": {"groups": [{"name": "vandalized", "rules": []}]}}),
        "--field-manager", "someone-else",
    )  # fmt: skip

    def restored():
        # groups is a list keyed by name: SSA puts ours back and leaves the other
        # manager's group alone (as it leaves kubectl's restartedAt alone)
        got = cluster.get("prometheusrule", "wine-model-service", "-n", namespace)
        return all(g in got["spec"]["groups"] for g in groups)

    wait_for(restored, "the PrometheusRule's groups to be restored", explain=operator.tail)


def test_rollout_restart_is_not_undone(cluster, operator, namespace):
    cluster.apply(md_body("wine", namespace))
    wait_phase(cluster, operator, namespace, "wine", "Ready")
    cluster.kubectl("rollout", "restart", "deployment/wine-model-service", "-n", namespace)
    key = "kubectl.kubernetes.io/restartedAt"

    def template_annotations():
        dep = cluster.get("deployment", "wine-model-service", "-n", namespace)
        return dep["spec"]["template"]["metadata"].get("annotations") or {}

    stamp = template_annotations()[key]
    # let the operator reconcile several times: with resync_seconds=2 and a 1s tick, five
    # reconciles include at least one server-side re-apply of the Deployment
    before = operator.metric("modelops_operator_reconciles_total", namespace=namespace, name="wine")
    wait_for(
        lambda: (
            operator.metric("modelops_operator_reconciles_total", namespace=namespace, name="wine")
            >= before + 5
        ),
        "five more reconciles",
        explain=operator.tail,
    )
    assert template_annotations()[key] == stamp
    dep = cluster.get("deployment", "wine-model-service", "-n", namespace, "--show-managed-fields")
    managers = {
        m["manager"]: json.dumps(m.get("fieldsV1", {})) for m in dep["metadata"]["managedFields"]
    }
    assert key not in managers["modelops-operator"]
    wait_phase(cluster, operator, namespace, "wine", "Ready")


def test_delete_removes_everything_it_owned(cluster, operator, namespace):
    cluster.apply(md_body("wine", namespace))
    wait_phase(cluster, operator, namespace, "wine", "Ready")
    # an object with our label that we do not own must survive
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "not-ours",
                "namespace": namespace,
                "labels": {"modelops.io/modeldeployment": "wine"},
            },
        }
    )
    cluster.kubectl("delete", "md", "wine", "-n", namespace, "--wait=true", "--timeout=60s")
    selector = "modelops.io/modeldeployment=wine"

    def gone():
        kinds = "deployments,services,serviceaccounts,configmaps,servicemonitors,prometheusrules"
        items = cluster.get(kinds, "-n", namespace, "-l", selector)["items"]
        return [i["metadata"]["name"] for i in items] == ["not-ours"]

    wait_for(gone, "owned objects to be garbage-collected", explain=operator.tail)
    assert cluster.get("pods", "-n", namespace, "-l", "app.kubernetes.io/instance=wine")


def test_operator_survives_an_api_server_restart(cluster, operator, namespace):
    if getattr(cluster, "control_plane", None) is None:
        pytest.skip("restarting kube-apiserver needs the rig this session started")
    cluster.apply(md_body("wine", namespace, rollout={"strategy": "RollingUpdate"}))
    wait_phase(cluster, operator, namespace, "wine", "Ready")
    cluster.restart("kube-apiserver")
    set_model(cluster, namespace, "wine", "wine", "2")
    generation = get_md(cluster, namespace, "wine")["metadata"]["generation"]

    # the operator saw the change through its new watch and acted through new connections
    # (whether the fake pods then turn Ready is the rig's business, not asserted here)
    def acted():
        status = status_of(cluster, namespace, "wine")
        if status.get("observedGeneration") != generation or status.get("stableVersion") != "2":
            return None
        dep = cluster.get("deployment", "wine-model-service", "-n", namespace)
        return deployment_env(dep)["MODELOPS_MODEL_DIR"] == "/models/wine/2"

    wait_for(acted, "the operator to roll version 2 after the restart", explain=operator.tail)
    assert operator.proc is not None
    assert operator.proc.poll() is None  # no crash, no restart of the operator


def service_account_kubeconfig(cluster: Cluster, path: Path) -> Path:
    """A kubeconfig that authenticates as the operator's ServiceAccount (a bound token)."""
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    token = cluster.kubectl(
        "create", "token", "modelops-operator", "-n", "modelops-system", "--duration=1h"
    ).stdout.strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [
            {
                "name": "operator",
                "context": {"cluster": admin["clusters"][0]["name"], "user": "operator"},
            }
        ],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_plain_rbac_is_enough(cluster, operator, namespace, tmp_path):
    """The operator runs as the ServiceAccount of manifests/rbac and does a whole rollout."""
    cluster.kubectl("apply", "-f", ROOT / "manifests/rbac/operator.yaml")
    restricted = OperatorProcess(
        cluster, tmp_path, kubeconfig=service_account_kubeconfig(cluster, tmp_path / "kc")
    )
    operator.stop()  # one operator at a time
    restricted.start()
    try:
        cluster.apply(md_body("wine", namespace, rollout={"strategy": "RollingUpdate"}))
        wait_phase(cluster, restricted, namespace, "wine", "Ready")
        set_model(cluster, namespace, "wine", "wine", "2")
        status = wait_phase(cluster, restricted, namespace, "wine", "Ready", stableVersion="2")
        assert condition(status, "MonitoringReady")["status"] == "True"
        wait_event(cluster, restricted, namespace, "wine", "Deployed")
        # no RBAC denial anywhere (a 403 for a namespace being deleted is not one)
        # (the API's message sits JSON-escaped inside the logged exception)
        denied = re.compile(r'serviceaccount:modelops-system:modelops-operator\\?" cannot')
        assert not denied.search(restricted.log.read_text()), restricted.tail()
    finally:
        restricted.stop()
        operator.start()


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"rollout": {"steps": [50, 10]}}, "steps must be strictly ascending"),
        ({"rollout": {"strategy": "BlueGreen"}}, "Unsupported value"),
        ({"replicas": -1}, "should be greater than or equal to 0"),
        ({"model": {"name": "wine", "version": "1", "image": "x"}}, "artifact: Required value"),
    ],
)
def test_invalid_spec_is_rejected_at_apply(cluster, operator, namespace, patch, message):
    body = md_body("bad", namespace)
    body["spec"].update(patch)
    proc = cluster.kubectl("apply", "-f", "-", input=json.dumps(body), check=False)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_prometheus_down_holds_the_canary(cluster, operator, namespace):
    rollout = {
        "strategy": "Canary",
        "steps": [50, 100],
        "interval": "2s",
        "analysis": {"minRequests": 1, "prometheusUrl": "http://127.0.0.1:9"},
    }
    cluster.apply(md_body("wine", namespace, rollout=rollout))
    wait_phase(cluster, operator, namespace, "wine", "Ready")
    set_model(cluster, namespace, "wine", "wine", "2")

    def held():
        status = status_of(cluster, namespace, "wine")
        cond = condition(status, "Progressing")
        return status if cond.get("reason") == "PrometheusUnavailable" else None

    status = wait_for(held, "the analysis to hold", explain=operator.tail)
    assert status["phase"] == "Progressing"
    assert status["stableVersion"] == "1"
    assert status["canaryVersion"] == "2"
    assert status["lastAnalysis"]["result"] == "Error"
    assert "127.0.0.1:9" in status["lastAnalysis"]["message"]
    assert 'version="2"' in status["lastAnalysis"]["queries"]["errorRate"]
    # it keeps holding: more analyses, never a promotion or a rollback
    first = status["lastAnalysis"]["at"]
    wait_for(
        lambda: status_of(cluster, namespace, "wine")["lastAnalysis"]["at"] > first,
        "another analysis",
        explain=operator.tail,
    )
    status = status_of(cluster, namespace, "wine")
    assert status["canaryWeight"] == 50
    assert status["stableVersion"] == "1"
    assert condition(status, "Progressing")["reason"] == "PrometheusUnavailable"
    wait_event(cluster, operator, namespace, "wine", "AnalysisHeld")
    warnings = [e for e in events_of(cluster, namespace, "wine") if e["type"] == "Warning"]
    assert [e["reason"] for e in warnings] == ["AnalysisHeld"]
    assert len(cluster.get("deployments", "-n", namespace)["items"]) == 2


def test_paused_holds_then_fast_rollback_skips_analysis(cluster, operator, namespace):
    rollout = {"strategy": "Canary", "steps": [50, 100], "interval": "1s",
               "analysis": {"prometheusUrl": "http://127.0.0.1:9"}}  # fmt: skip
    cluster.apply(md_body("wine", namespace, rollout=rollout, paused=True))
    wait_phase(cluster, operator, namespace, "wine", "Ready")  # a first deploy is not held
    set_model(cluster, namespace, "wine", "wine", "2")

    def paused():
        status = status_of(cluster, namespace, "wine")
        return status if condition(status, "Progressing").get("reason") == "RolloutPaused" else None

    status = wait_for(paused, "the rollout to be held", explain=operator.tail)
    assert status["stableVersion"] == "1"
    assert "canaryVersion" not in status
    assert len(cluster.get("deployments", "-n", namespace)["items"]) == 1
    # unpaused with strategy RollingUpdate: version 2 becomes stable without a canary
    cluster.kubectl(
        "patch", "md", "wine", "-n", namespace, "--type", "merge",
        "-p", json.dumps({"spec": {"paused": False, "rollout": {"strategy": "RollingUpdate"}}}),
    )  # fmt: skip
    wait_phase(cluster, operator, namespace, "wine", "Ready", stableVersion="2")
    # back to version 1 within rollbackWindow, strategy Canary: fast-tracked, no analysis
    cluster.kubectl(
        "patch", "md", "wine", "-n", namespace, "--type", "merge",
        "-p", json.dumps({"spec": {"rollout": {"strategy": "Canary"}}}),
    )  # fmt: skip
    set_model(cluster, namespace, "wine", "wine", "1")
    status = wait_phase(cluster, operator, namespace, "wine", "Ready", stableVersion="1")
    assert "lastAnalysis" not in status
    assert [(h["version"], h["result"]) for h in status["history"]] == [
        ("1", "Deployed"), ("2", "Deployed"), ("1", "Deployed"),
    ]  # fmt: skip
    event = wait_event(cluster, operator, namespace, "wine", "FastRollback")
    assert "rolled back without analysis" in event["message"]


@pytest.fixture
def prometheus_object(cluster, namespace) -> Iterator[str]:
    """A Prometheus object in the test namespace, removed after the test (it is
    cluster-visible: other tests' ModelDeployments must not be judged against it)."""
    yield "kps"
    cluster.kubectl("delete", "prometheus", "kps", "-n", namespace, check=False)


def test_monitoring_labels_follow_the_prometheus_selectors(
    cluster, operator, namespace, prometheus_object
):
    # a Prometheus object (prometheus-operator's CRD; no operator needs to run it) that
    # selects ServiceMonitors and rules by label, in namespaces labelled for this test
    cluster.kubectl("label", "namespace", namespace, f"monitor-{namespace[-6:]}=yes")
    cluster.apply(
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "Prometheus",
            "metadata": {"name": prometheus_object, "namespace": namespace},
            "spec": {
                "serviceMonitorSelector": {"matchLabels": {"release": "kps-test"}},
                "serviceMonitorNamespaceSelector": {
                    "matchLabels": {f"monitor-{namespace[-6:]}": "yes"}
                },
                "ruleSelector": {"matchLabels": {"release": "kps-test", "role": "rules"}},
                "ruleNamespaceSelector": {"matchLabels": {f"monitor-{namespace[-6:]}": "yes"}},
            },
        }
    )
    cluster.apply(md_body("wine", namespace))
    wait_phase(cluster, operator, namespace, "wine", "Ready")

    def labelled():  # the operator re-reads Prometheus objects within a few ticks
        sm = cluster.get("servicemonitor", "wine-model-service", "-n", namespace)
        return sm["metadata"]["labels"].get("release") == "kps-test"

    wait_for(labelled, "the ServiceMonitor to get the selector's label", explain=operator.tail)
    rule = cluster.get("prometheusrule", "wine-model-service", "-n", namespace)
    assert rule["metadata"]["labels"]["role"] == "rules"
    assert rule["metadata"]["labels"]["release"] == "kps-test"

    def selected():
        cond = condition(status_of(cluster, namespace, "wine"), "MonitoringReady")
        return cond if f"ServiceMonitor: {namespace}/kps selects it" in cond["message"] else None

    cond = wait_for(selected, "MonitoringReady to name the Prometheus", explain=operator.tail)
    assert cond["status"] == "True"
    assert f"PrometheusRule: {namespace}/kps selects it" in cond["message"]
    # told not to label: the chart's default label stays and the mismatch is explained
    cluster.kubectl(
        "patch", "md", "wine", "-n", namespace, "--type", "merge",
        "-p", json.dumps({"spec": {"monitoring": {"matchSelectors": False}}}),
    )  # fmt: skip

    def not_selected():
        cond = condition(status_of(cluster, namespace, "wine"), "MonitoringReady")
        return cond if cond.get("reason") == "NotSelected" else None

    cond = wait_for(not_selected, "MonitoringReady NotSelected", explain=operator.tail)
    assert cond["status"] == "False"
    assert f"ServiceMonitor: {namespace}/kps ignores it" in cond["message"]
    assert "release=kps-test" in cond["message"]


# --- canaries judged by real metrics -----------------------------------------


DATASETS = {"wine": "load_wine", "diabetes": "load_diabetes"}


def dataset_rows(model: str) -> list[dict[str, float]]:
    import sklearn.datasets

    data = getattr(sklearn.datasets, DATASETS[model])()
    names = [str(n) for n in data.feature_names]
    return [dict(zip(names, map(float, row), strict=True)) for row in data.data]


@dataclass
class Traffic:
    """Steady single-row prediction traffic to the stable and canary services."""

    urls: list[str]
    rows: list[dict[str, float]]
    rate: float = 15.0  # requests per second per service
    sent: int = 0
    stop_flag: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def _run(self) -> None:
        i = 0
        deadline = time.monotonic() + 600  # bounded, whatever happens
        while not self.stop_flag.is_set() and time.monotonic() < deadline:
            for url in self.urls:
                row = self.rows[i % len(self.rows)]
                req = urllib.request.Request(
                    f"{url}/v1/predict",
                    data=json.dumps({"instances": [row]}).encode(),
                    headers={"Content-Type": "application/json"},
                )
                with contextlib.suppress(OSError, urllib.error.URLError):
                    urllib.request.urlopen(req, timeout=5).read()
                self.sent += 1
                i += 7
            self.stop_flag.wait(1 / self.rate)

    def __enter__(self) -> Traffic:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_flag.set()
        if self.thread:
            self.thread.join(10)


@dataclass
class PrometheusProcess:
    proc: subprocess.Popen
    url: str
    workdir: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def query(self, promql: str) -> list[dict]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.load(resp)["data"]["result"]


def start_prometheus(workdir: Path, targets: list[str], namespace: str) -> PrometheusProcess:
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "model-service",
                "static_configs": [
                    {"targets": [t.removeprefix("http://") for t in targets],
                     "labels": {"namespace": namespace}},
                ],
            }
        ],
    }  # fmt: skip
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = (workdir / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            str(find_tool("prometheus")),
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    prom = PrometheusProcess(proc, f"http://127.0.0.1:{port}", workdir)
    wait_for(lambda: http_ok(f"{prom.url}/-/ready"), "prometheus ready", timeout=60)
    return prom


@dataclass
class CanaryRig:
    stable: ServiceProcess
    canary: ServiceProcess
    prometheus: PrometheusProcess
    traffic: Traffic


@pytest.fixture
def canary_rig(request, namespace) -> Iterator[Callable[[str], CanaryRig]]:
    """Start the real service for versions 1 and 2 of a model, Prometheus and traffic."""
    started: list[Any] = []
    tmp = tempfile.TemporaryDirectory(prefix="modelops-canary-")

    def make(model: str) -> CanaryRig:
        env = {"MODELOPS_DRIFT_MIN_ROWS": "50", "MODELOPS_DRIFT_REFRESH_SECONDS": "1"}
        stable = start_service(demo_model_dir(model, "1"), env=env)
        started.append(stable)
        canary = start_service(demo_model_dir(model, "2"), env=env)
        started.append(canary)
        prom = start_prometheus(Path(tmp.name), [stable.url, canary.url], namespace)
        started.append(prom)
        traffic = Traffic([stable.url, canary.url], dataset_rows(model)).__enter__()
        started.append(traffic)
        return CanaryRig(stable, canary, prom, traffic)

    yield make
    for thing in reversed(started):
        if isinstance(thing, Traffic):
            thing.__exit__(None, None, None)
        else:
            thing.stop()
    tmp.cleanup()


def canary_rollout(prometheus_url: str, **analysis: Any) -> dict:
    return {
        "strategy": "Canary",
        "steps": [50, 100],
        "interval": "5s",
        "analysis": {
            "minRequests": 20,
            "deadline": "90s",
            "prometheusUrl": prometheus_url,
            **analysis,
        },
    }


def test_healthy_canary_is_promoted_step_by_step_and_survives_a_restart(
    cluster, operator, namespace, canary_rig
):
    rig = canary_rig("diabetes")  # v2 is biased in its outputs, its inputs do not drift
    rollout = canary_rollout(rig.prometheus.url, maxDriftScore=0.5, maxLatencyP95Seconds=1.0)
    cluster.apply(md_body("diabetes", namespace, model="diabetes", rollout=rollout))
    wait_phase(cluster, operator, namespace, "diabetes", "Ready")
    set_model(cluster, namespace, "diabetes", "diabetes", "2")
    first = wait_phase(cluster, operator, namespace, "diabetes", "Progressing", canaryWeight=100)
    started_at = first["canary"]["startedAt"]
    passed = first["lastAnalysis"]
    assert passed["result"] == "Pass"
    assert passed["weight"] == 50
    assert passed["figures"]["requests"] >= 20
    assert passed["figures"]["errorRate"] <= 0.05
    assert "model_version:error_ratio:rate1m" in passed["queries"]["errorRate"]
    assert passed["thresholds"]["maxDriftScore"] == 0.5
    wait_event(cluster, operator, namespace, "diabetes", "CanaryAdvanced")
    # restart the operator mid-rollout: it resumes from status, not from scratch
    operator.stop()
    operator.start()
    status = wait_phase(cluster, operator, namespace, "diabetes", "Ready", stableVersion="2")
    assert "canary" not in status
    assert [h["result"] for h in status["history"]] == ["Deployed", "Promoted"]
    wait_event(cluster, operator, namespace, "diabetes", "Promoted")
    reasons = [e["reason"] for e in events_of(cluster, namespace, "diabetes")]
    assert reasons.count("CanaryStarted") == 1, reasons
    assert "CanaryAdvanced" in reasons
    assert "Promoted" in reasons
    assert status["previousStable"]["model"]["version"] == "1"
    assert started_at <= status["history"][-1]["at"]
    deps = cluster.get("deployments", "-n", namespace)["items"]
    assert [d["metadata"]["name"] for d in deps] == ["diabetes-model-service"]
    assert deployment_env(deps[0])["MODELOPS_MODEL_DIR"] == "/models/diabetes/2"
    assert deps[0]["spec"]["replicas"] == 2


def test_unhealthy_canary_is_rolled_back_with_a_warning(cluster, operator, namespace, canary_rig):
    rig = canary_rig("wine")  # v2 was trained on low-alcohol wines: live inputs drift
    cluster.apply(md_body("wine", namespace, rollout=canary_rollout(rig.prometheus.url)))
    wait_phase(cluster, operator, namespace, "wine", "Ready")
    set_model(cluster, namespace, "wine", "wine", "2")
    status = wait_phase(cluster, operator, namespace, "wine", "RolledBack")
    assert status["stableVersion"] == "1"
    assert "canary" not in status
    assert status["rolledBack"]["version"] == "2"
    analysis = status["lastAnalysis"]
    assert analysis["result"] == "Fail"
    assert analysis["reason"] == "DriftTooHigh"
    assert analysis["figures"]["driftScore"] > 0.2
    entry = status["history"][-1]
    assert (entry["version"], entry["result"], entry["reason"]) == (
        "2",
        "RolledBack",
        "DriftTooHigh",
    )
    warning = wait_event(cluster, operator, namespace, "wine", "RolledBack")
    assert warning["type"] == "Warning"
    assert "> maxDriftScore 0.2" in warning["message"]
    warnings = [e for e in events_of(cluster, namespace, "wine") if e["type"] == "Warning"]
    assert [e["reason"] for e in warnings] == ["RolledBack"]
    # the stable Deployment is untouched, the canary Deployment is gone
    deps = {d["metadata"]["name"]: d for d in cluster.get("deployments", "-n", namespace)["items"]}
    wait_for(
        lambda: "wine-model-service-canary" not in {
            d["metadata"]["name"] for d in cluster.get("deployments", "-n", namespace)["items"]
        },
        "the canary Deployment to be pruned",
    )  # fmt: skip
    assert deployment_env(deps["wine-model-service"])["MODELOPS_MODEL_DIR"] == "/models/wine/1"
    # and the rolled-back release is not retried
    assert status_of(cluster, namespace, "wine")["phase"] == "RolledBack"


def test_no_data_is_inconclusive_until_the_deadline_never_a_pass(
    cluster, operator, namespace, tmp_path
):
    # a real Prometheus with the recording rules and a target that is down: every
    # query answers an empty vector
    prom = start_prometheus(tmp_path, ["http://127.0.0.1:9"], namespace)
    try:
        rollout = canary_rollout(prom.url)
        rollout["analysis"]["deadline"] = "8s"
        rollout["interval"] = "2s"
        cluster.apply(md_body("wine", namespace, rollout=rollout))
        wait_phase(cluster, operator, namespace, "wine", "Ready")
        set_model(cluster, namespace, "wine", "wine", "2")

        def inconclusive():
            status = status_of(cluster, namespace, "wine")
            analysis = status.get("lastAnalysis") or {}
            return status if analysis.get("result") == "Inconclusive" else None

        status = wait_for(inconclusive, "an inconclusive analysis", explain=operator.tail)
        assert status["lastAnalysis"]["reason"] == "NoTraffic"
        assert status["canary"]["inconclusiveSince"]
        assert status["stableVersion"] == "1"
        status = wait_phase(cluster, operator, namespace, "wine", "RolledBack")
        assert status["history"][-1]["reason"] == "AnalysisInconclusive"
        assert status["stableVersion"] == "1"
        assert not [h for h in status["history"] if h["result"] == "Promoted"]
    finally:
        prom.stop()
