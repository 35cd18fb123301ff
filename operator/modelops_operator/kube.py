"""The apply layer: the Kubernetes API through the `kubernetes` package's dynamic client.

The dynamic client finds each kind's REST resource by discovery, so no path is
spelled here; server-side apply always uses one field manager, so fields others
set (`kubectl rollout restart`'s restartedAt annotation, an HPA's replicas when
the chart leaves them out) stay theirs. Credentials come from kubernetes.config
(kubeconfig or in-cluster, whose rotating token the client re-reads); urllib3
retries refused connections, 429 and 5xx with backoff, so an API server restart
costs a reconcile a few seconds, not an error.

The client is synchronous: reconciles run in kopf's thread pool (handlers.py),
bounded by `settings.workers`, and the connection pool is sized to match.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import urllib3
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError, ResourceNotFoundError

from modelops_operator.applyset import ObjectKey, key_of

log = logging.getLogger(__name__)

TIMEOUT = (5.0, 30.0)  # connect, read (seconds) for every call
RETRIES = urllib3.Retry(
    total=4,
    backoff_factor=0.2,
    status_forcelist=(429, 500, 502, 503, 504),
    allowed_methods=None,  # every verb: apply and status PUTs are idempotent or conditional
    raise_on_status=False,  # the last answer reaches the client, which raises its ApiException
)


class KubeError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class ConflictError(KubeError):
    pass


@contextlib.contextmanager
def _api_errors(what: str) -> Iterator[None]:
    """The client's exceptions as KubeError, with the API server's own message."""
    try:
        yield
    except DynamicApiError as exc:
        error = ConflictError if exc.status == 409 else KubeError
        raise error(exc.status or 0, f"{what}: {exc.summary()[:500]}") from None
    except (urllib3.exceptions.HTTPError, ResourceNotFoundError) as exc:
        raise KubeError(0, f"{what}: {exc}") from exc


def load_configuration(kubeconfig: Path | None, pool_size: int) -> kubernetes.client.Configuration:
    """A kubeconfig file if given, else in-cluster, else ~/.kube/config."""
    cfg = kubernetes.client.Configuration()
    if kubeconfig is not None:
        kubernetes.config.load_kube_config(str(kubeconfig), client_configuration=cfg)
    else:
        try:
            kubernetes.config.load_incluster_config(client_configuration=cfg)
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(client_configuration=cfg)
    cfg.retries = RETRIES
    cfg.connection_pool_maxsize = pool_size
    return cfg


class _BoundedApiClient(kubernetes.client.ApiClient):
    """Every call bounded by `timeout` unless it names its own. The dynamic client's
    discovery names none, and a call without one waits forever on a connection the API
    server never answers: under the lock every reconcile thread shares (`_resource`)."""

    def __init__(
        self, configuration: kubernetes.client.Configuration, timeout: tuple[float, float]
    ) -> None:
        super().__init__(configuration)
        self._timeout = timeout

    def call_api(
        self,
        method: str,
        url: str,
        header_params: Any = None,
        body: Any = None,
        post_params: Any = None,
        _request_timeout: Any = None,
    ) -> Any:
        return super().call_api(
            method, url, header_params, body, post_params, _request_timeout or self._timeout
        )


class KubeClient:
    """get/list/apply/delete/status/Events for dict objects; KubeError on failure."""

    def __init__(
        self, configuration: kubernetes.client.Configuration, timeout: tuple[float, float] = TIMEOUT
    ) -> None:
        self._cfg = configuration
        self._timeout = timeout  # (connect, read) seconds of every call, discovery too
        self._client: DynamicClient | None = None
        self._resources: dict[tuple[str, str], Any] = {}
        self._lock = threading.RLock()  # _resource() holds it while _dynamic() builds
        # a private discovery cache: the default file in /tmp is shared per API URL.
        # Removed by close(), or at exit by the directory's finalizer.
        self._cache_dir = tempfile.TemporaryDirectory(prefix="modelops-kube-")

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path | None = None, pool_size: int = 16) -> KubeClient:
        return cls(load_configuration(kubeconfig, pool_size))

    # --- plumbing -----------------------------------------------------------

    def _dynamic(self) -> DynamicClient:
        """Built on first use: its discovery needs the API server, the startup must not."""
        with self._lock, _api_errors("discovery"):
            if self._client is None:
                cache = Path(self._cache_dir.name) / "discovery.json"
                api = _BoundedApiClient(self._cfg, self._timeout)
                self._client = DynamicClient(api, cache_file=str(cache))
            return self._client

    def _resource(self, api_version: str, kind: str) -> Any:
        """The REST resource of a kind, found once (the discoverer is not thread-safe)."""
        with self._lock:
            resource = self._resources.get((api_version, kind))
            if resource is None:
                with _api_errors(f"discover {api_version}/{kind}"):
                    found = self._dynamic().resources.get(api_version=api_version, kind=kind)
                resource = self._resources[(api_version, kind)] = found
            return resource

    @staticmethod
    def _json(response: Any) -> dict[str, Any]:
        return json.loads(response.data) if response.data else {}

    # --- reads --------------------------------------------------------------

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        resource = self._resource(api_version, kind)
        try:
            with _api_errors(f"get {kind}/{name}"):
                return self._json(resource.get(name=name, namespace=namespace, serialize=False))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        """Objects of a kind in a namespace (None: every namespace), with apiVersion and kind."""
        resource = self._resource(api_version, kind)
        with _api_errors(f"list {kind} in {namespace or 'all namespaces'}"):
            body = self._json(
                resource.get(namespace=namespace, label_selector=label_selector, serialize=False)
            )
        items = list(body.get("items") or [])
        for item in items:  # list items come without them
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    def served_kinds(self, group_version: str) -> frozenset[str]:
        """Kinds the API server serves in a group/version now (empty when it serves none)."""
        path = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        try:
            with _api_errors(f"discover {group_version}"):
                body = self._json(self._dynamic().request("GET", path, serialize=False))
        except KubeError as exc:
            if exc.status == 404:
                return frozenset()
            raise
        resources = body.get("resources") or []
        return frozenset(r["kind"] for r in resources if "/" not in r.get("name", ""))

    # --- writes -------------------------------------------------------------

    def apply(self, obj: dict[str, Any], field_manager: str) -> dict[str, Any]:
        """Server-side apply, forcing conflicts: the chart's fields are ours."""
        key = key_of(obj)
        resource = self._resource(key.api_version, key.kind)
        with _api_errors(f"apply {key}"):
            response = resource.server_side_apply(
                body=obj, name=key.name, namespace=key.namespace, field_manager=field_manager,
                force_conflicts=True, serialize=False,
            )  # fmt: skip
            return self._json(response)

    def delete(self, key: ObjectKey) -> None:
        resource = self._resource(key.api_version, key.kind)
        try:
            with _api_errors(f"delete {key}"):
                resource.delete(
                    name=key.name, namespace=key.namespace, propagation_policy="Background",
                    serialize=False,
                )  # fmt: skip
        except KubeError as exc:
            if exc.status != 404:
                raise

    def remove_annotation(self, obj: dict[str, Any], key: str, value: str) -> None:
        """Remove annotation `key` if it still holds `value` (a JSON patch with a test: a
        newer value written meanwhile stays). A failed test (422) or a gone object is fine."""
        meta = key_of(obj)
        resource = self._resource(meta.api_version, meta.kind)
        path = "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")
        patch = [{"op": "test", "path": path, "value": value}, {"op": "remove", "path": path}]
        try:
            with _api_errors(f"remove annotation {key} of {meta}"):
                resource.patch(
                    body=patch, name=meta.name, namespace=meta.namespace,
                    content_type="application/json-patch+json", serialize=False,
                )  # fmt: skip
        except KubeError as exc:
            if exc.status not in (404, 409, 422):
                raise

    def replace_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        """PUT the status subresource; the object's resourceVersion makes it conditional."""
        key = key_of(obj)
        resource = self._resource(key.api_version, key.kind)
        with _api_errors(f"write status of {key}"):
            return self._json(
                resource.status.replace(
                    body=obj, name=key.name, namespace=key.namespace, serialize=False
                )
            )

    def post_event(
        self, involved: dict[str, Any], type_: str, reason: str, message: str, component: str
    ) -> None:
        """Best effort: a lost Event never fails a reconcile (the status is the record)."""
        event = event_body(involved, type_, reason, message, component)
        try:
            resource = self._resource("v1", "Event")
            with _api_errors(f"post Event {reason}"):
                resource.create(
                    body=event, namespace=event["metadata"]["namespace"], serialize=False
                )
        except KubeError as exc:
            log.warning("could not post event %s: %s", reason, exc)

    def close(self) -> None:
        if self._client is not None:
            self._client.client.close()
        self._cache_dir.cleanup()


def event_body(
    involved: dict[str, Any], type_: str, reason: str, message: str, component: str
) -> dict[str, Any]:
    """A core/v1 Event about `involved` (pure)."""
    meta = involved["metadata"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
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
        "reason": str(reason),
        "message": message[:1024],
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": component,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
