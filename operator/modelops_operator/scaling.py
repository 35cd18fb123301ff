"""The ModelDeployment as a whole scales (pure): its /scale subresource and spec.autoscaling.

An autoscaler (KEDA's HPA, `kubectl scale md`) sets spec.replicas, the model's size:
the stable's pods, beside which a canary runs at the step's share (workloads.split_replicas).
The operator renders both Deployments from that total, so it never fights the autoscaler:
the Deployments' replicas are the operator's, the ModelDeployment's are the autoscaler's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelops_operator.constants import API_VERSION, KIND
from modelops_operator.models import ModelDeploymentSpec
from modelops_operator.workloads import WorkloadState

# KEDA's ScaledObject: the one autoscaling object the operator owns per ModelDeployment.
KEDA_API_VERSION = "keda.sh/v1alpha1"
SCALED_OBJECT = "ScaledObject"
KEDA_CRD = "scaledobjects.keda.sh"


def total_replicas(spec: ModelDeploymentSpec) -> int:
    """spec.replicas, clamped to spec.autoscaling's bounds when it has them.

    The autoscaler keeps spec.replicas within them once it runs; until it has
    (or while KEDA is missing) the bounds still hold.
    """
    bounds = spec.autoscaling
    if bounds is None:
        return spec.replicas
    return min(max(spec.replicas, bounds.min_replicas), bounds.max_replicas)


def scale_replicas(stable: WorkloadState, canary: WorkloadState) -> int:
    """status.replicas: the pods of the track that carries the total (the larger one).

    The canary runs beside the stable at the step's share, never with more replicas
    than the stable (workloads.split_replicas caps it at the total), so the stable
    carries spec.replicas until the last step, where the canary alone does; counting
    both would make an autoscaler see more replicas than it asked for and scale down.
    """
    return max(stable.replicas, canary.replicas if canary.exists else 0)


def scale_selector(labels: Mapping[str, str]) -> str:
    """status.selector: the Service's pod selector as a label-selector string (both tracks).

    The HPA lists pods with it (CPU utilization averages over stable and canary,
    which together serve the load the total is sized for).
    """
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def scaled_object_values(
    spec: ModelDeploymentSpec, name: str, prometheus_url: str
) -> dict[str, Any]:
    """The chart's `scaledObject` values: KEDA scales this ModelDeployment (never a Deployment)."""
    bounds = spec.autoscaling
    if bounds is None:
        return {"enabled": False}
    return {
        "enabled": True,
        "scaleTargetRef": {"apiVersion": API_VERSION, "kind": KIND, "name": name},
        "minReplicas": bounds.min_replicas,
        "maxReplicas": bounds.max_replicas,
        "targetRequestsPerSecond": bounds.target_requests_per_second,
        "targetCPUUtilizationPercentage": bounds.target_cpu_utilization_percentage,
        "scaleDownStabilizationSeconds": bounds.scale_down_stabilization_seconds,
        "prometheusUrl": bounds.prometheus_url or prometheus_url,
    }


def keda_missing(spec: ModelDeploymentSpec, served: frozenset[str]) -> str | None:
    """What spec.autoscaling lacks to work, or None (KEDA is optional)."""
    if spec.autoscaling is None or SCALED_OBJECT in served:
        return None
    return (
        f"spec.autoscaling needs KEDA: the API server does not serve {KEDA_CRD} "
        f"({KEDA_API_VERSION}); install KEDA (its CRDs, operator and metrics server) or "
        "drop spec.autoscaling (the model-service chart's CPU HorizontalPodAutoscaler "
        f"needs no KEDA); spec.replicas {spec.replicas} is kept within "
        f"[{spec.autoscaling.min_replicas}, {spec.autoscaling.max_replicas}] meanwhile"
    )
