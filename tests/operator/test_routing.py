"""Gateway API mode (pure): the HTTPRoute rules for a weight, the weight for a status."""

from __future__ import annotations

import copy

import pytest

from modelops_operator.models import (
    CanaryState,
    GatewayAPIRouting,
    ModelDeploymentStatus,
    TrafficRouting,
)
from modelops_operator.rollout import (
    Observation,
    advance,
    canary_routable,
    desired_workloads,
    route_weight,
)
from modelops_operator.routing import (
    Backends,
    RoutingError,
    Split,
    apply_body,
    backends_of,
    route_rules,
    weights_of,
)
from modelops_operator.workloads import MISSING, WorkloadState, split_routed
from tests.support.operator_builders import at, ref, spec_for, stamp

BACKENDS = Backends("wine-model-service-stable", "wine-model-service-canary", 8080)
OWNER = "wine"
PINNED = "wine-canary-pinned"
ROUTING = GatewayAPIRouting(httpRoute="models")
HEADER = GatewayAPIRouting(httpRoute="models", canaryHeader="x-model-version")
READY = WorkloadState(exists=True, desired=2, ready=2, updated=2, available=2)

# a user's route: a redirect rule of their own, then the model's rule with a filter
# and a matched path, beside a backend that is not ours
USER_RULE = {
    "name": "legacy",
    "matches": [{"path": {"type": "PathPrefix", "value": "/old"}}],
    "filters": [
        {"type": "RequestRedirect", "requestRedirect": {"path": {"type": "ReplaceFullPath",
                                                                 "replaceFullPath": "/v1"}}}
    ],
}  # fmt: skip
MODEL_RULE = {
    "name": "predict",
    "matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}],
    "filters": [
        {
            "type": "RequestHeaderModifier",
            "requestHeaderModifier": {"add": [{"name": "x-team", "value": "ml"}]},
        }
    ],
    "backendRefs": [
        {
            "group": "",
            "kind": "Service",
            "name": "wine-model-service-stable",
            "port": 8080,
            "weight": 1,
        },
    ],
}
ROUTE = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "models", "namespace": "ml", "resourceVersion": "42"},
    "spec": {"hostnames": ["models.example"], "rules": [USER_RULE, MODEL_RULE]},
}


def rules_for(weight: int, pinned: str | None = None, route=ROUTE, routing=ROUTING):
    return route_rules(route, routing, BACKENDS, Split(weight, pinned), OWNER)


def with_rules(rules):
    route = copy.deepcopy(ROUTE)
    route["spec"]["rules"] = rules
    return route


@pytest.mark.parametrize("weight", [0, 10, 25, 50, 100])
def test_the_weights_of_our_two_backends_follow_the_step(weight):
    route = with_rules(rules_for(weight))

    expect = {BACKENDS.stable: 100 - weight}
    if weight:
        expect[BACKENDS.canary] = weight
    assert weights_of(route, BACKENDS, OWNER) == expect


def test_the_users_other_rule_and_filters_stay_as_read():
    for weight in (0, 10, 50, 100, 0):
        rules = rules_for(weight, "2", routing=HEADER)
        assert rules[0] == USER_RULE
        model = rules[1]
        assert {k: v for k, v in model.items() if k != "backendRefs"} == {
            k: v for k, v in MODEL_RULE.items() if k != "backendRefs"
        }


def test_no_canary_backend_at_weight_zero():
    rules = rules_for(0)
    assert [r["name"] for r in rules[1]["backendRefs"]] == [BACKENDS.stable]
    assert rules[1]["backendRefs"][0]["weight"] == 100


def test_a_backend_that_is_not_ours_keeps_its_place_and_weight():
    theirs = {"name": "shadow", "port": 9000, "weight": 3}
    rule = {**MODEL_RULE, "backendRefs": [theirs, *MODEL_RULE["backendRefs"]]}
    rules = rules_for(10, route=with_rules([rule]))
    assert rules[0]["backendRefs"][0] == theirs
    assert [(r["name"], r["weight"]) for r in rules[0]["backendRefs"][1:]] == [
        (BACKENDS.stable, 90), (BACKENDS.canary, 10),
    ]  # fmt: skip


