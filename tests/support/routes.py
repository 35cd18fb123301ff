"""Reading the diabetes example's HTTPRoute while the operator weighs it: the Gateway API
tests on KWOK (tests/cluster/test_gateway_routing.py) and on the real node behind Traefik
(tests/node/test_gateway_dataplane.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from devstack.cluster import Cluster
from devstack.gateway import CONTROLLER
from devstack.operator_process import OperatorProcess
from tests.support.operator_rig import WAIT, status_of

STABLE_SVC = "diabetes-model-service-stable"
CANARY_SVC = "diabetes-model-service-canary"
PINNED = "diabetes-canary-pinned"
HEADER = "x-model-version"


def rule_of(route: dict, name: str) -> dict | None:
    return next((r for r in route["spec"]["rules"] if r.get("name") == name), None)


def weights_in(route: dict) -> dict[str, int]:
    rule = rule_of(route, "predict") or {}
    return {r["name"]: r.get("weight", 1) for r in rule.get("backendRefs") or []}


def traefik_has(cluster: Cluster, route: dict) -> bool:
    """Traefik accepted this generation of ``route`` and resolved its backends."""
    meta = route["metadata"]
    now = cluster.get("httproute", meta["name"], "-n", meta["namespace"])
    generation = meta["generation"]
    for parent in (now.get("status") or {}).get("parents") or []:
        if parent["controllerName"] == CONTROLLER:
            conds = {c["type"]: c for c in parent.get("conditions") or []}
            return now["metadata"]["generation"] == generation and all(
                conds.get(t, {}).get("status") == "True"
                and conds[t].get("observedGeneration") == generation
                for t in ("Accepted", "ResolvedRefs")
            )
    return False


@dataclass(frozen=True)
class Sample:
    """One look: the route, the canary Deployment, the route again, the status.

    A canary backend in the route read *before* the Deployment was put there before
    the Deployment read; a canary Deployment gone before the route read *after* it
    was gone before that route was read. So each order check is free of races.
    """

    before: dict  # the route read before the Deployments
    canary_ready: bool  # the canary Deployment exists with every replica ready
    canary_serving: bool  # ... with at least one ready replica
    canary_exists: bool
    route: dict  # the route read after the Deployments
    status: dict

    def rule(self, name: str) -> dict | None:
        return rule_of(self.route, name)

    @property
    def weights(self) -> dict[str, int]:
        return weights_in(self.route)


def sample(cluster: Cluster, namespace: str) -> Sample:
    before = cluster.get("httproute", "models", "-n", namespace)
    deps = {
        d["metadata"]["name"]: d
        for d in cluster.get("deployments", "-n", namespace)["items"]
    }  # fmt: skip
    canary = deps.get("diabetes-model-service-canary")
    ready_pods = (canary or {}).get("status", {}).get("readyReplicas") or 0
    ready = bool(canary) and ready_pods >= canary["spec"]["replicas"]
    after = cluster.get("httproute", "models", "-n", namespace)
    status = status_of(cluster, namespace, "diabetes")
    return Sample(before, ready, ready_pods > 0, canary is not None, after, status)


def watch(
    cluster: Cluster, op: OperatorProcess, namespace: str, done: Callable[[Sample], bool],
    what: str, act: Callable[[Sample], None] = lambda s: None,
) -> list[Sample]:  # fmt: skip
    """Samples every half second until ``done`` (``act`` may change things on the way)."""
    samples: list[Sample] = []
    deadline = time.monotonic() + 2 * WAIT
    while time.monotonic() < deadline:
        samples.append(sample(cluster, namespace))
        act(samples[-1])
        if done(samples[-1]):
            return samples
        time.sleep(0.5)
    last = json.dumps(samples[-1].status, indent=1) if samples else "no sample"
    pytest.fail(f"timed out waiting for {what}; status {last}\n{op.tail(25)}")
