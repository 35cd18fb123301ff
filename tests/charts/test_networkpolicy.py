"""templates/networkpolicy.yaml."""

from __future__ import annotations

import pytest

from tests.support.charts import SERVICE, find, one, render

pytestmark = pytest.mark.render


def test_should_not_render_by_default() -> None:
    assert not find(render(SERVICE), "NetworkPolicy")


def test_should_admit_only_the_http_port_from_anywhere() -> None:
    policy = one(render(SERVICE, {"networkPolicy": {"enabled": True}}), "NetworkPolicy")

    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "demo"
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]


def test_should_admit_only_the_given_peers() -> None:
    peers = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    policy = one(
        render(SERVICE, {"networkPolicy": {"enabled": True, "from": peers}}), "NetworkPolicy"
    )

    assert policy["spec"]["ingress"][0]["from"] == peers
