"""The demo's stage: what runs the cluster side of the story, and how the story talks to it.

story.py tells the same acts on either stage:

- simulated.py: KWOK nodes, with the operator, the model services and Prometheus as local
  processes (any machine that can run the control plane);
- real_node.py: a real node running the project's images, with prometheus-operator and the
  operator in-cluster (a machine that can run containers: root and a Docker engine).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from devstack.cluster import Cluster
from devstack.paths import RUN_ROOT
from devstack.processes import Process
from devstack.prometheus import PrometheusAPI

Snapshot = dict[str, list[dict[str, Any]]]  # kind -> the demo namespace's objects of it
# The first line of both stages' banner: the control plane is the same on both.
CONTROL_PLANE = """\
  control plane  etcd, kube-apiserver, kube-controller-manager and kube-scheduler: the real
                 binaries (make tools), local processes on 127.0.0.1 (devstack/)"""


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return f"last lines of {path}:\n" + "\n".join(text.splitlines()[-lines:])


def kept_message(run_dir: Path) -> str:
    """What --keep-cluster leaves running, and the command that stops it."""
    down = "make cluster-down"
    if run_dir.resolve() != (RUN_ROOT / "cluster").resolve():
        down = f"MODELOPS_RIG_DIR={run_dir} {down}"
    return (
        f"the control plane keeps running (--keep-cluster): KUBECONFIG={run_dir / 'kubeconfig'}; "
        f"`{down}` stops it."
    )


@dataclass(frozen=True)
class TrafficRoute:
    """Where the traffic generator reaches one Service on a stage."""

    url: str
    shown: str  # for the narration: the URL, or what stands behind it
    via: str = ""  # for the narration: from where the generator sends
    argv_prefix: tuple[str, ...] = ()  # e.g. nsenter into the node's network namespace
    remote: bool = False  # not loopback, but the rig's own (loadtest --allow-remote)


class DemoError(RuntimeError):
    """The demo cannot go on; the message says why and where the logs are."""


@dataclass
class Options:
    interactive: bool = True
    node: str = "auto"  # auto | real | kwok
    keep_cluster: bool = False
    kubeconfig: Path | None = None  # a running control plane to use instead of the rig's
    rig_dir: Path = field(
        default_factory=lambda: Path(os.environ.get("MODELOPS_RIG_DIR", RUN_ROOT / "cluster"))
    )
    namespace: str = "modelops-demo"
    workdir: Path = RUN_ROOT / "demo-local"
    summary: Path | None = None
    traffic_rate: float = 15.0
    act_timeout: float = 300.0


@dataclass(frozen=True)
class Context:
    """What a stage gets from the story: the options, the narration, the process ledger."""

    options: Options
    workdir: Path
    logs: Path
    say: Callable[[str], None]
    record: Callable[[Process], None]  # every process a stage starts, for the ledger


class Stage(Protocol):
    mode: str  # "KWOK" or "real node": the banner's and the summary's words
    interval: str  # the rollout step interval this stage's Prometheus can judge
    deadline: str  # how long an analysis may stay inconclusive before it counts as failed

    @property
    def prometheus(self) -> PrometheusAPI:
        """What the canary analysis queries (a local process, or the pod of the stack)."""
        ...

    def banner(self) -> str:
        """What runs where, as a table for the user."""
        ...

    def start(self) -> Cluster:
        """Everything up to an empty namespace the operator watches; returns the cluster."""
        ...

    def tick(self, snap: Snapshot) -> None:
        """Once a second: keep what stands in for the cluster in line; raise DemoError when
        the operator is gone."""
        ...

    def serving(self, snap: Snapshot, services: list[str]) -> bool:
        """Traffic to each of these Services reaches a pod that answers."""
        ...

    def describe(self) -> str:
        """What serves the pods, for act 1."""
        ...

    def traffic_route(self, service: str) -> TrafficRoute:
        """How `python -m loadtest` reaches ``service``."""
        ...

    def operator_log(self) -> str:
        """The operator's last log lines, to explain a timeout."""
        ...

    def hints(self) -> list[str]:
        """What the user can try at the end while everything still runs."""
        ...

    def stop(self) -> list[str]:
        """Stop what this stage started (the control plane unless kept); what was stopped."""
        ...

    def summary(self) -> dict[str, Any]:
        """The stage's part of --summary."""
        ...
