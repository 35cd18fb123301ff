"""Operator faults on the rig (issue 8): the operator recovers, corrects, holds.

Each test runs the real operator process against the rig's real API server
(devstack's OperatorProcess, tests/support/operator_rig.py's helpers):

- the API server restarted mid-canary: the rollout finishes, no step or Event repeated;
- someone scales or edits a Deployment the operator owns: it is put back at once (a
  watch on the owned Deployments, not the next resync), what others own is left, and a
  `DriftCorrected` Event names the object and the fields; a no-op says nothing;
- a real Prometheus whose recording rules answer NaN for the canary, and a server that
  answers garbage (not JSON, JSON of the wrong shape, a 500 with HTML): hold, never promote;
- namespace-scoped mode under the chart's ServiceAccount starts without any forbidden
  cluster-wide request (kopf's cluster scans are switched off).
"""

from __future__ import annotations

import http.server
import json
import math
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.canary import CanaryRig, canary_rigs
from devstack.cluster import Cluster
from devstack.operator_chart import OperatorRelease
from devstack.operator_process import OperatorProcess, running_operator
from devstack.paths import find_tool
from devstack.prometheus import Prometheus
from tests.support import operator_rig as rig

pytestmark = pytest.mark.cluster

RESYNC = "600"  # far beyond any wait here: a correction within a test came from the watch


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory) -> Iterator[OperatorProcess]:
    settings = {"MODELOPS_OPERATOR_RESYNC_SECONDS": RESYNC}
    workdir = tmp_path_factory.mktemp("operator-recovery")
    with running_operator(cluster, workdir, settings=settings) as op:
        yield op


# --- 1. the API server restarted mid-canary ---------------------------------------


@pytest.fixture
def canary_services(namespace: str) -> Iterator[Callable[..., CanaryRig]]:
    """The canary rig of devstack/canary.py: services v1 and v2, Prometheus, traffic."""
    with canary_rigs(namespace, "modelops-recovery-canary-") as make:
        yield make


def test_api_server_restarted_mid_canary_the_rollout_finishes_once(
    cluster, operator, namespace, canary_services
):
    services = canary_services("diabetes", canary_version="3")  # the healthy canary
    rollout = rig.canary_rollout(
        services.prometheus.url, maxDriftScore=0.5, maxLatencyP95Seconds=1.0
    )
    rollout["interval"] = "10s"  # wide steps: the restart lands between them
    cluster.apply(rig.md_body("diabetes", namespace, model="diabetes", rollout=rollout))
    rig.wait_phase(cluster, operator, namespace, "diabetes", "Ready")
    rig.set_model(cluster, namespace, "diabetes", "diabetes", "3")
    first = rig.wait_phase(cluster, operator, namespace, "diabetes", "Progressing", canaryWeight=50)
    assert first["stableVersion"] == "1"
    rig.wait_event(cluster, operator, namespace, "diabetes", "CanaryStarted")

    cluster.restart("kube-apiserver")  # between the first step and the analysis that ends it
    mid = rig.status_of(cluster, namespace, "diabetes")
    assert (mid["phase"], mid["stableVersion"], mid["canaryVersion"]) == ("Progressing", "1", "3")

    status = rig.wait_phase(cluster, operator, namespace, "diabetes", "Ready", stableVersion="3")
    assert "canary" not in status
    assert [(h["version"], h["result"]) for h in status["history"]] == [
        ("1", "Deployed"), ("3", "Promoted"),
    ]  # fmt: skip
    assert status["lastAnalysis"]["result"] == "Pass"
    rig.wait_event(cluster, operator, namespace, "diabetes", "Promoted")
    seen = rig.event_reasons(cluster, namespace, "diabetes")
    assert seen.count("CanaryStarted") == 1, seen
    assert seen.count("Promoted") == 1, seen
    assert seen.count("CanaryAdvanced") == 1, seen  # 50 -> 100: each step analysed once
    assert not {"RolledBack", "CanaryAborted"} & set(seen), seen
    deps = cluster.get("deployments", "-n", namespace)["items"]
    assert [d["metadata"]["name"] for d in deps] == ["diabetes-model-service"]
    env = rig.deployment_env(deps[0])
    assert env["MODELOPS_MODEL_DIR"] == "/models/diabetes/3"
    assert operator.starts == 1
    rig.assert_running(operator)


# --- 2. someone scales or edits the managed Deployment -----------------------------


def drift_events(cluster: Cluster, ns: str, name: str) -> list[dict]:
    return [e for e in rig.events_of(cluster, ns, name) if e["reason"] == "DriftCorrected"]


