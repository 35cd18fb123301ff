"""`make cluster-down` leaves nothing of the real node behind (issue 14, show 5), even after
a run that was killed: the next `cluster-up` clears its leftovers first.

The commands are those of the Makefile (`python -m devstack up --node real` / `down`) on a
rig directory of the test's own. The host is compared before and after; what another
engineer's Docker engine does meanwhile (its containers, veths and DOCKER chains) is left
out of the comparison.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.cluster import Cluster
from devstack.control_plane import ControlPlane
from devstack.node_config import NODE_HOME, NODE_NAME, pause_image
from devstack.node_host import KUBELET_SYSCTLS, cgroup_roots, read_sysctl, release
from devstack.paths import REPO_ROOT, RUN_ROOT, tool_path

pytestmark = pytest.mark.node

DOCKER = re.compile(r"docker|DOCKER|veth|br-[0-9a-f]")
FIXED_PATHS = (
    Path("/var/log/containers"),
    Path("/var/lib/cni"),
    Path("/var/lib/kubelet"),
    NODE_HOME.parent,
)


def sh(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def host_snapshot(marks: tuple[str, ...]) -> dict[str, object]:
    """What the node may touch on the host, minus the Docker engine's own churn."""

    def lines(text: str) -> list[str]:
        return sorted(
            re.sub(r"\[\d+:\d+\]", "", line)  # packet counters
            for line in text.splitlines()
            if line and not line.startswith("#") and not DOCKER.search(line)
        )

    procs = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if any(m in cmdline for m in marks):
                procs.append(cmdline[:200])
    mountinfo = Path("/proc/self/mountinfo").read_text().splitlines()
    return {
        "processes": sorted(procs),
        "mounts": sorted(m.split()[4] for m in mountinfo if not DOCKER.search(m)),
        "links": sorted(
            line.split(":")[1].split("@")[0].strip()
            for line in sh("ip", "-o", "link").splitlines()
            if not DOCKER.search(line)
        ),
        "routes": lines(sh("ip", "route")),
        "iptables": lines(sh("iptables-save")),
        "ip6tables": lines(sh("ip6tables-save")),
        "netns": sh("ip", "netns", "list"),
        "kubepods cgroups": sorted(str(r) for r in cgroup_roots() if r.exists()),
        "sysctls": {k: read_sysctl(k) for k in KUBELET_SYSCTLS},
        "paths": {
            str(p): sorted(map(str, p.rglob("*"))) if p.exists() else None for p in FIXED_PATHS
        },
        "node home": NODE_HOME.exists(),
    }


def devstack(run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": tool_path(), "MODELOPS_RIG_DIR": str(run_dir)}
    proc = subprocess.run(
        [sys.executable, "-m", "devstack", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def run_pods(run_dir: Path) -> Cluster:
    """Real containers on the node (the locally built pause image), two replicas, Ready."""
    cluster = Cluster.from_kubeconfig(run_dir / "kubeconfig")
    cluster.kubectl("create", "deployment", "p", f"--image={pause_image()}", "--replicas=2")
    cluster.kubectl("rollout", "status", "deployment/p", "--timeout=240s")
    (node,) = cluster.get("nodes")["items"]
    assert node["metadata"]["name"] == NODE_NAME
    return cluster


@pytest.fixture
def rig_dirs() -> Iterator[Path]:
    """Run dirs under .run (not the shared /tmp/pytest-of-*: other sessions prune it)."""
    root = RUN_ROOT / f"node-down-{os.getpid()}"
    yield root
    release(root / "rig")  # whatever a failure left running
    for d in (root / "killed", root / "rig"):
        ControlPlane.stop_recorded(d)
    shutil.rmtree(root, ignore_errors=True)


def test_cluster_down_leaves_nothing_behind_even_after_a_killed_run(rig_dirs):
    marks = (str(NODE_HOME), str(rig_dirs))
    # A session that was stopped outright may have left a node behind: cluster-down clears
    # it (a node whose rig still runs stays, and then the assertion below says so).
    release(rig_dirs / "earlier")
    before = host_snapshot(marks)
    assert not before["node home"], "a real node of a running rig is on this machine"

    # A run killed outright: every process the rig recorded gets SIGKILL, so nothing of
    # its own clean-up runs; containers (their shims outlive containerd), mounts, the
    # network namespace, cgroups and kubelet's sysctls stay behind.
    killed = rig_dirs / "killed"
    devstack(killed, "up", "--node", "real", "--load", "model-service:0.1.0")
    run_pods(killed)
    for p in ControlPlane.recorded(killed):
        p.send(signal.SIGKILL)
    time.sleep(1)
    left = host_snapshot(marks)
    assert left["node home"]
    assert left["kubepods cgroups"]
    assert left["processes"], "the containers outlive a killed run"

    # The next cluster-up, from another rig directory, clears that and starts clean.
    rig = rig_dirs / "rig"
    devstack(rig, "up", "--node", "real", "--load", "model-service:0.1.0")
    run_pods(rig)
    assert host_snapshot(marks)["sysctls"] != before["sysctls"]  # kubelet's, to be reverted

    down = devstack(rig, "down").stdout
    print(f"\n{down}")
    for what in (
        "process kubelet",
        "process coredns",
        "container",
        "cgroup",
        "sysctl",
        str(NODE_HOME),
    ):
        assert what in down, down
    after = host_snapshot(marks)
    assert json.dumps(after, indent=1, sort_keys=True) == json.dumps(
        before, indent=1, sort_keys=True
    )
