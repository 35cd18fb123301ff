"""A real node for the rig (issue 14): kubelet, kube-proxy and containerd running real pods.

    node = RealNode(plane)          # plane: the rig's ControlPlane (its ledger, its logs)
    node.start(cluster)             # Ready, Services programmed, cluster DNS answering
    node.load_image("model-service:0.1.0")   # docker save | ctr images import
    release(plane.run_dir)          # make cluster-down: tear down, say what was removed

CoreDNS runs beside kube-proxy as a node process (its Service kube-system/kube-dns points at
the node's address), serving cluster.local only. node_config.py holds the layout (a network
namespace of the rig's own, no default route) and the components' configuration;
node_host.py what the node changes on the host and how it is put back, also after a killed run.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from devstack.cluster import START_TIMEOUT, Cluster
from devstack.control_plane import SERVICE_CIDR, ControlPlane
from devstack.node_config import (
    API_FORWARD_PORT,
    BRIDGE,
    CNI_NETWORK,
    CRI_NAMESPACE,
    DNS_IP,
    DNS_READY_PORT,
    DNS_USER,
    HOST_IP,
    HOST_LINK,
    NODE_HOME,
    NODE_IP,
    NODE_LINK,
    NODE_NAME,
    NODE_NETWORK,
    POD_CIDR,
    POD_GATEWAY,
    NodeError,
    NodePaths,
    cni_conflist,
    containerd_config,
    coredns_objects,
    corefile,
    kube_proxy_config,
    kubelet_config,
    oci_archive,
    pause_image,
)
from devstack.node_host import HostState, machine_lock, release, run, tear_down
from devstack.paths import RUN_ROOT, find_tool
from devstack.pki import KUBELET_CLIENT_USER, SERVICE_IP, issue_client_cert, write_kubeconfig
from devstack.processes import Process

__all__ = ["NODE_NAME", "NODE_TOOLS", "NodeError", "RealNode", "release"]

NODE_TOOLS = ("kubelet", "kube-proxy", "containerd", "runc", "socat", "coredns")


@dataclass
class RealNode:
    """One real node joined to a rig's control plane (``start``), and its tear-down."""

    plane: ControlPlane
    paths: NodePaths = field(default_factory=lambda: NodePaths(NODE_HOME))

    def in_netns(self, *argv: Any) -> list[str]:
        """argv run inside the node's network namespace (mount namespace unchanged, so
        kubelet's volume mounts are the ones containerd and runc see)."""
        return [str(find_tool("nsenter")), f"--net={self.paths.netns}", "--", *map(str, argv)]

    def ctr(
        self, *args: Any, input: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess:
        sock = self.paths.containerd_sock
        return run(
            find_tool("ctr"), "-a", sock, "-n", CRI_NAMESPACE, *args, input=input, check=check
        )

    # -- start

    def start(self, cluster: Cluster) -> None:
        """Join a node to ``cluster`` (whose control plane is ``self.plane``); returns once
        the Node is Ready, kube-proxy has programmed the `kubernetes` and `kube-dns`
        Services, and CoreDNS has synced with the API."""
        bins = {n: find_tool(n) for n in NODE_TOOLS}
        with machine_lock(self.paths):
            tear_down(self.paths, rig=self.plane.run_dir)
            if self.paths.host_state.exists():
                owner = HostState.load(self.paths.host_state)
                raise NodeError(
                    f"a real node already runs on this machine (rig {owner and owner.owner}):"
                    " one per machine; stop it with `make cluster-down` there"
                )
            state = HostState.record(self.plane.run_dir, self.paths.home)
            self.paths.home.mkdir(parents=True)
            state.save(self.paths.host_state)
            self._network()
        pki = self.plane.run_dir / "pki"
        self._credentials(cluster, pki)
        self._files(pki)
        self._spawn(
            "containerd",
            self.in_netns(bins["containerd"], f"--config={self.paths.containerd / 'config.toml'}"),
        )
        self._wait(lambda: self.ctr("version", check=False).returncode == 0, "containerd")
        pause = find_tool("pause").resolve()
        self._import(oci_archive(pause_image(), {"pause": pause}, ["/pause"]))
        self._spawn(
            "node-api-forward",
            [
                bins["socat"],
                # Only the node and its pods may connect (range); the API server still
                # authenticates every request.
                f"TCP-LISTEN:{API_FORWARD_PORT},bind={HOST_IP},range={NODE_NETWORK},reuseaddr,fork",
                f"TCP:127.0.0.1:{_port(cluster.server)}",
            ],
        )
        self._spawn(
            "kubelet",
            self.in_netns(
                bins["kubelet"],
                f"--config={self.paths.kubelet / 'config.yaml'}",
                f"--kubeconfig={self.paths.home / 'kubelet.kubeconfig'}",
                f"--root-dir={self.paths.kubelet / 'root'}",
                f"--cert-dir={self.paths.kubelet / 'pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_IP}",
                # cAdvisor inside the kubelet labels container_* series (pod, container)
                # from containerd at its default socket unless told: this node's is in its
                # home. A deprecated cAdvisor flag, and still the only way to say it.
                f"--containerd={self.paths.containerd_sock}",
                "--v=1",
            ),
        )
        self._spawn(
            "kube-proxy",
            self.in_netns(bins["kube-proxy"], f"--config={self.paths.home / 'kube-proxy.yaml'}"),
        )
        self._spawn("coredns", self.in_netns(bins["coredns"], "-conf", self.paths.corefile))
        registered = lambda: cluster.kubectl("get", "node", NODE_NAME, check=False).returncode == 0  # noqa: E731
        self._wait(registered, f"node {NODE_NAME} registered")
        cluster.kubectl(
            "wait", "--for=condition=Ready", f"node/{NODE_NAME}", f"--timeout={int(START_TIMEOUT)}s"
        )
        self._wait(
            lambda: self._programmed(SERVICE_IP) and self._programmed(DNS_IP),
            "kube-proxy's rules for the `kubernetes` and `kube-dns` Services",
        )
        self._wait(self._dns_ready, "CoreDNS synced with the API")

    def _spawn(self, name: str, argv: Sequence[Any]) -> Process:
        proc = self.plane._spawn(name, argv)
        self.plane._save_state(self.plane.server)
        return proc

    def _wait(self, ready: Callable[[], object], what: str, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            self.plane.check_alive()
            if time.monotonic() > deadline:
                raise NodeError(f"{what} not ready after {timeout:.0f}s")
            time.sleep(0.3)

    def _network(self) -> None:
        """The node's namespace, the veth pair to the host, the pod bridge and routes."""
        ns, ip = self.paths.netns, find_tool("ip")
        ns.touch()
        run(find_tool("unshare"), f"--net={ns}", "true")
        run(ip, "link", "add", HOST_LINK, "type", "veth", "peer", "name", NODE_LINK, "netns", ns)
        run(ip, "addr", "add", f"{HOST_IP}/30", "dev", HOST_LINK)
        run(ip, "link", "set", HOST_LINK, "up")
        run(ip, "route", "add", POD_CIDR, "via", NODE_IP, "dev", HOST_LINK)
        inside = [
            ["link", "set", "lo", "up"],
            ["addr", "add", f"{NODE_IP}/30", "dev", NODE_LINK],
            ["link", "set", NODE_LINK, "up"],
            ["link", "add", BRIDGE, "type", "bridge"],
            ["addr", "add", f"{POD_GATEWAY}/24", "dev", BRIDGE],
            ["link", "set", BRIDGE, "up"],
            ["route", "add", SERVICE_CIDR, "dev", BRIDGE],
        ]
        for args in inside:
            run(*self.in_netns(ip, *args))
        # Pods reach the API server (HOST_IP) through the node: forward inside the node's
        # namespace only (a per-namespace sysctl; the host's stays as it is).
        run(*self.in_netns(find_tool("sysctl"), "-qw", "net.ipv4.ip_forward=1"))

    def _credentials(self, cluster: Cluster, pki: Path) -> None:
        """Client certs from the rig's CA for kubelet (system:node:<name>, limited by the
        Node authorizer) and kube-proxy (system:kube-proxy, bound to system:node-proxier
        by default); the API server's own kubelet-client cert gets kubelet-api-admin."""
        out = self.paths.pki
        out.mkdir(parents=True, exist_ok=True)
        issue_client_cert(pki, "kubelet", f"/O=system:nodes/CN=system:node:{NODE_NAME}", out)
        issue_client_cert(pki, "kube-proxy", "/CN=system:kube-proxy", out)
        issue_client_cert(pki, "coredns", f"/CN={DNS_USER}", out)
        server = f"https://{HOST_IP}:{API_FORWARD_PORT}"
        for name in ("kubelet", "kube-proxy", "coredns"):
            write_kubeconfig(
                self.paths.home / f"{name}.kubeconfig",
                server,
                pki,
                cert=out / f"{name}.crt",
                key=out / f"{name}.key",
                user=name,
                tls_server_name="kubernetes",  # the API server's cert has no SAN for HOST_IP
            )
        cluster.apply(
            [
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": "modelops-rig:apiserver-kubelet-client"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": "system:kubelet-api-admin",
                    },
                    "subjects": [
                        {
                            "apiGroup": "rbac.authorization.k8s.io",
                            "kind": "User",
                            "name": KUBELET_CLIENT_USER,
                        }
                    ],
                },
                # The API server runs with --endpoint-reconciler-type=none (it listens on
                # loopback only): point the `kubernetes` Service at the forwarder.
                {
                    "apiVersion": "v1",
                    "kind": "Endpoints",
                    "metadata": {"name": "kubernetes", "namespace": "default"},
                    "subsets": [
                        {
                            "addresses": [{"ip": HOST_IP}],
                            "ports": [
                                {"name": "https", "port": API_FORWARD_PORT, "protocol": "TCP"}
                            ],
                        }
                    ],
                },
                *coredns_objects(),
            ]
        )

    def _files(self, pki: Path) -> None:
        p = self.paths
        for d in (p.containerd, p.kubelet / "root", p.cni / "net.d", p.pod_logs):
            d.mkdir(parents=True, exist_ok=True)
        (p.containerd / "config.toml").write_text(containerd_config(p, find_tool("runc").resolve()))
        (p.cni / "net.d" / f"10-{CNI_NETWORK}.conflist").write_text(
            json.dumps(cni_conflist(p), indent=2)
        )
        (p.kubelet / "config.yaml").write_text(yaml.safe_dump(kubelet_config(p, pki / "ca.crt")))
        # The host's part of a pod's resolv.conf: no nameserver, no search path (clusterDNS
        # is the pods' only server; dnsPolicy Default pods get none and resolve nothing).
        (p.kubelet / "resolv.conf").write_text("options ndots:1\n")
        (p.home / "kube-proxy.yaml").write_text(yaml.safe_dump(kube_proxy_config(p)))
        p.corefile.write_text(corefile(p))

    def _import(self, archive: bytes) -> None:
        self.ctr("images", "import", "-", input=archive)

    def _programmed(self, cluster_ip: str) -> bool:
        rules = run(
            *self.in_netns(find_tool("iptables"), "-t", "nat", "-S", "KUBE-SERVICES"), check=False
        )
        return f"{cluster_ip}/32".encode() in rules.stdout

    def routes(self, cluster_ip: str, port: int) -> set[str]:
        """The endpoints (ip:port) kube-proxy's rules send a new connection to
        cluster_ip:port to right now. A Deployment is available once its pod is Ready, but
        the pod takes the Service's traffic only after the EndpointSlice controller and
        kube-proxy caught up (a second or more on a loaded machine): until then the Service
        REJECTs, and a client sees connection refused."""
        save = run(*self.in_netns(find_tool("iptables-save"), "-t", "nat"), check=False)
        return dnat_targets(save.stdout.decode(), cluster_ip, port)

    def _dns_ready(self) -> bool:  # NODE_IP: inside the rig's own namespace
        try:
            return httpx.get(f"http://{NODE_IP}:{DNS_READY_PORT}/ready", timeout=2).is_success
        except httpx.HTTPError:
            return False

    # -- images

    def load_image(self, image: str) -> None:
        """`docker save IMAGE | ctr images import -`: an image of the Docker engine into
        the node's containerd (what `kind load docker-image` does)."""
        script = 'docker save "$1" | ctr -a "$2" -n "$3" images import -'
        sock = self.paths.containerd_sock
        run("bash", "-o", "pipefail", "-c", script, "load-image", image, sock, CRI_NAMESPACE)

    def images(self) -> list[str]:
        return self.ctr("images", "ls", "-q").stdout.decode().split()


