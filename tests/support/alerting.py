"""The Alertmanager example (alerts/alertmanager/alertmanager.yaml) as a local Alertmanager
runs it: the Secret's files in a directory, the receivers' endpoints on a webhook sink."""

from __future__ import annotations

from pathlib import Path

import yaml

from devstack.paths import REPO_ROOT
from tests.support.webhook import Receiver

EXAMPLE = REPO_ROOT / "alerts" / "alertmanager" / "alertmanager.yaml"


def alertmanager_config(secrets: Path, receiver: Receiver, token: str) -> str:
    """The example configuration, with its Secret mounted at ``secrets`` (the pager's
    ``token``) and its receivers' endpoints on loopback; grouping waits shortened."""
    text = EXAMPLE.read_text()
    text = text.replace("/etc/alertmanager/secrets/modelops-alerting/", f"{secrets}/")
    text = text.replace("http://alert-gateway.monitoring.svc:9095", receiver.url)
    assert "svc" not in text
    config = yaml.safe_load(text)

    def shorten(route: dict) -> None:
        for key in ("group_wait", "group_interval"):
            if key in route:
                route[key] = "1s"
        for child in route.get("routes", []):
            shorten(child)

    config["route"].update(group_wait="1s", group_interval="1s")
    shorten(config["route"])
    (secrets / "slack-api-url").write_text(f"{receiver.url}/chat")
    (secrets / "pager-token").write_text(token)
    return yaml.safe_dump(config, sort_keys=False)
