"""Operating rollouts on the rig (issue 20): `kubectl modelops`, `kubectl wait`, the Argo CD
health check on live objects, a second field manager, and the operator's rolled-back alert
delivered through a real Prometheus and Alertmanager to a webhook.

The real operator runs as a local process against the rig's real control plane (KWOK nodes).
Most canaries here are held on purpose: their Prometheus URL answers nothing, so the operator
holds them (PrometheusUnavailable, never promote) and only a request moves them; the alert
test judges a real wine canary on real metrics.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from devstack.canary import canary_rigs
from devstack.cluster import Cluster
from devstack.operator_process import OperatorProcess, running_operator
from devstack.prometheus import Alertmanager, Prometheus, Target
from tests.support import promql
from tests.support.argocd import health
from tests.support.operator_rig import (
    canary_rollout,
    condition,
    event_reasons,
    get_md,
    md_body,
    set_model,
    status_of,
    wait_for,
    wait_phase,
    wait_reconciles,
)
from tests.support.repo import ROOT
from tests.support.webhook import Receiver

pytestmark = pytest.mark.cluster

PLUGIN = Path(sys.executable).parent / "kubectl-modelops"
OPERATOR_RULES = ROOT / "alerts" / "operator.rules.yaml"
OPERATOR_CHART = ROOT / "charts" / "model-operator"
NOWHERE = "http://127.0.0.1:1"  # a Prometheus that never answers: the canary is held


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory) -> Iterator[OperatorProcess]:
    with running_operator(cluster, tmp_path_factory.mktemp("operator")) as op:
        yield op


def plugin(cluster: Cluster, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([str(PLUGIN), *args], env=cluster.env, capture_output=True,
                          text=True, timeout=timeout, check=False)  # fmt: skip


def watch(cluster: Cluster, namespace: str, name: str) -> subprocess.Popen:
    """`kubectl modelops status --watch` in the background."""
    return subprocess.Popen(
        [str(PLUGIN), "status", name, "-n", namespace, "--watch", "--timeout", "2m"],
        env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def kubectl_wait(cluster: Cluster, namespace: str, name: str, cond: str, timeout: str):
    return cluster.kubectl("wait", f"--for=condition={cond}", f"md/{name}", "-n", namespace,
                           f"--timeout={timeout}", check=False, timeout=120)  # fmt: skip


def whoami(cluster: Cluster) -> str:
    return cluster.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout


def held_canary(cluster, operator, namespace, steps=(25, 50, 100), name="wine") -> dict:
    """wine 1 Ready, then version 2 asked: its canary held at the first step."""
    rollout = canary_rollout(NOWHERE) | {"steps": list(steps), "interval": "2s"}
    cluster.apply(md_body(name, namespace, rollout=rollout))
    wait_phase(cluster, operator, namespace, name, "Ready")
    set_model(cluster, namespace, name, "wine", "2")

    def held():
        status = status_of(cluster, namespace, name)
        reason = condition(status, "Progressing").get("reason")
        return (
            status
            if status.get("canaryVersion") == "2" and reason == "PrometheusUnavailable"
            else None
        )

    return wait_for(held, f"{namespace}/{name}: canary 2 held", explain=operator.tail)


# --- kubectl modelops: one test per verb ---------------------------------------------


def test_promote_steps_the_canary_on_and_full_promotes_it(cluster, operator, namespace):
    held_canary(cluster, operator, namespace)
    watcher = watch(cluster, namespace, "wine")
    # the stable serves, but not the asked release: kubectl wait does not succeed
    assert kubectl_wait(cluster, namespace, "wine", "Ready", "3s").returncode != 0

    step = plugin(cluster, "promote", "wine", "-n", namespace)
    assert step.returncode == 0, step.stdout + step.stderr
    assert f"promote by {whoami(cluster)}: accepted: promote canary 2" in step.stdout
    status = status_of(cluster, namespace, "wine")
    assert (status["canaryWeight"], status["canary"]["step"]) == (50, 1)

    full = plugin(cluster, "promote", "wine", "-n", namespace, "--full")
    assert full.returncode == 0, full.stdout + full.stderr
    wait_phase(cluster, operator, namespace, "wine", "Ready", stableVersion="2")
    assert watcher.wait(timeout=90) == 0, watcher.stderr.read() if watcher.stderr else ""
    assert kubectl_wait(cluster, namespace, "wine", "Ready", "30s").returncode == 0
    history = status_of(cluster, namespace, "wine")["history"]
    asked = [(h["result"], h["reason"], h["by"]) for h in history if h["result"] == "Request"]
    assert asked == [
        ("Request", "Promote", whoami(cluster)),
        ("Request", "PromoteFull", whoami(cluster)),
    ]
    assert history[-1]["result"] == "Promoted"
    # each request was consumed once: the annotation is gone
    assert "modelops.io/request" not in (
        get_md(cluster, namespace, "wine")["metadata"].get("annotations") or {}
    )


def test_abort_rolls_back_and_status_watch_exits_1(cluster, operator, namespace):
    held_canary(cluster, operator, namespace)
    watcher = watch(cluster, namespace, "wine")

    abort = plugin(cluster, "abort", "wine", "-n", namespace)
    assert abort.returncode == 0, abort.stdout + abort.stderr
    status = wait_phase(cluster, operator, namespace, "wine", "RolledBack")
    assert watcher.wait(timeout=90) == 1
    rolled = next(h for h in status["history"] if h["result"] == "RolledBack")
    assert (rolled["version"], rolled["reason"]) == ("2", "AbortRequested")
    assert f"abort requested by {whoami(cluster)}" in rolled["message"]
    # GitOps: Ready=False reason RolledBack at this generation
    ready = condition(status, "Ready")
    generation = get_md(cluster, namespace, "wine")["metadata"]["generation"]
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == (
        "False",
        "RolledBack",
        generation,
    )
    assert kubectl_wait(cluster, namespace, "wine", "Ready", "3s").returncode != 0
    # fail fast: the rollout has ended (Progressing=False), and Ready says how, at once
    assert kubectl_wait(cluster, namespace, "wine", "Progressing=False", "10s").returncode == 0
    assert kubectl_wait(cluster, namespace, "wine", "Ready", "0s").returncode != 0
    # and Argo CD would say Degraded, with the reason
    assert health(get_md(cluster, namespace, "wine")) == (
        "Degraded", f"RolledBack: {ready['message']}",
    )  # fmt: skip
    assert plugin(cluster, "status", "wine", "-n", namespace).returncode == 1


def test_retry_canaries_the_rolled_back_version_again(cluster, operator, namespace):
    held_canary(cluster, operator, namespace)
    assert plugin(cluster, "abort", "wine", "-n", namespace).returncode == 0
    first = wait_phase(cluster, operator, namespace, "wine", "RolledBack")["history"]

    retry = plugin(cluster, "retry", "wine", "-n", namespace)
    assert retry.returncode == 0, retry.stdout + retry.stderr
    assert "accepted: version 2 again" in retry.stdout
    status = wait_phase(cluster, operator, namespace, "wine", "Progressing", canaryVersion="2")
    assert "rolledBack" not in status
    assert status["history"][len(first)]["reason"] == "Retry"
    # the spec was not edited: same generation
    assert (
        status["observedGeneration"] == get_md(cluster, namespace, "wine")["metadata"]["generation"]
    )


def test_pause_holds_a_new_release_and_resume_lets_it_go(cluster, operator, namespace):
    cluster.apply(md_body("wine", namespace, rollout=canary_rollout(NOWHERE)))
    wait_phase(cluster, operator, namespace, "wine", "Ready")
    pause = plugin(cluster, "pause", "wine", "-n", namespace)
    assert pause.returncode == 0, pause.stdout + pause.stderr
    assert status_of(cluster, namespace, "wine")["pause"]["by"] == whoami(cluster)

    set_model(cluster, namespace, "wine", "wine", "2")
    wait_reconciles(operator, namespace, "wine", 3)
    status = status_of(cluster, namespace, "wine")
    assert "canary" not in status
    progressing = condition(status, "Progressing")
    assert progressing["reason"] == "RolloutPaused"
    assert f"paused by {whoami(cluster)}" in progressing["message"]
    assert health(get_md(cluster, namespace, "wine"))[0] == "Suspended"

    resume = plugin(cluster, "resume", "wine", "-n", namespace)
    assert resume.returncode == 0, resume.stdout + resume.stderr
    status = wait_phase(cluster, operator, namespace, "wine", "Progressing", canaryVersion="2")
    assert "pause" not in status


def test_history_lists_rollouts_and_requests_with_who_asked(cluster, operator, namespace):
    cluster.apply(md_body("wine", namespace, rollout=canary_rollout(NOWHERE)))
    wait_phase(cluster, operator, namespace, "wine", "Ready")
    assert plugin(cluster, "pause", "wine", "-n", namespace).returncode == 0
    refused = plugin(cluster, "promote", "wine", "-n", namespace)
    assert refused.returncode == 1
    assert "not accepted: no canary of version 1 in progress" in refused.stdout

    out = plugin(cluster, "history", "wine", "-n", namespace)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["AT", "VERSION", "RESULT", "REASON", "BY", "MESSAGE"]
    rows = [line.split()[1:5] for line in lines[1:]]
    user = whoami(cluster)
    assert rows == [["1", "Deployed", "Available", "-"], ["1", "Request", "Pause", user],
                    ["1", "Request", "Promote", user]]  # fmt: skip


# --- GitOps: a second field manager re-applying the same spec mid-canary -----------------


def test_a_second_field_manager_reapplying_the_spec_mid_canary_changes_nothing(
    cluster, operator, namespace
):
    held_canary(cluster, operator, namespace)
    before = get_md(cluster, namespace, "wine")
    rollout = canary_rollout(NOWHERE) | {"steps": [25, 50, 100], "interval": "2s"}
    body = md_body("wine", namespace, version="2", rollout=rollout)
    # what Argo CD does on sync: the same spec, under its own field manager
    cluster.kubectl("apply", "--server-side", "--field-manager=argocd-controller", "-f", "-",
                    input=json.dumps(body))  # fmt: skip
    applied = cluster.get("modeldeployment", "wine", "-n", namespace, "--show-managed-fields")
    assert "argocd-controller" in {m["manager"] for m in applied["metadata"]["managedFields"]}
    wait_reconciles(operator, namespace, "wine", 4)
    after = get_md(cluster, namespace, "wine")
    assert after["metadata"]["generation"] == before["metadata"]["generation"]

    # no restart of the rollout and no status churn: the status is what it was, but for the
    # time of the last (held) analysis, which the operator retries every interval anyway
    def settled(status: dict) -> dict:
        return status | {"lastAnalysis": status["lastAnalysis"] | {"at": "-"}}

    assert settled(after["status"]) == settled(before["status"])
    assert event_reasons(cluster, namespace, "wine").count("CanaryStarted") == 1


# --- dashboards once per cluster ----------------------------------------------------


def dashboards(cluster: Cluster, namespace: str) -> list[str]:
    items = cluster.get("configmaps", "-n", namespace, "-l", "grafana_dashboard=1")["items"]
    return sorted(key for cm in items for key in cm["data"])


def test_deleting_one_model_deployment_leaves_the_dashboards(cluster, operator, namespace):
    # the operator chart's dashboards, as its release would install them
    only = "templates/dashboards-configmap.yaml"
    rendered = cluster.helm("template", "ops", str(OPERATOR_CHART), "--namespace", namespace,
                            "--show-only", only).stdout  # fmt: skip
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=rendered)
    shipped = dashboards(cluster, namespace)
    assert shipped == ["modelops-model.json", "modelops-overview.json", "modelops-rollout.json"]
    for name in ("wine", "diabetes"):
        cluster.apply(md_body(name, namespace, model=name, rollout={"strategy": "RollingUpdate"}))
    for name in ("wine", "diabetes"):
        wait_phase(cluster, operator, namespace, name, "Ready")
    # the models ship no copies of their own: one copy serves both
    assert dashboards(cluster, namespace) == shipped

    cluster.kubectl("delete", "md", "wine", "-n", namespace, "--wait=true")
    wait_for(lambda: not cluster.get("deployments", "-n", namespace, "-l",
                                     "modelops.io/modeldeployment=wine")["items"],
             "wine's objects to be pruned")  # fmt: skip
    assert dashboards(cluster, namespace) == shipped


# --- the rolled-back alert, delivered; the operator's panels have data -----------------


def operator_panel_queries() -> list[promql.Query]:
    """The rollout dashboard's queries that read the operator's own metrics."""
    queries = promql.dashboard_queries()
    analyses = promql.analyse(promql.expand_grafana(q.expr) for q in queries)
    found = [q for q, a in zip(queries, analyses, strict=True) if promql.needs_operator(a.metrics)]
    assert len(found) >= 10  # the operator row: phase, step, share, figures, rollouts, errors
    return found


def test_the_rolled_back_wine_canary_alert_reaches_an_alertmanager_webhook(
    cluster, operator, namespace
):
    receiver = Receiver()
    config = {
        "route": {"receiver": "hook", "group_by": ["alertname", "namespace", "name"],
                  "group_wait": "1s", "group_interval": "1s"},
        "receivers": [{"name": "hook", "webhook_configs": [{"url": f"{receiver.url}/hook"}]}],
    }  # fmt: skip
    with (
        tempfile.TemporaryDirectory(prefix="modelops-alerting-") as work,
        canary_rigs(namespace, "modelops-canary-") as make,
        Alertmanager(Path(work) / "am", yaml.safe_dump(config)) as am,
        Prometheus(
            Path(work) / "prom",
            targets=[Target(f"127.0.0.1:{operator.metrics_port}", job="modelops-operator")],
            rule_files=[OPERATOR_RULES],
            alertmanager=am,
        ) as prom,
    ):
        rig = make("wine")  # v2 was trained on low-alcohol wines: live inputs drift
        cluster.apply(md_body("wine", namespace, rollout=canary_rollout(rig.prometheus.url)))
        wait_phase(cluster, operator, namespace, "wine", "Ready")
        set_model(cluster, namespace, "wine", "wine", "2")
        wait_phase(cluster, operator, namespace, "wine", "RolledBack")
        prom.wait_for_alert("ModelCanaryRolledBack", {"namespace": namespace})
        # the operator is shared: an earlier test's rollback may fire this alert too, in
        # its own namespace, and reach the webhook first
        alert = wait_for(lambda: next((a for a in receiver.alerts()
                                       if a["labels"]["alertname"] == "ModelCanaryRolledBack"
                                       and a["labels"].get("namespace") == namespace), None),
                         f"{namespace}'s ModelCanaryRolledBack at the webhook")  # fmt: skip
        receiver.close()
        # the dashboards contract: every operator panel's query returns data after the rollout
        empty = [
            f"{q.where}: {q.expr}"
            for q in operator_panel_queries()
            if not prom.query(promql.expand_grafana(q.expr, {"namespace": namespace}))
        ]
        assert not empty, "operator panels without data:\n" + "\n".join(empty)
    assert alert["status"] == "firing"
    labels = alert["labels"]
    assert (labels["namespace"], labels["name"], labels["model"], labels["version"]) == (
        namespace, "wine", "wine", "2",
    )  # fmt: skip
    assert (labels["reason"], labels["severity"]) == ("DriftTooHigh", "warning")
    assert alert["annotations"]["summary"] == "wine version 2 was rolled back (DriftTooHigh)"
    assert alert["annotations"]["runbook_url"].endswith("#modelcanaryrolledback")
