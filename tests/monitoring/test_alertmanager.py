"""The Alertmanager example run by a real Alertmanager, fed the service's alerts as the rules
label them (the promtool tests in alerts/tests/ check those labels): which receiver gets
each, and which ones a model version's critical alert mutes (inhibit_rules)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator

import pytest

from devstack.prometheus import Alertmanager
from tests.support.alerting import alertmanager_config
from tests.support.webhook import Receiver

pytestmark = pytest.mark.process

NS = "models"
WINE_TARGET = {"job": "wine-model-service", "modelops_io_model": "wine", "modelops_io_version": "1"}
# In the order they are posted: the sources without model and version first, so that once
# wine 1's critical alert mutes its warning, every source has reached the inhibitor.
ALERTS = {
    "absent": {"alertname": "ModelServiceAbsent", "severity": "critical", "namespace": NS,
               "job": "wine-model-service"},
    "operator-down": {"alertname": "ModelOperatorDown", "severity": "critical"},
    "wine-1-down": {"alertname": "ModelServiceDown", "severity": "critical", "namespace": NS,
                    **WINE_TARGET, "instance": "10.0.0.1:8080", "pod": "wine-1-abc",
                    "model": "wine", "version": "1"},
    "wine-1-latency": {"alertname": "ModelHighLatency", "severity": "warning", "namespace": NS,
                       "model": "wine", "version": "1"},
    "wine-1-idle": {"alertname": "ModelNoTraffic", "severity": "info", "namespace": NS,
                    "model": "wine", "version": "1"},
    "wine-2-latency": {"alertname": "ModelHighLatency", "severity": "warning", "namespace": NS,
                       "model": "wine", "version": "2"},
    "diabetes-memory": {"alertname": "ModelMemoryNearLimit", "severity": "warning",
                        "namespace": NS, "pod": "diabetes-2-xyz", "container": "model-service",
                        "model": "diabetes", "version": "2"},
    # a pod no scrape target names: no model, no version
    "pod-restarts": {"alertname": "ModelPodRestarting", "severity": "warning", "namespace": NS,
                     "pod": "wine-1-def", "container": "model-service"},
    # the operator's, with the release it asks for (modelops_operator_release_info), and one
    # whose spec it cannot read
    "wine-3-stuck": {"alertname": "ModelRolloutStuck", "severity": "warning", "namespace": NS,
                     "name": "wine", "model": "wine", "version": "3"},
    "rollout-stuck": {"alertname": "ModelRolloutStuck", "severity": "warning", "namespace": NS,
                      "name": "diabetes"},
}  # fmt: skip


def key_of(labels: dict) -> str:
    return next(k for k, v in ALERTS.items() if v == labels)


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict]]:
    """Every alert as Alertmanager holds it, once wine 1's warning is muted."""
    workdir = tmp_path_factory.mktemp("alertmanager")
    secrets = workdir / "secrets"
    secrets.mkdir()
    receiver = Receiver()
    am = Alertmanager(workdir / "am", alertmanager_config(secrets, receiver, "token"))
    try:
        am.start()
        body = json.dumps([{"labels": labels} for labels in ALERTS.values()]).encode()
        request = urllib.request.Request(
            f"{am.url}/api/v2/alerts", body, {"Content-Type": "application/json"}
        )
        urllib.request.urlopen(request, timeout=10).close()
        deadline = time.monotonic() + 30
        while True:
            alerts = {key_of(a["labels"]): a for a in am.alerts()}
            latency = alerts.get("wine-1-latency")
            if latency and latency["status"]["state"] == "suppressed":
                break
            assert time.monotonic() < deadline, f"wine 1's warning never muted: {alerts}"
            time.sleep(0.2)
        yield alerts
    finally:
        am.stop()
        receiver.close()


def test_a_model_version_s_critical_alert_mutes_its_own_warnings_and_infos_only(
    held: dict[str, dict],
) -> None:
    states = {k: a["status"]["state"] for k, a in held.items()}
    assert states == {
        "absent": "active",
        "operator-down": "active",
        "wine-1-down": "active",
        "wine-1-latency": "suppressed",
        "wine-1-idle": "suppressed",
        "wine-2-latency": "active",
        "diabetes-memory": "active",
        # a critical without model and version (absent, operator down) mutes nothing
        "pod-restarts": "active",
        "wine-3-stuck": "active",  # another version than the one down
        "rollout-stuck": "active",
    }
    source = held["wine-1-down"]["fingerprint"]
    assert source in held["wine-1-latency"]["status"]["inhibitedBy"]


def test_the_model_s_team_gets_its_target_and_pod_alerts(held: dict[str, dict]) -> None:
    receivers = {k: sorted(r["name"] for r in a["receivers"]) for k, a in held.items()}
    assert receivers["wine-1-down"] == ["modelops-pager", "team-wine"]
    assert receivers["diabetes-memory"] == ["team-diabetes"]
    assert receivers["absent"] == ["modelops-pager"]
    assert receivers["wine-3-stuck"] == ["team-wine"]
    # without a model: the shared channel
    assert receivers["pod-restarts"] == ["modelops-chat"]
    assert receivers["rollout-stuck"] == ["modelops-chat"]
    assert receivers["wine-1-idle"] == ["null"]
