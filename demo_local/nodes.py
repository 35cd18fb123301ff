"""Node heartbeats for KWOK nodes whose KWOK keeps no node Lease.

Without `--node-lease-duration-seconds`, KWOK heartbeats a node only by patching its status
every 20 to 45 seconds; on a busy machine the gap passes kube-controller-manager's node
monitor grace period (50s), the node turns NotReady, every pod on it is marked NotReady, and
KWOK's pod-ready stage (which only matches pods without an IP) never marks them Ready again.
A kubelet renews its node's Lease every 10 seconds for this reason; `NodeLeases` does that
for the fake nodes, and nothing at all when KWOK already keeps their Leases fresh.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from tests.rig.control_plane import Cluster

LEASE_NAMESPACE = "kube-node-lease"
LEASE_SECONDS = 40  # a kubelet's default
RENEW_EVERY = 10.0
FIELD_MANAGER = "modelops-demo-local"


def _now() -> datetime:
    return datetime.now(UTC)


def _micro_time(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class NodeLeases:
    cluster: Cluster
    nodes: tuple[str, ...]
    active: bool = False
    _last: float = 0.0

    def needed(self) -> bool:
        """True unless someone else (KWOK) renewed every node's Lease within its duration.

        A Lease last written by this field manager is an earlier demo's, not KWOK's."""
        leases = self.cluster.get(
            "leases", "-n", LEASE_NAMESPACE, "--show-managed-fields"
        )["items"]  # fmt: skip
        kept = set()
        for lease in leases:
            renewed = lease["spec"].get("renewTime")
            managers = sorted(
                lease["metadata"].get("managedFields") or [], key=lambda m: m.get("time") or ""
            )
            if not renewed or not managers or managers[-1].get("manager") == FIELD_MANAGER:
                continue
            at = datetime.fromisoformat(renewed.replace("Z", "+00:00"))
            age = (_now() - at).total_seconds()
            if age < lease["spec"].get("leaseDurationSeconds", LEASE_SECONDS):
                kept.add(lease["metadata"]["name"])
        return not set(self.nodes) <= kept

    def start(self) -> bool:
        self.active = bool(self.nodes) and self.needed()
        if self.active:
            self.renew()
        return self.active

    def renew(self) -> None:
        now = _micro_time(_now())
        leases = [
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": node, "namespace": LEASE_NAMESPACE},
                "spec": {
                    "holderIdentity": node,
                    "leaseDurationSeconds": LEASE_SECONDS,
                    "renewTime": now,
                },
            }
            for node in self.nodes
        ]
        self.cluster.kubectl(
            "apply", "--server-side", "--force-conflicts", f"--field-manager={FIELD_MANAGER}",
            "-f", "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": leases}),
            check=False,
        )  # fmt: skip
        self._last = time.monotonic()

    def tick(self) -> None:
        if self.active and time.monotonic() - self._last >= RENEW_EVERY:
            self.renew()
