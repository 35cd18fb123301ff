"""A real Kubernetes control plane on loopback, envtest-style, with KWOK fake nodes.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok run as
plain local processes (binaries from `make tools`, linked in .cache/bin) on
free loopback ports chosen at start. Nothing inside a KWOK pod runs: the
scheduler binds pods to fake nodes and KWOK marks them Running and Ready, so
Deployments, ReplicaSets and rollouts behave as on a real cluster.

`ControlPlane(run_dir).start()` returns a `Cluster` handle; `stop()` ends
exactly the processes it started, by PID. A detached control plane (for
`make cluster-up`) records its PIDs in run_dir/state.json (a `Ledger`) so that
another process can stop it (`ControlPlane.stop_recorded(run_dir)`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.cluster import FAKE_NODE_LABEL, START_TIMEOUT, Cluster, RigError
from devstack.paths import find_tool, tool_path
from devstack.pki import KUBELET_CLIENT, make_pki, write_kubeconfig
from devstack.processes import Ledger, Process, free_port, on_free_port, pid_alive, spawn, stop_all

RIG_STAGES = Path(__file__).with_name("kwok-stages.yaml")
SERVICE_CIDR = "10.96.0.0/16"  # pki.SERVICE_IP is its first address
KWOK_CIDR = "10.244.0.1/16"  # fake pod IPs; never sent traffic
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
NODE_PREFIX = "kwok-node-"
DEFAULT_NODES = 2

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
TOOLS = (*COMPONENTS, "kubectl", "helm")


@dataclass
class ControlPlane:
    """Starts and stops the processes of one rig; state lives in run_dir.

    detach=True starts the processes in their own session so they outlive
    this Python process (make cluster-up); otherwise they die with it.
    """

    run_dir: Path
    node_count: int = DEFAULT_NODES
    detach: bool = False
    procs: list[Process] = field(default_factory=list)
    server: str = ""

    @property
    def kubeconfig(self) -> Path:
        return self.run_dir / "kubeconfig"

    @property
    def ledger(self) -> Ledger:
        return ledger(self.run_dir)

    # -- start

    def start(self) -> Cluster:
        bins = {name: find_tool(name) for name in TOOLS}
        stages = bins["kwok"].resolve().parent / "stages"
        if not list(stages.glob("pod-*.yaml")):
            raise RigError(f"kwok's default pod stages missing in {stages}: run `make tools`")
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        (self.run_dir / "logs").mkdir(parents=True)
        pki = self.run_dir / "pki"
        make_pki(pki)

        etcd_url = self._start_etcd(bins["etcd"])
        api_port = self._start_apiserver(bins["kube-apiserver"], pki, etcd_url)
        server = f"https://127.0.0.1:{api_port}"
        write_kubeconfig(self.kubeconfig, server, pki)
        cluster = Cluster.from_kubeconfig(self.kubeconfig)
        cluster.control_plane = self
        self.server = server
        self._save_state(server)
        self._wait_https(f"{server}/readyz", "kube-apiserver", pki)

        if self.node_count:
            self._create_nodes(cluster)
        common = [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
        ]
        self._start_healthy(
            "kube-controller-manager",
            lambda port: [
                bins["kube-controller-manager"],
                *common,
                f"--secure-port={port}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
            ],
        )
        self._start_healthy(
            "kube-scheduler",
            lambda port: [
                bins["kube-scheduler"],
                *common,
                f"--secure-port={port}",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
            ],
        )
        stage_file = self.run_dir / "kwok-stages.yaml"
        stage_file.write_text(
            "\n---\n".join(p.read_text() for p in [*sorted(stages.glob("pod-*.yaml")), RIG_STAGES])
        )
        self._spawn(
            "kwok",
            [
                bins["kwok"],
                f"--kubeconfig={self.kubeconfig}",
                f"--config={stage_file}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
                f"--cidr={KWOK_CIDR}",
                "--node-ip=10.244.0.1",
                # Renew a node Lease as a kubelet does. Without it the only heartbeat is
                # a status patch every 20-45 s, which on a busy machine overruns KCM's
                # grace period: nodes flap NotReady and every pod is marked unready.
                "--node-lease-duration-seconds=40",
            ],
        )
        self._save_state(server)
        cluster.wait_ready(nodes=self.node_count > 0)
        cluster.install_monitoring_crds()
        self.check_alive()
        return cluster

    def _spawn(self, name: str, argv: Sequence[Any]) -> Process:
        proc = spawn(
            name,
            argv,
            self.run_dir / "logs" / f"{name}.log",
            env={**os.environ, "PATH": tool_path()},
            cwd=self.run_dir,
            detach=self.detach,
            die_with_parent=not self.detach,
        )
        self.procs.append(proc)
        return proc

    def _start_healthy(self, name: str, argv: Callable[[int], Sequence[str | Path]]) -> None:
        """Start KCM or the scheduler on a free --secure-port and wait for its /healthz; again
        on another port if a process bound the chosen one before it did."""

        def start(port: int) -> None:
            proc = self._spawn(name, argv(port))
            try:
                self._wait_https(f"https://127.0.0.1:{port}/healthz", name)
            except RigError:
                proc.stop()
                self.procs.remove(proc)
                raise

        on_free_port(start)

    def _start_etcd(self, etcd: Path) -> str:
        for _attempt in range(3):
            client, peer = free_port(), free_port()
            proc = self._spawn(
                "etcd",
                [
                    etcd,
                    "--name=rig",
                    f"--data-dir={self.run_dir / 'etcd'}",
                    f"--listen-client-urls=http://127.0.0.1:{client}",
                    f"--advertise-client-urls=http://127.0.0.1:{client}",
                    f"--listen-peer-urls=http://127.0.0.1:{peer}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                    f"--initial-cluster=rig=http://127.0.0.1:{peer}",
                    "--unsafe-no-fsync",  # a throwaway store; fsync only slows tests
                    "--log-level=warn",
                ],
            )
            url = f"http://127.0.0.1:{client}"
            if self._wait_http(f"{url}/health", proc, want=b'"health":"true"'):
                return url
            proc.stop()
            self.procs.remove(proc)
            shutil.rmtree(self.run_dir / "etcd", ignore_errors=True)
        raise RigError(f"etcd did not start:\n{self._log_tail('etcd')}")

    def _start_apiserver(self, apiserver: Path, pki: Path, etcd_url: str) -> int:
        for _attempt in range(3):
            port = free_port()
            proc = self._spawn(
                "kube-apiserver",
                [
                    apiserver,
                    f"--etcd-servers={etcd_url}",
                    "--advertise-address=127.0.0.1",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={port}",
                    f"--cert-dir={pki}",
                    f"--tls-cert-file={pki / 'apiserver.crt'}",
                    f"--tls-private-key-file={pki / 'apiserver.key'}",
                    f"--client-ca-file={pki / 'ca.crt'}",
                    "--authorization-mode=Node,RBAC",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-account-key-file={pki / 'sa.pub'}",
                    f"--service-account-signing-key-file={pki / 'sa.key'}",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    "--allow-privileged=true",
                    "--profiling=false",
                    # The `kubernetes` Service cannot point at a loopback address.
                    "--endpoint-reconciler-type=none",
                    # Front proxy (aggregation layer), as kubeadm and kwokctl set it up.
                    f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
                    "--requestheader-allowed-names=front-proxy-client",
                    "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                    "--requestheader-group-headers=X-Remote-Group",
                    "--requestheader-username-headers=X-Remote-User",
                    f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
                    f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
                    # Towards a real node's kubelet (devstack/node.py): its own client
                    # cert, and the node's InternalIP (its name resolves nowhere).
                    f"--kubelet-client-certificate={pki / (KUBELET_CLIENT + '.crt')}",
                    f"--kubelet-client-key={pki / (KUBELET_CLIENT + '.key')}",
                    "--kubelet-preferred-address-types=InternalIP",
                ],
            )
            # Wait for the port to listen (or the process to die on a taken port).
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and proc.alive():
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                    return port
                time.sleep(0.2)
            proc.stop()
            self.procs.remove(proc)
        raise RigError(f"kube-apiserver did not start:\n{self._log_tail('kube-apiserver')}")

    def _create_nodes(self, cluster: Cluster) -> None:
        nodes = []
        for i in range(self.node_count):
            name = f"{NODE_PREFIX}{i}"
            nodes.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        # No NoSchedule taint: chart pods schedule without tolerations.
                        "annotations": {
                            FAKE_NODE_ANNOTATION: "fake",
                            "node.alpha.kubernetes.io/ttl": "0",
                        },
                        "labels": {
                            "kubernetes.io/hostname": name,
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            "node-role.kubernetes.io/agent": "",
                            FAKE_NODE_LABEL: "kwok",
                        },
                    },
                    "spec": {},
                }
            )
        cluster.apply(nodes)

    def _wait_http(self, url: str, proc: Process, want: bytes) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not proc.alive():
                return False
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(url, timeout=2) as resp,
            ):
                if want in resp.read():
                    return True
            time.sleep(0.2)
        return False

    def _wait_https(self, url: str, what: str, pki: Path | None = None) -> None:
        """Poll an https health endpoint; with pki, verify and present the admin cert."""
        if pki:
            ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
            ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        else:  # KCM and scheduler serve self-signed certificates
            ctx = ssl._create_unverified_context()
        deadline = time.monotonic() + START_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(url, timeout=5, context=ctx) as resp:
                    if resp.status == 200:
                        return
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}: {e.read()[:2000].decode(errors='replace')}"
            except (OSError, urllib.error.URLError) as e:
                last = str(e)
            time.sleep(0.3)
        raise RigError(f"{what} not healthy at {url}: {last}")

    def check_alive(self) -> None:
        for p in self.procs:
            if not p.alive():
                raise RigError(f"{p.name} (pid {p.pid}) exited:\n{self._log_tail(p.name)}")

    def _log_tail(self, name: str, lines: int = 40) -> str:
        log = self.run_dir / "logs" / f"{name}.log"
        try:
            return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return f"(no log at {log})"

    def _save_state(self, server: str) -> None:
        self.ledger.write(self.procs, server=server, kubeconfig=str(self.kubeconfig))

    def restart(self, name: str) -> None:
        """Stop one component and start it again with the same flags and ports.

        For tests of clients that must survive, say, an API server restart.
        Returns once the component is healthy again.
        """
        old = next((p for p in self.procs if p.name == name), None)
        if old is None:
            raise RigError(f"no {name} in this rig (have: {[p.name for p in self.procs]})")
        old.stop()
        index = self.procs.index(old)
        self.procs.remove(old)
        new = self._spawn(name, old.argv)
        self.procs.remove(new)
        self.procs.insert(index, new)  # keep start order: stop() runs it backwards
        self._save_state(self.server)
        if name == "kube-apiserver":
            self._wait_https(f"{self.server}/readyz", name, self.run_dir / "pki")
        elif name in ("kube-controller-manager", "kube-scheduler"):
            port = next(a for a in old.argv if a.startswith("--secure-port=")).split("=")[1]
            self._wait_https(f"https://127.0.0.1:{port}/healthz", name)
        elif name == "etcd":
            url = next(a for a in old.argv if a.startswith("--listen-client-urls=")).split("=")[1]
            if not self._wait_http(f"{url}/health", new, want=b'"health":"true"'):
                raise RigError(f"etcd did not come back:\n{self._log_tail('etcd')}")
        self.check_alive()

    # -- stop

    def stop(self, remove: bool = True) -> None:
        """End every process this rig started (newest first, etcd last), then drop run_dir."""
        _stop_in_order(list(reversed(self.procs)))
        self.procs.clear()
        if remove:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    @staticmethod
    def recorded(run_dir: Path) -> list[Process]:
        """The processes a rig in run_dir recorded (another process may have started it)."""
        return ledger(run_dir).read()

    @staticmethod
    def running(run_dir: Path) -> bool:
        """A rig was started in run_dir and all its processes still run."""
        return ledger(run_dir).running()

    @staticmethod
    def stop_recorded(run_dir: Path, remove: bool = True) -> list[str]:
        """Stop a rig started by another process, from its ledger (run_dir/state.json).

        A recorded PID is signalled only while it still has the recorded start time, so a
        PID reused by an unrelated process is left alone.
        """
        stopped = ledger(run_dir).stop(order=("etcd",))
        if remove:
            shutil.rmtree(run_dir, ignore_errors=True)
        return stopped

    @staticmethod
    def clean_stale(run_root: Path, prefix: str = "pytest-") -> None:
        """Drop the run dirs ``<prefix><pid>`` of sessions that died (their processes died
        with them: started with die_with_parent)."""
        for d in run_root.glob(f"{prefix}*"):
            pid = d.name.removeprefix(prefix)
            dead = pid.isdigit() and not pid_alive(int(pid))
            if dead and not any(p.alive() for p in ledger(d).read()):
                shutil.rmtree(d, ignore_errors=True)


def ledger(run_dir: Path) -> Ledger:
    return Ledger(run_dir / "state.json")


def _stop_in_order(procs: list[Process]) -> None:
    """etcd goes last, once its clients are gone."""
    stop_all([p for p in procs if p.name != "etcd"])
    stop_all([p for p in procs if p.name == "etcd"])
