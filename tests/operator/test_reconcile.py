"""One reconcile pass with an in-memory API server, renderer and Prometheus (no cluster).

The cluster tier proves the same on a real control plane; this tier pins what
the glue does in cases the rig cannot stage cheaply: monitoring CRDs missing, an
invalid spec, a failing render, a conflicting status write.
"""

from __future__ import annotations

import json

import pytest

from modelops_operator.applyset import ObjectKey
from modelops_operator.requests import ANNOTATION
from tests.support.reconciler_fakes import (
    CORE_KINDS,
    MD,
    NAME,
    NS,
    FakeKube,
    FakeRenderer,
    make,
    md,
)

ROUTE = ObjectKey("gateway.networking.k8s.io/v1", "HTTPRoute", NS, "models")


def status(kube: FakeKube) -> dict:
    return kube.objects[MD].get("status") or {}


def cond(kube: FakeKube, type_: str) -> dict:
    return next(c for c in status(kube)["conditions"] if c["type"] == type_)


def test_first_passes_deploy_then_ready():
    reconciler, kube = make()
    assert reconciler.reconcile(NS, NAME) == "NewReleaseCanary"
    assert status(kube)["phase"] == "Progressing"
    kinds = [k.kind for k in kube.applied]
    assert kinds == ["Service", "Deployment", "PrometheusRule", "ServiceMonitor"]
    assert reconciler.reconcile(NS, NAME) == "DeployReady"
    assert status(kube)["phase"] == "Ready"
    assert status(kube)["ready"] == "2/2"
    assert cond(kube, "MonitoringReady")["status"] == "True"
    assert [e[1] for e in kube.events] == ["Deploying", "Deployed"]


def test_missing_monitoring_crds_make_monitoring_ready_false():
    reconciler, kube = make(served=CORE_KINDS)
    reconciler.reconcile(NS, NAME)
    reconciler.reconcile(NS, NAME)
    assert status(kube)["phase"] == "Ready"  # the model is served regardless
    monitoring = cond(kube, "MonitoringReady")
    assert monitoring["status"] == "False"
    assert monitoring["reason"] == "MonitoringCRDsMissing"
    assert "PrometheusRule, ServiceMonitor" in monitoring["message"]
    assert "ServiceMonitor" not in {k.kind for k in kube.applied}


def test_unchanged_status_is_not_written_and_unchanged_set_not_reapplied():
    reconciler, kube = make()
    reconciler.reconcile(NS, NAME)
    reconciler.reconcile(NS, NAME)
    rv = kube.objects[MD]["metadata"]["resourceVersion"]
    applied = len(kube.applied)
    reconciler.reconcile(NS, NAME)
    assert kube.objects[MD]["metadata"]["resourceVersion"] == rv
    assert len(kube.applied) == applied  # resync_seconds not due yet


def test_status_conflict_acts_on_nothing():
    reconciler, kube = make()
    kube.conflict_next_status = True
    assert reconciler.reconcile(NS, NAME) == "conflict"
    assert kube.applied == []
    assert kube.events == []
    assert reconciler.reconcile(NS, NAME) == "NewReleaseCanary"