def test_the_canary_ref_copies_the_stables_fields():
    canary = rules_for(10)[1]["backendRefs"][1]
    assert canary == {"group": "", "kind": "Service", "name": BACKENDS.canary, "port": 8080,
                      "weight": 10}  # fmt: skip


def test_back_to_zero_removes_the_canary_and_is_idempotent():
    at_50 = with_rules(rules_for(50, "2", routing=HEADER))
    back = route_rules(at_50, HEADER, BACKENDS, Split(0), OWNER)
    assert back == [USER_RULE, {**MODEL_RULE, "backendRefs": [
        {**MODEL_RULE["backendRefs"][0], "weight": 100}]}]  # fmt: skip
    assert route_rules(with_rules(back), HEADER, BACKENDS, Split(0), OWNER) == back


def test_the_pinned_rule_adds_the_header_to_each_match_and_goes_to_the_canary_only():
    rules = rules_for(10, "2", routing=HEADER)
    assert [r.get("name") for r in rules] == ["legacy", "predict", PINNED]
    pinned = rules[2]
    assert pinned["matches"] == [
        {
            "path": {"type": "PathPrefix", "value": "/v1"},
            "headers": [{"type": "Exact", "name": "x-model-version", "value": "2"}],
        }
    ]
    assert pinned["filters"] == MODEL_RULE["filters"]
    assert [(r["name"], r["weight"]) for r in pinned["backendRefs"]] == [(BACKENDS.canary, 1)]
    # the weighted rule's figures leave the pinned rule out
    assert weights_of(with_rules(rules), BACKENDS, OWNER) == {
        BACKENDS.stable: 90, BACKENDS.canary: 10,
    }  # fmt: skip


def test_no_pinned_rule_without_a_header_or_a_pinned_version():
    assert PINNED not in [r.get("name") for r in rules_for(10, "2")]
    assert PINNED not in [r.get("name") for r in rules_for(10, None, routing=HEADER)]


def test_a_rule_without_matches_pins_every_path():
    rule = {k: v for k, v in MODEL_RULE.items() if k != "matches"}
    pinned = rules_for(10, "2", route=with_rules([rule]), routing=HEADER)[1]
    assert pinned["matches"] == [
        {
            "path": {"type": "PathPrefix", "value": "/"},
            "headers": [{"type": "Exact", "name": "x-model-version", "value": "2"}],
        }
    ]


def test_the_named_rule_wins_over_the_first_that_names_our_service():
    other = {**MODEL_RULE, "name": "other"}
    routing = GatewayAPIRouting(httpRoute="models", rule="predict")
    rules = rules_for(25, route=with_rules([other, MODEL_RULE]), routing=routing)
    assert rules[0] == other
    assert [r["weight"] for r in rules[1]["backendRefs"]] == [75, 25]


def test_a_missing_rule_is_an_error_that_says_what_to_do():
    with pytest.raises(RoutingError, match="no rule named nope"):
        rules_for(10, routing=GatewayAPIRouting(httpRoute="models", rule="nope"))
    with pytest.raises(RoutingError, match=r"name the rule in trafficRouting\.gatewayAPI\.rule"):
        rules_for(10, route=with_rules([USER_RULE]))


def test_a_same_named_service_in_another_namespace_is_not_ours():
    foreign = {"name": BACKENDS.stable, "namespace": "elsewhere", "port": 8080}
    with pytest.raises(RoutingError):
        rules_for(10, route=with_rules([{**MODEL_RULE, "backendRefs": [foreign]}]))


def test_the_apply_body_carries_only_the_rules_and_the_version_read():
    body = apply_body(ROUTE, rules_for(10))
    assert body["metadata"] == {"name": "models", "namespace": "ml", "resourceVersion": "42"}
    assert list(body["spec"]) == ["rules"]


