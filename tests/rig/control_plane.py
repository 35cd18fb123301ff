"""A real Kubernetes control plane on loopback, envtest-style, with KWOK fake nodes.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok run as
plain local processes (binaries from `make tools`, linked in .cache/bin) on
free loopback ports chosen at start. Nothing inside a KWOK pod runs: the
scheduler binds pods to fake nodes and KWOK marks them Running and Ready, so
Deployments, ReplicaSets and rollouts behave as on a real cluster.

`ControlPlane(run_dir).start()` returns a `Cluster` handle; `stop()` ends
exactly the processes it started, by PID. A detached control plane (for
`make cluster-up`) records its PIDs in run_dir/state.json so that another
process can stop it (`ControlPlane.stop_recorded(run_dir)`).
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_BIN = REPO_ROOT / ".cache" / "bin"
CRD_DIR = REPO_ROOT / ".cache" / "crds"
RUN_ROOT = REPO_ROOT / ".run"
VENV_BIN = REPO_ROOT / ".venv" / "bin"
VERSIONS_FILE = REPO_ROOT / "hack" / "versions.env"
RIG_STAGES = Path(__file__).with_name("kwok-stages.yaml")

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # first address of SERVICE_CIDR: the `kubernetes` Service
KWOK_CIDR = "10.244.0.1/16"  # fake pod IPs; never sent traffic
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
FAKE_NODE_LABEL = "type"  # type=kwok on every fake node
NODE_PREFIX = "kwok-node-"
DEFAULT_NODES = 2
ADMIN_USER = "modelops-admin"

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
TOOLS = (*COMPONENTS, "kubectl", "helm")

START_TIMEOUT = 180.0  # per wait; a busy 2-core machine is slow, not broken
STOP_GRACE = 15.0


class RigError(RuntimeError):
    """The rig could not start, or a tool it needs is missing."""


class CommandError(subprocess.CalledProcessError):
    """A kubectl or helm call failed; the message carries its output."""

    def __str__(self) -> str:
        cmd = " ".join(str(a) for a in self.cmd)
        return (
            f"`{cmd}` exited {self.returncode}\n"
            f"--- stdout ---\n{self.stdout or ''}--- stderr ---\n{self.stderr or ''}"
        )


def versions() -> dict[str, str]:
    """The pins of hack/versions.env."""
    pins = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            pins[key.strip()] = value.strip()
    return pins


def tool_path() -> str:
    """PATH with the rig's tools and the venv first, as the Makefile sets it."""
    return os.pathsep.join([str(TOOLS_BIN), str(VENV_BIN), os.environ.get("PATH", "")])


