"""What the real node changes on the host, and how `tear_down` reverts it.

Machine-wide, so one real node per machine, behind a lock; a killed run's leftovers go at
the next start:

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
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.control_plane import ControlPlane
from devstack.node_config import CNI_NETWORK, CRI_NAMESPACE, NODE_HOME, NodeError, NodePaths
from devstack.paths import find_tool, tool_path
from devstack.processes import Process, stop_all

COMPONENTS = ("containerd", "kubelet", "kube-proxy", "coredns", "node-api-forward")
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


def run(*argv: Any, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
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
    stopping = by_name("kubelet", "kube-proxy", "coredns")
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
        return run(find_tool("ctr"), "-a", sock, "-n", CRI_NAMESPACE, *args, check=False)

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
        if run(find_tool("umount"), point, check=False).returncode != 0:
            run(find_tool("umount"), "-l", point, check=False)
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
    pids: set[int] = set()
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
