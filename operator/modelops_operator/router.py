"""The HTTPRoute's weights on the cluster: read the route, apply the rules routing.py gives.

The canary backend appears only once the canary is Ready, and leaves (100/0) before
anything else of a rollback or promotion is applied (reconcile.py orders the two). The
rules are planned before the pass writes its status, so a missing route or rule is in
that one status write (Degraded, TrafficRoutingFailed), and applied after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelops_operator.kube import KubeClient, KubeError
from modelops_operator.models import ModelDeploymentSpec, ModelDeploymentStatus
from modelops_operator.rollout import canary_routable, route_weight
from modelops_operator.routing import (
    HTTPROUTE_API_VERSION,
    HTTPROUTE_KIND,
    Backends,
    RoutingError,
    Split,
    apply_body,
    route_rules,
)
from modelops_operator.workloads import WorkloadState


@dataclass(frozen=True)
class RoutePlan:
    """The route as read and the rules it should carry: planned before the status is
    written (a missing route or rule is known then), applied after it."""

    route: dict[str, Any]
    rules: list[dict[str, Any]]

    @property
    def changed(self) -> bool:
        return self.rules != (self.route.get("spec") or {}).get("rules")


class Router:
    def __init__(self, kube: KubeClient, field_manager: str) -> None:
        self.kube = kube
        self.field_manager = field_manager

    def plan(
        self,
        spec: ModelDeploymentSpec,
        status: ModelDeploymentStatus,
        canary_workload: WorkloadState,
        namespace: str,
        owner: str,
        backends: Backends,
    ) -> RoutePlan:
        """The split `status` asks for, as the rules of the HTTPRoute read now.

        RoutingError when the route or its rule is missing (or Gateway API is not served).
        """
        routing = spec.rollout.gateway_api
        assert routing is not None
        try:
            route = self.kube.get(HTTPROUTE_API_VERSION, HTTPROUTE_KIND, routing.http_route,
                                  namespace)  # fmt: skip
        except KubeError as exc:
            if exc.status == 0:  # not served (no Gateway API CRDs), or no answer
                raise RoutingError(f"HTTPRoute {namespace}/{routing.http_route}: {exc}") from exc
            raise
        if route is None:
            raise RoutingError(f"HTTPRoute {namespace}/{routing.http_route} not found")
        canary = status.canary
        routable = canary_routable(status, canary_workload)
        pinned = canary is not None and routable and not canary.promoting
        split = Split(
            route_weight(spec, status, routable),
            canary.model.version if pinned and canary is not None else None,
        )
        return RoutePlan(route, route_rules(route, routing, backends, split, owner))

    def apply(self, plan: RoutePlan) -> bool:
        """Put the planned rules into the route; True when it had to change.

        ConflictError when the route changed since it was read (the next tick reads it
        again).
        """
        if not plan.changed:
            return False
        self.kube.apply(apply_body(plan.route, plan.rules), self.field_manager)
        return True
