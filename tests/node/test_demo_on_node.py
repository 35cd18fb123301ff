"""`make demo-local` on the real node (issue 15): the demo's real-node stage, run as a user runs it.

`python -m devstack.demo --yes --node real` starts its own rig whose only node is real, builds
the images and loads them into the node, installs prometheus-operator and the operator's
chart, and tells the three canaries the KWOK stage tells (tests/cluster/test_demo_local.py),
judged by the Prometheus prometheus-operator runs. The test reads the outcome from the demo's
output and summary, and checks it left nothing behind: no process, no node, the host put
back. Nothing here requests node_rig: the demo's node is the module's one real node.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from devstack.control_plane import ControlPlane
from devstack.demo.real_node import RealNodeStage
from devstack.demo.simulated import SimulatedStage
from devstack.demo.stage import Options
from devstack.demo.story import choose_stage
from devstack.node import NODE_NAME, release
from devstack.node_config import NODE_HOME, NodePaths
from devstack.paths import REPO_ROOT, RUN_ROOT
from devstack.processes import pid_alive

# The demo bounds each of its waits itself: a canary's by the operator's own bound, 12 minutes
# on this stage (devstack.demo.story.decision_seconds); this is the backstop.
pytestmark = [pytest.mark.node, pytest.mark.timeout(3000)]
DEMO_TIMEOUT = 2700


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    run_dir = RUN_ROOT / f"demo-node-{os.getpid()}"  # short: the rig's sockets live there
    workdir = tmp_path_factory.mktemp("demo-node")
    summary = workdir / "summary.json"
    try:
        proc = subprocess.run(
            [
                sys.executable, "-m", "devstack.demo", "--yes", "--node", "real",
                "--rig-dir", str(run_dir), "--workdir", str(workdir / "run"),
                "--summary", str(summary),
            ],
            cwd=REPO_ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=DEMO_TIMEOUT, check=False,
        )  # fmt: skip
        yield {
            "returncode": proc.returncode,
            "out": proc.stdout + proc.stderr,
            "summary": json.loads(summary.read_text()) if summary.exists() else {},
            "run_dir": run_dir,
        }
    finally:  # a backstop: the demo stops all of it itself (the last test checks)
        release(run_dir)
        ControlPlane.stop_recorded(run_dir)


def test_auto_picks_the_real_node_where_the_machine_can_run_it(tmp_path):
    """This tier's machine can (root, the node's tools, a Docker engine): `make demo-local`
    runs on the real node; --node kwok and a named control plane keep the KWOK stage."""
    assert choose_stage(Options(rig_dir=tmp_path))[0] is RealNodeStage
    assert choose_stage(Options(rig_dir=tmp_path, node="kwok"))[0] is SimulatedStage
    kwok, why = choose_stage(Options(rig_dir=tmp_path, kubeconfig=tmp_path / "kubeconfig"))
    assert kwok is SimulatedStage
    assert "--kubeconfig" in why


def explain(run: dict) -> str:
    return "demo output (tail):\n" + "\n".join(run["out"].splitlines()[-200:])


def test_the_demo_runs_to_the_end_on_the_real_node_and_says_so(demo_run):
    assert demo_run["returncode"] == 0, explain(demo_run)
    out = demo_run["out"]
    for text in (
        "stage          real node: --node real",
        f"a REAL NODE, {NODE_NAME}",
        "prometheus-operator",
        "charts/model-operator",
        "loaded model-service:0.1.0 and modelops-operator:0.1.0 into the node's containerd",
        "python -m loadtest in the node's network namespace",
        "Result: as designed",
    ):
        assert text in out, f"{text!r} missing\n{explain(demo_run)}"
    assert "NOTHING INSIDE A" not in out
    assert "loopback stand-in" not in out
    # the pods of `kubectl get pods -o wide` are on the real node, with pod IPs
    pods = [line for line in out.splitlines() if "-model-service-" in line and "Running" in line]
    assert pods, explain(demo_run)
    assert all(NODE_NAME in line for line in pods), pods
    assert demo_run["summary"]["mode"] == "real node"


def test_the_canaries_end_as_designed(demo_run):
    results = demo_run["summary"]["results"]
    assert results["diabetes 1 -> 3"]["got"] == "promoted (WithinThresholds)", explain(demo_run)
    assert results["wine 1 -> 2"]["got"] in (
        "rolled back (DriftTooHigh)", "rolled back (PredictionShift)",
    ), explain(demo_run)  # fmt: skip
    assert results["diabetes 3 -> 2"]["got"] == "rolled back (PredictionShift)", explain(demo_run)
    # judged on live figures against the thresholds and the stable version (the Events the
    # demo narrates); the only Prometheus on this rig is the one prometheus-operator runs
    assert "<= maxDriftScore 0.25" in demo_run["out"]
    assert "<= maxPredictionShift 0.1" in demo_run["out"]


def test_the_operator_ran_in_cluster_from_its_chart(demo_run):
    summary = demo_run["summary"]
    assert summary["operator_pod"].startswith("modelops-system/modelops-model-operator-")
    assert summary["images"] == ["model-service:0.1.0", "modelops-operator:0.1.0"]
    assert f"on node {NODE_NAME}, image modelops-operator:0.1.0" in demo_run["out"]


def test_the_demo_left_nothing_behind(demo_run):
    summary = demo_run["summary"]
    names = {p["name"] for p in summary["processes"]}
    assert {"traffic diabetes", "traffic wine"} <= names
    plane = {p["name"] for p in summary["control_plane"]}
    assert {"kube-apiserver", "kubelet", "containerd", "kube-proxy"} <= plane
    every = summary["processes"] + summary["control_plane"]
    assert [p for p in every if pid_alive(p["pid"], p["start_time"])] == []
    assert summary["cluster_kept"] is False
    assert not demo_run["run_dir"].exists()
    assert not NodePaths(NODE_HOME).host_state.exists()
    assert "the node's host changes put back" in demo_run["out"]
