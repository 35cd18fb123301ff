"""What stands in for the kubelet and kube-proxy: pods on KWOK nodes backed by local processes.

KWOK marks pods Ready, but nothing inside them runs. `PodProcesses.sync` reads the pods of
the demo namespace and keeps one real model service process per (release, version) that
has pods bound to a node: it starts `python -m modelops_service` with the artifact the
pod's container would load (its MODELOPS_MODEL_DIR under /models/ mapped to the local
models/ directory, its MODELOPS_MODEL_SHA256 checked as in the pod), and stops the process
once every pod of that version is deleted (as a container lives as long as its pod, Ready
or not). Each running process is a Prometheus scrape target with
the labels the chart's ServiceMonitor gives a pod's target (namespace, service, and
modelops_io_model / _version / _track from the pod labels), so the recording rules
aggregate it `by (namespace, model, version)` exactly as in a cluster.

`ServiceProxy` is a loopback stand-in for one Service's ClusterIP: each request goes to a
Ready pod chosen at random among those the Service selects, that is to the process behind
that pod's version. The canary's share of the traffic is then its share of the Ready pods,
as with a Service in a cluster without a mesh.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any

from devstack.processes import http_status
from devstack.prometheus import Prometheus, Target
from devstack.service_process import ServiceProcess, start_service

LABEL_MODEL = "modelops.io/model"
LABEL_VERSION = "modelops.io/version"
LABEL_TRACK = "modelops.io/track"
LABEL_INSTANCE = "app.kubernetes.io/instance"
POD_MODEL_ROOT = PurePosixPath("/models")  # where the chart mounts the artifacts
RESTART_BACKOFF = 10.0  # seconds before a process that died is started again

Say = Callable[[str], None]


def pod_running(pod: Mapping[str, Any]) -> bool:
    """Bound to a node and not being deleted: its container would be running."""
    return bool(pod["spec"].get("nodeName")) and not pod["metadata"].get("deletionTimestamp")


def pod_ready(pod: Mapping[str, Any]) -> bool:
    if not pod_running(pod):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def pod_env(pod: Mapping[str, Any]) -> dict[str, str]:
    """The literal env values of the pod's model-service container (the first container)."""
    container = pod["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


@dataclass
class Backend:
    """The one local process behind every pod of a release's version."""

    instance: str
    model: str
    version: str
    service: ServiceProcess
    track: str = "stable"
    ready: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.instance, self.version)


