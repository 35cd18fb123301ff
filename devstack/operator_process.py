"""The operator as a local process: `python -m modelops_operator`, the image's entry point.

    with running_operator(cluster, workdir) as op:      # CRDs installed, started, stopped
        op.metric("modelops_operator_reconciles_total", namespace=ns)

``OperatorProcess`` runs against a ``Cluster`` (the rig's admin kubeconfig unless
``kubeconfig`` names another, e.g. a ServiceAccount's), with the repository's
charts/model-service, fast test timings (tick 1 s, resync 2 s) and free loopback ports for
liveness and metrics. ``settings`` (MODELOPS_OPERATOR_* variables, e.g. those the chart
renders, or ``MODELOPS_OPERATOR_NAMESPACES``) win over those defaults; the caller's own
MODELOPS_* variables never leak in. ``start()`` returns once /healthz answers.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.cluster import Cluster
from devstack.paths import REPO_ROOT, SERVICE_CHART, DevstackError, find_tool
from devstack.processes import HOST, Process, free_port, http_status, on_free_port, spawn

START_TIMEOUT = 120.0
STOP_GRACE = 20.0
DISCARD_URL = "http://127.0.0.1:9"  # the discard port: a Prometheus that never answers


class OperatorStartError(DevstackError):
    """The operator exited, or its liveness endpoint did not answer in time."""


@dataclass
class OperatorProcess:
    cluster: Cluster
    workdir: Path
    prometheus_url: str = DISCARD_URL
    kubeconfig: Path | None = None  # default: the cluster's (the rig's admin)
    settings: Mapping[str, str] = field(default_factory=dict)  # wins over the defaults
    process: Process | None = field(default=None, repr=False)
    health_port: int = 0
    metrics_port: int = 0
    starts: int = 0

    @property
    def log(self) -> Path:
        return self.workdir / "operator.log"

    @property
    def tmpdir(self) -> Path:
        """Its TMPDIR: what it leaves behind stays in ``workdir``, and can be seen."""
        return self.workdir / "tmp"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in self.cluster.env.items() if not k.startswith("MODELOPS_")}
        env.update(
            MODELOPS_OPERATOR_TICK_SECONDS="1",
            MODELOPS_OPERATOR_RESYNC_SECONDS="2",
            MODELOPS_OPERATOR_PROMETHEUS_URL=self.prometheus_url,
            MODELOPS_OPERATOR_CHART_PATH=str(SERVICE_CHART),
            TMPDIR=str(self.tmpdir),
            PATH=f"{find_tool('helm').parent}{os.pathsep}{env.get('PATH', '')}",
        )
        env.update(self.settings)
        env.update(
            MODELOPS_OPERATOR_HEALTH_PORT=str(self.health_port),
            MODELOPS_OPERATOR_METRICS_PORT=str(self.metrics_port),
        )
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start it; return once /healthz answers (OperatorStartError with the log if not)."""
        self.tmpdir.mkdir(parents=True, exist_ok=True)

        def start_on(port: int) -> None:
            self.health_port, self.metrics_port = port, free_port()
            self.process = spawn(
                "operator",
                [sys.executable, "-m", "modelops_operator"],
                self.log,
                env=self.environment(),
                cwd=REPO_ROOT,
            )
            deadline = time.monotonic() + timeout
            while http_status(f"http://{HOST}:{self.health_port}/healthz") != 200:
                if not self.process.alive() or time.monotonic() > deadline:
                    self.stop()
                    raise OperatorStartError(f"the operator did not start\n{self.tail()}")
                time.sleep(0.3)

        on_free_port(start_on)
        self.starts += 1

    def running(self) -> bool:
        return self.process is not None and self.process.alive()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(STOP_GRACE)
        self.process = None

    def tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "operator log tail:\n" + "\n".join(text.splitlines()[-lines:])

    def metric(self, metric: str, **labels: str) -> float:
        """The sum of the samples of ``metric`` on /metrics whose labels include ``labels``."""
        url = f"http://{HOST}:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = resp.read().decode()
        total = 0.0
        for line in body.splitlines():
            if not line.startswith((metric + "{", metric + " ")):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total


def install_crds(cluster: Cluster) -> None:
    """The ModelDeployment CRD and the monitoring.coreos.com CRDs, established."""
    cluster.install_modeldeployment_crd()
    cluster.install_monitoring_crds()


@contextlib.contextmanager
def running_operator(cluster: Cluster, workdir: Path, **fields: Any) -> Iterator[OperatorProcess]:
    """The CRDs installed and an operator started, logging into ``workdir``; stopped on
    exit. ``fields``: further OperatorProcess fields (e.g. ``settings``)."""
    install_crds(cluster)
    op = OperatorProcess(cluster, workdir, **fields)
    try:
        op.start()
        yield op
    finally:
        op.stop()
