"""templates/configmap.yaml: the service's settings (MODELOPS_* environment)."""

from __future__ import annotations

import pytest

from tests.support.charts import SERVICE, one, render

pytestmark = pytest.mark.render


def settings(values: dict | None = None) -> dict:
    return one(render(SERVICE, values), "ConfigMap", "demo-model-service")


def test_should_be_empty_by_default() -> None:
    assert settings()["data"] == {}


def test_should_hold_every_setting_as_a_string() -> None:
    cm = settings(
        {
            "config": {
                "MODELOPS_LOG_LEVEL": "debug",
                "MODELOPS_MAX_ROWS": 100,
                "MODELOPS_X": True,
                # a values file's numbers are float64 to Helm: no 1.048576e+07
                "MODELOPS_MAX_BODY_BYTES": 10485760,
                "MODELOPS_DRIFT_THRESHOLD": 0.25,
            }
        }
    )

    assert cm["data"] == {
        "MODELOPS_LOG_LEVEL": "debug",
        "MODELOPS_MAX_ROWS": "100",
        "MODELOPS_X": "true",
        "MODELOPS_MAX_BODY_BYTES": "10485760",
        "MODELOPS_DRIFT_THRESHOLD": "0.25",
    }
