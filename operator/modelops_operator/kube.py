"""The apply layer: a small Kubernetes REST client (httpx) with server-side apply.

Credentials come from kubernetes.config (kubeconfig or in-cluster); requests go
through httpx so one client, one connection pool and one retry policy serve
every call. Server-side apply always uses one field manager, so fields others
set (`kubectl rollout restart`'s restartedAt annotation, an HPA's replicas when
the chart leaves them out) stay theirs.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import kubernetes.client
import kubernetes.config

from modelops_operator.applyset import KIND_BY_NAME, ObjectKey, key_of, rest_path

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class KubeError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class ConflictError(KubeError):
    pass


class KubeClient:
    def __init__(self, configuration: kubernetes.client.Configuration) -> None:
        self._cfg = configuration
        verify = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
        if not configuration.verify_ssl:
            verify.check_hostname = False
            verify.verify_mode = ssl.CERT_NONE
        if configuration.cert_file:
            verify.load_cert_chain(configuration.cert_file, configuration.key_file)
        self.host = configuration.host.rstrip("/")
        self._http = httpx.Client(
            base_url=self.host,
            verify=verify,
            timeout=httpx.Timeout(30.0, connect=5.0),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )
        self._discovery: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path | None = None) -> KubeClient:
        cfg = kubernetes.client.Configuration()
        if kubeconfig is not None:
            kubernetes.config.load_kube_config(str(kubeconfig), client_configuration=cfg)
        else:
            try:
                kubernetes.config.load_incluster_config(client_configuration=cfg)
            except kubernetes.config.ConfigException:
                kubernetes.config.load_kube_config(client_configuration=cfg)
        return cls(cfg)

    # --- plumbing -----------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        # in-cluster tokens rotate: the refresh hook inside this call re-reads them
        token = self._cfg.get_api_key_with_prefix("BearerToken", alias="authorization") or ""
        return {"Authorization": token} if token else {}

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        ok_missing: bool = False,
    ) -> dict[str, Any] | None:
        headers = self._headers()
        content = None
        if body is not None:
            headers["Content-Type"] = content_type
            content = json.dumps(body)
        delay = 0.2
        for attempt in range(5):
            try:
                resp = self._http.request(
                    method, path, params=params, content=content, headers=headers
                )
            except httpx.TransportError as exc:
                if attempt == 4:
                    raise KubeError(0, f"{method} {path}: {exc}") from exc
                time.sleep(delay)
                delay *= 2
                continue
            if resp.status_code in RETRY_STATUSES and attempt < 4:
                time.sleep(delay)
                delay *= 2
                continue
            break
        if resp.status_code == 404 and ok_missing:
            return None
        if resp.status_code == 409:
            raise ConflictError(409, f"{method} {path}: {resp.text[:500]}")
        if resp.status_code >= 400:
            raise KubeError(resp.status_code, f"{method} {path}: {resp.text[:500]}")
        return resp.json() if resp.content else {}

    # --- reads --------------------------------------------------------------

    def get(self, path: str) -> dict[str, Any] | None:
        return self.request("GET", path, ok_missing=True)

    def list(self, path: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else None
        body = self.request("GET", path, params=params, ok_missing=True)
        return list((body or {}).get("items") or [])

    def served_kinds(self, group_version: str, ttl: float = 30.0) -> frozenset[str]:
        """Kinds the API server serves in a group/version (cached for `ttl` seconds)."""
        now = time.monotonic()
        with self._lock:
            cached = self._discovery.get(group_version)
            if cached and now - cached[0] < ttl:
                return cached[1]
        path = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        body = self.request("GET", path, ok_missing=True) or {}
        kinds = frozenset(
            r["kind"] for r in body.get("resources") or [] if "/" not in r.get("name", "")
        )
        with self._lock:
            self._discovery[group_version] = (now, kinds)
        return kinds

    # --- writes -------------------------------------------------------------

    def apply(self, obj: dict[str, Any], field_manager: str) -> dict[str, Any]:
        key = key_of(obj)
        path = rest_path(key.api_version, key.kind, key.namespace, key.name)
        result = self.request(
            "PATCH",
            path,
            params={"fieldManager": field_manager, "force": "true"},
            body=obj,
            content_type="application/apply-patch+yaml",
        )
        return result or {}

    def delete(self, key: ObjectKey) -> None:
        path = rest_path(key.api_version, key.kind, key.namespace, key.name)
        self.request("DELETE", path, body={"propagationPolicy": "Background"}, ok_missing=True)

    def list_owned(self, namespace: str, selector: str, kinds: frozenset[str]) -> list[dict]:
        """Every object of the known kinds in `namespace` with the label `selector`."""
        out = []
        for info in KIND_BY_NAME.values():
            if info.kind not in kinds:
                continue
            for item in self.list(rest_path(info.api_version, info.kind, namespace), selector):
                item.setdefault("apiVersion", info.api_version)
                item.setdefault("kind", info.kind)
                out.append(item)
        return out

    def replace_status(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        """PUT the status subresource; the object's resourceVersion makes it conditional."""
        result = self.request("PUT", path + "/status", body=obj)
        return result or {}

    def post_event(
        self,
        involved: dict[str, Any],
        type_: str,
        reason: str,
        message: str,
        component: str,
    ) -> None:
        meta = involved["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", body=event)
        except KubeError as exc:  # an Event is best effort; never fail a reconcile for it
            log.warning("could not post event %s: %s", reason, exc)

    def close(self) -> None:
        self._http.close()
