"""A real node for the rig (issue 14): kubelet, kube-proxy and containerd running real pods.

The node lives in a network namespace the rig creates, so its addresses, ports and iptables
rules never touch the host's, and so that nothing it runs can reach any other machine:

  host netns    veth `mrnode-host` 10.245.255.1/30, route to the pods via 10.245.255.2
                socat 10.245.255.1:6443 -> the API server on loopback (kubelet, kube-proxy,
                and pods through the `kubernetes` Service)
  node netns    veth `eth0` 10.245.255.2/30: the node's InternalIP; kubelet :10250 (the API
                server calls it for logs, exec and port-forward)
                bridge `rnode0` 10.245.0.1/24: the pods (CNI bridge + host-local)
                route 10.96.0.0/16 dev rnode0: ClusterIPs, DNATed by kube-proxy (iptables)
                NO default route: a packet for any other address has nowhere to go.

What the node changes on the host, and how `tear_down` reverts it (machine-wide, so one
real node per machine, behind a lock; a killed run's leftovers go at the next start):

- processes: kubelet, kube-proxy, containerd, socat in the rig's ledger (stopped by PID);
  containerd's shims (found by our socket in their argv) and every process left in the
  `kubepods` cgroups (killed);
- the namespace file NODE_HOME/netns: unmounted, which deletes the veth pair, the bridge,
  the routes and every iptables rule (v4 and v6) kubelet and kube-proxy wrote;
- mounts under NODE_HOME (image layers, pod volumes, pod network namespaces, kubelet's
  bind mount of its root dir): unmounted, deepest first, then NODE_HOME is removed;
- `kubepods` cgroups in every cgroup v1 hierarchy: removed, deepest first;
- the sysctls kubelet sets at start (KUBELET_SYSCTLS): put back to the recorded values;
- files outside NODE_HOME that kubelet and containerd write to fixed paths (container log
  links in /var/log/containers, kubelet's device-plugin socket in /var/lib/kubelet, shim
  sockets in /run/containerd/s, libcni's cache in /var/lib/cni): removed, and their
  directories too when the node created them.

Pods get no DNS server (CoreDNS is not built yet): their resolv.conf names none, so a
lookup fails on the spot instead of going to the host's resolver.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from devstack.cluster import START_TIMEOUT, Cluster, RigError
from devstack.paths import find_tool, tool_path, versions
from devstack.pki import KUBELET_CLIENT_USER, issue_client_cert, write_kubeconfig
from devstack.processes import Process, stop_all

if TYPE_CHECKING:
    from devstack.control_plane import ControlPlane

NODE_NAME = "real-node"
NODE_HOME = Path(os.environ.get("MODELOPS_NODE_HOME", "/var/lib/modelops-bundle/real-node"))
HOST_LINK, NODE_LINK, BRIDGE = "mrnode-host", "eth0", "rnode0"
HOST_IP, NODE_IP = "10.245.255.1", "10.245.255.2"  # the veth pair, a /30
POD_CIDR, POD_GATEWAY = "10.245.0.0/24", "10.245.0.1"  # outside KWOK's fake 10.244.0.0/16
API_FORWARD_PORT = 6443  # socat on HOST_IP; one node per machine, so a fixed port is safe
CNI_NETWORK = "rnode"
CNI_BIN_DIR = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
CRI_NAMESPACE = "k8s.io"
PAUSE_IMAGE = "localhost/modelops/pause:v{version}"  # localhost: a pull never leaves the host
COMPONENTS = ("containerd", "kubelet", "kube-proxy", "node-api-forward")
# kubelet's setupKernelTunables writes these host-wide at start (protectKernelDefaults=false).
KUBELET_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
# Host paths outside NODE_HOME that kubelet and containerd write to (fixed upstream).
CONTAINER_LOG_LINKS = Path("/var/log/containers")
SHIM_SOCKETS = Path("/run/containerd/s")
CNI_CACHE = Path("/var/lib/cni")
DEVICE_PLUGINS = Path("/var/lib/kubelet/device-plugins")  # kubelet.sock, whatever --root-dir


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
        "clusterDomain": "cluster.local",
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


def pause_image() -> str:
    return PAUSE_IMAGE.format(version=versions()["KUBERNETES_VERSION"])


def oci_archive(binary: Path, name: str, user: str = "65535:65535") -> bytes:
    """An OCI image archive (for `ctr images import`) of one static binary at /<its name>,
    which is also the entrypoint: enough for the pod sandbox, no registry and no Docker."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(binary.name)
        info.size, info.mode, info.mtime = binary.stat().st_size, 0o755, 0
        with binary.open("rb") as f:
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
        "config": {"Entrypoint": [f"/{binary.name}"], "User": user},
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
        files = {
            "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
            "index.json": json.dumps(index).encode(),
        }
        files.update({f"blobs/sha256/{d.removeprefix('sha256:')}": b for d, b in blobs.items()})
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


