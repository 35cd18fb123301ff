"""The real node's layout and configuration: addresses, paths, and the files of containerd,
kubelet, kube-proxy and CNI as pure functions (devstack/node.py starts the node with them).

The node lives in a network namespace the rig creates, so its addresses, ports and iptables
rules never touch the host's, and so that nothing it runs can reach any other machine:

  host netns    veth `mrnode-host` 10.245.255.1/30, route to the pods via 10.245.255.2
                socat 10.245.255.1:6443 -> the API server on loopback (kubelet, kube-proxy,
                and pods through the `kubernetes` Service)
  node netns    veth `eth0` 10.245.255.2/30: the node's InternalIP; kubelet :10250 (the API
                server calls it for logs, exec and port-forward)
                bridge `rnode0` 10.245.0.1/24: the pods (CNI bridge + host-local)
                route 10.96.0.0/16 dev rnode0: ClusterIPs, DNATed by kube-proxy (iptables)
                CoreDNS on 10.245.255.2:53, behind the Service kube-system/kube-dns
                10.96.0.10 (kubelet's clusterDNS)
                NO default route: a packet for any other address has nowhere to go.

Cluster DNS answers for cluster.local (and reverse lookups of the rig's addresses) only: it
has no `forward`, so a name outside the cluster fails at once instead of leaving the host.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from devstack.cluster import RigError
from devstack.paths import versions

NODE_NAME = "real-node"
NODE_HOME = Path(os.environ.get("MODELOPS_NODE_HOME", "/var/lib/modelops-bundle/real-node"))
HOST_LINK, NODE_LINK, BRIDGE = "mrnode-host", "eth0", "rnode0"
HOST_IP, NODE_IP = "10.245.255.1", "10.245.255.2"  # the veth pair, a /30
POD_CIDR, POD_GATEWAY = "10.245.0.0/24", "10.245.0.1"  # outside KWOK's fake 10.244.0.0/16
NODE_NETWORK = "10.245.0.0/16"  # all of the above: the veth pair and the pods
API_FORWARD_PORT = 6443  # socat on HOST_IP; one node per machine, so a fixed port is safe
CNI_NETWORK = "rnode"
CNI_BIN_DIR = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
CRI_NAMESPACE = "k8s.io"
PAUSE_IMAGE = "localhost/modelops/pause:v{version}"  # localhost: a pull never leaves the host
CLUSTER_DOMAIN = "cluster.local"
DNS_IP = "10.96.0.10"  # the kube-dns Service, in the control plane's SERVICE_CIDR
DNS_READY_PORT = 8181  # CoreDNS's `ready` plugin, on NODE_IP: 200 once the API is synced
DNS_USER = "modelops-rig:coredns"  # CoreDNS's client cert; may only list and watch


class NodeError(RigError):
    """The real node could not start, or another one runs on this machine."""


# --- layout -------------------------------------------------------------------------


@dataclass(frozen=True)
class NodePaths:
    """Everything the node keeps lives under one directory (``home``)."""

    home: Path

    @property
    def netns(self) -> Path:
        return self.home / "netns"

    @property
    def host_state(self) -> Path:  # the machine-wide record of host changes
        return self.home / "host.json"

    @property
    def lock(self) -> Path:  # an empty file in the host's lock directory, kept
        return Path("/run/lock") / f"modelops-{self.home.name}.lock"

    @property
    def containerd(self) -> Path:
        return self.home / "containerd"

    @property
    def containerd_sock(self) -> Path:
        return self.containerd / "containerd.sock"

    @property
    def kubelet(self) -> Path:
        return self.home / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.home / "pod-logs"

    @property
    def cni(self) -> Path:
        return self.home / "cni"

    @property
    def pki(self) -> Path:
        return self.home / "pki"

    @property
    def corefile(self) -> Path:
        return self.home / "Corefile"


# --- configuration: pure functions ------------------------------------------------------


def containerd_config(paths: NodePaths, runc: Path) -> str:
    """containerd 2.x (config version 3) as a private instance: its own root, state and
    socket; no TCP listener but the CRI stream server on the node's loopback."""
    home = paths.containerd
    return f"""\
version = 3
root = '{home / "root"}'
state = '{home / "state"}'
# No drop-in directory: nothing on the host can change this instance.
imports = []
# Not needed by the node: snapshotters that want cgo or block devices, NRI, /opt installs.
disabled_plugins = ['io.containerd.snapshotter.v1.btrfs', 'io.containerd.snapshotter.v1.zfs',
                    'io.containerd.snapshotter.v1.devmapper', 'io.containerd.nri.v1.nri',
                    'io.containerd.internal.v1.opt']

[grpc]
  address = '{paths.containerd_sock}'
[ttrpc]
  address = ''
[debug]
  address = ''
[metrics]
  address = ''

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '{pause_image()}'

[plugins.'io.containerd.cri.v1.runtime']
  # This VM withholds CAP_SYS_RESOURCE, so runc cannot lower a sandbox's oom_score_adj
  # (-998): clamp it to containerd's own value instead of failing every sandbox.
  restrict_oom_score_adj = true
  # Pod network namespaces under the state dir, not /var/run/netns.
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = '{runc}'
        Root = '{home / "runc"}'
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['{CNI_BIN_DIR}']
    conf_dir = '{paths.cni / "net.d"}'
    max_conf_num = 1

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = '127.0.0.1'
  stream_server_port = '0'
"""


