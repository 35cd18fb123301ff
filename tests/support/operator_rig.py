"""The modelops operator on the test rig, and the helpers its tests share.

    from tests.support import operator_rig as rig

    @pytest.fixture(scope="module")
    def operator(cluster):
        with rig.running_operator(cluster, "modelops-mine-") as op:
            yield op

    def test_it(cluster, operator, namespace):
        cluster.apply(rig.md_body("wine", namespace))
        status = rig.wait_phase(cluster, operator, namespace, "wine", "Ready")

- ``OperatorProcess``: `kopf run --standalone` of modelops_operator.handlers as a real local
  process against the rig's API server (tick 1s, resync 2s unless ``extra_env`` says
  otherwise), its log in ``workdir``; ``running_operator()`` installs the CRDs, starts one
  and stops it on exit (a module fixture keeps it for the module's tests).
- ModelDeployment helpers: ``md_body``, ``get_md``, ``status_of``, ``condition``,
  ``patch_md``, ``set_model``, ``wait_phase``, ``events_of``, ``event_reasons``,
  ``wait_event``, ``deployment_env``, ``wait_reconciles``, ``assert_running``.
- Canaries judged by real metrics: ``Traffic`` (prediction traffic to the real services),
  ``start_prometheus`` (a real Prometheus of tests/support/prometheus.py with the recording
  rules of alerts/), ``CanaryRig`` and the factory ``canary_rigs()``, ``canary_rollout``.
- ``service_account_kubeconfig``: log in as the ServiceAccount of manifests/rbac.

No pytest import here: plain functions and context managers; test modules wrap them in
thin fixtures.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modelops_operator.metrics import RECONCILES
from tests.rig.control_plane import REPO_ROOT, Cluster, find_tool, free_port
from tests.support.prometheus import Prometheus, Target
from tests.support.service_process import (
    ServiceProcess,
    demo_model_dir,
    http_status,
    start_service,
)

CRD = REPO_ROOT / "manifests/crd/modeldeployments.modelops.io.yaml"
RULES = REPO_ROOT / "alerts/modelops.rules.yaml"
TICK = "1"
WAIT = 120.0


def wait_for(
    probe: Callable[[], Any], what: str, timeout: float = WAIT, explain: Callable[[], str] = str
) -> Any:
    """Poll ``probe`` until it returns something true, and return that; AssertionError naming
    ``what``, the last answer and ``explain()`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}\n{explain()}")


def http_ok(url: str) -> bool:
    return http_status(url) == 200


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
            MODELOPS_OPERATOR_CHART_PATH=str(REPO_ROOT / "charts/model-service"),
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
                env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
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


def install_crds(cluster: Cluster) -> None:
    """The ModelDeployment CRD (established) and the monitoring.coreos.com CRDs."""
    cluster.kubectl("apply", "-f", CRD)
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd/modeldeployments.modelops.io",
    )  # fmt: skip
    cluster.install_monitoring_crds()


@contextlib.contextmanager
def running_operator(cluster: Cluster, prefix: str, **settings: Any) -> Iterator[OperatorProcess]:
    """The CRDs installed and an operator started in a fresh workdir named ``prefix*``;
    stopped on exit. ``settings``: further OperatorProcess fields (e.g. ``extra_env``)."""
    install_crds(cluster)
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        op = OperatorProcess(cluster, Path(tmp), **settings)
        try:
            op.start()
            yield op
        finally:
            op.stop()


def assert_running(op: OperatorProcess) -> None:
    """The operator process is up: it did not crash."""
    assert op.proc is not None
    assert op.proc.poll() is None, op.tail()


def reconciles(op: OperatorProcess, ns: str, name: str) -> float:
    return op.metric(RECONCILES, namespace=ns, name=name)


def wait_reconciles(op: OperatorProcess, ns: str, name: str, more: int) -> None:
    """Block until the operator has reconciled ns/name ``more`` further times."""
    start = reconciles(op, ns, name)
    wait_for(
        lambda: reconciles(op, ns, name) >= start + more,
        f"{more} more reconciles of {ns}/{name}",
        explain=op.tail,
    )


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


def patch_md(cluster: Cluster, ns: str, name: str, patch: dict) -> None:
    """A merge patch of the ModelDeployment ns/name."""
    cluster.kubectl("patch", "md", name, "-n", ns, "--type", "merge", "-p", json.dumps(patch))


def set_model(cluster: Cluster, ns: str, name: str, model: str, version: str, **extra: Any):
    patch = {"spec": {"model": {"version": version, "artifact": f"/models/{model}/{version}"}}}
    patch["spec"].update(extra)
    patch_md(cluster, ns, name, patch)


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
    """The Events of the ModelDeployment ns/name, oldest first."""
    items = cluster.get(
        "events", "-n", ns, "--field-selector",
        f"involvedObject.kind=ModelDeployment,involvedObject.name={name}",
    )["items"]  # fmt: skip
    return sorted(items, key=lambda e: e.get("lastTimestamp") or "")


def event_reasons(cluster: Cluster, ns: str, name: str, type_: str | None = None) -> list[str]:
    """The reasons of events_of(), oldest first; only Events of ``type_`` if given."""
    return [e["reason"] for e in events_of(cluster, ns, name) if type_ in (None, e["type"])]


def wait_event(cluster, op, ns: str, name: str, reason: str) -> dict:
    def probe():
        return next((e for e in events_of(cluster, ns, name) if e["reason"] == reason), None)

    return wait_for(probe, f"a {reason} Event on {ns}/{name}", explain=op.tail)


def deployment_env(dep: dict) -> dict[str, str]:
    container = dep["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container.get("env") or []}


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


def start_prometheus(workdir: Path, targets: list[str], namespace: str) -> Prometheus:
    """A started real Prometheus that scrapes ``targets`` (service URLs) every second with
    the target label ``namespace`` and evaluates the recording rules of alerts/."""
    prom = Prometheus(
        workdir,
        targets=[Target(t.removeprefix("http://"), {"namespace": namespace}) for t in targets],
        rule_files=[RULES],
    )
    prom.start(timeout=60)
    return prom


@dataclass
class CanaryRig:
    stable: ServiceProcess
    canary: ServiceProcess
    prometheus: Prometheus
    traffic: Traffic


@contextlib.contextmanager
def canary_rigs(namespace: str, prefix: str) -> Iterator[Callable[[str], CanaryRig]]:
    """A factory: ``make(model)`` starts the real service for versions 1 and 2 of ``model``,
    a Prometheus scraping both for ``namespace``, and traffic to both. Everything it started
    is stopped on exit, the last started first."""
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))

        def make(model: str) -> CanaryRig:
            env = {"MODELOPS_DRIFT_MIN_ROWS": "50", "MODELOPS_DRIFT_REFRESH_SECONDS": "1"}
            stable = start_service(demo_model_dir(model, "1"), env=env)
            stack.callback(stable.stop)
            canary = start_service(demo_model_dir(model, "2"), env=env)
            stack.callback(canary.stop)
            prom = start_prometheus(workdir, [stable.url, canary.url], namespace)
            stack.callback(prom.stop)
            traffic = stack.enter_context(Traffic([stable.url, canary.url], dataset_rows(model)))
            return CanaryRig(stable, canary, prom, traffic)

        yield make


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