# --- host state ------------------------------------------------------------------------


def read_sysctl(key: str) -> str:
    return Path("/proc/sys", key).read_text().strip()


def mounts_under(root: Path) -> list[Path]:
    """Mount points at or below ``root``, deepest first (the order to unmount them)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = Path(line.split()[4].encode().decode("unicode_escape"))
        if point == root or root in point.parents:
            found.append(point)
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def cgroup_roots() -> list[Path]:
    """The ``kubepods`` directory of every cgroup hierarchy mounted here (v1 and v2)."""
    roots = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[0] in ("cgroup", "cgroup2"):
            roots.append(Path(left.split()[4]) / "kubepods")
    return roots


def shim_pids(containerd_sock: Path) -> list[int]:
    """containerd-shim processes of our containerd (its socket is in their argv)."""
    pids = []
    needle = str(containerd_sock).encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                if argv and b"containerd-shim" in argv[0] and needle in argv:
                    pids.append(int(entry.name))
    return pids


def _unix_socket_answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(1)
        try:
            s.connect(str(path))
        except OSError:
            return False
        return True


@dataclass
class HostState:
    """What the node found on the host before it started, to put it back afterwards.

    Kept in NODE_HOME/host.json: machine-wide, so whichever rig starts next on this
    machine can revert a node whose run was killed."""

    owner: str  # the rig's run dir
    sysctls: dict[str, str]
    existed: dict[str, bool]  # host directories the node may create
    shim_sockets: list[str]  # entries of SHIM_SOCKETS before the node started

    @classmethod
    def record(cls, owner: Path, home: Path) -> HostState:
        return cls(
            owner=str(owner),
            sysctls={k: read_sysctl(k) for k in KUBELET_SYSCTLS},
            existed={str(d): d.exists() for d in (*_created_trees(home), *_shared_dirs())},
            shim_sockets=sorted(p.name for p in SHIM_SOCKETS.glob("*")),
        )

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> HostState | None:
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))


@contextlib.contextmanager
def machine_lock(paths: NodePaths) -> Iterator[None]:
    """Serialise node start and tear-down across every rig on this machine."""
    paths.lock.parent.mkdir(parents=True, exist_ok=True)
    with paths.lock.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --- the node ------------------------------------------------------------------------


def _run(*argv: Any, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(a) for a in argv],
        input=input,
        capture_output=True,
        env={**os.environ, "PATH": tool_path()},
        check=False,
    )
    if check and proc.returncode != 0:
        raise NodeError(
            f"`{' '.join(map(str, argv))}` exited {proc.returncode}: "
            f"{proc.stderr.decode(errors='replace')[-2000:]}"
        )
    return proc


@dataclass
class RealNode:
    """One real node joined to a rig's control plane (``start``), and its tear-down."""

    plane: ControlPlane
    paths: NodePaths = field(default_factory=lambda: NodePaths(NODE_HOME))

    def in_netns(self, *argv: Any) -> list[str]:
        """argv run inside the node's network namespace (mount namespace unchanged, so
        kubelet's volume mounts are the ones containerd and runc see)."""
        return [str(find_tool("nsenter")), f"--net={self.paths.netns}", "--", *map(str, argv)]

    def ctr(self, *args: Any, input: bytes | None = None, check: bool = True):
        sock = self.paths.containerd_sock
        return _run(
            find_tool("ctr"), "-a", sock, "-n", CRI_NAMESPACE, *args, input=input, check=check
        )

    # -- start

    def start(self, cluster: Cluster) -> None:
        """Join a node to ``cluster`` (whose control plane is ``self.plane``); returns once
        the Node is Ready and kube-proxy has programmed the `kubernetes` Service."""
        bins = {n: find_tool(n) for n in ("kubelet", "kube-proxy", "containerd", "runc", "socat")}
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
        self._import(oci_archive(find_tool("pause").resolve(), pause_image()))
        self._spawn(
            "node-api-forward",
            [
                bins["socat"],
                f"TCP-LISTEN:{API_FORWARD_PORT},bind={HOST_IP},reuseaddr,fork",
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
                "--v=1",
            ),
        )
        self._spawn(
            "kube-proxy",
            self.in_netns(bins["kube-proxy"], f"--config={self.paths.home / 'kube-proxy.yaml'}"),
        )
        registered = lambda: cluster.kubectl("get", "node", NODE_NAME, check=False).returncode == 0  # noqa: E731
        self._wait(registered, f"node {NODE_NAME} registered")
        cluster.kubectl(
            "wait", "--for=condition=Ready", f"node/{NODE_NAME}", f"--timeout={int(START_TIMEOUT)}s"
        )
        self._wait(self._service_programmed, "kube-proxy's rule for the `kubernetes` Service")

    def _spawn(self, name: str, argv: Sequence[Any]) -> Process:
        proc = self.plane._spawn(name, argv)
        self.plane._save_state(self.plane.server)
        return proc

    def _wait(self, ready, what: str, timeout: float = START_TIMEOUT) -> None:
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
        _run(find_tool("unshare"), f"--net={ns}", "true")
        _run(ip, "link", "add", HOST_LINK, "type", "veth", "peer", "name", NODE_LINK, "netns", ns)
        _run(ip, "addr", "add", f"{HOST_IP}/30", "dev", HOST_LINK)
        _run(ip, "link", "set", HOST_LINK, "up")
        _run(ip, "route", "add", POD_CIDR, "via", NODE_IP, "dev", HOST_LINK)
        inside = [
            ["link", "set", "lo", "up"],
            ["addr", "add", f"{NODE_IP}/30", "dev", NODE_LINK],
            ["link", "set", NODE_LINK, "up"],
            ["link", "add", BRIDGE, "type", "bridge"],
            ["addr", "add", f"{POD_GATEWAY}/24", "dev", BRIDGE],
            ["link", "set", BRIDGE, "up"],
            ["route", "add", "10.96.0.0/16", "dev", BRIDGE],
        ]
        for args in inside:
            _run(*self.in_netns(ip, *args))
        # Pods reach the API server (HOST_IP) through the node: forward inside the node's
        # namespace only (a per-namespace sysctl; the host's stays as it is).
        _run(*self.in_netns(find_tool("sysctl"), "-qw", "net.ipv4.ip_forward=1"))

    def _credentials(self, cluster: Cluster, pki: Path) -> None:
        """Client certs from the rig's CA for kubelet (system:node:<name>, limited by the
        Node authorizer) and kube-proxy (system:kube-proxy, bound to system:node-proxier
        by default); the API server's own kubelet-client cert gets kubelet-api-admin."""
        out = self.paths.pki
        out.mkdir(parents=True, exist_ok=True)
        issue_client_cert(pki, "kubelet", f"/O=system:nodes/CN=system:node:{NODE_NAME}", out)
        issue_client_cert(pki, "kube-proxy", "/CN=system:kube-proxy", out)
        server = f"https://{HOST_IP}:{API_FORWARD_PORT}"
        for name in ("kubelet", "kube-proxy"):
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
        # No nameserver: without cluster DNS a pod's lookup fails here, never leaves the host.
        (p.kubelet / "resolv.conf").write_text("options ndots:1\n")
        (p.home / "kube-proxy.yaml").write_text(yaml.safe_dump(kube_proxy_config(p)))

    def _import(self, archive: bytes) -> None:
        self.ctr("images", "import", "-", input=archive)

    def _service_programmed(self) -> bool:
        rules = _run(
            *self.in_netns(find_tool("iptables"), "-t", "nat", "-S", "KUBE-SERVICES"), check=False
        )
        return b"10.96.0.1/32" in rules.stdout

    # -- images

    def load_image(self, image: str) -> None:
        """`docker save IMAGE | ctr images import -`: an image of the Docker engine into
        the node's containerd (what `kind load docker-image` does)."""
        script = 'docker save "$1" | ctr -a "$2" -n "$3" images import -'
        sock = self.paths.containerd_sock
        _run("bash", "-o", "pipefail", "-c", script, "load-image", image, sock, CRI_NAMESPACE)

    def images(self) -> list[str]:
        return self.ctr("images", "ls", "-q").stdout.decode().split()


