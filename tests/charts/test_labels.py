"""Every object of model-service carries the labels of CONVENTIONS.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.charts import SERVICE, ci_values, render

pytestmark = pytest.mark.render

REQUIRED = [
    f"app.kubernetes.io/{k}" for k in ("name", "instance", "version", "managed-by", "part-of")
]
CASES = [None, *ci_values(SERVICE)]


@pytest.mark.parametrize("values_file", CASES, ids=lambda p: p.stem if p else "defaults")
def test_every_object_carries_the_standard_labels(values_file: Path | None) -> None:
    objs = render(SERVICE, values_files=[values_file] if values_file else [])

    assert objs
    for obj in objs:
        labels = obj["metadata"]["labels"]
        missing = [k for k in REQUIRED if k not in labels]
        assert not missing, f"{obj['kind']}/{obj['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/part-of"] == "modelops-bundle"
        if obj["kind"] != "Job":
            assert "modelops.io/model" in labels


@pytest.mark.parametrize("values_file", CASES, ids=lambda p: p.stem if p else "defaults")
def test_every_pod_carries_model_version_and_track(values_file: Path | None) -> None:
    objs = render(SERVICE, values_files=[values_file] if values_file else [])

    for deploy in [o for o in objs if o["kind"] == "Deployment"]:
        labels = deploy["spec"]["template"]["metadata"]["labels"]
        for key in [*REQUIRED, "modelops.io/model", "modelops.io/version", "modelops.io/track"]:
            assert key in labels, f"{deploy['metadata']['name']} pods lack {key}"
        assert labels["modelops.io/track"] in ("stable", "canary")


def test_common_labels_reach_every_object() -> None:
    objs = render(SERVICE, {"commonLabels": {"cost-center": "ml"}})

    assert all(o["metadata"]["labels"]["cost-center"] == "ml" for o in objs)
