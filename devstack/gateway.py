"""A real Gateway API data plane on the real node: Traefik (built from its Go module by
`make tools`), with its kubernetesGateway provider, as a process in the node's network
namespace (like kube-proxy and CoreDNS there; a Traefik with hostNetwork on the node).

    with running_gateway(cluster, node, workdir, routes_from="models") as gw:
        httpx.post(f"{gw.url}/v1/predict", headers={"host": "models.example.com"}, ...)

It installs what a user of Traefik would: the pinned Gateway API CRDs, upstream's RBAC for
the provider (bound to Traefik's own client cert from the rig's CA, not the admin's), the
GatewayClass of Traefik's controller, and the Gateway ``gateway-system/edge`` whose one
HTTP listener (WEB_PORT, Traefik's entry point of the same port) admits the routes of one
namespace. Traefik sends each request to a pod of the backend it picked (its EndpointSlices),
weighing backendRefs by their weights. A process, not a pod: no image to build, and the
node's namespace already reaches the pods and the API server (through the node's forward).
``stop()`` ends it by PID and deletes those objects; it dies with the test process too.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from devstack.cluster import Cluster, RigError, conditions
from devstack.node import RealNode
from devstack.node_config import API_FORWARD_PORT, HOST_IP, NODE_IP
from devstack.paths import REPO_ROOT, find_tool
from devstack.pki import issue_client_cert, write_kubeconfig
from devstack.processes import Process, spawn

CONTROLLER = "traefik.io/gateway-controller"  # Traefik's controllerName
GATEWAY_CLASS = "traefik"
NAMESPACE = "gateway-system"
GATEWAY = "edge"  # the Gateway manifests/examples/diabetes-gateway-canary.yaml names
WEB_PORT = 8000  # inside the node's namespace: the entry point and the listener's port
USER = "modelops-rig:traefik"  # Traefik's client cert
RBAC = REPO_ROOT / ".cache" / "traefik" / "kubernetes-gateway-rbac.yml"  # upstream's, make tools
START_TIMEOUT = 120.0


def rbac_objects(upstream: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Upstream's ClusterRole and ClusterRoleBinding, the binding's subject Traefik's user
    (upstream binds a ServiceAccount of its pod)."""
    user = {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}
    return [{**o, "subjects": [user]} if o["kind"] == "ClusterRoleBinding" else o for o in upstream]


def gateway_objects(routes_from: str) -> list[dict[str, Any]]:
    """The GatewayClass of Traefik's controller and the Gateway whose HTTP listener admits
    the routes of namespace ``routes_from``."""
    api = "gateway.networking.k8s.io/v1"
    admitted = {"kubernetes.io/metadata.name": routes_from}
    listener = {
        "name": "http",
        "protocol": "HTTP",
        "port": WEB_PORT,
        "allowedRoutes": {
            "namespaces": {"from": "Selector", "selector": {"matchLabels": admitted}}
        },
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": api,
            "kind": "GatewayClass",
            "metadata": {"name": GATEWAY_CLASS},
            "spec": {"controllerName": CONTROLLER},
        },
        {
            "apiVersion": api,
            "kind": "Gateway",
            "metadata": {"name": GATEWAY, "namespace": NAMESPACE},
            "spec": {"gatewayClassName": GATEWAY_CLASS, "listeners": [listener]},
        },
    ]


def traefik_args(log_level: str = "INFO") -> list[str]:
    """Traefik's static configuration: one entry point, the Gateway API provider alone, and
    nothing that would call out (no version check, no anonymous usage report)."""
    return [
        f"--entryPoints.web.address=:{WEB_PORT}",
        "--providers.kubernetesGateway=true",
        f"--providers.kubernetesGateway.statusAddress.ip={NODE_IP}",
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
        f"--log.level={log_level}",
        "--log.noColor=true",
    ]


@dataclass
class Gateway:
    """Traefik on one rig's real node; ``stop()`` ends exactly it and its objects."""

    cluster: Cluster
    node: RealNode
    workdir: Path
    process: Process | None = None
    rbac: list[dict[str, Any]] = field(default_factory=list)  # what start() applied

    @property
    def url(self) -> str:
        """Where the listener answers: the node's address, reachable from the host."""
        return f"http://{NODE_IP}:{WEB_PORT}"

    def tail(self, lines: int = 30) -> str:
        return f"--- traefik:\n{self.process.log_tail(lines)}" if self.process else ""

    def start(self, routes_from: str) -> None:
        if not RBAC.is_file():
            raise RigError(f"{RBAC} is missing: run `make tools`")
        self.cluster.install_gateway_api_crds()
        self.rbac = rbac_objects(list(yaml.safe_load_all(RBAC.read_text())))
        self.cluster.apply(self.rbac)
        self.cluster.apply(gateway_objects(routes_from))
        kubeconfig = self._credentials()
        env = {**self.cluster.env, "KUBECONFIG": str(kubeconfig)}
        argv = self.node.in_netns(find_tool("traefik"), *traefik_args())
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.workdir / "traefik.log"
        self.process = spawn("traefik", argv, log, env=env, die_with_parent=True)
        self._wait_programmed()

    def _credentials(self) -> Path:
        """A client cert for USER from the rig's CA; a kubeconfig through the node's forward
        to the API server (what the node's own components use)."""
        pki = self.node.plane.run_dir / "pki"
        out = self.workdir / "pki"
        issue_client_cert(pki, "traefik", f"/CN={USER}", out)
        kubeconfig = self.workdir / "traefik.kubeconfig"
        write_kubeconfig(
            kubeconfig,
            f"https://{HOST_IP}:{API_FORWARD_PORT}",
            pki,
            cert=out / "traefik.crt",
            key=out / "traefik.key",
            user="traefik",
            tls_server_name="kubernetes",  # the API server's cert has no SAN for HOST_IP
        )
        return kubeconfig

    def _wait_programmed(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or not self.process.alive():
                raise RigError(f"traefik exited\n{self.tail()}")
            gw = self.cluster.get("gateway", GATEWAY, "-n", NAMESPACE)
            if conditions(gw).get("Programmed") == "True":
                return
            time.sleep(0.5)
        raise RigError(
            f"Gateway {NAMESPACE}/{GATEWAY} not Programmed: {gw.get('status')}\n{self.tail()}"
        )

    def stop(self) -> None:
        """End Traefik by PID, then delete the Gateway, its class and the RBAC (the CRDs stay:
        routes of the rig may still use them)."""
        if self.process is not None:
            self.process.stop()
            self.process = None
        self.cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
        self.cluster.kubectl("delete", "gatewayclass", GATEWAY_CLASS, "--wait=false", check=False)
        for o in self.rbac:
            self.cluster.kubectl("delete", o["kind"], o["metadata"]["name"], check=False)
        self.rbac = []


@contextlib.contextmanager
def running_gateway(
    cluster: Cluster, node: RealNode, workdir: Path, routes_from: str
) -> Iterator[Gateway]:
    gateway = Gateway(cluster, node, workdir)
    try:
        gateway.start(routes_from)
        yield gateway
    finally:
        gateway.stop()
