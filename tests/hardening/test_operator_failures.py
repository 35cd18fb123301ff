"""Workloads that never become ready, on the rig (issue 8): Degraded with the reason, no crash loop.

The real operator process runs against the rig's real API server
(devstack's OperatorProcess, tests/support/operator_rig.py's helpers). Nothing runs inside a
KWOK pod, so the rig's stages (devstack/kwok-stages.yaml) play the kubelet for images
in the reserved domain `rig.invalid`:

- `rig.invalid/image-pull:*` stays in ImagePullBackOff; `rig.invalid/crashloop:*` exits 1
  and sits in CrashLoopBackOff with a growing restartCount. A ModelDeployment on either
  is Degraded with that reason and the pod's name, Ready=False, one Warning Event; the
  operator stays up and a healthy ModelDeployment beside it still goes Ready. A canary
  on such an image is rolled back; the stable keeps its release.
- `rig.invalid/artifact-sha256:<hex>` is the model service in an image whose artifact
  hashes to <hex>. A container declaring another MODELOPS_MODEL_SHA256 exits 2 with the
  service's JSON error line as its termination message, which is what the chart's
  `terminationMessagePolicy: FallbackToLogsOnError` gives on a real kubelet. The test
  runs the real service with the same wrong digest first and asserts that the operator's
  Degraded message carries exactly what the service said, so the stage cannot drift
  from the service's wording.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.cluster import Cluster
from devstack.operator_process import OperatorProcess, running_operator
from devstack.service_process import demo_model_dir, start_service
from modelops_operator.metrics import RECONCILE_ERRORS, RECONCILES
from modelops_service.card import read_card
from tests.support import operator_rig as rig

pytestmark = pytest.mark.cluster

FAULT_IMAGES = {
    "CrashLoopBackOff": "rig.invalid/crashloop:1",
    "ImagePullBackOff": "rig.invalid/image-pull:1",
}
ARTIFACT_IMAGE = "rig.invalid/artifact-sha256:{}"  # the artifact in the image hashes to {}
UNVERIFIED = "artifact not verified: spec.model.sha256 is empty"


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory) -> Iterator[OperatorProcess]:
    with running_operator(cluster, tmp_path_factory.mktemp("operator-failures")) as op:
        yield op


def md(name: str, ns: str, image: str = "model-service:0.1.0", **model: Any) -> dict:
    """A ModelDeployment of wine/1 (first deploy: a rolling one) on ``image``."""
    body = rig.md_body(name, ns, rollout={"strategy": "RollingUpdate"})
    body["spec"]["model"].update(image=image, **model)
    return body


def alive(op: OperatorProcess, ns: str, *names: str) -> None:
    """The operator the fixture started still runs, and no reconcile of ``names`` raised."""
    rig.assert_running(op)
    assert op.starts == 1
    for name in names:
        assert op.metric(RECONCILES, namespace=ns, name=name, result="error") == 0, op.tail()
        assert op.metric(RECONCILE_ERRORS, namespace=ns, name=name) == 0, op.tail()


def pods(cluster: Cluster, ns: str, name: str) -> list[dict]:
    selector = f"app.kubernetes.io/instance={name}"
    return cluster.get("pods", "-n", ns, "-l", selector)["items"]


def deployment_names(cluster: Cluster, ns: str) -> set[str]:
    return {d["metadata"]["name"] for d in cluster.get("deployments", "-n", ns)["items"]}


def ready_endpoints(cluster: Cluster, ns: str, service: str) -> int:
    slices = cluster.get("endpointslices", "-n", ns, "-l", f"kubernetes.io/service-name={service}")[
        "items"
    ]
    return sum(
        1
        for s in slices
        for e in s.get("endpoints") or []
        if (e.get("conditions") or {}).get("ready")
    )


def replica_sets_of(cluster: Cluster, ns: str, deployment: str) -> set[str]:
    return {
        rs["metadata"]["name"]
        for rs in cluster.get("replicasets", "-n", ns)["items"]
        if any(ref["name"] == deployment for ref in rs["metadata"].get("ownerReferences") or [])
    }


# --- the rig's fault images themselves -----------------------------------------


def test_fault_images_play_the_kubelet_and_leave_other_pods_alone(cluster, namespace):
    digest = "ab" * 32
    specs = {
        "plain": ("model-service:0.1.0", {}),
        "pull": (FAULT_IMAGES["ImagePullBackOff"], {}),
        "crash": (FAULT_IMAGES["CrashLoopBackOff"], {}),
        "sha-good": (ARTIFACT_IMAGE.format(digest), {"MODELOPS_MODEL_SHA256": digest}),
        "sha-none": (ARTIFACT_IMAGE.format(digest), {}),
        "sha-bad": (ARTIFACT_IMAGE.format(digest), {"MODELOPS_MODEL_SHA256": "cd" * 32}),
    }
    for name, (image, env) in specs.items():
        env = {"MODELOPS_MODEL_DIR": "/models/wine/1", **env}
        container = {
            "name": "model-service",
            "image": image,
            "env": [{"name": k, "value": v} for k, v in env.items()],
        }
        cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"containers": [container]},
            }
        )

    def statuses() -> dict[str, dict]:
        items = cluster.get("pods", "-n", namespace)["items"]
        return {
            p["metadata"]["name"]: (p["status"].get("containerStatuses") or [{}])[0] for p in items
        }

    def settled():
        now = statuses()
        done = len(now) == len(specs) and all(s.get("state") for s in now.values())
        restarted = done and all(now[n].get("restartCount", 0) >= 3 for n in ("crash", "sha-bad"))
        return now if restarted else None

    final = rig.wait_for(
        settled, "the fault pods' restarts to grow", explain=lambda: str(statuses())
    )
    for name in ("plain", "sha-good", "sha-none"):
        assert final[name]["ready"] is True, (name, final[name])
        assert "running" in final[name]["state"], (name, final[name])
    assert final["pull"]["ready"] is False
    assert final["pull"]["state"]["waiting"]["reason"] == "ImagePullBackOff"
    assert final["pull"]["state"]["waiting"]["message"] == (
        'Back-off pulling image "rig.invalid/image-pull:1"'
    )
    for name, code in (("crash", 1), ("sha-bad", 2)):
        status = final[name]
        assert status["ready"] is False
        assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        terminated = status["lastState"]["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (code, "Error")
    said = json.loads(final["sha-bad"]["lastState"]["terminated"]["message"])
    assert said["level"] == "error"
    assert said["msg"] == (
        f"refusing to load /models/wine/1/model.joblib: its sha256 is {digest} but "
        f"MODELOPS_MODEL_SHA256 declares {'cd' * 32}"
    )


# --- a stable release that never becomes ready ---------------------------------


@pytest.mark.parametrize("reason", sorted(FAULT_IMAGES))
def test_an_image_that_never_becomes_ready_is_degraded_with_the_reason(
    cluster, operator, namespace, reason
):
    cluster.apply(md("broken", namespace, image=FAULT_IMAGES[reason]))
    status = rig.wait_phase(cluster, operator, namespace, "broken", "Degraded")

    degraded = rig.condition(status, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", reason)
    pod_names = {p["metadata"]["name"] for p in pods(cluster, namespace, "broken")}
    named = degraded["message"].removeprefix("pod ").split(":", 1)[0]
    assert named in pod_names, (degraded["message"], pod_names)
    assert f": {reason}: " in degraded["message"]
    if reason == "CrashLoopBackOff":
        assert (
            "container model-service exited 1 (Error): rig.invalid/crashloop:1 exits 1"
            in (degraded["message"])
        )
    else:
        assert 'Back-off pulling image "rig.invalid/image-pull:1"' in degraded["message"]
    ready = rig.condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", reason)
    assert status["ready"] == "0/2"
    event = rig.wait_event(cluster, operator, namespace, "broken", reason)
    assert event["type"] == "Warning"
    assert named in event["message"]

    # the operator keeps going: a healthy ModelDeployment beside it goes Ready
    cluster.apply(md("healthy", namespace))
    healthy = rig.wait_phase(cluster, operator, namespace, "healthy", "Ready")
    assert rig.condition(healthy, "Degraded")["status"] == "False"
    assert UNVERIFIED in rig.condition(healthy, "Ready")["message"]

    # and stays Degraded without a second Warning while the pods go on failing
    rig.wait_reconciles(operator, namespace, "broken", 5)
    assert rig.status_of(cluster, namespace, "broken")["phase"] == "Degraded"
    assert rig.event_reasons(cluster, namespace, "broken", "Warning") == [reason]
    assert rig.event_reasons(cluster, namespace, "healthy", "Warning") == []
    alive(operator, namespace, "broken", "healthy")


def test_a_canary_that_never_becomes_ready_is_rolled_back_and_the_stable_kept(
    cluster, operator, namespace
):
    body = rig.md_body("wine", namespace, rollout={"strategy": "Canary", "interval": "5s"})
    cluster.apply(body)
    rig.wait_phase(cluster, operator, namespace, "wine", "Ready", stableVersion="1")
    stable_name = "wine-model-service"
    stable_before = cluster.get("deployment", stable_name, "-n", namespace)
    replica_sets_before = replica_sets_of(cluster, namespace, stable_name)

    patch = {
        "spec": {
            "model": {
                "version": "2",
                "artifact": "/models/wine/2",
                "image": FAULT_IMAGES["CrashLoopBackOff"],
            }
        }
    }
    rig.patch_md(cluster, namespace, "wine", patch)
    status = rig.wait_phase(cluster, operator, namespace, "wine", "RolledBack")

    assert status["stableVersion"] == "1"
    assert status["rolledBack"]["version"] == "2"
    last = status["history"][-1]
    assert (last["version"], last["result"], last["reason"]) == (
        "2",
        "RolledBack",
        "CanaryCrashLoopBackOff",
    )
    assert "CrashLoopBackOff: container model-service exited 1" in last["message"]
    event = rig.wait_event(cluster, operator, namespace, "wine", "RolledBack")
    assert event["type"] == "Warning"
    assert event["message"].startswith(
        "canary 2 rolled back to 1: CanaryCrashLoopBackOff: pod wine-model-service-canary-"
    )
    # the stable keeps its release: same Deployment, same pod template, no new ReplicaSet
    rig.wait_for(
        lambda: "wine-model-service-canary" not in deployment_names(cluster, namespace),
        "the canary Deployment to be pruned",
        explain=operator.tail,
    )
    ready = rig.wait_phase(cluster, operator, namespace, "wine", "RolledBack", ready="2/2")
    # the stable serves, but Ready is about the asked release (issue 20: kubectl wait)
    cond = rig.condition(ready, "Ready")
    assert (cond["status"], cond["reason"]) == ("False", "RolledBack")
    assert (
        cond["message"] == "version 2 was rolled back; version 1 serves (2/2 stable replicas ready)"
    )
    stable_after = cluster.get("deployment", stable_name, "-n", namespace)
    assert stable_after["metadata"]["uid"] == stable_before["metadata"]["uid"]
    assert stable_after["spec"]["template"] == stable_before["spec"]["template"]
    assert rig.deployment_env(stable_after)["MODELOPS_MODEL_DIR"] == "/models/wine/1"
    assert replica_sets_of(cluster, namespace, stable_name) == replica_sets_before
    assert rig.event_reasons(cluster, namespace, "wine", "Warning") == ["RolledBack"]
    alive(operator, namespace, "wine")


# --- artifact integrity under the operator ------------------------------------


@pytest.fixture(scope="module")
def refusal(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What the real service says and does when the declared sha256 is wrong."""
    model_dir = demo_model_dir("wine", "1")
    actual = read_card(model_dir).sha256
    wrong = hashlib.sha256(b"not the model").hexdigest()
    svc = start_service(
        model_dir,
        env={"MODELOPS_MODEL_SHA256": wrong},
        wait=False,
        log_dir=tmp_path_factory.mktemp("refusal"),
    )
    try:
        code = svc.wait_exit()
    finally:
        svc.stop()
    lines = [line for line in svc.logs().splitlines() if line.strip()]
    errors = [json.loads(line) for line in lines if json.loads(line).get("level") == "error"]
    assert len(errors) == 1, lines
    return {
        "model_dir": str(model_dir),
        "actual": actual,
        "wrong": wrong,
        "exit_code": code,
        "msg": errors[0]["msg"],
    }