@pytest.mark.parametrize(
    ("spec", "renderer", "reason"),
    [
        ({"model": {"name": "wine", "version": "1"}}, FakeRenderer(), "InvalidSpec"),
        (None, FakeRenderer(fail=True), "RenderFailed"),
    ],
)
def test_what_the_schema_cannot_catch_becomes_degraded(spec, renderer, reason):
    reconciler, kube = make(renderer=renderer)
    kube.objects[MD] = md(spec)
    assert reconciler.reconcile(NS, NAME) == reason
    assert status(kube)["phase"] == "Degraded"
    degraded = cond(kube, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", reason)
    assert kube.events[-1][:2] == ("Warning", reason)
    # the same failure again: no second Event
    reconciler.reconcile(NS, NAME)
    assert [e for e in kube.events if e[1] == reason] == [kube.events[-1]]


@pytest.mark.parametrize(
    ("spec", "render_fails", "reason"),
    [
        ({"model": {"name": "wine", "version": "1"}}, False, "InvalidSpec"),
        (None, True, "RenderFailed"),
    ],
)
def test_a_request_found_while_degraded_is_rejected_with_why_and_never_acts_later(
    spec, render_fails, reason
):
    renderer = FakeRenderer(fail=render_fails)
    reconciler, kube = make(renderer=renderer)
    kube.objects[MD] = md(spec)
    asked = {"id": "r1", "verb": "pause", "by": "alice", "at": "2026-01-01T00:00:00Z"}
    kube.objects[MD]["metadata"]["annotations"] = {ANNOTATION: json.dumps(asked)}

    assert reconciler.reconcile(NS, NAME) == reason

    last = status(kube)["lastRequest"]
    assert (last["id"], last["accepted"]) == ("r1", False)
    assert f"the object is Degraded ({reason})" in last["message"]
    entry = status(kube)["history"][-1]
    assert (entry["result"], entry["reason"], entry["by"]) == ("Request", "Pause", "alice")
    assert entry["message"].startswith(f"not accepted: the object is Degraded ({reason})")
    rejected = [e for e in kube.events if e[1] == "RequestRejected"]
    assert rejected
    assert rejected[0][2].startswith("pause requested by alice: ")
    assert ANNOTATION not in kube.objects[MD]["metadata"]["annotations"]  # consumed
    # fixed: the old request does not act
    renderer.fail = False
    kube.objects[MD]["spec"] = md()["spec"]
    reconciler.reconcile(NS, NAME)
    assert "pause" not in status(kube)
    assert status(kube)["lastRequest"]["id"] == "r1"


def test_prune_deletes_the_canary_once_it_is_no_longer_rendered():
    reconciler, kube = make()
    reconciler.reconcile(NS, NAME)
    reconciler.reconcile(NS, NAME)
    body = kube.objects[MD]
    body["spec"]["model"] = {**body["spec"]["model"], "version": "2", "artifact": "/m/2"}
    reconciler.reconcile(NS, NAME)
    assert status(kube)["canaryVersion"] == "2"
    assert any(k.name == "wine-model-service-canary" for k in kube.applied)
    body = kube.objects[MD]
    body["spec"]["model"] = {**body["spec"]["model"], "version": "1", "artifact": "/models/wine/1"}
    reconciler.reconcile(NS, NAME)  # back to the stable version: canary aborted
    assert "canaryVersion" not in status(kube)
    assert [k.name for k in kube.deleted] == ["wine-model-service-canary"]


def test_finished_rollouts_are_counted_even_with_a_full_history():
    reconciler, kube = make(history_limit=1)
    reconciler.reconcile(NS, NAME)
    reconciler.reconcile(NS, NAME)  # Deployed v1
    body = kube.objects[MD]
    body["spec"]["rollout"] = {"strategy": "RollingUpdate"}
    body["spec"]["model"] = {**body["spec"]["model"], "version": "2", "artifact": "/m/2"}
    reconciler.reconcile(NS, NAME)
    reconciler.reconcile(NS, NAME)  # Deployed v2, history still holds one entry
    assert [h["version"] for h in status(kube)["history"]] == ["2"]
    sample = reconciler.metrics.registry.get_sample_value(
        "modelops_operator_rollouts_total",
        {"namespace": NS, "name": NAME, "result": "Deployed"},
    )
    assert sample == 2


def test_monitoring_namespaces_scope_the_prometheus_lookup():
    reconciler, kube = make(monitoring_namespaces=["monitoring", "grafana"], discover_grafana=True)
    reconciler.reconcile(NS, NAME)
    assert ("Prometheus", "monitoring") in kube.listed
    assert ("Prometheus", "grafana") in kube.listed
    assert ("Deployment", "grafana") in kube.listed
    assert ("Prometheus", None) not in kube.listed  # never cluster-wide


def routed_md() -> dict:
    body = md()
    body["spec"]["rollout"] = {"trafficRouting": {"gatewayAPI": {"httpRoute": "models"}}}
    return body


def test_a_missing_route_is_one_event_and_a_condition_that_keeps_saying_it():
    reconciler, kube = make()
    kube.objects[MD] = routed_md()
    results = [reconciler.reconcile(NS, NAME) for _ in range(5)]
    assert results == ["TrafficRoutingFailed"] * 5
    warnings = [e for e in kube.events if e[1] == "TrafficRoutingFailed"]
    assert warnings == [("Warning", "TrafficRoutingFailed", "HTTPRoute models/models not found")]
    degraded = cond(kube, "Degraded")
    assert (degraded["status"], degraded["message"]) == ("True", warnings[0][2])
    assert status(kube)["phase"] == "Degraded"
    # one status write: the later passes found nothing new to say
    rv = kube.objects[MD]["metadata"]["resourceVersion"]
    reconciler.reconcile(NS, NAME)
    assert kube.objects[MD]["metadata"]["resourceVersion"] == rv
    assert kube.applied == []  # no route to set: nothing applied (first deploy)

    # another cause after a fix: the route exists without a rule for the model
    kube.objects[ROUTE] = {
        "apiVersion": ROUTE.api_version, "kind": "HTTPRoute",
        "metadata": {"name": "models", "namespace": NS, "resourceVersion": "7"},
        "spec": {"rules": [{"backendRefs": [{"name": "docs", "port": 80}]}]},
    }  # fmt: skip
    reconciler.reconcile(NS, NAME)
    assert "has no rule with a backendRef" in cond(kube, "Degraded")["message"]
    assert degraded["lastTransitionTime"] == cond(kube, "Degraded")["lastTransitionTime"]
    assert len([e for e in kube.events if e[1] == "TrafficRoutingFailed"]) == 1

    # fixed: the route is weighted, the objects applied, Degraded False
    kube.objects[ROUTE]["spec"]["rules"].append(
        {"backendRefs": [{"name": "wine-model-service-stable", "port": 8080}]}
    )
    assert reconciler.reconcile(NS, NAME) == "DeployProgressing"  # the first deploy goes on
    assert cond(kube, "Degraded")["status"] == "False"
    assert kube.applied[0] == ROUTE
    weighted = kube.objects[ROUTE]["spec"]["rules"][1]["backendRefs"]
    assert weighted == [{"name": "wine-model-service-stable", "port": 8080, "weight": 100}]
    # and broken again: a new transition, a new Event
    del kube.objects[ROUTE]
    reconciler.reconcile(NS, NAME)
    reconciler.reconcile(NS, NAME)
    assert len([e for e in kube.events if e[1] == "TrafficRoutingFailed"]) == 2
