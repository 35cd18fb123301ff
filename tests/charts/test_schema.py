"""values.schema.json rejects bad values at install time, with a message naming the value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.support.charts import OPERATOR, SERVICE, ci_values, template

pytestmark = pytest.mark.render

# (chart, bad values, words the error must contain)
REJECTIONS = [
    (SERVICE, {"replicaCount": -1}, ["replicaCount"]),
    (SERVICE, {"canary": {"replicaCount": -2}}, ["canary", "replicaCount"]),
    (SERVICE, {"port": "http"}, ["port"]),
    (SERVICE, {"replicaz": 2}, ["replicaz"]),
    (SERVICE, {"image": {"pullPolicy": "Sometimes"}}, ["pullPolicy"]),
    (SERVICE, {"model": {"sha256": "not-a-digest"}}, ["sha256"]),
    (SERVICE, {"model": {"name": ""}}, ["model", "name"]),
    (SERVICE, {"model": {"version": ""}}, ["model", "version"]),
    (SERVICE, {"model": {"version": "_rc1"}}, ["model", "version"]),
    (SERVICE, {"monitoring": {"missingCrds": "ignore"}}, ["missingCrds"]),
    (SERVICE, {"monitoring": {"serviceMonitor": {"interval": "soon"}}}, ["interval"]),
    (SERVICE, {"monitoring": {"serviceMonitor": {"enabld": True}}}, ["enabld"]),
    (SERVICE, {"canary": {"enabled": True}}, ["version"]),
    (SERVICE, {"model": {"uri": "s3://models/wine/2"}}, ["sha256"]),
    (SERVICE, {"model": {"uri": "https://h/m", "sha256": ""}}, ["sha256"]),
    (SERVICE, {"canary": {"enabled": True, "version": "2", "uri": "pvc://c/m"}}, ["canary"]),
    (SERVICE, {"model": {"uri": "ftp://h/m", "sha256": "ab" * 32}}, ["uri"]),
    (SERVICE, {"model": {"fetch": {"endpoint": "s3.example"}}}, ["endpoint"]),
    (SERVICE, {"service": {"type": "ExternalName"}}, ["type"]),
    (OPERATOR, {"replicaCount": 2}, ["replicaCount"]),
    (OPERATOR, {"healthPort": "8080x"}, ["healthPort"]),
    (OPERATOR, {"metricsPort": 70000}, ["metricsPort"]),
    (OPERATOR, {"image": {"pullPolicy": "always"}}, ["pullPolicy"]),
    (OPERATOR, {"watchNamespaces": ["Not_A_Namespace"]}, ["watchNamespaces"]),
    (OPERATOR, {"config": {"PATH": "/bin"}}, ["PATH", "MODELOPS_OPERATOR_"]),
]


@pytest.mark.parametrize(
    ("chart", "values", "words"),
    REJECTIONS,
    ids=[f"{c.name}-{json.dumps(v, separators=(',', ':'))}" for c, v, _ in REJECTIONS],
)
def test_bad_values_are_rejected_with_a_clear_message(
    chart: Path, values: dict, words: list[str], helm_bin: str
) -> None:
    err = template(chart, values, binary=helm_bin, expect_failure=True)

    assert "schema" in err or "values don't meet" in err or "required" in err, err
    for word in words:
        assert word in err, err


@pytest.mark.parametrize("values", [{"replicaCount": 0}, {"port": 9000}, {"model": {"version": 3}}])
def test_good_edge_values_are_accepted(values: dict, helm_bin: str) -> None:
    assert template(SERVICE, values, binary=helm_bin)


def test_a_fraction_by_set_is_refused_and_by_set_json_taken(helm_bin: str) -> None:
    """The chart README's advice: `--set` types whole numbers only, a fraction arrives as a
    string and the schema names it; `--set-json` passes the number."""
    value = "monitoring.prometheusRule.params.memoryLimitRatio=0.8"
    err = template(SERVICE, extra=["--set", value], binary=helm_bin, expect_failure=True)
    assert "memoryLimitRatio" in err, err
    assert "string" in err, err
    rendered = template(SERVICE, extra=["--set-json", value], binary=helm_bin)
    assert "> 0.8\n" in rendered, rendered


@pytest.mark.parametrize("chart", [SERVICE, OPERATOR], ids=lambda c: c.name)
def test_every_default_value_is_typed_in_the_schema(chart: Path) -> None:
    values = yaml.safe_load((chart / "values.yaml").read_text())
    schema = json.loads((chart / "values.schema.json").read_text())

    def walk(value: object, node: dict, path: str) -> None:
        assert node, f"{path} has no schema"
        if isinstance(value, dict) and "properties" in node:
            for key, sub in value.items():
                assert key in node["properties"], f"{path}.{key} is not in values.schema.json"
                walk(sub, node["properties"][key], f"{path}.{key}")
        else:
            assert "type" in node or "enum" in node or "oneOf" in node, f"{path} has no type"

    walk(values, schema, "")
    assert schema.get("additionalProperties") is False


@pytest.mark.parametrize(
    "values_file",
    ci_values(SERVICE) + ci_values(OPERATOR),
    ids=lambda p: f"{p.parent.parent.name}-{p.stem}",
)
def test_ci_values_pass_the_schema(values_file: Path) -> None:
    chart = values_file.parent.parent
    assert template(chart, values_files=[values_file])
