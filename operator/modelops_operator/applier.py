"""Server-side apply of an apply set, pruning what is no longer rendered, drift memory.

Per object it remembers what it last applied (`Memory`: none of it needed for
correctness, only to skip work), so an unchanged set is re-applied only every
`resync_seconds`, or at once when a watch event says someone else touched one
of our Deployments (`owned_object_changed`). Such a re-apply of an unchanged
set reads each object first and names what it put back (`DriftCorrected`); the
apply carries the read's resourceVersion, so a write landing between the read and
the apply makes it fail with a conflict and read again, instead of being undone
without a word.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from modelops_operator.applyset import (
    KINDS,
    ApplySet,
    ObjectKey,
    Owner,
    changed_fields,
    drift_message,
    key_of,
    needs_recheck,
    prune_set,
    watch_fingerprint,
)
from modelops_operator.constants import KIND
from modelops_operator.kube import ConflictError, KubeClient

log = logging.getLogger(__name__)

# Reads before a checked apply gives up for this tick (the object keeps changing under us;
# the next tick tries again).
CHECKED_APPLY_ATTEMPTS = 5


@dataclass
class Memory:
    """Per-object facts kept between ticks (none needed for correctness)."""

    applied: frozenset[ObjectKey] = frozenset()
    applied_digest: str = ""
    applied_at: float = 0.0
    # name -> watch_fingerprint of what our last apply of that object returned
    fingerprints: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    recheck: bool = False  # a watch event says someone else may have changed our objects


class Applier:
    def __init__(self, kube: KubeClient, field_manager: str, resync_seconds: float) -> None:
        self.kube = kube
        self.field_manager = field_manager
        self.resync_seconds = resync_seconds
        self.memory: dict[str, Memory] = {}
        self._guard = threading.Lock()

    def forget(self, uid: str) -> None:
        with self._guard:
            self.memory.pop(uid, None)

    def owned_object_changed(self, event_type: str | None, obj: dict[str, Any]) -> str | None:
        """A watch event on an object we own: the owner's uid if its objects need a look.

        Marks the owner for a re-apply with drift check on its next reconcile
        (the caller pokes it), unless the event shows nothing but what our own
        last apply or the controllers wrote.
        """
        refs = (obj.get("metadata") or {}).get("ownerReferences") or []
        owners = [r for r in refs if r.get("kind") == KIND and r.get("controller")]
        uid = owners[0].get("uid") if owners else None
        memory = self.memory.get(uid or "")
        if uid is None or memory is None or not needs_recheck(event_type, obj, memory.fingerprints):
            return None
        memory.recheck = True
        return uid

    def apply(self, apply_set: ApplySet, owner: Owner, served: frozenset[str]) -> list[str]:
        """Server-side apply the set; skipped while it is unchanged and resync is not due.

        Returns one message per object whose fields a re-apply of an unchanged set
        changed back (a no-op apply says nothing); an apply of a changed set
        reports nothing, since the changes are ours.
        """
        with self._guard:
            memory = self.memory.setdefault(owner.uid, Memory())
        digest = hashlib.sha256(json.dumps(apply_set.objects, sort_keys=True).encode()).hexdigest()
        now = time.monotonic()
        recheck, memory.recheck = memory.recheck, False
        same_set = digest == memory.applied_digest
        if same_set and not recheck and now - memory.applied_at < self.resync_seconds:
            return []
        try:
            corrected = self._apply_all(apply_set, memory, check_drift=same_set)
        except Exception:
            memory.recheck = memory.recheck or recheck  # a failed re-apply is tried again
            raise
        memory.applied_digest, memory.applied_at = digest, now
        if apply_set.keys != memory.applied:
            self._prune(apply_set, owner, served, memory)
            memory.applied = apply_set.keys
        return corrected

    def _apply_all(self, apply_set: ApplySet, memory: Memory, *, check_drift: bool) -> list[str]:
        corrected: list[str] = []
        for obj in apply_set.objects:
            key = key_of(obj)
            if check_drift:
                before, after = self._apply_checked(obj, key)
                fields = changed_fields(obj, before, after) if before is not None else ["*"]
                if fields:
                    corrected.append(drift_message(key, before, fields))
            else:
                after = self.kube.apply(obj, self.field_manager)
            if key.kind == "Deployment":
                memory.fingerprints[key.name] = watch_fingerprint(after)
        return corrected

    def _apply_checked(
        self, obj: dict[str, Any], key: ObjectKey
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """(live object read, object the apply returned), the apply conditional on the read."""
        attempts_left = CHECKED_APPLY_ATTEMPTS
        while True:
            before = self.kube.get(key.api_version, key.kind, key.name, key.namespace)
            if before is None:  # gone: nothing to be conditional on
                return None, self.kube.apply(obj, self.field_manager)
            version = before["metadata"]["resourceVersion"]
            pinned = {**obj, "metadata": {**obj["metadata"], "resourceVersion": version}}
            try:
                return before, self.kube.apply(pinned, self.field_manager)
            except ConflictError:
                attempts_left -= 1
                if not attempts_left:
                    raise
                log.info("%s changed while being checked; reading it again", key)

    def _prune(
        self, apply_set: ApplySet, owner: Owner, served: frozenset[str], memory: Memory
    ) -> None:
        """Delete what carries our owner label and uid but is no longer rendered.

        Only kinds the API server serves are listed (`served`, from discovery).
        """
        existing: list[dict[str, Any]] = []
        for info in KINDS:
            if info.kind in served:
                existing += self.kube.list(info.api_version, info.kind, owner.namespace,
                                           owner.selector())  # fmt: skip
        for key in prune_set(existing, apply_set.keys, owner):
            log.info("pruning %s (no longer rendered)", key)
            memory.fingerprints.pop(key.name, None)
            self.kube.delete(key)
