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
    order: int

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0] if "/" in self.api_version else ""


# The kinds charts/model-service renders (and so the kinds pruning looks at), in apply order.
KINDS: tuple[KindInfo, ...] = (
    KindInfo("v1", "ServiceAccount", 0),
    KindInfo("v1", "ConfigMap", 1),
    KindInfo("v1", "Service", 2),
    KindInfo("apps/v1", "Deployment", 3),
    KindInfo("policy/v1", "PodDisruptionBudget", 4),
    KindInfo("autoscaling/v2", "HorizontalPodAutoscaler", 4),
    KindInfo("networking.k8s.io/v1", "NetworkPolicy", 4),
    KindInfo("keda.sh/v1alpha1", "ScaledObject", 5),
    KindInfo("monitoring.coreos.com/v1", "ServiceMonitor", 5),
    KindInfo("monitoring.coreos.com/v1", "PrometheusRule", 5),
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

    def model_pod_labels(self) -> dict[str, str]:
        """The labels every pod of the model carries, either track (the stable's selector
        without the track): what /scale's selector says, from the chart alone."""
        stable = self.deployments().get("stable") or {}
        match = ((stable.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        return {k: v for k, v in match.items() if k != LABEL_TRACK}


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


# --- drift: what someone else changed in what we own ----------------------------------

# Annotations controllers write on our objects as a matter of course: not a reason to look.
ROUTINE_ANNOTATIONS = frozenset({"deployment.kubernetes.io/revision"})


def _merge_key(items: list[Any]) -> str | None:
    """The key list items are matched by (containers and env by name), or None."""
    if items and all(isinstance(i, dict) for i in items):
        for key in ("name", "containerPort", "port"):
            if all(key in i for i in items):
                return key
    return None


def _item(items: Any, key: str, value: Any) -> Any:
    if not isinstance(items, list):
        return None
    return next((i for i in items if isinstance(i, dict) and i.get(key) == value), None)


def changed_fields(desired: Any, before: Any, after: Any, path: str = "") -> list[str]:
    """The fields we apply whose live value the apply changed, as readable paths.

    `desired` is what we sent; `before` and `after` are the live object read
    just before and returned by the server-side apply (both as the API server
    stores them, so defaults and quantities are normalised alike). Only paths
    present in `desired` count: what others own (an annotation someone added,
    kubectl's restartedAt, the status) is not ours to report.
    """
    if isinstance(desired, dict):
        out: list[str] = []
        for key, value in desired.items():
            sub = f"{path}.{key}" if path else str(key)
            out += changed_fields(
                value,
                before.get(key) if isinstance(before, dict) else None,
                after.get(key) if isinstance(after, dict) else None,
                sub,
            )
        return out
    if isinstance(desired, list):
        key = _merge_key(desired)
        if key is None:
            return [path] if before != after else []
        out = []
        for item in desired:
            name = item[key]
            was, now = _item(before, key, name), _item(after, key, name)
            if was is None and now is not None:  # the whole item was gone
                out.append(f"{path}[{name}]")
            else:
                out += changed_fields(item, was, now, f"{path}[{name}]")
        return out
    return [path] if before != after else []


def drift_message(key: ObjectKey, before: dict[str, Any] | None, fields: list[str]) -> str:
    if before is None:
        return f"{key} was deleted; recreated it"
    shown = ", ".join(fields[:8]) + (f" and {len(fields) - 8} more" if len(fields) > 8 else "")
    return f"{key} was changed by someone else; restored {shown}"


def watch_fingerprint(obj: dict[str, Any]) -> tuple[Any, ...]:
    """What a change we must look at would alter: the generation (spec), labels, annotations."""
    meta = obj.get("metadata") or {}
    annotations = {
        k: v for k, v in (meta.get("annotations") or {}).items() if k not in ROUTINE_ANNOTATIONS
    }
    return (
        meta.get("generation"),
        tuple(sorted((meta.get("labels") or {}).items())),
        tuple(sorted(annotations.items())),
    )


def needs_recheck(
    event_type: str | None, obj: dict[str, Any], applied: dict[str, tuple[Any, ...]]
) -> bool:
    """Whether a watch event on an owned object may be someone else's change to correct.

    `applied` maps object names to the fingerprint of what our last apply
    returned. Objects we have not applied in this process are left to the next
    reconcile; a status-only update (same generation, labels and annotations)
    is the controllers at work, not drift.
    """
    name = (obj.get("metadata") or {}).get("name", "")
    if name not in applied:
        return False
    if event_type == "DELETED":
        return True
    return watch_fingerprint(obj) != applied[name]