def _port(server: str) -> int:
    return int(server.rsplit(":", 1)[1].rstrip("/"))


# --- tear-down ---------------------------------------------------------------------------


def release(rig: Path, paths: NodePaths | None = None) -> list[str]:
    """`make cluster-down`: tear down the real node of the rig in ``rig`` (or a node left
    behind by a killed rig); what was removed. A node of another running rig stays."""
    paths = paths or NodePaths(NODE_HOME)
    with machine_lock(paths):
        return tear_down(paths, rig=rig)


def tear_down(paths: NodePaths, *, rig: Path | None = None) -> list[str]:
    """Stop the node's processes and revert every host change it made; what was removed.

    Only the node of ``rig``, or one whose rig no longer runs (killed). The caller holds
    ``machine_lock``.
    """
    from devstack.control_plane import ControlPlane  # control_plane starts nodes

    state = HostState.load(paths.host_state)
    if state is None and not paths.home.exists():
        return []
    owner = Path(state.owner) if state else None
    if owner and owner != rig and ControlPlane.running(owner):
        return []
    procs = [p for p in ControlPlane.recorded(owner) if p.name in COMPONENTS] if owner else []
    removed: list[str] = []

    def by_name(*names: str) -> list[Process]:
        return [p for p in procs if p.name in names and p.alive()]

    # kubelet first, so it restarts nothing; containerd stays up to stop the containers.
    stopping = by_name("kubelet", "kube-proxy")
    stop_all(stopping)
    removed += [f"process {p.name} ({p.pid})" for p in stopping]
    if paths.containerd_sock.exists() and by_name("containerd"):
        removed += _remove_containers(paths)
    stopping = by_name("containerd", "node-api-forward")
    stop_all(stopping)
    removed += [f"process {p.name} ({p.pid})" for p in stopping]
    removed += _sweep(paths, state)
    return removed