def cni_conflist(paths: NodePaths) -> dict[str, Any]:
    """The pod network: the rig's bridge, addresses from POD_CIDR; no masquerade (no
    address outside the node is ever a destination), hairpin for a pod calling its own
    Service."""
    return {
        "cniVersion": "0.4.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "gateway": POD_GATEWAY}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(paths.cni / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "loopback"},
        ],
    }


def kubelet_config(paths: NodePaths, ca: Path) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # This machine mounts cgroup v1 only (no unified hierarchy to delegate). Kubernetes
        # 1.35 refuses v1 by default (KEP-5573); false keeps the deprecated v1 support,
        # which upstream still ships and tests, with a warning at start.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",  # no systemd here
        "containerRuntimeEndpoint": f"unix://{paths.containerd_sock}",
        "address": NODE_IP,
        "port": 10250,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "readOnlyPort": 0,
        # The API server presents the rig CA's apiserver-kubelet-client cert; everyone
        # else must bring a token the API server vouches for (webhook) and be authorized.
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDomain": CLUSTER_DOMAIN,
        "clusterDNS": [DNS_IP],
        "resolvConf": str(paths.kubelet / "resolv.conf"),
        "podLogsDir": str(paths.pod_logs),
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        # Images come from `docker save | ctr import`, never from a registry: never GC them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "failSwapOn": False,
        "registerNode": True,
        "serializeImagePulls": False,
        # A mounted Secret or ConfigMap is refreshed on the pod's periodic sync: the
        # Prometheus configuration prometheus-operator writes for a new ServiceMonitor
        # reached the pod up to a minute late (the default 1m). A dev node with a few dozen
        # pods can sync them every 10 s.
        "syncFrequency": "10s",
    }


def kube_proxy_config(paths: NodePaths) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(paths.home / "kube-proxy.kubeconfig")},
        "hostnameOverride": NODE_NAME,
        "mode": "iptables",
        "clusterCIDR": POD_CIDR,
        "bindAddress": NODE_IP,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
        # Zeros: leave the host-wide conntrack sysctls alone.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }


def corefile(paths: NodePaths) -> str:
    """CoreDNS serving the API's Services for cluster.local (and PTRs of the rig's
    addresses), on the node's address only. No `forward`: nothing leaves the host, so
    a name outside these zones is REFUSED, an unknown one in them fails too (a pod's
    lookup fails at once)."""
    zones = f"{CLUSTER_DOMAIN} in-addr.arpa ip6.arpa"
    return f"""\
{CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {NODE_IP}
    errors
    ready {NODE_IP}:{DNS_READY_PORT}
    kubernetes {zones} {{
        kubeconfig {paths.home / "coredns.kubeconfig"}
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
}}
"""


def coredns_objects() -> list[dict[str, Any]]:
    """What the API needs for CoreDNS: a read-only role for its user, and the kube-dns
    Service at DNS_IP whose EndpointSlice points at the node's address (CoreDNS runs as a
    node process, like kube-proxy, not as a pod)."""
    labels = {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}
    ports = [("dns", "UDP"), ("dns-tcp", "TCP")]
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": DNS_USER},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["services", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": DNS_USER},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": DNS_USER,
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": DNS_USER}
            ],
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
            "spec": {
                "clusterIP": DNS_IP,
                "ports": [{"name": n, "port": 53, "protocol": p} for n, p in ports],
            },
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "kube-dns-node",
                "namespace": "kube-system",
                "labels": {"kubernetes.io/service-name": "kube-dns", **labels},
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True}}],
            "ports": [{"name": n, "port": 53, "protocol": p} for n, p in ports],
        },
    ]


def pause_image() -> str:
    return PAUSE_IMAGE.format(version=versions()["KUBERNETES_VERSION"])


def oci_archive(
    name: str, files: Mapping[str, Path], entrypoint: Sequence[str], user: str = "65535:65535"
) -> bytes:
    """An OCI image archive (for `ctr images import`) of ``files`` (path in the image ->
    host file, mode 0755) in one layer, with its parent directories: enough for the pod
    sandbox's static binary or a Debian binary and the libraries ldd names, no registry
    and no Docker."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({str(p) for f in files for p in PurePosixPath(f).parents if str(p) != "."})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for path, source in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = source.stat().st_size, 0o755, 0
            with source.open("rb") as f:
                tar.addfile(info, f)
    layer_bytes = layer.getvalue()
    blobs: dict[str, bytes] = {}

    def blob(data: bytes, media_type: str) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": list(entrypoint), "User": user},
        "rootfs": {
            "type": "layers",
            "diff_ids": ["sha256:" + hashlib.sha256(layer_bytes).hexdigest()],
        },
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": blob(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json"),
        "layers": [blob(layer_bytes, "application/vnd.oci.image.layer.v1.tar")],
    }
    desc = blob(json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
    desc["annotations"] = {"io.containerd.image.name": name}
    desc["platform"] = {"architecture": "amd64", "os": "linux"}
    index = {"schemaVersion": 2, "manifests": [desc]}
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = {
            "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
            "index.json": json.dumps(index).encode(),
        }
        entries.update({f"blobs/sha256/{d.removeprefix('sha256:')}": b for d, b in blobs.items()})
        for path, data in entries.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()
