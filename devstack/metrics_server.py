"""metrics-server on the rig: the resource metrics API (`metrics.k8s.io`: `kubectl top`, the
HorizontalPodAutoscaler's CPU and memory) from the real node's kubelet.

A local process (built by `make tools`), registered as its APIService through
devstack/aggregated_api.py, with upstream's arguments (manifests/base/deployment.yaml of the
module: the node's InternalIP and status port, 15 s resolution). It reads each kubelet's
/metrics/resource over the node's link, authenticated by the rig's admin credentials.
`--kubelet-insecure-tls` as on kind: the rig's kubelet serves a self-signed certificate
(no `serverTLSBootstrap`), so there is no CA to check it against. The rig's
kube-controller-manager runs the HorizontalPodAutoscaler controller, which reads the API.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from devstack import aggregated_api
from devstack.cluster import Cluster
from devstack.paths import find_tool
from devstack.pki import make_peer_certs
from devstack.processes import HOST, Process, free_port, spawn, stop_all

NAMESPACE = "kube-system"
SERVICE = "metrics-server"
API_SERVICE = "v1beta1.metrics.k8s.io"
START_TIMEOUT = 120.0
RESOLUTION = "15s"


@dataclass
class MetricsServer:
    cluster: Cluster
    workdir: Path
    processes: list[Process] = field(default_factory=list)

    def tail(self, lines: int = 30) -> str:
        return aggregated_api.tail(self.processes, lines)

    def start(self) -> None:
        certs = self.workdir / "certs"
        # the aggregator checks the serving cert against <service>.<namespace>.svc
        make_peer_certs(certs, SERVICE, (f"{SERVICE}.{NAMESPACE}.svc",))
        kubeconfig = self.cluster.kubeconfig
        port = free_port()
        self.processes.append(
            spawn(
                "metrics-server",
                [
                    find_tool("metrics-server"),
                    f"--secure-port={port}",
                    f"--bind-address={HOST}",
                    f"--tls-cert-file={certs / 'tls.crt'}",
                    f"--tls-private-key-file={certs / 'tls.key'}",
                    f"--kubeconfig={kubeconfig}",
                    f"--authentication-kubeconfig={kubeconfig}",
                    f"--authorization-kubeconfig={kubeconfig}",
                    "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
                    "--kubelet-use-node-status-port",
                    "--kubelet-insecure-tls",
                    f"--metric-resolution={RESOLUTION}",
                ],
                self.workdir / "metrics-server.log",
                env=self.cluster.env,
                die_with_parent=True,
            )
        )
        ca = certs / "ca.crt"
        aggregated_api.register(self.cluster, API_SERVICE, SERVICE, NAMESPACE, port, ca)
        aggregated_api.wait_available(self.cluster, API_SERVICE, self.processes, START_TIMEOUT)

    def stop(self) -> None:
        self.cluster.kubectl("delete", "apiservice", API_SERVICE, "--wait=false", check=False)
        self.cluster.kubectl("delete", "service", SERVICE, "-n", NAMESPACE, "--wait=false",
                             check=False)  # fmt: skip
        stop_all(self.processes)
        self.processes.clear()


@contextlib.contextmanager
def running_metrics_server(cluster: Cluster, workdir: Path) -> Iterator[MetricsServer]:
    server = MetricsServer(cluster, workdir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