def find_tool(name: str) -> Path:
    found = shutil.which(name, path=tool_path())
    if not found:
        raise RigError(f"{name} not found in {TOOLS_BIN} or on PATH: run `make tools`")
    return Path(found)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_start_time(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (tells a reused PID apart)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; fields after it are plain.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has ended; only its parent's wait() remains
        return None
    return int(fields[19])


def pid_alive(pid: int, start_time: int | None = None) -> bool:
    started = _proc_start_time(pid)
    return started is not None and (start_time is None or started == start_time)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """preexec_fn: the kernel kills the child if pytest dies without teardown."""
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


# --- the cluster handle the tests use ----------------------------------------


@dataclass
class Cluster:
    """A running control plane, as tests and tools see it.

    `env` is a full environment for subprocesses (KUBECONFIG, PATH with the
    rig's tools first, and HELM_*_HOME isolated under the run directory).
    """

    kubeconfig: Path
    server: str
    env: dict[str, str]
    nodes: tuple[str, ...] = ()
    run_dir: Path | None = None
    control_plane: ControlPlane | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path) -> Cluster:
        kubeconfig = kubeconfig.resolve()
        config = yaml.safe_load(kubeconfig.read_text())
        context = next(
            c["context"] for c in config["contexts"] if c["name"] == config["current-context"]
        )
        server = next(
            c["cluster"]["server"] for c in config["clusters"] if c["name"] == context["cluster"]
        )
        helm_home = kubeconfig.parent / "helm"
        env = dict(os.environ)
        env.update(
            KUBECONFIG=str(kubeconfig),
            PATH=tool_path(),
            HELM_CONFIG_HOME=str(helm_home / "config"),
            HELM_CACHE_HOME=str(helm_home / "cache"),
            HELM_DATA_HOME=str(helm_home / "data"),
        )
        return cls(kubeconfig=kubeconfig, server=server, env=env, run_dir=kubeconfig.parent)

    # -- commands

    def _run(
        self,
        tool: str,
        args: Sequence[Any],
        input: str | None,
        check: bool,
        timeout: float,
    ) -> subprocess.CompletedProcess[str]:
        cmd = [tool, *(str(a) for a in args)]
        proc = subprocess.run(
            cmd,
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise CommandError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc

    def kubectl(
        self,
        *args: Any,
        input: str | None = None,
        check: bool = True,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; text output captured."""
        return self._run("kubectl", args, input, check, timeout)

    def helm(
        self,
        *args: Any,
        input: str | None = None,
        check: bool = True,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        """Run helm (v4) against this cluster; text output captured."""
        return self._run("helm", args, input, check, timeout)

    def get(self, *args: Any) -> dict[str, Any]:
        """`kubectl get ARGS -o json`, parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(self, manifest: str | Mapping[str, Any] | Iterable[Mapping[str, Any]], *args: Any):
        """`kubectl apply -f -` of YAML text, one object or a list of objects."""
        if isinstance(manifest, str):
            text = manifest
        elif isinstance(manifest, Mapping):
            text = json.dumps(manifest)
        else:
            text = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifest)})
        return self.kubectl("apply", "-f", "-", *args, input=text)

    def restart(self, component: str) -> None:
        """Restart one control-plane process (e.g. "kube-apiserver") in place."""
        if self.control_plane is None:
            raise RigError("restart needs a rig started by this process, not MODELOPS_KUBECONFIG")
        self.control_plane.restart(component)

    # -- waits

    def wait_for_service_account(
        self, namespace: str, name: str = "default", timeout: float = START_TIMEOUT
    ) -> None:
        """Block until KCM has created the ServiceAccount (pods need it to be admitted)."""
        deadline = time.monotonic() + timeout
        while True:
            proc = self.kubectl("get", "serviceaccount", name, "-n", namespace, check=False)
            if proc.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RigError(f"serviceaccount {namespace}/{name} never appeared: {proc.stderr}")
            time.sleep(0.2)

    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> str:
        """Create (or keep) a namespace and wait until pods can be created in it."""
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": dict(labels or {})},
            }
        )
        self.wait_for_service_account(name)
        return name

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait for /readyz, Ready fake nodes and the default ServiceAccount."""
        deadline = time.monotonic() + timeout
        while self.kubectl("get", "--raw", "/readyz", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RigError(f"{self.server}/readyz never answered ok")
            time.sleep(0.3)
        selector = f"{FAKE_NODE_LABEL}=kwok"
        while not self.get("nodes", "-l", selector)["items"]:
            if time.monotonic() > deadline:
                raise RigError("no KWOK nodes registered")
            time.sleep(0.3)
        self.kubectl(
            "wait",
            "--for=condition=Ready",
            "node",
            "-l",
            selector,
            f"--timeout={max(1, int(deadline - time.monotonic()))}s",
        )
        self.nodes = tuple(
            n["metadata"]["name"] for n in self.get("nodes", "-l", selector)["items"]
        )
        self.wait_for_service_account("default", timeout=max(1.0, deadline - time.monotonic()))

    def install_monitoring_crds(self) -> None:
        """Install the pinned prometheus-operator CRDs (monitoring.coreos.com)."""
        files = sorted(CRD_DIR.glob("monitoring.coreos.com_*.yaml"))
        if not files:
            raise RigError(f"no monitoring.coreos.com CRDs in {CRD_DIR}: run `make tools`")
        # Server-side: the big CRDs overflow client-side apply's annotation.
        args: list[Any] = ["apply", "--server-side", "--force-conflicts"]
        for f in files:
            args += ["-f", f]
        self.kubectl(*args)
        names = [
            f"crd/{f.name.removeprefix('monitoring.coreos.com_').removesuffix('.yaml')}"
            ".monitoring.coreos.com"
            for f in files
        ]
        self.kubectl("wait", "--for=condition=Established", "--timeout=120s", *names)


# --- processes ----------------------------------------------------------------


@dataclass
class _Proc:
    name: str
    pid: int
    start_time: int | None
    popen: subprocess.Popen[bytes] | None = None
    argv: tuple[str, ...] = ()


@dataclass
class ControlPlane:
    """Starts and stops the processes of one rig; state lives in run_dir.

    detach=True starts the processes in their own session so they outlive
    this Python process (make cluster-up); otherwise they die with it.
    """

    run_dir: Path
    node_count: int = DEFAULT_NODES
    detach: bool = False
    procs: list[_Proc] = field(default_factory=list)
    server: str = ""

    @property
    def kubeconfig(self) -> Path:
        return self.run_dir / "kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.run_dir / "state.json"

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
        _make_pki(pki)

        etcd_url = self._start_etcd(bins["etcd"])
        api_port = self._start_apiserver(bins["kube-apiserver"], pki, etcd_url)
        server = f"https://127.0.0.1:{api_port}"
        _write_kubeconfig(self.kubeconfig, server, pki)
        cluster = Cluster.from_kubeconfig(self.kubeconfig)
        cluster.control_plane = self
        self.server = server
        self._save_state(server)
        self._wait_https(f"{server}/readyz", "kube-apiserver", pki)

        self._create_nodes(cluster)
        common = [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
        ]
        kcm_port, sched_port = free_port(), free_port()
        self._spawn(
            "kube-controller-manager",
            [
                bins["kube-controller-manager"],
                *common,
                f"--secure-port={kcm_port}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                bins["kube-scheduler"],
                *common,
                f"--secure-port={sched_port}",
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
        self._wait_https(f"https://127.0.0.1:{kcm_port}/healthz", "kube-controller-manager")
        self._wait_https(f"https://127.0.0.1:{sched_port}/healthz", "kube-scheduler")
        cluster.wait_ready()
        cluster.install_monitoring_crds()
        self.check_alive()
        return cluster

    def _spawn(self, name: str, argv: Sequence[Any]) -> _Proc:
        log = (self.run_dir / "logs" / f"{name}.log").open("ab")
        try:
            popen = subprocess.Popen(
                [str(a) for a in argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.run_dir,
                env={**os.environ, "PATH": tool_path()},
                start_new_session=self.detach,
                preexec_fn=None if self.detach else _die_with_parent,
            )
        finally:
            log.close()
        proc = _Proc(name, popen.pid, _proc_start_time(popen.pid), popen, tuple(popen.args))
        self.procs.append(proc)
        return proc

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
            self._terminate(proc)
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
                ],
            )
            # Wait for the port to listen (or the process to die on a taken port).
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and proc.popen and proc.popen.poll() is None:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                    return port
                time.sleep(0.2)
            self._terminate(proc)
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

    def _wait_http(self, url: str, proc: _Proc, want: bytes) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.popen and proc.popen.poll() is not None:
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
            if not pid_alive(p.pid, p.start_time) or (p.popen and p.popen.poll() is not None):
                raise RigError(f"{p.name} (pid {p.pid}) exited:\n{self._log_tail(p.name)}")

    def _log_tail(self, name: str, lines: int = 40) -> str:
        log = self.run_dir / "logs" / f"{name}.log"
        try:
            return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return f"(no log at {log})"

    def _save_state(self, server: str) -> None:
        state = {
            "server": server,
            "kubeconfig": str(self.kubeconfig),
            "procs": [
                {"name": p.name, "pid": p.pid, "start_time": p.start_time} for p in self.procs
            ],
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_file)

    def restart(self, name: str) -> None:
        """Stop one component and start it again with the same flags and ports.

        For tests of clients that must survive, say, an API server restart.
        Returns once the component is healthy again.
        """
        old = next((p for p in self.procs if p.name == name), None)
        if old is None:
            raise RigError(f"no {name} in this rig (have: {[p.name for p in self.procs]})")
        _stop_pids([old])
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

    def _terminate(self, proc: _Proc) -> None:
        _stop_pids([proc])

    def stop(self, remove: bool = True) -> None:
        """End every process this rig started (newest first), then drop run_dir."""
        _stop_pids(reversed(self.procs))
        self.procs.clear()
        if remove:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    @staticmethod
    def recorded_pids(run_dir: Path) -> list[tuple[str, int, int | None]]:
        state_file = run_dir / "state.json"
        if not state_file.exists():
            return []
        state = json.loads(state_file.read_text())
        return [(p["name"], p["pid"], p["start_time"]) for p in state["procs"]]

    @staticmethod
    def stop_recorded(run_dir: Path, remove: bool = True) -> list[str]:
        """Stop a rig started by another process, from run_dir/state.json.

        A recorded PID is signalled only while it still has the recorded
        start time, so a PID reused by an unrelated process is left alone.
        """
        recorded = ControlPlane.recorded_pids(run_dir)
        procs = [_Proc(n, pid, st) for n, pid, st in recorded]
        stopped = [f"{p.name} ({p.pid})" for p in procs if pid_alive(p.pid, p.start_time)]
        _stop_pids(reversed(procs))
        if remove:
            shutil.rmtree(run_dir, ignore_errors=True)
        return stopped


def _stop_pids(procs: Iterable[_Proc]) -> None:
    """SIGTERM, then SIGKILL after STOP_GRACE; etcd goes last, once its clients are gone."""
    procs = list(procs)
    clients = [p for p in procs if p.name != "etcd"]
    if clients and len(clients) < len(procs):
        _stop_pids(clients)
        procs = [p for p in procs if p.name == "etcd"]
    for p in procs:
        if pid_alive(p.pid, p.start_time):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for p in procs:
        while time.monotonic() < deadline and _still_running(p):
            time.sleep(0.1)
        if _still_running(p):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
            _still_running(p, block=True)


def _still_running(p: _Proc, block: bool = False) -> bool:
    if p.popen is not None:  # our child: reap it, so no zombie is left either
        if block:
            p.popen.wait(timeout=STOP_GRACE)
        return p.popen.poll() is None
    if block:
        deadline = time.monotonic() + STOP_GRACE
        while pid_alive(p.pid, p.start_time) and time.monotonic() < deadline:
            time.sleep(0.1)
    return pid_alive(p.pid, p.start_time)


# --- PKI and kubeconfig ---------------------------------------------------------

_OPENSSL_CNF = f"""\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = modelops-rig
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, DNS:kubernetes, DNS:kubernetes.default, \
DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local, \
IP:127.0.0.1, IP:{SERVICE_IP}
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
"""


def _openssl(*args: Any, cwd: Path) -> None:
    proc = subprocess.run(
        ["openssl", *(str(a) for a in args)], cwd=cwd, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RigError(f"openssl {' '.join(map(str, args))} failed: {proc.stderr}")


def _make_pki(pki: Path) -> None:
    """Throwaway PKI, EC P-256 keys: a cluster CA with the API server's serving
    cert and an admin client cert (O=system:masters); a front-proxy CA with its
    client cert (aggregation layer); the service-account signing key."""
    pki.mkdir(parents=True, exist_ok=True)
    (pki / "openssl.cnf").write_text(_OPENSSL_CNF)
    for key in ("ca", "apiserver", "admin", "front-proxy-ca", "front-proxy-client", "sa"):
        _openssl(
            "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", f"{key}.key", cwd=pki,
        )  # fmt: skip
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    for ca, subject in (("ca", "/CN=modelops-rig-ca"), ("front-proxy-ca", "/CN=front-proxy-ca")):
        _openssl(
            "req", "-x509", "-new", "-key", f"{ca}.key", "-subj", subject, "-days", "3650",
            "-config", "openssl.cnf", "-extensions", "ca", "-out", f"{ca}.crt", cwd=pki,
        )  # fmt: skip
    for name, ca, subject, ext in (
        ("apiserver", "ca", "/CN=kube-apiserver", "server"),
        ("admin", "ca", f"/O=system:masters/CN={ADMIN_USER}", "client"),
        ("front-proxy-client", "front-proxy-ca", "/CN=front-proxy-client", "client"),
    ):
        _openssl(
            "req", "-new", "-key", f"{name}.key", "-subj", subject, "-config", "openssl.cnf",
            "-out", f"{name}.csr", cwd=pki,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "365",
            "-extfile", "openssl.cnf", "-extensions", ext, "-out", f"{name}.crt", cwd=pki,
        )  # fmt: skip
    for f in pki.glob("*.key"):
        f.chmod(0o600)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _write_kubeconfig(path: Path, server: str, pki: Path) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "modelops-rig",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": _b64(pki / "ca.crt"),
                },
            }
        ],
        "users": [
            {
                "name": ADMIN_USER,
                "user": {
                    "client-certificate-data": _b64(pki / "admin.crt"),
                    "client-key-data": _b64(pki / "admin.key"),
                },
            }
        ],
        "contexts": [
            {"name": "modelops-rig", "context": {"cluster": "modelops-rig", "user": ADMIN_USER}}
        ],
        "current-context": "modelops-rig",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
