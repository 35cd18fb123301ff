"""Every object of model-service carries the labels of CONVENTIONS.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.charts import OPERATOR, SERVICE, ci_values, render

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


LONGEST_RELEASE = "r" * 53  # Helm's limit on a release name


@pytest.mark.parametrize(
    ("chart", "values_file"),
    [(c, f) for c in (SERVICE, OPERATOR) for f in ci_values(c)],
    ids=lambda v: v.stem if isinstance(v, Path) and v.suffix else v.name,
)
def test_with_the_longest_release_name_service_names_and_labels_fit_63(
    chart: Path, values_file: Path
) -> None:
    """The API server refuses a longer Service name (a DNS label) or label value."""
    objs = render(chart, values_files=[values_file], release=LONGEST_RELEASE)

    for obj in objs:
        meta = obj["metadata"]
        assert len(meta["name"]) <= (63 if obj["kind"] == "Service" else 253), meta["name"]
        for key, value in meta["labels"].items():
            assert len(str(value)) <= 63, f"{obj['kind']}/{meta['name']} label {key}={value}"
