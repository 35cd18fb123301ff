"""Rendered chart objects -> the set the operator applies, and what to prune (pure).

Every applied object gets the owner label (``modelops.io/modeldeployment``),
``app.kubernetes.io/managed-by: modelops-operator`` and a controller owner
reference to the ModelDeployment, so the garbage collector removes it with its
owner. Pruning lists by the owner label and deletes only objects whose owner
reference carries the ModelDeployment's uid: never what the operator does not own.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from modelops_operator.constants import (
    API_VERSION,
    KIND,
    LABEL_MANAGED_BY,
    LABEL_OWNER,
    LABEL_TRACK,
    MANAGED_BY,
    MONITORING_GROUP,
    TRACK_CANARY,
)


@dataclass(frozen=True)
class KindInfo:
    api_version: str
    kind: str
    plural: str
    order: int

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0] if "/" in self.api_version else ""


# The kinds charts/model-service renders (and so the kinds pruning looks at), in apply order.
KINDS: tuple[KindInfo, ...] = (
    KindInfo("v1", "ServiceAccount", "serviceaccounts", 0),
    KindInfo("v1", "ConfigMap", "configmaps", 1),
    KindInfo("v1", "Service", "services", 2),
    KindInfo("apps/v1", "Deployment", "deployments", 3),
    KindInfo("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", 4),
    KindInfo("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", 4),
    KindInfo("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", 4),
    KindInfo("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors", 5),
    KindInfo("monitoring.coreos.com/v1", "PrometheusRule", "prometheusrules", 5),
)
KIND_BY_NAME = {(k.api_version, k.kind): k for k in KINDS}
MONITORING_KINDS = frozenset(k.kind for k in KINDS if k.group == MONITORING_GROUP)


@dataclass(frozen=True, order=True)
class ObjectKey:
    api_version: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


def key_of(obj: dict[str, Any], default_namespace: str = "") -> ObjectKey:
    meta = obj.get("metadata") or {}
    return ObjectKey(
        obj.get("apiVersion", ""),
        obj.get("kind", ""),
        meta.get("namespace") or default_namespace,
        meta.get("name", ""),
    )


def rest_path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    info = KIND_BY_NAME.get((api_version, kind))
    if info is None:
        raise KeyError(f"unknown kind {api_version}/{kind}: add it to applyset.KINDS")
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{base}/namespaces/{namespace}/{info.plural}"
    return f"{path}/{name}" if name else path


@dataclass(frozen=True)
class Owner:
    name: str
    namespace: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def selector(self) -> str:
        return f"{LABEL_OWNER}={self.name}"


@dataclass(frozen=True)
class ApplySet:
    objects: tuple[dict[str, Any], ...]
    skipped: tuple[ObjectKey, ...] = field(default_factory=tuple)  # kinds the API does not serve

    @property
    def keys(self) -> frozenset[ObjectKey]:
        return frozenset(key_of(o) for o in self.objects)

    def deployments(self) -> dict[str, dict[str, Any]]:
        """{'stable': obj, 'canary': obj} for the rendered Deployments."""
        out: dict[str, dict[str, Any]] = {}
        for obj in self.objects:
            if obj.get("kind") == "Deployment":
                labels = obj["metadata"].get("labels") or {}
                out["canary" if labels.get(LABEL_TRACK) == TRACK_CANARY else "stable"] = obj
        return out


def _is_hook(obj: dict[str, Any]) -> bool:
    return "helm.sh/hook" in ((obj.get("metadata") or {}).get("annotations") or {})


def build_apply_set(
    rendered: Iterable[dict[str, Any]],
    owner: Owner,
    served_kinds: frozenset[str] | None = None,
    extra_labels: dict[str, dict[str, str]] | None = None,
) -> ApplySet:
    """Label and own the rendered objects; leave out kinds the API server does not serve.

    `served_kinds` holds the kind names the cluster serves (None = all);
    `extra_labels` maps a kind to labels added to every object of that kind.
    """
    objects: list[dict[str, Any]] = []
    skipped: list[ObjectKey] = []
    for original in rendered:
        if not original or _is_hook(original):
            continue
        obj = copy.deepcopy(original)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", owner.namespace)
        key = key_of(obj)
        if (key.api_version, key.kind) not in KIND_BY_NAME:
            raise KeyError(f"the chart rendered {key.api_version}/{key.kind}: unknown kind")
        if served_kinds is not None and key.kind not in served_kinds:
            skipped.append(key)
            continue
        labels = meta.setdefault("labels", {}) or {}
        meta["labels"] = labels
        labels.update((extra_labels or {}).get(key.kind, {}))
        labels[LABEL_OWNER] = owner.name
        labels[LABEL_MANAGED_BY] = MANAGED_BY
        if meta["namespace"] == owner.namespace:  # owner references cannot cross namespaces
            meta["ownerReferences"] = [owner.reference()]
        objects.append(obj)
    objects.sort(key=lambda o: (KIND_BY_NAME[(o["apiVersion"], o["kind"])].order, key_of(o)))
    return ApplySet(tuple(objects), tuple(sorted(skipped)))


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid for ref in refs)


def prune_set(
    existing: Iterable[dict[str, Any]], desired: frozenset[ObjectKey], owner: Owner
) -> list[ObjectKey]:
    """Objects found by the owner label that the new render no longer has, and that we own."""
    stale = []
    for obj in existing:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if labels.get(LABEL_OWNER) != owner.name or not owned_by(obj, owner.uid):
            continue
        key = key_of(obj, owner.namespace)
        if key not in desired:
            stale.append(key)
    return sorted(stale)
