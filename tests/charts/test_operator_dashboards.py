"""model-operator templates/dashboards-configmap.yaml: the dashboards once per cluster."""

from __future__ import annotations

import json

import pytest

from tests.support.charts import OPERATOR, SERVICE, find, render

pytestmark = pytest.mark.render


def test_should_ship_each_dashboard_once_with_the_sidecar_label_and_folder() -> None:
    maps = find(render(OPERATOR), "ConfigMap")
    files = {key: cm for cm in maps for key in cm["data"]}

    assert set(files) == {p.name for p in (OPERATOR / "files" / "dashboards").glob("*.json")}
    for name, cm in files.items():
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["annotations"] == {"grafana_folder": "ModelOps"}
        assert json.loads(cm["data"][name])["uid"] == name.removesuffix(".json")


def test_should_ship_none_when_disabled() -> None:
    assert not find(render(OPERATOR, {"dashboards": {"enabled": False}}), "ConfigMap")


def test_the_model_service_chart_keeps_its_per_release_switch() -> None:
    assert find(render(SERVICE), "ConfigMap", None)
    off = render(SERVICE, {"monitoring": {"dashboards": {"enabled": False}}})
    assert not [
        cm for cm in find(off, "ConfigMap") if "grafana_dashboard" in cm["metadata"]["labels"]
    ]
