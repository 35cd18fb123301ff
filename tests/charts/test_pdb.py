"""templates/pdb.yaml."""

from __future__ import annotations

import pytest

from tests.support.charts import SERVICE, find, one, render, selects

pytestmark = pytest.mark.render


def test_should_not_render_by_default() -> None:
    assert not find(render(SERVICE), "PodDisruptionBudget")


def test_should_cover_both_tracks_with_max_unavailable() -> None:
    objs = render(
        SERVICE,
        {"podDisruptionBudget": {"enabled": True}, "canary": {"enabled": True, "version": "2"}},
    )
    pdb = one(objs, "PodDisruptionBudget")

    assert pdb["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in pdb["spec"]
    for deploy in find(objs, "Deployment"):
        assert selects(
            pdb["spec"]["selector"]["matchLabels"], deploy["spec"]["template"]["metadata"]["labels"]
        )


@pytest.mark.parametrize("min_available", [2, "50%"])
def test_should_prefer_min_available_when_set(min_available) -> None:
    pdb = one(
        render(SERVICE, {"podDisruptionBudget": {"enabled": True, "minAvailable": min_available}}),
        "PodDisruptionBudget",
    )

    assert pdb["spec"]["minAvailable"] == min_available
    assert "maxUnavailable" not in pdb["spec"]
