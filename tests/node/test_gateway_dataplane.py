"""Gateway API canary routing through a real data plane on the real node (issue 16, Show 3).

Real: the control plane, the real node (kubelet, containerd, kube-proxy, CoreDNS), our
service image in pods (stable and canary), the operator (`python -m modelops_operator`, the
image's entry point, as a local process with the rig's admin kubeconfig), the pinned
Gateway API CRDs, and Traefik (devstack/gateway.py: built from its Go module, its Gateway
API provider, upstream's RBAC) in the node's network namespace, routing each request to a
pod by the weights the operator wrote into manifests/examples/diabetes-gateway-canary.yaml's
HTTPRoute. The requests go from the test process to Traefik's listener at the node's address.

Not here: Prometheus. No analysis is wanted while the 10% step is measured (a long
interval holds it); the rollback at the end is the one an analysis with no answer gives at
its deadline (the operator's default Prometheus URL is the discard port). The same example
judged by prometheus-operator's Prometheus through Traefik, step by step to its promotion,
is the tour's (tests/node/test_tour.py, show 2).
"""

from __future__ import annotations

import collections
import functools
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import yaml

from devstack.canary import start_prometheus
from devstack.cluster import Cluster
from devstack.gateway import Gateway, running_gateway
from devstack.node import RealNode
from devstack.operator_process import DISCARD_URL, OperatorProcess, running_operator
from devstack.paths import REPO_ROOT
from tests.support.operator_rig import patch_md, set_model, wait_for, wait_phase
from tests.support.routes import (
    CANARY_SVC,
    HEADER,
    PINNED,
    STABLE_SVC,
    Sample,
    rule_of,
    sample,
    traefik_has,
    watch,
    weights_in,
)
from tests.support.rows import instances

pytestmark = [pytest.mark.node, pytest.mark.timeout(600)]

EXAMPLE = REPO_ROOT / "manifests" / "examples" / "diabetes-gateway-canary.yaml"
NS = "models"  # the example's namespace, the one the Gateway admits routes from
HOSTNAME = "models.example.com"  # the example route's hostname
STEP = 10
MEASURED = 2000  # requests at the 10% step
PINNED_REQUESTS = 200
TOLERANCE = 0.03  # the issue's: 10% +- 3 points
ROWS = functools.cache(lambda: instances("diabetes", 64))  # inside the training ranges


@pytest.fixture(scope="module")
def rig(
    node_rig: tuple[Cluster, RealNode], tmp_path_factory
) -> Iterator[tuple[Cluster, Gateway, OperatorProcess]]:
    cluster, node = node_rig
    cluster.create_namespace(NS)
    work = tmp_path_factory.mktemp("gateway")
    with (
        running_gateway(cluster, node, work / "traefik", routes_from=NS) as gateway,
        running_operator(cluster, work / "operator") as op,
    ):
        yield cluster, gateway, op


def example(interval: str) -> list[dict]:
    """The example's HTTPRoute and ModelDeployment, the steps ``interval`` apart."""
    route, md = yaml.safe_load_all(EXAMPLE.read_text())
    md["spec"]["rollout"]["interval"] = interval
    return [route, md]


def versions(client: httpx.Client, url: str, n: int, headers: dict | None = None) -> dict:
    """``n`` predictions through the Gateway: how many each model version answered (a
    failure counts under its status code or its error's name)."""
    rows = ROWS()
    counts: collections.Counter = collections.Counter()
    for i in range(n):
        try:
            resp = client.post(
                f"{url}/v1/predict",
                json={"instances": [rows[i % len(rows)]]},
                headers={"host": HOSTNAME, **(headers or {})},
            )
            counts[resp.json()["version"] if resp.status_code == 200 else resp.status_code] += 1
        except httpx.HTTPError as e:
            counts[type(e).__name__] += 1
    return dict(counts)


@pytest.fixture(scope="module")
def at_ten_percent(rig) -> tuple[list[Sample], dict]:
    """Version 1 deployed through the example, then version 3 asked for: the samples up to
    the 10% step with the canary Ready, and the route Traefik accepted there."""
    cluster, _, op = rig
    cluster.apply(example(interval="15m"))
    wait_phase(cluster, op, NS, "diabetes", "Ready", timeout=240)
    set_model(cluster, NS, "diabetes", "diabetes", "3")

    def routed(s: Sample) -> bool:
        return s.weights.get(CANARY_SVC) == STEP and rule_of(s.route, PINNED) is not None

    samples = watch(cluster, op, NS, routed, f"the {STEP}% step with the canary routed")
    route = samples[-1].route
    # The step can land between a sample's two reads of the route (in `route`, not in
    # `before`); one more look then has it in `before`, read before its Deployments.
    samples.append(sample(cluster, NS))
    wait_for(lambda: traefik_has(cluster, route), "Traefik to accept the route", 60)
    return samples, route


