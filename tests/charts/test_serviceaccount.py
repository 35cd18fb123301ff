"""templates/serviceaccount.yaml."""

from __future__ import annotations

import pytest

from tests.support.charts import SERVICE, find, one, render

pytestmark = pytest.mark.render


def pod_spec(values: dict | None = None) -> dict:
    return one(render(SERVICE, values), "Deployment")["spec"]["template"]["spec"]


def test_should_create_a_service_account_without_token_by_default() -> None:
    sa = one(render(SERVICE), "ServiceAccount")

    assert sa["metadata"]["name"] == "demo-model-service"
    assert sa["automountServiceAccountToken"] is False
    assert pod_spec()["serviceAccountName"] == "demo-model-service"


@pytest.mark.parametrize(
    ("values", "name"),
    [
        ({"serviceAccount": {"create": False}}, "default"),
        ({"serviceAccount": {"create": False, "name": "shared"}}, "shared"),
        ({"serviceAccount": {"create": True, "name": "own"}}, "own"),
    ],
)
def test_should_name_the_account_the_pods_use(values: dict, name: str) -> None:
    objs = render(SERVICE, values)

    assert pod_spec(values)["serviceAccountName"] == name
    assert bool(find(objs, "ServiceAccount")) == values["serviceAccount"]["create"]
