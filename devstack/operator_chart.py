"""charts/model-operator installed on the rig, so that the real operator process can run
with exactly the rights (its ServiceAccount's token) and the settings the chart gives it.

KWOK runs nothing inside the chart's pod: ``OperatorRelease.settings()`` reads the
MODELOPS_OPERATOR_* variables of its container, for an ``OperatorProcess`` to run with.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from devstack.cluster import Cluster
from devstack.paths import OPERATOR_CHART

HELM_TIMEOUT = "--timeout=3m"


@dataclass(frozen=True)
class Identity:
    """A ServiceAccount as the API server sees it: user name and groups."""

    namespace: str
    name: str

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"

    @property
    def groups(self) -> list[str]:
        return [
            "system:serviceaccounts",
            f"system:serviceaccounts:{self.namespace}",
            "system:authenticated",
        ]


@dataclass
class OperatorRelease:
    """One helm release of charts/model-operator."""

    release: str
    namespace: str  # where the operator runs
    identity: Identity
    watched: list[str] = field(default_factory=list)
    monitoring: list[str] = field(default_factory=list)

    @classmethod
    def install(
        cls,
        cluster: Cluster,
        namespace: str,
        watched: Sequence[str] = (),
        monitoring: Sequence[str] = (),
    ) -> OperatorRelease:
        """`helm install --wait`; with ``watched``, namespace-scoped (watchNamespaces) with
        its monitoring Roles in ``monitoring``."""
        release = f"rbac-{uuid.uuid4().hex[:5]}"
        args: list[str] = []
        if watched:
            args += ["--set", f"watchNamespaces={{{','.join(watched)}}}"]
        if monitoring:
            args += ["--set", f"rbac.monitoringNamespaces={{{','.join(monitoring)}}}"]
        cluster.helm(
            "install", release, OPERATOR_CHART, "-n", namespace, "--wait", HELM_TIMEOUT, *args
        )
        sa = Identity(namespace, f"{release}-model-operator")
        return cls(release, namespace, sa, list(watched), list(monitoring))

    def uninstall(self, cluster: Cluster) -> None:
        cluster.helm(
            "uninstall", self.release, "-n", self.namespace, "--wait", HELM_TIMEOUT, check=False
        )

    def settings(self, cluster: Cluster) -> dict[str, str]:
        """The MODELOPS_OPERATOR_* settings the chart gave the operator's container."""
        deploy = cluster.get("deployment", f"{self.release}-model-operator", "-n", self.namespace)
        env = deploy["spec"]["template"]["spec"]["containers"][0]["env"]
        out = {e["name"]: e["value"] for e in env if "value" in e}
        out["MODELOPS_OPERATOR_POD_NAMESPACE"] = self.namespace  # a fieldRef in the pod
        return out