def test_edited_deployment_is_restored_at_once_and_said_so(cluster, operator, namespace):
    cluster.apply(rig.md_body("wine", namespace, rollout={"strategy": "RollingUpdate"}))
    rig.wait_phase(cluster, operator, namespace, "wine", "Ready")
    dep_name = "wine-model-service"

    def deployment() -> dict:
        return cluster.get("deployment", dep_name, "-n", namespace)

    original = deployment()
    container = original["spec"]["template"]["spec"]["containers"][0]
    image = container["image"]
    rig.wait_reconciles(operator, namespace, "wine", 4)
    assert drift_events(cluster, namespace, "wine") == []

    # kubectl scale: the replicas are the operator's, put back by the watch (no resync
    # is due for ten minutes)
    cluster.kubectl("scale", f"deployment/{dep_name}", "-n", namespace, "--replicas=5")
    rig.wait_for(
        lambda: deployment()["spec"]["replicas"] == 2, "replicas put back", explain=operator.tail
    )
    event = rig.wait_for(
        lambda: next(iter(drift_events(cluster, namespace, "wine")), None),
        "a DriftCorrected Event",
        explain=operator.tail,
    )
    assert event["type"] == "Warning"
    assert event["message"] == (
        f"Deployment/{dep_name} was changed by someone else; restored spec.replicas"
    )

    # an annotation someone adds is theirs; an env value and the image are ours
    cluster.kubectl("annotate", f"deployment/{dep_name}", "-n", namespace, "team=ml")
    # Two edits in quick succession: one may land between the operator's read and its apply,
    # which then conflicts on the read's resourceVersion and reads again (never undone unsaid).
    cluster.kubectl("set", "image", f"deployment/{dep_name}", "-n", namespace,
                    f"{container['name']}=evil:latest")  # fmt: skip
    cluster.kubectl("set", "env", f"deployment/{dep_name}", "-n", namespace,
                    "MODELOPS_MODEL_DIR=/tmp/evil")  # fmt: skip

    def restored() -> bool:
        dep = deployment()
        c = dep["spec"]["template"]["spec"]["containers"][0]
        return c["image"] == image and rig.deployment_env(dep)["MODELOPS_MODEL_DIR"] == (
            "/models/wine/1"
        )

    rig.wait_for(restored, "image and env put back", explain=operator.tail)
    prefix = f"spec.template.spec.containers[{container['name']}]"

    def said() -> str | None:
        text = " | ".join(e["message"] for e in drift_events(cluster, namespace, "wine"))
        wanted = (f"{prefix}.image", f"{prefix}.env[MODELOPS_MODEL_DIR].value")
        return text if all(w in text for w in wanted) else None

    text = rig.wait_for(said, "DriftCorrected naming the image and env", explain=operator.tail)
    assert "team" not in text
    assert "annotations" not in text
    assert deployment()["metadata"]["annotations"]["team"] == "ml"  # left alone

    # changes that are not ours: an annotation, kubectl rollout restart: nothing to say
    rig.wait_reconciles(operator, namespace, "wine", 4)
    count = len(drift_events(cluster, namespace, "wine"))
    cluster.kubectl("annotate", f"deployment/{dep_name}", "-n", namespace, "owner=someone")
    cluster.kubectl("rollout", "restart", f"deployment/{dep_name}", "-n", namespace)
    rig.wait_reconciles(operator, namespace, "wine", 4)
    dep = deployment()
    assert "kubectl.kubernetes.io/restartedAt" in dep["spec"]["template"]["metadata"]["annotations"]
    assert dep["metadata"]["annotations"]["owner"] == "someone"
    assert len(drift_events(cluster, namespace, "wine")) == count, drift_events(
        cluster, namespace, "wine"
    )
    rig.wait_phase(cluster, operator, namespace, "wine", "Ready")
    rig.assert_running(operator)


# --- 3. Prometheus answering NaN or garbage ----------------------------------------