def _remove_containers(paths: NodePaths) -> list[str]:
    def ctr(*args: str) -> subprocess.CompletedProcess:
        sock = paths.containerd_sock
        return _run(find_tool("ctr"), "-a", sock, "-n", CRI_NAMESPACE, *args, check=False)

    removed = []
    for task in ctr("tasks", "ls", "-q").stdout.decode().split():
        ctr("tasks", "kill", "-s", "SIGKILL", task)
    deadline = time.monotonic() + 15
    while ctr("tasks", "ls", "-q").stdout.strip() and time.monotonic() < deadline:
        for task in ctr("tasks", "ls", "-q").stdout.decode().split():
            ctr("tasks", "delete", "-f", task)
        time.sleep(0.2)
    for container in ctr("containers", "ls", "-q").stdout.decode().split():
        if ctr("containers", "delete", container).returncode == 0:
            removed.append(f"container {container[:12]}")
    return removed


def _sweep(paths: NodePaths, state: HostState | None) -> list[str]:
    """Whatever processes and host changes are left, whoever made them (a killed run)."""
    removed = []
    # Containers still running (their shim outlived containerd): kill every process in
    # the kubepods cgroups, then the shims.
    for _ in range(50):
        pids = {pid for root in cgroup_roots() for pid in _cgroup_pids(root)}
        pids.update(shim_pids(paths.containerd_sock))
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        removed.append(f"killed {len(pids)} leftover container/shim processes")
        time.sleep(0.2)
    for point in mounts_under(paths.home):
        if _run(find_tool("umount"), point, check=False).returncode != 0:
            _run(find_tool("umount"), "-l", point, check=False)
    n_mounts = len(mounts_under(paths.home)) or 0
    if n_mounts:
        raise NodeError(f"{n_mounts} mounts under {paths.home} would not unmount")
    for root in cgroup_roots():
        if root.exists():
            for d in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if d.is_dir():
                    d.rmdir()
            root.rmdir()
            removed.append(f"cgroup {root}")
    if state is not None:
        for key, value in state.sysctls.items():
            if read_sysctl(key) != value:
                Path("/proc/sys", key).write_text(value)
                removed.append(f"sysctl {key.replace('/', '.')} back to {value}")
    if paths.home.exists():
        shutil.rmtree(paths.home)
        removed.append(f"{paths.home} (network namespace, veth, bridge, iptables rules, mounts)")
    if state is not None:
        removed += _remove_fixed_paths(paths, state)
    return removed


