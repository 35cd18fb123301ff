"""templates/tests/test-connection.yaml: the `helm test` hook."""

from __future__ import annotations

import pytest

from tests.support.charts import SERVICE, find, one, render, selects

pytestmark = pytest.mark.render


def test_should_be_a_job_hook_that_asks_readyz_and_metrics() -> None:
    objs = render(SERVICE)
    job = one(objs, "Job")
    container = job["spec"]["template"]["spec"]["containers"][0]
    script = container["command"][-1]

    assert job["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert "http://demo-model-service.models.svc:8080" in script
    assert "/readyz" in script
    assert "/metrics" in script
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_should_not_be_selected_by_the_service() -> None:
    objs = render(SERVICE)
    job_pod = one(objs, "Job")["spec"]["template"]["metadata"]["labels"]

    assert not selects(one(objs, "Service")["spec"]["selector"], job_pod)


def test_should_go_when_disabled_and_with_skip_tests() -> None:
    assert not find(render(SERVICE, {"tests": {"enabled": False}}), "Job")
    assert not find(render(SERVICE, extra=["--skip-tests"]), "Job")