def start_rules_only_prometheus(workdir: Path, rules: list[dict]) -> Prometheus:
    """A real Prometheus that scrapes nothing and records `rules` every second."""
    (workdir / "rules.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "fault", "interval": "1s", "rules": rules}]})
    )
    promtool = subprocess.run(
        [str(find_tool("promtool")), "check", "rules", str(workdir / "rules.yml")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert promtool.returncode == 0, promtool.stdout + promtool.stderr
    prom = Prometheus(workdir, rule_files=[workdir / "rules.yml"])
    prom.start(timeout=60)
    return prom


def canary_series(namespace: str, model: str, version: str) -> dict[str, str]:
    return {"namespace": namespace, "model": model, "version": version}


def test_nan_from_a_real_prometheus_holds_and_never_promotes(
    cluster, operator, namespace, tmp_path
):
    labels = canary_series(namespace, "wine", "2")
    stable = canary_series(namespace, "wine", "1")
    prom = start_rules_only_prometheus(
        tmp_path,
        [
            # plenty of traffic on both versions, so the analysis gets past the request counts...
            {"record": "model_version:requests:rate1m", "expr": "vector(50)", "labels": labels},
            {"record": "model_version:requests:rate1m", "expr": "vector(50)", "labels": stable},
            # ...and every figure it judges is not a number
            {"record": "model_version:error_ratio:rate1m", "expr": "vector(0) / vector(0)",
             "labels": labels},
            {"record": "model_version:latency_p95_seconds:rate1m", "expr": "vector(NaN)",
             "labels": labels},
            {"record": "model_version:drift_score:max", "expr": "vector(NaN)", "labels": labels},
        ],
    )  # fmt: skip
    try:
        sel = '{version="2"}'
        rig.wait_for(
            lambda: prom.query(f"model_version:error_ratio:rate1m{sel}"),
            "the NaN series to be recorded",
        )
        assert math.isnan(prom.query(f"model_version:error_ratio:rate1m{sel}")[0]["value"])
        rollout = rig.canary_rollout(prom.url)
        rollout["interval"] = "2s"
        rollout["analysis"]["deadline"] = "25s"
        cluster.apply(rig.md_body("wine", namespace, rollout=rollout))
        rig.wait_phase(cluster, operator, namespace, "wine", "Ready")
        rig.set_model(cluster, namespace, "wine", "wine", "2")

        seen: list[dict] = []

        def record() -> dict:
            status = rig.status_of(cluster, namespace, "wine")
            seen.append(status)
            return status

        def inconclusive():
            status = record()
            analysis = status.get("lastAnalysis") or {}
            return status if analysis.get("result") == "Inconclusive" else None

        status = rig.wait_for(inconclusive, "an inconclusive analysis", explain=operator.tail)
        analysis = status["lastAnalysis"]
        assert status["phase"] == "Progressing"
        assert status["stableVersion"] == "1"
        assert status["canaryWeight"] == 50
        assert analysis["reason"] == "NoData"
        for figure in ("errorRate", "latencyP95Seconds", "driftScore"):
            assert f"{figure} is NaN" in analysis["message"], analysis
        assert analysis["figures"]["requests"] >= 20
        assert status["canary"]["inconclusiveSince"]

        def finished():
            status = record()
            return status if status.get("phase") in ("RolledBack", "Ready") else None

        status = rig.wait_for(finished, "the deadline to end the canary", explain=operator.tail)
        assert status["phase"] == "RolledBack"
        assert status["stableVersion"] == "1"
        assert status["history"][-1]["reason"] == "AnalysisInconclusive"
        # never promoted, never a step beyond the first, at any point we looked
        assert all(s.get("stableVersion") == "1" for s in seen)
        assert all(s.get("canaryWeight", 0) in (0, 50) for s in seen)
        assert "Promoted" not in rig.event_reasons(cluster, namespace, "wine")
        assert "CanaryAdvanced" not in rig.event_reasons(cluster, namespace, "wine")
        rig.assert_running(operator)
    finally:
        prom.stop()


GARBAGE: dict[str, tuple[int, str, bytes]] = {
    "notjson": (200, "text/plain", b"hello, I am not Prometheus"),
    "shape": (200, "application/json", b'{"status": "success", "data": {"resultType": '
              b'"vector", "result": "garbage"}}'),
    "html": (500, "text/html", b"<html><body><h1>500 Internal Server Error</h1></body></html>"),
}  # fmt: skip
GARBAGE_SAYS = {
    "notjson": "answered HTTP 200 with a body that is not JSON (text/plain): 'hello, I am",
    "shape": "the vector result is not a list",
    "html": "answered HTTP 500 with a body that is not JSON (text/html)",
}


class GarbageHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        mode = self.path.strip("/").split("/", 1)[0]
        status, ctype, body = GARBAGE.get(mode, (404, "text/plain", b"no such mode"))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def garbage_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), GarbageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def leftovers(cluster: Cluster) -> list[str]:
    """ModelDeployments of earlier tests whose namespace is being deleted (`namespace` does
    not wait): while they go, a reconcile of theirs can fail on the terminating namespace."""
    going = {
        ns["metadata"]["name"]
        for ns in cluster.get("namespaces")["items"]
        if ns["metadata"].get("deletionTimestamp")
    }
    return [
        f"{md['metadata']['namespace']}/{md['metadata']['name']}"
        for md in cluster.get("modeldeployments", "--all-namespaces")["items"]
        if md["metadata"]["namespace"] in going
    ]


def test_garbage_from_prometheus_holds_with_a_clear_message(
    cluster, operator, namespace, garbage_server
):
    names = {mode: f"garbage-{mode}" for mode in GARBAGE}
    # the log window below is this test's alone: earlier tests' objects are gone first
    rig.wait_for(
        lambda: not leftovers(cluster),
        "earlier tests' ModelDeployments to be deleted",
        explain=lambda: f"still there: {leftovers(cluster)}\n{operator.tail()}",
    )
    log_start = operator.log.stat().st_size  # the module's operator logged earlier tests too
    for mode, name in names.items():
        analysis = {"minRequests": 1, "prometheusUrl": f"{garbage_server}/{mode}"}
        rollout = {"strategy": "Canary", "steps": [50, 100], "interval": "2s", "analysis": analysis}
        cluster.apply(rig.md_body(name, namespace, rollout=rollout))
    for name in names.values():
        rig.wait_phase(cluster, operator, namespace, name, "Ready")
    for name in names.values():
        rig.set_model(cluster, namespace, name, "wine", "2")

    for mode, name in names.items():

        def held(name=name):
            status = rig.status_of(cluster, namespace, name)
            cond = rig.condition(status, "Progressing")
            return status if cond.get("reason") == "PrometheusUnavailable" else None

        status = rig.wait_for(held, f"{name} to hold", explain=operator.tail)
        assert status["phase"] == "Progressing"
        assert status["stableVersion"] == "1"
        assert status["canaryWeight"] == 50
        assert status["lastAnalysis"]["result"] == "Error"
        assert GARBAGE_SAYS[mode] in status["lastAnalysis"]["message"], status["lastAnalysis"]
        assert GARBAGE_SAYS[mode] in rig.condition(status, "Progressing")["message"]
        assert f"{garbage_server}/{mode}" in status["lastAnalysis"]["message"]
    # and they keep holding: more analyses, never a step, a promotion or a crash
    firsts = {n: rig.status_of(cluster, namespace, n)["lastAnalysis"]["at"] for n in names.values()}
    for name, first in firsts.items():
        rig.wait_for(
            lambda name=name, first=first: (
                rig.status_of(cluster, namespace, name)["lastAnalysis"]["at"] > first
            ),
            f"another analysis of {name}",
            explain=operator.tail,
        )
    for name in names.values():
        status = rig.status_of(cluster, namespace, name)
        assert (status["phase"], status["stableVersion"], status["canaryWeight"]) == (
            "Progressing", "1", 50,
        )  # fmt: skip
        seen = rig.event_reasons(cluster, namespace, name)
        assert not {"Promoted", "CanaryAdvanced"} & set(seen), seen
        rig.wait_event(cluster, operator, namespace, name, "AnalysisHeld")
    with operator.log.open() as f:
        f.seek(log_start)
        failed = [ln for ln in f.read().splitlines() if "reconcile failed" in ln]
    assert failed == [], operator.tail()
    rig.assert_running(operator)


# --- 4. namespace-scoped mode: no cluster-wide scans --------------------------------


def test_namespace_scoped_startup_makes_no_forbidden_requests(
    cluster, operator, namespaced: OperatorRelease, tmp_path
):
    (watched,) = namespaced.watched
    who = namespaced.identity
    settings = namespaced.settings(cluster)
    assert json.loads(settings["MODELOPS_OPERATOR_NAMESPACES"]) == [watched]
    scoped = OperatorProcess(
        cluster,
        tmp_path,
        kubeconfig=cluster.token_kubeconfig(who.namespace, who.name, tmp_path / "sa.yaml"),
        # resync far away, as for the module's operator: the correction comes from the watch
        settings={**settings, "MODELOPS_OPERATOR_RESYNC_SECONDS": RESYNC},
    )
    operator.stop()  # the cluster-wide one would reconcile the same objects
    try:
        scoped.start()
        try:
            cluster.apply(rig.md_body("wine", watched, rollout={"strategy": "RollingUpdate"}))
            status = rig.wait_phase(cluster, scoped, watched, "wine", "Ready", timeout=180)
            # and a drift correction works through the namespaced Deployment watch
            cluster.kubectl("scale", "deployment/wine-model-service", "-n", watched, "--replicas=3")
            rig.wait_event(cluster, scoped, watched, "wine", "DriftCorrected")
            rig.assert_running(scoped)
        finally:
            scoped.stop()
        text = scoped.log.read_text()
    finally:
        operator.start()

    assert status["stableVersion"] == "1"
    refused = rig.refused_lines(text)
    assert refused == [], "\n".join(refused[:20])