def _cgroup_pids(root: Path) -> set[int]:
    if not root.exists():
        return set()
    pids = set()
    for procs in root.rglob("cgroup.procs"):
        with contextlib.suppress(OSError):
            pids.update(int(x) for x in procs.read_text().split())
    return pids


def _remove_fixed_paths(paths: NodePaths, state: HostState) -> list[str]:
    removed = []
    links = [
        p for p in CONTAINER_LOG_LINKS.glob("*.log")
        if p.is_symlink() and Path(os.readlink(p)).is_relative_to(paths.pod_logs)
    ]  # fmt: skip
    for p in links:
        p.unlink()
    if links:
        removed.append(f"{len(links)} log links in {CONTAINER_LOG_LINKS}")
    before = set(state.shim_sockets)
    stale = [
        p for p in SHIM_SOCKETS.glob("*") if p.name not in before and not _unix_socket_answers(p)
    ]
    for p in stale:
        p.unlink()
    if stale:
        removed.append(f"{len(stale)} shim sockets in {SHIM_SOCKETS}")
    # libcni's cache of our networks (ours, and the loopback network CRI adds).
    results = [
        p for pattern in (f"{CNI_NETWORK}-*", "cni-loopback-*")
        for p in (CNI_CACHE / "results").glob(pattern)
    ]  # fmt: skip
    for p in results:
        p.unlink()
    if results:
        removed.append(f"{len(results)} CNI results in {CNI_CACHE}")
    sock = DEVICE_PLUGINS / "kubelet.sock"
    if sock.exists():
        sock.unlink()
        removed.append(str(sock))
    for d in _created_trees(paths.home):  # the node made them: all inside is the node's
        if not state.existed.get(str(d), True) and d.exists():
            shutil.rmtree(d)
            removed.append(f"directory {d}")
    for d in _shared_dirs():  # other containerd instances use them too
        if not state.existed.get(str(d), True) and d.exists():
            with contextlib.suppress(OSError):
                _rmdir_empty(d)
                removed.append(f"directory {d}")
    return removed


def _created_trees(home: Path) -> tuple[Path, ...]:
    return (CONTAINER_LOG_LINKS, CNI_CACHE, DEVICE_PLUGINS.parent, home.parent)


def _shared_dirs() -> tuple[Path, ...]:
    return (SHIM_SOCKETS, SHIM_SOCKETS.parent)


def _rmdir_empty(d: Path) -> None:
    """Remove ``d`` if it holds nothing but empty directories (OSError otherwise)."""
    for sub in sorted(d.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        sub.rmdir()
    d.rmdir()
