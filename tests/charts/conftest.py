"""Fixtures of the chart tests: the helm majors to run under."""

from __future__ import annotations

import pytest

from tests.support.charts import helm_binaries


@pytest.fixture(params=helm_binaries())
def helm_bin(request: pytest.FixtureRequest) -> str:
    """Each helm major the charts must work with (helm 4; helm 3 when pinned)."""
    return request.param
