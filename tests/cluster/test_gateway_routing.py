"""Gateway API routing on the rig: the operator weighs one rule of a user's HTTPRoute.

The Gateway API CRDs are the pinned ones (hack/versions.env, .cache/crds); the
route's objects are real API objects, the Deployments roll on KWOK nodes, and no
data plane routes by the route here: tests/node/test_gateway_dataplane.py does, with
Traefik on the real node (Show 3). Here the analysis judges the two real service
processes of devstack.canary, to which the rig's traffic goes directly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest
import yaml

from devstack.canary import CanaryRig, canary_rigs, start_prometheus
from devstack.cluster import Cluster
from devstack.operator_process import OperatorProcess, running_operator
from devstack.paths import REPO_ROOT
from tests.support.operator_rig import (
    canary_rollout,
    condition,
    events_of,
    md_body,
    set_model,
    status_of,
    wait_for,
    wait_phase,
    wait_reconciles,
)
from tests.support.routes import (
    CANARY_SVC,
    HEADER,
    PINNED,
    STABLE_SVC,
    Sample,
    rule_of,
    sample,
    watch,
    weights_in,
)

pytestmark = pytest.mark.cluster


# the user's own rule: a redirect the operator must leave alone, as every filter
LEGACY_RULE = {
    "name": "legacy",
    "matches": [{"path": {"type": "PathPrefix", "value": "/old"}}],
    "filters": [
        {
            "type": "RequestRedirect",
            "requestRedirect": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/v1"}},
        }
    ],
}
MODEL_FILTER = {
    "type": "RequestHeaderModifier",
    "requestHeaderModifier": {"add": [{"name": "x-team", "value": "ml"}]},
}


def route_body(namespace: str) -> dict:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "models", "namespace": namespace},
        "spec": {
            "parentRefs": [{"name": "edge"}],
            "hostnames": ["models.example"],
            "rules": [
                LEGACY_RULE,
                {
                    "name": "predict",
                    "matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}],
                    "filters": [MODEL_FILTER],
                    "backendRefs": [{"name": STABLE_SVC, "port": 8080}],
                },
            ],
        },
    }


def routed_rollout(prometheus_url: str, **analysis) -> dict:
    rollout = canary_rollout(prometheus_url, **analysis)
    rollout["trafficRouting"] = {
        "gatewayAPI": {"httpRoute": "models", "rule": "predict", "canaryHeader": HEADER}
    }
    return rollout


def users_parts(s: Sample) -> tuple:
    """What is the user's alone: hostnames, parents, their rule, the model rule's filters and
    matches (as the API server stored them, defaults filled in)."""
    predict = s.rule("predict") or {}
    return (
        s.route["spec"]["hostnames"],
        s.route["spec"]["parentRefs"],
        s.rule("legacy"),
        predict.get("filters"),
        predict.get("matches"),
    )


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory) -> Iterator[OperatorProcess]:
    cluster.install_gateway_api_crds()
    with running_operator(cluster, tmp_path_factory.mktemp("operator")) as op:
        yield op


@pytest.fixture
def canary_rig(namespace) -> Iterator[Callable[..., CanaryRig]]:
    with canary_rigs(namespace, "modelops-gateway-") as make:
        yield make


def test_route_weights_follow_each_step_and_the_promotion(cluster, operator, namespace, canary_rig):
    rig = canary_rig("diabetes", canary_version="3")  # the healthy next version
    cluster.apply(route_body(namespace))
    rollout = routed_rollout(rig.prometheus.url, maxDriftScore=0.5, maxLatencyP95Seconds=1.0)
    rollout["steps"] = [25, 50, 100]
    cluster.apply(md_body("diabetes", namespace, model="diabetes", rollout=rollout))
    wait_phase(cluster, operator, namespace, "diabetes", "Ready")
    first = sample(cluster, namespace)
    assert first.weights == {STABLE_SVC: 100}
    assert first.rule(PINNED) is None
    theirs = users_parts(first)
    assert theirs[2]["filters"][0]["type"] == "RequestRedirect"
    assert theirs[3] == [MODEL_FILTER]
    route_rv = first.route["metadata"]["resourceVersion"]

    set_model(cluster, namespace, "diabetes", "diabetes", "3")
    extra = {"name": "docs", "matches": [{"path": {"type": "PathPrefix", "value": "/docs"}}],
             "backendRefs": [{"name": "docs", "port": 80}]}  # fmt: skip
    edited: list[bool] = []

    def user_edits_midway(s: Sample) -> None:
        # at the 50% step the user adds a rule of their own (a JSON patch of their route)
        if not edited and s.weights.get(CANARY_SVC) == 50:
            patch = [{"op": "add", "path": "/spec/rules/-", "value": extra}]
            cluster.kubectl("patch", "httproute", "models", "-n", namespace, "--type", "json",
                            "-p", json.dumps(patch))  # fmt: skip
            edited.append(True)

    def promoted(s: Sample) -> bool:
        # the status is written before the route is applied (reconcile.py), and a sample
        # reads the route before the status: the promotion is whole once both say so
        ready = s.status.get("phase") == "Ready" and s.status.get("stableVersion") == "3"
        return ready and s.weights == {STABLE_SVC: 100}

    samples = watch(cluster, operator, namespace, promoted, "the promotion and 100/0 on the stable",
                    user_edits_midway)  # fmt: skip
    seen = [s.weights.get(CANARY_SVC, 0) for s in samples]
    routed = [i for i, w in enumerate(seen) if w]
    assert routed, seen
    # the canary backend appears once the canary is Ready, and stays, never lower, until the
    # promotion: no flap while the canary scales up for the next step
    first_routed = next(s for s in samples if weights_in(s.before).get(CANARY_SVC))
    assert first_routed.canary_ready
    assert routed == list(range(routed[0], routed[-1] + 1)), seen
    assert seen[routed[0] : routed[-1] + 1] == sorted(seen[routed[0] : routed[-1] + 1]), seen
    for s in samples:
        assert users_parts(s) == theirs
        canary_weight = s.weights.get(CANARY_SVC, 0)
        assert s.weights[STABLE_SVC] == 100 - canary_weight, s.weights
        if weights_in(s.before).get(CANARY_SVC) or rule_of(s.before, PINNED):
            assert s.canary_serving, f"canary backend without a ready canary pod: {s.weights}"
        if s.rule(PINNED):
            (match,) = s.rule(PINNED)["matches"]
            assert match["headers"] == [{"type": "Exact", "name": HEADER, "value": "3"}]
            assert match["path"] == {"type": "PathPrefix", "value": "/v1"}
            assert [b["name"] for b in s.rule(PINNED)["backendRefs"]] == [CANARY_SVC]
    # every step was routed, in order, and nothing else
    assert sorted(set(seen) - {0}) == [25, 50, 100], seen
    assert any(s.rule(PINNED) for s in samples)
    assert edited, "never saw the 50% step"
    # the promotion: 100/0 back on the stable, the pinned rule gone, the user's rule kept
    last = samples[-1]
    assert last.rule(PINNED) is None
    docs = last.rule("docs")
    assert docs["matches"] == extra["matches"]
    assert [(b["name"], b["port"]) for b in docs["backendRefs"]] == [("docs", 80)]
    assert last.route["metadata"]["resourceVersion"] != route_rv
    stored = cluster.get("httproute", "models", "-n", namespace, "--show-managed-fields")
    ours = [m for m in stored["metadata"]["managedFields"] if m["manager"] == "modelops-operator"]
    assert [m["operation"] for m in ours] == ["Apply"]  # server-side apply, its own manager
    assert list(ours[0]["fieldsV1"]["f:spec"]) == ["f:rules"]  # the rules alone, not the rest
    wait_for(
        lambda: CANARY_SVC not in {
            s["metadata"]["name"] for s in cluster.get("services", "-n", namespace)["items"]
        },
        "the canary Service to be pruned",
    )  # fmt: skip


def test_rollback_puts_the_weights_back_before_the_canary_goes(
    cluster, operator, namespace, tmp_path
):
    # a Prometheus whose one target is down: every step is inconclusive until the deadline
    prom = start_prometheus(tmp_path, ["http://127.0.0.1:9"], namespace)
    try:
        cluster.apply(route_body(namespace))
        rollout = routed_rollout(prom.url)
        rollout["analysis"]["deadline"] = "8s"
        rollout["interval"] = "2s"
        cluster.apply(md_body("diabetes", namespace, model="diabetes", rollout=rollout))
        wait_phase(cluster, operator, namespace, "diabetes", "Ready")
        theirs = users_parts(sample(cluster, namespace))
        set_model(cluster, namespace, "diabetes", "diabetes", "2")

        def gone(s: Sample) -> bool:
            return s.status.get("phase") == "RolledBack" and not s.canary_exists

        samples = watch(cluster, operator, namespace, gone, "the rollback")
    finally:
        prom.stop()
    assert any(s.weights.get(CANARY_SVC) == 50 for s in samples), "the canary was never routed"
    for s in samples:
        assert users_parts(s) == theirs
        if s.canary_exists and not s.canary_ready:
            # not Ready yet (one replica at the 50% step): not routed
            assert CANARY_SVC not in weights_in(s.before), s.weights
            assert rule_of(s.before, PINNED) is None
        if not s.canary_exists:
            # the canary Deployment gone: the route had left it before
            assert CANARY_SVC not in s.weights, s.weights
            assert s.rule(PINNED) is None
    assert samples[-1].weights == {STABLE_SVC: 100}
    assert samples[-1].status["history"][-1]["result"] == "RolledBack"


def test_ab_test_holds_its_split_until_the_winner_is_named(cluster, operator, namespace):
    # no Prometheus at all: an A/B test is never analyzed, so nothing could judge it
    cluster.apply(route_body(namespace))
    rollout = {
        "strategy": "ABTest",
        "abTest": {"weight": 30},
        "interval": "2s",
        "analysis": {"prometheusUrl": "http://127.0.0.1:9"},
        "trafficRouting": routed_rollout("http://127.0.0.1:9")["trafficRouting"],
    }
    cluster.apply(md_body("diabetes", namespace, model="diabetes", rollout=rollout))
    wait_phase(cluster, operator, namespace, "diabetes", "Ready")
    set_model(cluster, namespace, "diabetes", "diabetes", "3")

    def split_held(s: Sample) -> bool:
        return s.weights.get(CANARY_SVC) == 30

    first = watch(cluster, operator, namespace, split_held, "the 70/30 split")[-1]
    assert first.weights == {STABLE_SVC: 70, CANARY_SVC: 30}
    (match,) = first.rule(PINNED)["matches"]
    assert match["headers"] == [{"type": "Exact", "name": HEADER, "value": "3"}]
    # many intervals later: still 70/30, never analyzed, never promoted
    time.sleep(10)
    held = sample(cluster, namespace)
    assert held.weights == {STABLE_SVC: 70, CANARY_SVC: 30}
    assert held.status["phase"] == "Progressing"
    assert held.status["stableVersion"] == "1"
    assert "lastAnalysis" not in held.status
    progressing = next(c for c in held.status["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == "ABTesting"
    assert "abTest.winner is 3" in progressing["message"]

    patch = {"spec": {"rollout": {"abTest": {"winner": "3"}}}}
    cluster.kubectl("patch", "md", "diabetes", "-n", namespace, "--type", "merge",
                    "-p", json.dumps(patch))  # fmt: skip
    status = wait_phase(cluster, operator, namespace, "diabetes", "Ready", stableVersion="3")
    entry = status["history"][-1]
    assert (entry["version"], entry["result"], entry["reason"]) == ("3", "Promoted", "WinnerChosen")
    last = wait_for(
        lambda: (s := sample(cluster, namespace)).weights == {STABLE_SVC: 100} and s,
        "the route back to the stable alone",
    )
    assert last.rule(PINNED) is None


def test_a_missing_route_is_one_warning_and_a_condition_that_keeps_naming_it(
    cluster, operator, namespace
):
    # no HTTPRoute "models" in the namespace yet; no analysis runs before it exists
    rollout = routed_rollout("http://127.0.0.1:9")
    cluster.apply(md_body("diabetes", namespace, model="diabetes", rollout=rollout))

    def degraded() -> dict:
        cond = condition(status_of(cluster, namespace, "diabetes"), "Degraded")
        return cond if cond.get("reason") == "TrafficRoutingFailed" else {}

    first = wait_for(degraded, "Degraded TrafficRoutingFailed", explain=operator.tail)
    wait_reconciles(operator, namespace, "diabetes", 6)  # several ticks of the same cause
    status = status_of(cluster, namespace, "diabetes")
    cond = condition(status, "Degraded")
    assert status["phase"] == "Degraded"
    assert cond["status"] == "True"
    assert f"HTTPRoute {namespace}/models not found" in cond["message"]
    assert cond["lastTransitionTime"] == first["lastTransitionTime"]
    events = events_of(cluster, namespace, "diabetes")
    warnings = [e for e in events if e["reason"] == "TrafficRoutingFailed"]
    assert len(warnings) == 1, [(e["reason"], e["message"]) for e in events]
    assert warnings[0]["type"] == "Warning"
    assert warnings[0]["message"] == cond["message"]
    # nothing else repeats either (a reconcile that raised would be a kopf Event per tick)
    assert [e for e in events if e["type"] == "Error"] == []
    assert not {
        d["metadata"]["name"] for d in cluster.get("deployments", "-n", namespace)["items"]
    }, "applied with no route to set"  # fmt: skip

    # the user creates the route: routed, deployed, Degraded False
    cluster.apply(route_body(namespace))
    wait_phase(cluster, operator, namespace, "diabetes", "Ready")
    assert condition(status_of(cluster, namespace, "diabetes"), "Degraded")["status"] == "False"
    assert weights_in(cluster.get("httproute", "models", "-n", namespace)) == {STABLE_SVC: 100}
    assert len([e for e in events_of(cluster, namespace, "diabetes")
                if e["reason"] == "TrafficRoutingFailed"]) == 1  # fmt: skip


def test_every_example_passes_a_server_side_dry_run(cluster, operator, namespace):
    """The API server itself (our CRD, the pinned Gateway API CRDs, their CEL rules) accepts
    every object of manifests/examples/, moved into the test's namespace."""
    paths = sorted((REPO_ROOT / "manifests" / "examples").glob("*.yaml"))
    assert {"diabetes-gateway-canary.yaml", "wine-ab-test.yaml"} <= {p.name for p in paths}
    for path in paths:
        docs = list(yaml.safe_load_all(path.read_text()))
        for doc in docs:
            doc["metadata"]["namespace"] = namespace
        out = cluster.apply(docs, "--dry-run=server").stdout
        assert out.count("(server dry run)") == len(docs), f"{path.name}: {out}"
    # a dry run: nothing was created
    assert cluster.get("modeldeployments", "-n", namespace)["items"] == []
