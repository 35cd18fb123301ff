"""The no-Docker demo (make demo-local), run non-interactively on the test rig.

`python -m devstack.demo --yes --kubeconfig ...` uses the session's control plane instead of
starting its own, runs the operator, the real services behind the KWOK pods, Prometheus and
the traffic generator as local processes, and leaves the cluster as the story ends: the
healthy canary (diabetes 1 -> 2) promoted, the bad one (wine 1 -> 2, drifting inputs)
rolled back with a Warning Event. The test checks that outcome on the cluster itself, and
that every process the demo started is gone once it exits. About three minutes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.cluster import Cluster
from devstack.demo.real_node import RealNodeStage
from devstack.demo.story import STEPS, decision_seconds, md_digest
from devstack.paths import REPO_ROOT
from devstack.processes import pid_alive
from tests.support.operator_rig import deployment_env, events_of

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1800)]

# The demo bounds each of its waits itself (a canary's by the operator's own bound, about 7
# minutes on this stage: devstack.demo.story.decision_seconds); this is the backstop.
DEMO_TIMEOUT = 1500


def model_dirs(cluster: Cluster, ns: str) -> dict[str, str]:
    """Deployment name -> the MODELOPS_MODEL_DIR its pods get."""
    return {
        dep["metadata"]["name"]: deployment_env(dep)["MODELOPS_MODEL_DIR"]
        for dep in cluster.get("deployments", "-n", ns)["items"]
    }


@pytest.fixture(scope="module")
def demo_run(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Run the demo once for the module; yields its exit status, output and summary."""
    # a module-scoped namespace: created and cleaned up here, as `namespace` does per test
    ns = cluster.create_namespace(f"demo-local-{int(time.time()) % 100000}")
    workdir = tmp_path_factory.mktemp("demo-local")
    summary = workdir / "summary.json"
    proc = subprocess.run(
        [
            sys.executable, "-m", "devstack.demo", "--yes",
            "--kubeconfig", str(cluster.kubeconfig), "--namespace", ns,
            "--workdir", str(workdir / "run"), "--summary", str(summary),
        ],
        cwd=REPO_ROOT, env=cluster.env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=DEMO_TIMEOUT, check=False,
    )  # fmt: skip
    result = {
        "ns": ns,
        "returncode": proc.returncode,
        "out": proc.stdout + proc.stderr,
        "summary": json.loads(summary.read_text()) if summary.exists() else {},
        "workdir": workdir,
    }
    yield result
    for md in cluster.get("modeldeployments", "-n", ns)["items"]:
        cluster.kubectl(
            "patch", "md", md["metadata"]["name"], "-n", ns, "--type", "merge",
            "-p", '{"metadata":{"finalizers":null}}', check=False,
        )  # fmt: skip
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def explain(run: dict) -> str:
    return "demo output (tail):\n" + "\n".join(run["out"].splitlines()[-80:])


def test_the_demo_runs_to_the_end_and_says_what_runs_where(demo_run, cluster):
    assert demo_run["returncode"] == 0, explain(demo_run)
    out = demo_run["out"]
    for text in (
        "stage          KWOK: --kubeconfig names a running control plane",
        "simulated by KWOK",
        "NOTHING INSIDE A",
        "python -m modelops_operator",
        "python -m modelops_service",
        "alerts/modelops.rules.yaml",
        f"export KUBECONFIG={cluster.kubeconfig}",
        f"kubectl get modeldeployments -n {demo_run['ns']} -w",
        "$ kubectl get modeldeployments",
        "Result: as designed",
    ):
        assert text in out, f"{text!r} missing\n{explain(demo_run)}"
    results = demo_run["summary"]["results"]
    assert results["diabetes 1 -> 3"]["got"] == "promoted (WithinThresholds)"
    assert results["wine 1 -> 2"]["got"] in (
        "rolled back (DriftTooHigh)", "rolled back (PredictionShift)",
    )  # fmt: skip
    assert results["diabetes 3 -> 2"]["got"] == "rolled back (PredictionShift)"


def test_the_healthy_canary_is_promoted_and_the_biased_one_rolled_back(demo_run, cluster):
    ns = demo_run["ns"]
    status = cluster.get("md", "diabetes", "-n", ns)["status"]
    assert status["phase"] == "RolledBack", explain(demo_run)
    assert status["stableVersion"] == "3"
    assert "canaryVersion" not in status
    assert [(h["version"], h["result"], h["reason"]) for h in status["history"]][1:] == [
        ("3", "Promoted", "AnalysisPassed"),
        ("2", "RolledBack", "PredictionShift"),
    ]
    events = events_of(cluster, ns, "diabetes")
    reasons = [e["reason"] for e in events]
    for reason in ("CanaryStarted", "CanaryAdvanced", "Promoted", "RolledBack"):
        assert reason in reasons, reasons
    # version 3 judged on live figures from the real services, through the recording rules,
    # against version 1 in the same seconds
    advanced = next(e for e in events if e["reason"] == "CanaryAdvanced")
    assert "<= maxDriftScore 0.25" in advanced["message"]
    assert "<= maxPredictionShift 0.1" in advanced["message"]
    # version 2: every absolute figure fine, its predictions about 20% above version 3's
    figures = status["lastAnalysis"]["figures"]
    assert figures["predictionShift"] > 0.1
    assert figures["predictionMean"] > figures["stablePredictionMean"]
    assert [e["type"] for e in events if e["reason"] == "RolledBack"] == ["Warning"]
    assert model_dirs(cluster, ns)["diabetes-model-service"] == "/models/diabetes/3"


