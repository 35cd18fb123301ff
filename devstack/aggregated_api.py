"""An aggregated API served by a local process of the rig (KEDA's external metrics,
metrics-server's resource metrics), registered as their charts register them: an
APIService whose caBundle is the CA of the server's serving cert (no
insecureSkipTLSVerify), behind a Service of type ExternalName `localhost`. The API server's
aggregator dials localhost:<port>, so the server needs no pod and no address outside
loopback.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

from devstack.cluster import Cluster, RigError, conditions
from devstack.processes import Process


def register(
    cluster: Cluster, name: str, service: str, namespace: str, port: int, ca: Path
) -> None:
    """Apply the Service and the APIService `name` (`<version>.<group>`)."""
    version, group = name.split(".", 1)
    cluster.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": service, "namespace": namespace},
                "spec": {"type": "ExternalName", "externalName": "localhost"},
            },
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": name},
                "spec": {
                    "group": group,
                    "version": version,
                    "groupPriorityMinimum": 100,
                    "versionPriority": 100,
                    "caBundle": base64.b64encode(ca.read_bytes()).decode(),
                    "service": {"name": service, "namespace": namespace, "port": port},
                },
            },
        ]
    )


def wait_available(cluster: Cluster, name: str, servers: list[Process], timeout: float) -> None:
    """Until the APIService `name` is Available; a server that exits ends the wait at once.
    Either failure quotes the servers' logs."""
    deadline = time.monotonic() + timeout
    status: dict = {}
    while time.monotonic() < deadline:
        if dead := [p.name for p in servers if not p.alive()]:
            raise RigError(f"{', '.join(dead)} exited\n{tail(servers)}")
        api = cluster.get("apiservice", name)
        status = api.get("status") or {}
        if conditions(api).get("Available") == "True":
            return
        time.sleep(1)
    raise RigError(f"{name} not Available: {status}\n{tail(servers)}")


def tail(servers: list[Process], lines: int = 30) -> str:
    return "\n".join(f"--- {p.name}:\n{p.log_tail(lines)}" for p in servers)