@dataclass
class PodProcesses:
    namespace: str
    models_root: Path
    prometheus: Prometheus
    log_dir: Path
    say: Say
    service_env: Mapping[str, str] = field(default_factory=dict)
    on_start: Callable[[str, ServiceProcess], None] = lambda name, svc: None
    backends: dict[tuple[str, str], Backend] = field(default_factory=dict)
    routes: dict[str, list[str]] = field(default_factory=dict)  # Service name -> backend URLs
    _targets: list[Target] = field(default_factory=list)
    _failed: dict[tuple[str, str], float] = field(default_factory=dict)
    _warned: set[str] = field(default_factory=set)

    # --- the loop's one entry point

    def sync(
        self, pods: Iterable[Mapping[str, Any]], services: Iterable[Mapping[str, Any]]
    ) -> None:
        ours = [p for p in pods if LABEL_VERSION in (p["metadata"].get("labels") or {})]
        services = list(services)
        wanted: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
        for pod in filter(pod_running, ours):
            labels = pod["metadata"]["labels"]
            key = (labels.get(LABEL_INSTANCE, ""), labels[LABEL_VERSION])
            wanted.setdefault(key, []).append(pod)
        for key in [k for k in self.backends if k not in wanted]:
            self._stop(self.backends.pop(key), "its pods are gone")
        for key, group in wanted.items():
            backend = self.backends.get(key)
            if backend is None:
                backend = self._start(key, group)
                if backend is None:
                    continue
            # the canary track wins while any pod of this version is still a canary
            tracks = {p["metadata"]["labels"].get(LABEL_TRACK, "stable") for p in group}
            backend.track = "canary" if "canary" in tracks else "stable"
            self._check(backend)
        self._update_targets(services)
        self._update_routes([p for p in ours if pod_ready(p)], services)

    def stop_all(self) -> None:
        for key in list(self.backends):
            self._stop(self.backends.pop(key), "the demo is ending", quiet=True)

    # --- processes

    def _start(self, key: tuple[str, str], pods: list[Mapping[str, Any]]) -> Backend | None:
        instance, version = key
        if time.monotonic() < self._failed.get(key, 0.0):
            return None
        pod = pods[0]
        labels = pod["metadata"]["labels"]
        env = pod_env(pod)
        artifact = PurePosixPath(env.get("MODELOPS_MODEL_DIR", ""))
        if not artifact.is_relative_to(POD_MODEL_ROOT):
            self._warn_once(
                f"{instance}/{version}",
                f"pod {pod['metadata']['name']}: MODELOPS_MODEL_DIR {artifact} is not under "
                f"{POD_MODEL_ROOT}: no local process can stand in for it",
            )
            return None
        local = self.models_root / artifact.relative_to(POD_MODEL_ROOT)
        if not (local / "model.json").is_file():
            self._warn_once(
                f"{instance}/{version}",
                f"pod {pod['metadata']['name']} wants {artifact}, but {local} holds no model "
                "(make models)",
            )
            return None
        child_env = {
            k: v
            for k, v in env.items()
            if k.startswith("MODELOPS_") and k not in ("MODELOPS_PORT", "MODELOPS_HOST")
        }
        child_env.update(self.service_env)
        child_env["MODELOPS_MODEL_DIR"] = str(local)
        svc = start_service(local, env=child_env, wait=False, log_dir=self.log_dir)
        name = f"service {instance} v{version}"
        self.on_start(name, svc)
        nodes = ", ".join(sorted({p["spec"].get("nodeName", "?") for p in pods}))
        self.say(
            f"pods of {instance} v{version} on {nodes} (KWOK: nothing runs in them) -> "
            f"started the real service for {artifact} as pid {svc.pid} on {svc.url}"
            + (" (sha256 checked)" if "MODELOPS_MODEL_SHA256" in env else "")
        )
        backend = Backend(instance, labels.get(LABEL_MODEL, ""), version, svc)
        self.backends[key] = backend
        return backend

    def _check(self, backend: Backend) -> None:
        if backend.service.returncode is not None:
            self.backends.pop(backend.key, None)
            self._failed[backend.key] = time.monotonic() + RESTART_BACKOFF
            tail = "\n".join(backend.service.logs().splitlines()[-5:])
            self.say(
                f"the service for {backend.instance} v{backend.version} (pid "
                f"{backend.service.pid}) exited with {backend.service.returncode}; retrying in "
                f"{RESTART_BACKOFF:.0f}s. Last log lines:\n{tail}"
            )
            return
        if not backend.ready and http_status(f"{backend.service.url}/readyz", timeout=1) == 200:
            backend.ready = True
            self.say(
                f"{backend.instance} v{backend.version} (pid {backend.service.pid}) is ready; "
                "Prometheus scrapes it from now on"
            )

    def _stop(self, backend: Backend, why: str, quiet: bool = False) -> None:
        backend.service.stop()
        if not quiet:
            self.say(
                f"{backend.instance} v{backend.version}: {why}, so its process (pid "
                f"{backend.service.pid}) is stopped"
            )

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.say(f"WARNING: {message}")

    # --- Prometheus targets and Service routes

    def _service_of(self, labels: Mapping[str, str], services: list[Mapping[str, Any]]) -> str:
        for svc in services:
            if selects(svc["spec"].get("selector") or {}, labels):
                return svc["metadata"]["name"]
        return ""

    def _update_targets(self, services: list[Mapping[str, Any]]) -> None:
        targets = []
        for b in sorted(self.backends.values(), key=lambda b: b.key):
            if not b.ready:
                continue
            pod_labels = {
                LABEL_MODEL: b.model,
                LABEL_VERSION: b.version,
                LABEL_TRACK: b.track,
                LABEL_INSTANCE: b.instance,
                "app.kubernetes.io/name": "model-service",
            }
            service = self._service_of(pod_labels, services) or f"{b.instance}-model-service"
            targets.append(
                Target(
                    b.service.url.removeprefix("http://"),
                    {
                        # what the ServiceMonitor's relabelling gives a pod's target
                        "namespace": self.namespace,
                        "service": service,
                        "modelops_io_model": b.model,
                        "modelops_io_version": b.version,
                        "modelops_io_track": b.track,
                    },
                    job=service,
                )
            )
        if targets != self._targets:
            self._targets = targets
            self.prometheus.set_targets(targets)

    def _update_routes(
        self, ready_pods: list[Mapping[str, Any]], services: list[Mapping[str, Any]]
    ) -> None:
        routes: dict[str, list[str]] = {}
        for svc in services:
            selector = svc["spec"].get("selector") or {}
            urls = []
            for pod in ready_pods:
                labels = pod["metadata"]["labels"]
                backend = self.backends.get((labels.get(LABEL_INSTANCE, ""), labels[LABEL_VERSION]))
                if selects(selector, labels) and backend and backend.ready:
                    urls.append(backend.service.url)  # one entry per pod: the replica ratio
            routes[svc["metadata"]["name"]] = urls
        self.routes = routes

    def describe(self) -> list[str]:
        """One line per process: what it serves, its PID and address, its track."""
        return [
            f"{b.instance} v{b.version} ({b.track}): pid {b.service.pid} on {b.service.url}"
            f"{'' if b.ready else ' (starting)'}"
            for b in sorted(self.backends.values(), key=lambda b: b.key)
        ]


# --- the Service stand-in -------------------------------------------------------------


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (the traffic generator stopping) is no error worth a trace."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class ServiceProxy:
    """A loopback stand-in for a Service's ClusterIP: a random Ready pod per request."""

    HOP_HEADERS = frozenset(
        {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}
    )

    def __init__(self, name: str, routes: Callable[[], list[str]]) -> None:
        self.name = name
        self.routes = routes
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                backends = proxy.routes()
                if not backends:
                    self._answer(503, b'{"detail":"no Ready endpoint behind the Service"}')
                    return
                host_port = random.choice(backends).removeprefix("http://")
                conn = http.client.HTTPConnection(host_port, timeout=30)
                try:
                    headers = {
                        k: v for k, v in self.headers.items() if k.lower() not in proxy.HOP_HEADERS
                    }
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    payload = resp.read()
                    extra = [
                        (k, v) for k, v in resp.getheaders() if k.lower() not in proxy.HOP_HEADERS
                    ]
                    self._answer(resp.status, payload, extra)
                except OSError as err:
                    self._answer(502, f'{{"detail":"endpoint {host_port}: {err}"}}'.encode())
                finally:
                    conn.close()

            def _answer(
                self, status: int, payload: bytes, headers: Iterable[tuple[str, str]] = ()
            ) -> None:
                self.send_response(status)
                has_type = False
                for k, v in headers:
                    has_type |= k.lower() == "content-type"
                    self.send_header(k, v)
                if not has_type:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _forward  # noqa: N815 - BaseHTTPRequestHandler's names

            def log_message(self, *args: object) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, name=f"service-{name}", daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.server.shutdown()
            self.server.server_close()