def test_the_bad_canary_is_rolled_back_with_a_warning(demo_run, cluster):
    ns = demo_run["ns"]
    status = cluster.get("md", "wine", "-n", ns)["status"]
    assert status["phase"] == "RolledBack", explain(demo_run)
    assert status["stableVersion"] == "1"
    assert status["rolledBack"]["version"] == "2"
    analysis = status["lastAnalysis"]
    # wine 2 is wrong twice: its inputs drift (once enough rows are in the window) and it
    # never predicts cultivar 0 (from the first requests): whichever is seen first names it
    assert analysis["result"] == "Fail"
    figure, limit = {"DriftTooHigh": ("driftScore", 0.25),
                     "PredictionShift": ("predictionShift", 0.1)}[analysis["reason"]]  # fmt: skip
    assert analysis["figures"][figure] > limit
    assert analysis["figures"]["requests"] >= 20
    assert [(h["version"], h["result"]) for h in status["history"]] == [
        ("1", "Deployed"),
        ("2", "RolledBack"),
    ]
    warnings = [e for e in events_of(cluster, ns, "wine") if e["type"] == "Warning"]
    assert [e["reason"] for e in warnings] == ["RolledBack"]
    assert f"{figure} " in warnings[0]["message"]
    assert f"> max{figure[0].upper()}{figure[1:]} {limit:g}" in warnings[0]["message"]
    deadline = time.monotonic() + 60
    while "wine-model-service-canary" in model_dirs(cluster, ns) and time.monotonic() < deadline:
        time.sleep(1)  # the canary Deployment is pruned after the rollback
    dirs = model_dirs(cluster, ns)
    assert "wine-model-service-canary" not in dirs
    assert dirs["wine-model-service"] == "/models/wine/1"


def test_every_process_the_demo_started_is_gone(demo_run, cluster):
    summary = demo_run["summary"]
    names = {p["name"] for p in summary["processes"]}
    assert {"operator", "prometheus", "traffic diabetes", "traffic wine"} <= names
    assert {"service diabetes v2", "service wine v1", "service wine v2"} <= names
    alive = [p for p in summary["processes"] if pid_alive(p["pid"], p["start_time"])]
    assert not alive
    # it used the session's control plane (started none) and left it running
    assert summary["control_plane"] == []
    assert cluster.kubectl("get", "--raw", "/readyz").stdout == "ok"
    assert not (Path(demo_run["workdir"]) / "run" / "procs" / "state.json").exists()


def test_a_timeout_says_where_each_canary_stands_and_why():
    """What the demo prints when a wait runs out: the canary's step and the last analysis
    first, not the whole status (its thresholds and PromQL fill a screen)."""
    md = {
        "metadata": {"name": "diabetes", "generation": 2},
        "status": {
            "phase": "Progressing", "stableVersion": "1", "ready": "4/4",
            "observedGeneration": 2, "canaryWeight": 50,
            "canary": {"model": {"version": "3"}, "step": 0,
                       "stepStartedAt": "2026-12-07T06:18:35Z",
                       "inconclusiveSince": "2026-12-07T06:19:10Z"},
            "lastAnalysis": {"at": "2026-12-07T06:23:10Z", "version": "3", "weight": 50,
                             "result": "Inconclusive", "reason": "NoTraffic",
                             "message": "canary requests is no data (need 100)"},
            "conditions": [{"type": "Progressing", "status": "True", "reason": "CanaryStep",
                            "message": "canary 3 at 50%"}],
        },
    }  # fmt: skip
    assert md_digest(md).splitlines() == [
        "diabetes: Progressing, stable 1, ready 4/4, generation 2 (observed 2)",
        "  canary 3 at step 0 (50%) since 2026-12-07T06:18:35Z, "
        "inconclusive since 2026-12-07T06:19:10Z",
        "  last analysis 2026-12-07T06:23:10Z of v3 at 50%: Inconclusive (NoTraffic): "
        "canary requests is no data (need 100)",
        "  Progressing=True CanaryStep: canary 3 at 50%",
    ]
    del md["status"]["lastAnalysis"]
    assert "no analysis of this canary yet" in md_digest(md)
    del md["status"]["canary"]
    assert "analysis" not in md_digest(md)


def test_the_demo_waits_for_a_canary_as_long_as_the_operator_may_take():
    """Two steps, each judged after its 30s interval and rolled back at the latest after a
    5m analysis deadline, plus a minute for the pods: the real node's stage waits 12 minutes."""
    assert decision_seconds("30s", "5m", 2) == 2 * (30 + 300) + 60
    assert decision_seconds(RealNodeStage.interval, RealNodeStage.deadline, len(STEPS)) >= 720
