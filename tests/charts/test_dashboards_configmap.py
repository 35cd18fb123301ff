"""templates/dashboards-configmap.yaml: one sidecar-labelled ConfigMap per dashboard."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.charts import SERVICE, chart_copy, find, render

pytestmark = pytest.mark.render

DASHBOARD = {
    "title": "Fixture",
    "uid": "fixture",
    "panels": [{"targets": [{"expr": "sum(rate(http_requests_total[5m]))"}]}],
    "templating": {"list": [{"name": "model", "query": "label_values(model_info, model)"}]},
    "description": "legend {{model}} and ${datasource} stay as they are",
}


@pytest.fixture
def fixture_chart(tmp_path: Path) -> Path:
    chart = chart_copy(tmp_path)
    shutil.rmtree(chart / "files" / "dashboards", ignore_errors=True)
    (chart / "files" / "dashboards").mkdir(parents=True)
    (chart / "files" / "dashboards" / "model-overview.json").write_text(
        json.dumps(DASHBOARD, indent=2)
    )
    (chart / "files" / "dashboards" / "canary.json").write_text(json.dumps({"title": "Canary"}))
    return chart


def dashboards(chart: Path, values: dict | None = None) -> dict[str, dict]:
    objs = find(render(chart, values), "ConfigMap")
    return {o["metadata"]["name"]: o for o in objs if "-dashboard-" in o["metadata"]["name"]}


def test_should_render_one_configmap_per_dashboard_file(fixture_chart: Path) -> None:
    cms = dashboards(fixture_chart)

    assert set(cms) == {
        "demo-model-service-dashboard-canary",
        "demo-model-service-dashboard-model-overview",
    }
    data = cms["demo-model-service-dashboard-model-overview"]["data"]
    assert list(data) == ["model-overview.json"]
    assert json.loads(data["model-overview.json"]) == DASHBOARD


def test_should_carry_the_grafana_sidecar_label_and_folder(fixture_chart: Path) -> None:
    cm = dashboards(fixture_chart)["demo-model-service-dashboard-canary"]

    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "ModelOps"}
    assert cm["metadata"]["namespace"] == "models"


def test_should_take_label_value_folder_and_namespace_from_values(fixture_chart: Path) -> None:
    values = {
        "monitoring": {
            "dashboards": {
                "label": "grafana_dash",
                "labelValue": "yes",
                "folderAnnotation": "k8s-sidecar-target-directory",
                "folder": "/tmp/dashboards/ml",
                "namespace": "monitoring",
                "labels": {"team": "ml"},
            }
        }
    }
    cm = dashboards(fixture_chart, values)["demo-model-service-dashboard-canary"]

    assert cm["metadata"]["labels"]["grafana_dash"] == "yes"
    assert "grafana_dashboard" not in cm["metadata"]["labels"]
    assert cm["metadata"]["labels"]["team"] == "ml"
    assert cm["metadata"]["annotations"] == {"k8s-sidecar-target-directory": "/tmp/dashboards/ml"}
    assert cm["metadata"]["namespace"] == "monitoring"


def test_should_leave_out_the_folder_annotation_when_unset(fixture_chart: Path) -> None:
    cm = dashboards(fixture_chart, {"monitoring": {"dashboards": {"folderAnnotation": ""}}})

    assert "annotations" not in cm["demo-model-service-dashboard-canary"]["metadata"]


def test_should_not_render_when_disabled(fixture_chart: Path) -> None:
    assert not dashboards(fixture_chart, {"monitoring": {"dashboards": {"enabled": False}}})


def test_should_not_need_the_monitoring_api(fixture_chart: Path) -> None:
    assert dashboards(fixture_chart) == {
        name: cm
        for name, cm in {
            o["metadata"]["name"]: o
            for o in find(render(fixture_chart, api_versions=[]), "ConfigMap")
        }.items()
        if "-dashboard-" in name
    }


def test_repo_chart_carries_every_generated_dashboard() -> None:
    files = sorted(p.name for p in (SERVICE / "files" / "dashboards").glob("*.json"))
    cms = dashboards(SERVICE)

    assert sorted(k for cm in cms.values() for k in cm["data"]) == files
