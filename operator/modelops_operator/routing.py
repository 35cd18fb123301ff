"""The HTTPRoute rules for a canary weight (pure): only the weights of one rule change.

The operator owns the backendRefs of the stable and canary Services in one rule
of a user's HTTPRoute, and the pinned rule it adds beside it for smoke requests
(`canaryHeader`). Everything else (other rules, their filters and matches, other
backends, hostnames, parentRefs) is copied as read.

The Gateway API CRD declares `spec.rules` an atomic list, so server-side apply
cannot give a manager one field inside a rule: the router applies the whole
list as read with only these changes, conditional on the resourceVersion it
read (router.py), so a concurrent edit of the route is never overwritten.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelops_operator.constants import LABEL_TRACK, TRACK_CANARY, TRACK_STABLE
from modelops_operator.models import GatewayAPIRouting

GATEWAY_GROUP = "gateway.networking.k8s.io"
HTTPROUTE_API_VERSION = f"{GATEWAY_GROUP}/v1"
HTTPROUTE_KIND = "HTTPRoute"

# Gateway API's default match: every path.
DEFAULT_MATCHES: tuple[dict[str, Any], ...] = ({"path": {"type": "PathPrefix", "value": "/"}},)


class RoutingError(ValueError):
    """The HTTPRoute cannot carry the split as configured (the message says why)."""


@dataclass(frozen=True)
class Backends:
    """The per-track Services the chart renders, and their port."""

    stable: str
    canary: str
    port: int


@dataclass(frozen=True)
class Split:
    """What the route should say: the canary's weight, and the version pinned requests name."""

    canary_weight: int  # percent; 0 = no canary backend at all
    pinned_version: str | None = None  # None = no pinned rule


def backends_of(objects: Sequence[dict[str, Any]]) -> Backends:
    """The per-track Services of a render (service.perTrack): the stable's name and port,
    and the canary's name, `<fullname>-canary` beside `<fullname>-stable` by the chart's
    contract (templates/service-tracks.yaml)."""
    for obj in objects:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if obj.get("kind") == "Service" and labels.get(LABEL_TRACK) == TRACK_STABLE:
            name = obj["metadata"]["name"]
            port = int(obj["spec"]["ports"][0]["port"])
            return Backends(name, name.removesuffix(TRACK_STABLE) + TRACK_CANARY, port)
    raise RoutingError("the chart rendered no per-track Service (service.perTrack)")


def pin_rule_name(owner: str) -> str:
    """The name of the rule the operator adds for requests pinned to the canary."""
    return f"{owner}-canary-pinned"


def target_rule(rules: list[dict[str, Any]], routing: GatewayAPIRouting, backends: Backends,
                pinned: str) -> int:  # fmt: skip
    """The index of the rule whose weights the operator owns (RoutingError if none)."""
    if routing.rule is not None:
        for i, rule in enumerate(rules):
            if rule.get("name") == routing.rule:
                return i
        raise RoutingError(f"HTTPRoute {routing.http_route} has no rule named {routing.rule}")
    ours = {backends.stable, backends.canary}
    for i, rule in enumerate(rules):
        if rule.get("name") != pinned and any(_is_service(r, ours) for r in _refs(rule)):
            return i
    raise RoutingError(
        f"HTTPRoute {routing.http_route} has no rule with a backendRef to Service "
        f"{backends.stable}: add one, or name the rule in trafficRouting.gatewayAPI.rule"
    )


def route_rules(
    route: dict[str, Any],
    routing: GatewayAPIRouting,
    backends: Backends,
    split: Split,
    owner: str,
) -> list[dict[str, Any]]:
    """`spec.rules` of `route` with the split applied: the weights of our two backends in
    the target rule, and the pinned rule present only while a version is pinned."""
    pinned = pin_rule_name(owner)
    rules = [r for r in copy.deepcopy((route.get("spec") or {}).get("rules") or [])
             if r.get("name") != pinned]  # fmt: skip
    index = target_rule(rules, routing, backends, pinned)
    rule = rules[index]
    rule["backendRefs"] = weighted_refs(_refs(rule), backends, split.canary_weight)
    if split.pinned_version is not None and routing.canary_header:
        rules.insert(index + 1, pinned_rule(rule, backends, routing.canary_header,
                                            split.pinned_version, pinned))  # fmt: skip
    return rules


