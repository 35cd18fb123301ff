"""The CRD: structural schema, defaults that agree with the pydantic models, examples valid."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml

from modelops_operator.constants import GROUP, KIND, PLURAL, SHORT_NAME, VERSION
from modelops_operator.models import ModelDeploymentSpec, parse_spec

ROOT = Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((ROOT / "manifests/crd/modeldeployments.modelops.io.yaml").read_text())
EXAMPLES = sorted((ROOT / "manifests/examples").glob("*.yaml"))
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def validator():
    return jsonschema.Draft4Validator(SCHEMA)


def apply_defaults(schema: dict, value):
    """The API server's defaulting: fill `default` of missing properties, recursively."""
    if schema.get("type") == "object" and isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = apply_defaults(sub, value[key])
    return value


def test_names_match_the_constants():
    assert CRD["metadata"]["name"] == f"{PLURAL}.{GROUP}"
    assert CRD["spec"]["group"] == GROUP
    assert CRD["spec"]["names"]["kind"] == KIND
    assert SHORT_NAME in CRD["spec"]["names"]["shortNames"]
    (version,) = CRD["spec"]["versions"]
    assert version["name"] == VERSION
    assert version["served"]
    assert version["storage"]
    # /scale: kubectl scale md and autoscalers set the model's size
    assert version["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    status = SCHEMA["properties"]["status"]["properties"]
    assert status["replicas"]["type"] == "integer"
    assert status["selector"]["type"] == "string"  # a label-selector string, as /scale wants


def test_printer_columns():
    columns = {c["name"].upper(): c for c in CRD["spec"]["versions"][0]["additionalPrinterColumns"]}
    default = [n for n, c in columns.items() if c.get("priority", 0) == 0]
    assert default == ["VERSION", "STABLE", "PHASE", "READY", "AGE"]
    assert columns["VERSION"]["jsonPath"] == ".spec.model.version"
    assert columns["STABLE"]["jsonPath"] == ".status.stableVersion"
    assert columns["AGE"]["type"] == "date"


def test_schema_is_structural_every_node_typed():
    def walk(node, path):
        if "x-kubernetes-preserve-unknown-fields" not in node:
            assert "type" in node, f"{path} has no type"
        for key, sub in (node.get("properties") or {}).items():
            walk(sub, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{path}{{}}")

    walk(SCHEMA, "")


@pytest.mark.parametrize(
    "extra", [{}, {"autoscaling": {"maxReplicas": 4, "targetRequestsPerSecond": 20}}]
)
def test_crd_defaults_equal_the_pydantic_defaults(extra):
    minimal = {"model": {"name": "w", "version": "1", "image": "i:1", "artifact": "/m"}, **extra}
    defaulted = apply_defaults(SCHEMA["properties"]["spec"], copy.deepcopy(minimal))
    from_crd = parse_spec(defaulted)
    from_python = parse_spec(minimal)
    assert from_crd == from_python
    assert isinstance(from_crd, ModelDeploymentSpec)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_are_valid(path):
    for doc in yaml.safe_load_all(path.read_text()):
        assert doc["kind"] == KIND
        validator().validate(doc)
        parse_spec(apply_defaults(SCHEMA["properties"]["spec"], doc["spec"]))


GOOD = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": KIND,
    "metadata": {"name": "x"},
    "spec": {"model": {"name": "w", "version": "1", "image": "i:1", "artifact": "/m"}},
}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "model", "version"), ""),
        (("spec", "model", "sha256"), "not-a-digest"),
        (("spec", "replicas"), -1),
        (("spec", "replicas"), 1000),
        (("spec", "rollout"), {"strategy": "BlueGreen"}),
        (("spec", "rollout"), {"steps": [0]}),
        (("spec", "rollout"), {"steps": []}),
        (("spec", "rollout"), {"interval": "1 minute"}),
        (("spec", "rollout"), {"analysis": {"maxErrorRate": 2}}),
        (("spec", "rollout"), {"analysis": {"maxLatencyP95Seconds": 0}}),
        (("spec", "rollout"), {"analysis": {"prometheusUrl": "ftp://x"}}),
        (("spec", "autoscaling"), {"targetRequestsPerSecond": 5}),  # no maxReplicas
        (("spec", "autoscaling"), {"maxReplicas": 3}),  # no target
        (("spec", "autoscaling"), {"maxReplicas": 3, "targetRequestsPerSecond": 0}),
        (("spec", "autoscaling"), {"maxReplicas": 0, "targetRequestsPerSecond": 5}),
        (
            ("spec", "autoscaling"),
            {"maxReplicas": 3, "targetRequestsPerSecond": 5, "scaleDownStabilization": "5 min"},
        ),
        (
            ("spec", "autoscaling"),
            {"maxReplicas": 3, "targetRequestsPerSecond": 5, "prometheusUrl": "ftp://x"},
        ),
    ],
)
def test_schema_rejects_bad_input(path, value):
    doc = copy.deepcopy(GOOD)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        validator().validate(doc)


def test_schema_requires_the_model_fields():
    # artifact-or-uri and the sha256 of a remote uri are CEL rules: the API server checks
    # them (tests/cluster/test_operator.py::test_invalid_spec_is_rejected_at_apply)
    for field in ("name", "version", "image"):
        doc = copy.deepcopy(GOOD)
        del doc["spec"]["model"][field]
        with pytest.raises(jsonschema.ValidationError):
            validator().validate(doc)


@pytest.mark.parametrize(
    "uri",
    ["s3://models/wine/2", "https://files.example/wine/2", "pvc://store/wine/2", "/models/wine/2"],
)
def test_schema_takes_a_model_uri(uri):
    doc = copy.deepcopy(GOOD)
    del doc["spec"]["model"]["artifact"]
    doc["spec"]["model"].update(uri=uri, sha256="a" * 64, fetch={"endpoint": "https://s3:9000"})
    validator().validate(doc)
    assert parse_spec(apply_defaults(SCHEMA["properties"]["spec"], doc["spec"])).model.uri == uri


@pytest.mark.parametrize("uri", ["ftp://x/y", "s3://has space/x", "relative/dir", ""])
def test_schema_refuses_a_bad_uri(uri):
    doc = copy.deepcopy(GOOD)
    doc["spec"]["model"]["uri"] = uri
    with pytest.raises(jsonschema.ValidationError):
        validator().validate(doc)
