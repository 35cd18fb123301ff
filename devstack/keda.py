"""KEDA on the rig: its operator and metrics server (built from the pinned Go module by
`make tools`) as local processes, registered the way its chart registers them.

- the keda.sh CRDs, from the same module;
- `keda` (the operator: ScaledObject -> the HorizontalPodAutoscaler `keda-hpa-<name>`, and
  the scalers, here Prometheus, behind its gRPC metrics service);
- `keda-adapter` (the external metrics API server, asking the operator over mutual TLS);
- the APIService `v1beta1.external.metrics.k8s.io`, through a Service of type ExternalName
  `localhost` in namespace `keda`: the API server's aggregator dials localhost:<port>, so
  the metrics server needs no pod and no address outside loopback. The APIService's
  caBundle is the CA of the adapter's serving cert (no insecureSkipTLSVerify).

The rig's kube-controller-manager runs its HorizontalPodAutoscaler controller (every
default controller runs), which reads the external metric through that APIService and
scales the ScaledObject's target through its /scale subresource, as in a cluster.
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from devstack.cluster import Cluster, RigError, conditions
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
        return "\n".join(f"--- {p.name}:\n{p.log_tail(lines)}" for p in self.processes)

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
        self._register(port, certs / "ca.crt")
        self._wait_available()

    def _register(self, port: int, ca: Path) -> None:
        bundle = base64.b64encode(ca.read_bytes()).decode()
        self.cluster.apply(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": SERVICE, "namespace": NAMESPACE},
                    "spec": {"type": "ExternalName", "externalName": "localhost"},
                },
                {
                    "apiVersion": "apiregistration.k8s.io/v1",
                    "kind": "APIService",
                    "metadata": {"name": API_SERVICE},
                    "spec": {
                        "group": "external.metrics.k8s.io",
                        "version": "v1beta1",
                        "groupPriorityMinimum": 100,
                        "versionPriority": 100,
                        "caBundle": bundle,
                        "service": {
                            "name": SERVICE,
                            "namespace": NAMESPACE,
                            "port": port,
                        },
                    },
                },
            ]
        )

    def _wait_available(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.processes:
                if not p.alive():
                    raise RigError(f"{p.name} exited\n{self.tail()}")
            api = self.cluster.get("apiservice", API_SERVICE)
            if conditions(api).get("Available") == "True":
                return
            time.sleep(1)
        raise RigError(f"{API_SERVICE} not Available: {api.get('status')}\n{self.tail()}")

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