def test_backends_come_from_the_charts_per_track_service():
    svc = {
        "kind": "Service",
        "metadata": {"name": "wine-model-service-stable",
                     "labels": {"modelops.io/track": "stable"}},
        "spec": {"ports": [{"port": 9000}]},
    }  # fmt: skip
    plain = {"kind": "Service", "metadata": {"name": "wine-model-service"}, "spec": {}}
    assert backends_of([plain, svc]) == Backends(
        "wine-model-service-stable", "wine-model-service-canary", 9000
    )
    with pytest.raises(RoutingError):
        backends_of([plain])


# --- the weight and replicas a status gives in Gateway API mode ------------------------


def gateway_spec(**overrides):
    spec = spec_for("2", **overrides)
    routing = TrafficRouting(gatewayAPI=HEADER)
    return spec.model_copy(
        update={"rollout": spec.rollout.model_copy(update={"traffic_routing": routing})}
    )


def canary_status(step: int = 0, promoting: bool = False) -> ModelDeploymentStatus:
    canary = CanaryState(model=ref("2"), step=step, startedAt=stamp(0), stepStartedAt=stamp(0),
                         promoting=promoting)  # fmt: skip
    return ModelDeploymentStatus(stable=ref("1"), canary=canary)


@pytest.mark.parametrize(
    ("status", "ready", "weight"),
    [
        (ModelDeploymentStatus(stable=ref("1")), True, 0),
        (canary_status(0), False, 0),  # not Ready: no canary backend
        (canary_status(0), True, 25),
        (canary_status(1), True, 50),
        (canary_status(2, promoting=True), True, 100),  # the last step while the stable rolls
    ],
)
def test_route_weight(status, ready, weight):
    assert route_weight(gateway_spec(), status, ready) == weight


SCALING = WorkloadState(exists=True, desired=2, ready=1, updated=2, available=1)
STARTING = WorkloadState(exists=True, desired=1, ready=0, updated=1, available=0)


@pytest.mark.parametrize(
    ("status", "canary", "routable"),
    [
        (ModelDeploymentStatus(stable=ref("1")), READY, False),
        (canary_status(0), MISSING, False),
        (canary_status(0), STARTING, False),
        (canary_status(0), SCALING, False),  # the first step waits for every replica
        (canary_status(0), READY, True),
        (canary_status(1), SCALING, True),  # scaling up for the next step: keeps its backend
        (canary_status(1), STARTING, False),  # no pod ready: nothing to route to
        (canary_status(2, promoting=True), SCALING, True),
    ],
)
def test_the_canary_is_routable_once_ready_and_while_a_pod_of_it_serves(status, canary, routable):
    assert canary_routable(status, canary) is routable


@pytest.mark.parametrize(
    ("total", "weight", "replicas"),
    [(1, 10, (1, 1)), (2, 10, (2, 1)), (4, 25, (4, 1)), (4, 50, (4, 2)), (5, 50, (5, 3)),
     (10, 10, (10, 1)), (10, 100, (10, 10)), (0, 50, (0, 0))],
)  # fmt: skip
def test_routed_replicas_carry_the_share_beside_a_full_stable(total, weight, replicas):
    assert split_routed(total, weight) == replicas


def test_gateway_mode_reports_the_route_weight_never_the_replica_ratio():
    spec = gateway_spec()  # replicas 4, steps 25/50/100
    workloads = desired_workloads(spec, canary_status(0))
    assert (workloads.stable_replicas, workloads.canary_replicas) == (4, 1)
    waiting = advance(Observation(spec, canary_status(0), at(5), READY, MISSING))
    assert waiting.status.effective_canary_weight == 0.0  # canary not Ready: not routed
    routed = advance(Observation(spec, canary_status(0), at(5), READY, READY))
    assert routed.status.canary_weight == 25
    assert routed.status.effective_canary_weight == 25.0
    assert "unreachable" not in routed.event.message