def dnat_targets(iptables_save: str, cluster_ip: str, port: int) -> set[str]:
    """The DNAT destinations of kube-proxy's iptables chains (KUBE-SERVICES -> KUBE-SVC-*
    -> KUBE-SEP-*) for cluster_ip:port, read from `iptables-save -t nat`."""
    rules = [line.split() for line in iptables_save.splitlines() if line.startswith("-A ")]

    def jumps(chain: str, *match: str) -> list[str]:
        return [
            r[r.index("-j") + 1]
            for r in rules
            if r[1] == chain and "-j" in r and all(m in r for m in match)
        ]

    services = jumps("KUBE-SERVICES", f"{cluster_ip}/32", str(port))
    return {
        r[r.index("--to-destination") + 1]
        for svc in services
        for sep in jumps(svc)
        for r in rules
        if r[1] == sep and "--to-destination" in r
    }


def _port(server: str) -> int:
    return int(server.rsplit(":", 1)[1].rstrip("/"))


@contextlib.contextmanager
def running_node_rig(image: str, *, keep: bool = False) -> Iterator[tuple[Cluster, RealNode]]:
    """A control plane whose only node is real, with ``image`` loaded into it; on exit the
    node is released (the host put back) and the plane stopped (its files kept if ``keep``)."""
    ControlPlane.clean_stale(RUN_ROOT, prefix="node-")
    run_dir = RUN_ROOT / f"node-{os.getpid()}"
    plane = ControlPlane(run_dir, node_count=0)
    try:
        cluster = plane.start()
        node = RealNode(plane)
        node.start(cluster)
        cluster.wait_ready()
        node.load_image(image)
        yield cluster, node
    finally:
        release(run_dir)
        plane.stop(remove=not keep)
