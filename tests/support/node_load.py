"""Prediction traffic inside the real node's network namespace (tests/node/load.py), so it
reaches ClusterIPs through kube-proxy's rules as a pod's would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from devstack.node import RealNode

LOAD = Path(__file__).resolve().parents[1] / "node" / "load.py"


def start_load(
    node: RealNode,
    url: str,
    rows: list[dict],
    rate: float,
    seconds: float,
    host: str | None = None,
) -> subprocess.Popen:
    """load.py sending ``rows`` round-robin to ``url`` at about ``rate`` requests/s until
    terminated or ``seconds`` (with Host: ``host`` if given); its JSON summary is on stdout
    when it ends."""
    argv = node.in_netns(
        sys.executable, LOAD, url, json.dumps(rows), "--rate", rate, "--seconds", seconds,
        *(("--host", host) if host else ()),
    )  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
