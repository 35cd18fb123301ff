"""The HTTPRoute's weights on the cluster: read the route, apply the rules routing.py gives.

The canary backend appears only once the canary is Ready, and leaves (100/0) before
anything else of a rollback or promotion is applied (reconcile.py orders the two).
"""

from __future__ import annotations

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


class Router:
    def __init__(self, kube: KubeClient, field_manager: str) -> None:
        self.kube = kube
        self.field_manager = field_manager

    def route(
        self,
        spec: ModelDeploymentSpec,
        status: ModelDeploymentStatus,
        canary_workload: WorkloadState,
        namespace: str,
        owner: str,
        backends: Backends,
    ) -> bool:
        """Put the split `status` asks for into the HTTPRoute; True when it had to change.

        RoutingError when the route or its rule is missing; ConflictError when the
        route changed since it was read (the next tick reads it again).
        """
        routing = spec.rollout.gateway_api
        if routing is None:
            return False
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
        rules = route_rules(route, routing, backends, split, owner)
        if rules == (route.get("spec") or {}).get("rules"):
            return False
        self.kube.apply(apply_body(route, rules), self.field_manager)
        return True