def test_at_the_ten_percent_step_the_canary_answers_ten_percent(rig, at_ten_percent):
    cluster, gateway, _ = rig
    samples, route = at_ten_percent
    assert weights_in(route) == {STABLE_SVC: 100 - STEP, CANARY_SVC: STEP}
    # the canary's backend appeared only once the canary Deployment had a Ready pod
    first = next(s for s in samples if weights_in(s.before).get(CANARY_SVC))
    assert first.canary_serving, first.weights
    with httpx.Client(timeout=10) as client:
        counts = versions(client, gateway.url, MEASURED)
    # the operator held the step all along: the route Traefik routed by is the one above
    held = cluster.get("httproute", "models", "-n", NS)
    assert held["metadata"]["generation"] == route["metadata"]["generation"]
    assert weights_in(held) == {STABLE_SVC: 100 - STEP, CANARY_SVC: STEP}
    status = cluster.get("modeldeployment", "diabetes", "-n", NS)["status"]
    assert (status["canaryWeight"], status["effectiveCanaryWeight"]) == (STEP, STEP), status
    assert set(counts) == {"1", "3"}, counts  # every request answered, by either version
    share = counts["3"] / MEASURED
    print(f"\ncanary share at the {STEP}% step: {share:.2%} of {MEASURED} ({counts})")
    assert abs(share - STEP / 100) <= TOLERANCE, counts


def test_requests_with_the_header_all_reach_the_canary(rig, at_ten_percent):
    _, gateway, _ = rig
    _, route = at_ten_percent
    matches = rule_of(route, PINNED)["matches"]  # the rule's own, each with the header
    assert {m["path"]["value"] for m in matches} == {"/v1", "/v2"}
    assert all(m["headers"] == [{"type": "Exact", "name": HEADER, "value": "3"}] for m in matches)
    with httpx.Client(timeout=10) as client:
        pinned = versions(client, gateway.url, PINNED_REQUESTS, {HEADER: "3"})
    assert pinned == {"3": PINNED_REQUESTS}
    print(f"\nwith {HEADER}: 3: {pinned}")


def test_a_rollback_takes_the_canary_out_of_the_route_before_its_pods_go(
    rig, at_ten_percent, tmp_path
):
    """An analysis whose Prometheus has no figures (its one target is down) is inconclusive
    until its deadline: rolled back. Requests keep going through Traefik all along, and none
    fails: the weights went back to the stable before the canary's pods were deleted."""
    cluster, gateway, op = rig
    prom = start_prometheus(tmp_path, [DISCARD_URL], NS)
    stop = threading.Event()
    counts: collections.Counter = collections.Counter()

    def load() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                counts.update(versions(client, gateway.url, 20))

    sender = threading.Thread(target=load)
    sender.start()
    try:
        wait_for(lambda: counts["3"], "a request answered by the canary", 30)
        analysis = {"prometheusUrl": prom.url, "deadline": "3s"}
        patch_md(cluster, NS, "diabetes", {"spec": {"rollout": {"interval": "1s",
                                                               "analysis": analysis}}})  # fmt: skip

        def gone(s: Sample) -> bool:
            return s.status.get("phase") == "RolledBack" and not s.canary_exists

        samples = watch(cluster, op, NS, gone, "the rollback")
        time.sleep(2)  # a few more requests through the route as it is now
    finally:
        stop.set()
        sender.join(timeout=60)
        prom.stop()
    with httpx.Client(timeout=10) as client:
        after = versions(client, gateway.url, 100)
    assert after == {"1": 100}  # the stable alone, pinned rule and canary gone
    assert samples[-1].status["history"][-1]["result"] == "RolledBack"
    for s in samples:
        if not s.canary_exists:  # the Deployment gone: the route had left it before
            assert CANARY_SVC not in s.weights, s.weights
            assert s.rule(PINNED) is None
    assert samples[-1].weights == {STABLE_SVC: 100}
    print(f"\nthrough Traefik during the rollback: {dict(counts)}")
    assert set(counts) <= {"1", "3"}, counts  # no request failed
    assert counts["1"] > 0