def test_a_wrong_sha256_never_serves_and_the_status_says_what_the_service_said(
    cluster, operator, namespace, refusal
):
    assert refusal["exit_code"] == 2
    assert refusal["wrong"] in refusal["msg"]
    assert refusal["actual"] in refusal["msg"]
    image = ARTIFACT_IMAGE.format(refusal["actual"])
    cluster.apply(
        md("wine", namespace, image=image, artifact=refusal["model_dir"], sha256=refusal["wrong"])
    )
    status = rig.wait_phase(cluster, operator, namespace, "wine", "Degraded")

    degraded = rig.condition(status, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "CrashLoopBackOff")
    assert degraded["message"].endswith(
        f"CrashLoopBackOff: container model-service exited {refusal['exit_code']} (Error): "
        f"{refusal['msg']}"
    ), (degraded["message"], refusal["msg"])
    ready = rig.condition(status, "Ready")
    assert ready["status"] == "False"
    assert refusal["msg"] in ready["message"]
    assert UNVERIFIED not in ready["message"]  # a digest is declared
    event = rig.wait_event(cluster, operator, namespace, "wine", "CrashLoopBackOff")
    assert refusal["msg"] in event["message"]
    # never serves: no pod of it ready, so no ready endpoint behind the Service
    for pod in pods(cluster, namespace, "wine"):
        assert not any(c.get("ready") for c in pod["status"].get("containerStatuses") or [])
    assert ready_endpoints(cluster, namespace, "wine-model-service") == 0
    deployment = cluster.get("deployment", "wine-model-service", "-n", namespace)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert rig.deployment_env(deployment)["MODELOPS_MODEL_SHA256"] == refusal["wrong"]

    # the right digest: the same image serves, and the status clears
    fix = {"spec": {"model": {"sha256": refusal["actual"]}}}
    rig.patch_md(cluster, namespace, "wine", fix)
    fixed = rig.wait_phase(cluster, operator, namespace, "wine", "Ready", ready="2/2")
    assert rig.condition(fixed, "Degraded")["status"] == "False"
    assert rig.condition(fixed, "Ready")["message"] == "2/2 stable replicas ready"
    rig.wait_for(
        lambda: ready_endpoints(cluster, namespace, "wine-model-service") == 2,
        "two ready endpoints behind the Service",
    )
    alive(operator, namespace, "wine")
