"""The helpers the operator tests share (the processes themselves live in devstack).

    from devstack.operator_process import running_operator
    from tests.support import operator_rig as rig

    @pytest.fixture(scope="module")
    def operator(cluster, tmp_path_factory):
        with running_operator(cluster, tmp_path_factory.mktemp("operator")) as op:
            yield op

    def test_it(cluster, operator, namespace):
        cluster.apply(rig.md_body("wine", namespace))
        status = rig.wait_phase(cluster, operator, namespace, "wine", "Ready")

- ``wait_for``: poll until true, or fail naming what was awaited and why.
- ModelDeployment helpers: ``md_body``, ``get_md``, ``status_of``, ``condition``,
  ``patch_md``, ``set_model``, ``wait_phase``, ``events_of``, ``event_reasons``,
  ``wait_event``, ``deployment_env``, ``wait_reconciles``, ``assert_running``,
  ``canary_rollout`` (the rollout spec of a canary judged by devstack.canary's Prometheus).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from devstack.cluster import Cluster
from devstack.operator_process import OperatorProcess
from modelops_operator.metrics import RECONCILES

WAIT = 120.0


def wait_for(
    probe: Callable[[], Any], what: str, timeout: float = WAIT, explain: Callable[[], str] = str
) -> Any:
    """Poll ``probe`` until it returns something true, and return that; AssertionError naming
    ``what``, the last answer and ``explain()`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}\n{explain()}")


# An API refusal as kopf and our operator log it: the API server's 403 is always reason
# Forbidden ("... is forbidden: User ..."). Not the number: a line's random port (:40397)
# or timestamp (08.403) has it too, and both failed a CI run.
_REFUSED = re.compile(r"[Ff]orbidden|Not enough permissions")


def refused_lines(log_text: str) -> list[str]:
    """The operator log's lines that tell of a request the API server refused."""
    return [ln for ln in log_text.splitlines() if _REFUSED.search(ln)]


def assert_running(op: OperatorProcess) -> None:
    """The operator process is up: it did not crash."""
    assert op.running(), op.tail()


def reconciles(op: OperatorProcess, ns: str, name: str) -> float:
    return op.metric(RECONCILES, namespace=ns, name=name)


def wait_reconciles(op: OperatorProcess, ns: str, name: str, more: int) -> None:
    """Block until the operator has reconciled ns/name ``more`` further times."""
    start = reconciles(op, ns, name)
    wait_for(
        lambda: reconciles(op, ns, name) >= start + more,
        f"{more} more reconciles of {ns}/{name}",
        explain=op.tail,
    )


# --- ModelDeployment helpers ------------------------------------------------


def md_body(name: str, ns: str, model: str = "wine", version: str = "1", **spec: Any) -> dict:
    body: dict[str, Any] = {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "model": {
                "name": model,
                "version": version,
                "image": "model-service:0.1.0",
                "artifact": f"/models/{model}/{version}",
            },
            "replicas": 2,
            **spec,
        },
    }
    return body


def get_md(cluster: Cluster, ns: str, name: str) -> dict:
    return cluster.get("modeldeployment", name, "-n", ns)


def status_of(cluster: Cluster, ns: str, name: str) -> dict:
    return get_md(cluster, ns, name).get("status") or {}


def condition(status: dict, type_: str) -> dict:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def patch_md(cluster: Cluster, ns: str, name: str, patch: dict) -> None:
    """A merge patch of the ModelDeployment ns/name."""
    cluster.kubectl("patch", "md", name, "-n", ns, "--type", "merge", "-p", json.dumps(patch))


def set_model(cluster: Cluster, ns: str, name: str, model: str, version: str, **extra: Any):
    patch = {"spec": {"model": {"version": version, "artifact": f"/models/{model}/{version}"}}}
    patch["spec"].update(extra)
    patch_md(cluster, ns, name, patch)


def wait_phase(cluster, op, ns, name, phase, timeout: float = WAIT, **expect) -> dict:
    def probe():
        status = status_of(cluster, ns, name)
        ok = status.get("phase") == phase and all(status.get(k) == v for k, v in expect.items())
        return status if ok else None

    def explain() -> str:
        status = status_of(cluster, ns, name)
        return f"status: {json.dumps(status, indent=1)}\n{op.tail(25)}"

    return wait_for(probe, f"{ns}/{name} phase {phase} {expect}", timeout, explain=explain)


def events_of(cluster: Cluster, ns: str, name: str) -> list[dict]:
    """The Events of the ModelDeployment ns/name, oldest first."""
    items = cluster.get(
        "events", "-n", ns, "--field-selector",
        f"involvedObject.kind=ModelDeployment,involvedObject.name={name}",
    )["items"]  # fmt: skip
    return sorted(items, key=lambda e: e.get("lastTimestamp") or "")


def event_reasons(cluster: Cluster, ns: str, name: str, type_: str | None = None) -> list[str]:
    """The reasons of events_of(), oldest first; only Events of ``type_`` if given."""
    return [e["reason"] for e in events_of(cluster, ns, name) if type_ in (None, e["type"])]


def wait_event(cluster, op, ns: str, name: str, reason: str) -> dict:
    def probe():
        return next((e for e in events_of(cluster, ns, name) if e["reason"] == reason), None)

    return wait_for(probe, f"a {reason} Event on {ns}/{name}", explain=op.tail)


def deployment_env(dep: dict) -> dict[str, str]:
    container = dep["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container.get("env") or []}


def canary_rollout(prometheus_url: str, **analysis: Any) -> dict:
    return {
        "strategy": "Canary",
        "steps": [50, 100],
        "interval": "5s",
        "analysis": {
            "minRequests": 20,
            "deadline": "90s",
            "prometheusUrl": prometheus_url,
            **analysis,
        },
    }
