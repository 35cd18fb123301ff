"""What the cluster runs for monitoring: served kinds, Prometheus objects, Grafana sidecars.

Read through the Kubernetes client and kept for a few ticks (`TTLCache`): every
ModelDeployment asks the same questions, and the answers change rarely. The
lists can be scoped to `settings.monitoring_namespaces`, for a namespaced RBAC
that cannot list cluster-wide; what we may not read leaves the report silent
about it rather than failing the reconcile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from modelops_operator.applyset import KINDS, MONITORING_KINDS
from modelops_operator.constants import MONITORING_GROUP, MONITORING_VERSION
from modelops_operator.kube import KubeClient, KubeError
from modelops_operator.monitoring import Discovered
from modelops_operator.selectors import GrafanaSidecar, grafana_sidecars
from modelops_operator.settings import OperatorSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
MONITORING_API = f"{MONITORING_GROUP}/{MONITORING_VERSION}"
GRAFANA_SELECTOR = "app.kubernetes.io/name=grafana"


class TTLCache:
    """Values kept for `ttl` seconds; two threads may both make a missing value (harmless)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._data: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, make: Callable[[], T]) -> T:
        now = time.monotonic()
        with self._lock:
            hit = self._data.get(key)
            if hit and now - hit[0] < self.ttl:
                return hit[1]
        value = make()
        with self._lock:
            self._data[key] = (now, value)
        return value


class Discovery:
    def __init__(self, settings: OperatorSettings, kube: KubeClient) -> None:
        self.settings = settings
        self.kube = kube
        self.cache = TTLCache(ttl=max(5.0, settings.tick_seconds * 3))

    def discover(self, namespace: str) -> Discovered:
        served = self._served()
        prometheuses: list[dict[str, Any]] = []
        if "Prometheus" in self._served_in(MONITORING_API):
            prometheuses = self.cache.get("prometheuses", self._prometheuses)
        namespaces = {namespace} | {p["metadata"].get("namespace", "") for p in prometheuses}
        sidecars: list[GrafanaSidecar] = []
        if self.settings.discover_grafana:
            sidecars = self.cache.get("grafana", self._grafana)
        return Discovered(
            served=frozenset(served & {k.kind for k in KINDS}),
            missing=frozenset(k for k in MONITORING_KINDS if k not in served),
            prometheuses=prometheuses,
            namespace_labels={ns: self._namespace_labels(ns) for ns in namespaces},
            sidecars=sidecars,
        )

    def _served_in(self, group_version: str) -> frozenset[str]:
        return self.cache.get(f"served/{group_version}",
                              lambda: self.kube.served_kinds(group_version))  # fmt: skip

    def _served(self) -> set[str]:
        served: set[str] = set()
        for group_version in sorted({k.api_version for k in KINDS}):
            served |= self._served_in(group_version)
        return served

    def _namespace_labels(self, namespace: str) -> dict[str, str]:
        def read() -> dict[str, str]:
            try:
                obj = self.kube.get("v1", "Namespace", namespace) or {}
            except KubeError:
                return {}
            return (obj.get("metadata") or {}).get("labels") or {}

        return self.cache.get(f"ns/{namespace}", read)

    def _scoped_list(self, api_version: str, kind: str, selector: str | None = None) -> list:
        """List cluster-wide, or only in settings.monitoring_namespaces (namespaced RBAC)."""
        namespaces: list[str | None] = list(self.settings.monitoring_namespaces) or [None]
        items: list[dict[str, Any]] = []
        for ns in namespaces:
            try:
                items += self.kube.list(api_version, kind, ns, selector)
            except KubeError as exc:  # e.g. no read rights there: no selector report
                log.info("cannot list %s in %s: %s", kind, ns or "all namespaces", exc)
        return items

    def _prometheuses(self) -> list[dict[str, Any]]:
        return self._scoped_list(MONITORING_API, "Prometheus")

    def _grafana(self) -> list[GrafanaSidecar]:
        return grafana_sidecars(self._scoped_list("apps/v1", "Deployment", GRAFANA_SELECTOR))