def weighted_refs(
    refs: list[dict[str, Any]], backends: Backends, canary_weight: int
) -> list[dict[str, Any]]:
    """The rule's backendRefs with ours at 100 - w / w (the canary left out at 0).

    Other backends stay as they are, and so do fields of our refs other than the
    weight (a backend's own filters, for example); a new canary ref copies the
    stable's.
    """
    stable = next((r for r in refs if _is_service(r, {backends.stable})), None)
    canary = next((r for r in refs if _is_service(r, {backends.canary})), None)
    base = stable or canary or {"port": backends.port}
    ours = [{**base, "name": backends.stable, "weight": 100 - canary_weight}]
    if canary_weight > 0:
        ours.append({**(canary or base), "name": backends.canary, "weight": canary_weight})
    out: list[dict[str, Any]] = []
    for ref in refs:  # ours where the first of them was, else first
        if _is_service(ref, {backends.stable, backends.canary}):
            out, ours = out + ours, []
        else:
            out.append(ref)
    return ours + out


def pinned_rule(rule: dict[str, Any], backends: Backends, header: str, version: str,
                name: str) -> dict[str, Any]:  # fmt: skip
    """A copy of `rule` whose matches also ask for `header: version`, to the canary only.

    Gateway API prefers the match with more header matches among equal paths, so
    pinned requests take this rule and the rest the weighted one.
    """
    matches: list[dict[str, Any]] = [
        copy.deepcopy(m) for m in rule.get("matches") or DEFAULT_MATCHES
    ]
    for match in matches:
        headers = [
            h for h in match.get("headers") or [] if h.get("name", "").lower() != header.lower()
        ]
        match["headers"] = [*headers, {"type": "Exact", "name": header, "value": version}]
    pinned = {k: copy.deepcopy(v) for k, v in rule.items() if k not in ("name", "backendRefs")}
    stable = next((r for r in _refs(rule) if _is_service(r, {backends.stable})), None)
    base = dict(stable) if stable else {"port": backends.port}
    return {
        **pinned,
        "name": name,
        "matches": matches,
        "backendRefs": [{**base, "name": backends.canary, "weight": 1}],
    }


def apply_body(route: dict[str, Any], rules: list[dict[str, Any]]) -> dict[str, Any]:
    """The server-side apply body: only `spec.rules`, conditional on the route's version."""
    meta = route["metadata"]
    return {
        "apiVersion": HTTPROUTE_API_VERSION,
        "kind": HTTPROUTE_KIND,
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "resourceVersion": meta["resourceVersion"],
        },
        "spec": {"rules": rules},
    }


def weights_of(route: dict[str, Any], backends: Backends, owner: str) -> dict[str, int]:
    """Service name -> weight in the weighted rule (the pinned rule left out)."""
    out: dict[str, int] = {}
    for rule in (route.get("spec") or {}).get("rules") or []:
        if rule.get("name") == pin_rule_name(owner):
            continue
        for ref in _refs(rule):
            if _is_service(ref, {backends.stable, backends.canary}):
                out[ref["name"]] = int(ref.get("weight", 1))
    return out


def _refs(rule: dict[str, Any]) -> list[dict[str, Any]]:
    return list(rule.get("backendRefs") or [])


def _is_service(ref: dict[str, Any], names: set[str]) -> bool:
    return (
        ref.get("name") in names
        and ref.get("group", "") in ("", "core")
        and ref.get("kind", "Service") == "Service"
        and not ref.get("namespace")  # ours live in the route's namespace
    )
