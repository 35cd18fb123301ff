"""KEDA on the rig: its operator and metrics server (built from the pinned Go module by
`make tools`) as local processes, registered the way its chart registers them.

- the keda.sh CRDs, from the same module;
- `keda` (the operator: ScaledObject -> the HorizontalPodAutoscaler `keda-hpa-<name>`, and
  the scalers, here Prometheus, behind its gRPC metrics service);
- `keda-adapter` (the external metrics API server, asking the operator over mutual TLS);
- the APIService `v1beta1.external.metrics.k8s.io` (devstack/aggregated_api.py: the
  aggregator dials the adapter on loopback).

The rig's kube-controller-manager runs its HorizontalPodAutoscaler controller (every
default controller runs), which reads the external metric through that APIService and
scales the ScaledObject's target through its /scale subresource, as in a cluster.
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

NAMESPACE = "keda"
API_SERVICE = "v1beta1.external.metrics.k8s.io"
SERVICE = "keda-metrics-apiserver"
START_TIMEOUT = 120.0


@dataclass
class Keda:
    """The two KEDA processes of one rig; `stop()` ends exactly them."""

    cluster: Cluster
    workdir: Path
    processes: list[Process] = field(default_factory=list)
    crds: list[str] = field(default_factory=list)

    def tail(self, lines: int = 30) -> str:
        return aggregated_api.tail(self.processes, lines)

    def start(self) -> None:
        self.crds = self.cluster.install_keda_crds()
        self.cluster.create_namespace(NAMESPACE)
        certs = self.workdir / "certs"
        # the aggregator checks the serving cert against <service>.<namespace>.svc
        make_peer_certs(certs, "keda", (f"{SERVICE}.{NAMESPACE}.svc",))
        env = {**self.cluster.env, "KUBECONFIG": str(self.cluster.kubeconfig)}
        env |= {
            "WATCH_NAMESPACE": "",
            "POD_NAMESPACE": NAMESPACE,
            "KEDA_CLUSTER_OBJECT_NAMESPACE": NAMESPACE,
        }
        grpc = f"{HOST}:{free_port()}"
        self.processes.append(
            spawn(
                "keda-operator",
                [
                    find_tool("keda"),
                    f"--metrics-bind-address={HOST}:{free_port()}",
                    f"--health-probe-bind-address={HOST}:{free_port()}",
                    f"--metrics-service-bind-address={grpc}",
                    f"--cert-dir={certs}",
                    "--enable-cert-rotation=false",
                    "--enable-webhook-patching=false",
                    "--enable-apiservice-patching=false",
                    "--zap-log-level=info",
                ],
                self.workdir / "keda-operator.log",
                env=env,
                die_with_parent=True,
            )
        )
        port = free_port()
        kubeconfig = self.cluster.kubeconfig
        self.processes.append(
            spawn(
                "keda-metrics-apiserver",
                [
                    find_tool("keda-adapter"),
                    f"--secure-port={port}",
                    f"--bind-address={HOST}",
                    f"--port={free_port()}",
                    f"--cert-dir={certs}",
                    f"--tls-cert-file={certs / 'tls.crt'}",
                    f"--tls-private-key-file={certs / 'tls.key'}",
                    f"--lister-kubeconfig={kubeconfig}",
                    f"--authentication-kubeconfig={kubeconfig}",
                    f"--authorization-kubeconfig={kubeconfig}",
                    f"--metrics-service-address={grpc}",
                    "--zap-log-level=info",
                ],
                self.workdir / "keda-metrics-apiserver.log",
                env=env,
                die_with_parent=True,
            )
        )
        aggregated_api.register(
            self.cluster, API_SERVICE, SERVICE, NAMESPACE, port, certs / "ca.crt"
        )
        aggregated_api.wait_available(self.cluster, API_SERVICE, self.processes, START_TIMEOUT)

    def stop(self) -> None:
        """Leave the rig as it was: the ScaledObjects go while KEDA still runs (it holds their
        finalizers), then the APIService, the processes and the CRDs."""
        if self.crds:
            self.cluster.kubectl("delete", "scaledobjects.keda.sh", "--all", "--all-namespaces",
                                 "--timeout=60s", check=False)  # fmt: skip
        self.cluster.kubectl("delete", "apiservice", API_SERVICE, "--wait=false", check=False)
        stop_all(self.processes)
        self.processes.clear()
        if self.crds:
            self.cluster.kubectl("delete", *self.crds, "--timeout=60s", check=False)
            self.crds = []


@contextlib.contextmanager
def running_keda(cluster: Cluster, workdir: Path) -> Iterator[Keda]:
    keda = Keda(cluster, workdir)
    try:
        keda.start()
        yield keda
    finally:
        keda.stop()
