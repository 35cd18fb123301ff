"""The CRD: structural schema, defaults that agree with the pydantic models, examples valid."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import NoneType
from typing import get_args

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from devstack.paths import CRD_DIR
from modelops_operator.constants import GROUP, KIND, PLURAL, SHORT_NAME, VERSION
from modelops_operator.models import DURATION_PATTERN, ModelDeploymentSpec, Strategy, parse_spec
from modelops_operator.routing import (
    HTTPROUTE_API_VERSION,
    Backends,
    Split,
    route_rules,
    weights_of,
)
from tests.support.repo import ROOT

CRD = yaml.safe_load((ROOT / "manifests/crd/modeldeployments.modelops.io.yaml").read_text())
EXAMPLES = sorted((ROOT / "manifests/examples").glob("*.yaml"))
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def validator():
    return jsonschema.Draft4Validator(SCHEMA)


def apply_defaults(schema: dict, value):
    """The API server's defaulting: drop a null the schema does not mark `nullable` (it
    prunes those before defaulting), fill `default` of missing properties, recursively."""
    if schema.get("type") == "object" and isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key in value and value[key] is None and not sub.get("nullable"):
                del value[key]
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


def crd_schema(path: Path) -> dict:
    return yaml.safe_load(path.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


# the pinned Gateway API CRD (hack/versions.env; make tools puts it into .cache/crds)
HTTPROUTE_CRD = CRD_DIR / "gateway.networking.k8s.io_httproutes.yaml"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_are_valid(path):
    """Every ModelDeployment of an example is valid against our CRD and parses; an
    HTTPRoute beside it against the pinned Gateway API CRD; nothing else is in an example."""
    kinds = []
    for doc in yaml.safe_load_all(path.read_text()):
        kinds.append(doc["kind"])
        if doc["kind"] == "HTTPRoute":
            assert doc["apiVersion"] == HTTPROUTE_API_VERSION
            jsonschema.Draft4Validator(crd_schema(HTTPROUTE_CRD)).validate(doc)
            continue
        assert doc["kind"] == KIND
        validator().validate(doc)
        parse_spec(apply_defaults(SCHEMA["properties"]["spec"], doc["spec"]))
    assert KIND in kinds


def example_docs(name: str) -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all((ROOT / "manifests/examples" / name).open())}


def test_the_gateway_example_carries_the_route_and_rule_it_names():
    docs = example_docs("diabetes-gateway-canary.yaml")
    md, route = docs[KIND], docs["HTTPRoute"]
    spec = parse_spec(md["spec"])
    routing = spec.rollout.gateway_api
    assert routing is not None
    assert (route["metadata"]["name"], route["metadata"]["namespace"]) == (
        routing.http_route, md["metadata"]["namespace"],
    )  # fmt: skip
    # the rule the operator weighs, with the stable Service the chart renders for this release
    (rule,) = [r for r in route["spec"]["rules"] if r["name"] == routing.rule]
    stable = Backends(f"{md['metadata']['name']}-model-service-stable",
                      f"{md['metadata']['name']}-model-service-canary", 8080)  # fmt: skip
    assert [(r["name"], r["port"]) for r in rule["backendRefs"]] == [(stable.stable, 8080)]
    weighted = route_rules(route, routing, stable, Split(10, "3"), md["metadata"]["name"])
    assert weights_of({"spec": {"rules": weighted}}, stable, md["metadata"]["name"]) == {
        stable.stable: 90, stable.canary: 10,
    }  # fmt: skip
    assert route["spec"]["parentRefs"], "the route names the Gateway it attaches to"


def test_the_ab_example_is_an_ab_test_by_replicas():
    spec = parse_spec(example_docs("wine-ab-test.yaml")[KIND]["spec"])
    assert spec.rollout.strategy == Strategy.AB_TEST
    assert spec.rollout.gateway_api is None
    assert spec.rollout.ab_test.weight == 50
    assert spec.rollout.ab_test.winner is None  # the user names it


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
        (("spec", "rollout"), {"interval": "30s1m"}),  # parse_duration reads h, m, s, ms in order
        (("spec", "rollout"), {"progressDeadline": "1m1m"}),
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


def duration_paths(model: type[BaseModel], path: tuple[str, ...] = ()):
    """The spec's Duration fields, by their CRD (alias) names."""
    for name, field in model.model_fields.items():
        here = (*path, field.alias or name)
        if any(getattr(m, "pattern", None) == DURATION_PATTERN for m in field.metadata):
            yield here
        for kind in (field.annotation, *get_args(field.annotation)):
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                yield from duration_paths(kind, here)


def test_every_duration_has_the_pattern_of_the_pydantic_model():
    # one pattern: models.DURATION_PATTERN, copied into the hand-written CRD
    paths = list(duration_paths(ModelDeploymentSpec))
    assert len(paths) == 6
    for path in paths:
        node = SCHEMA["properties"]["spec"]
        for key in path:
            node = node["properties"][key]
        assert node["pattern"] == DURATION_PATTERN, ".".join(path)


def none_paths(model: type[BaseModel], path: tuple[str, ...] = ()):
    """The spec's fields the pydantic model accepts as None, by their CRD (alias) names, with
    the model's default."""
    for name, field in model.model_fields.items():
        here = (*path, field.alias or name)
        kinds = get_args(field.annotation) or (field.annotation,)
        if NoneType in kinds:
            yield here, field.default
        for kind in kinds:
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                yield from none_paths(kind, here)


def spec_node(path: tuple[str, ...]) -> dict:
    node = SCHEMA["properties"]["spec"]
    for key in path:
        node = node["properties"][key]
    return node


# the gates `null` switches off (operator/README.md), their defaults on
GATES = [
    ("rollout", "analysis", "maxDriftScore"),
    ("rollout", "compare", "maxErrorRateDelta"),
    ("rollout", "compare", "maxLatencyP95Ratio"),
    ("rollout", "compare", "maxPredictionShift"),
]


def test_every_field_the_model_takes_as_none_takes_null_in_the_crd():
    """The API server prunes a null the schema does not mark nullable, then defaults it: a
    field whose None means something else than its default must be `nullable: true`; one
    whose default is None may instead have no CRD default (pruned, it is None all the same)."""
    paths = dict(none_paths(ModelDeploymentSpec))
    assert set(GATES) <= set(paths)
    for path, default in paths.items():
        node = spec_node(path)
        if node.get("nullable") is True:
            continue
        where = f"spec.{'.'.join(path)}: the model takes null but the CRD prunes it"
        assert default is None, f"{where} (model default {default!r})"
        assert "default" not in node, f"{where} (CRD default {node['default']!r})"


@pytest.mark.parametrize("gate", GATES, ids=[".".join(g) for g in GATES])
def test_null_switches_a_gate_off_through_the_api_server(gate):
    assert spec_node(gate).get("nullable") is True
    spec = copy.deepcopy(GOOD["spec"])
    spec["rollout"] = {gate[1]: {gate[2]: None}}
    parsed = parse_spec(apply_defaults(SCHEMA["properties"]["spec"], spec))
    group = getattr(parsed.rollout, gate[1])
    (field,) = [n for n, f in type(group).model_fields.items() if f.alias == gate[2]]
    assert getattr(group, field) is None
    # absent, it is on at the default
    absent = copy.deepcopy(GOOD["spec"])
    defaulted = parse_spec(apply_defaults(SCHEMA["properties"]["spec"], absent))
    assert getattr(getattr(defaulted.rollout, gate[1]), field) is not None


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


def test_the_crd_and_the_chart_check_the_fetch_settings_alike():
    """The operator passes spec.model.fetch to the chart's model.fetch and canary.fetch: a
    value the CRD takes must not fail the render (the chart's emptyDir sizeLimit is its own)."""
    chart = json.loads((ROOT / "charts/model-service/values.schema.json").read_text())
    theirs = chart["properties"]["model"]["properties"]["fetch"]["properties"]
    ours = SCHEMA["properties"]["spec"]["properties"]["model"]["properties"]["fetch"]["properties"]
    assert set(ours) == set(theirs) - {"sizeLimit"}
    for key, schema in ours.items():
        for word in ("type", "pattern", "maxLength", "minLength"):
            assert schema.get(word) == theirs[key].get(word), (key, word)
    canary = chart["properties"]["canary"]["properties"]["fetch"]
    assert canary["$ref"] == "#/properties/model/properties/fetch"


def test_the_route_schema_catches_a_wrong_route():
    route = copy.deepcopy(example_docs("diabetes-gateway-canary.yaml")["HTTPRoute"])
    route["spec"]["rules"][0]["backendRefs"][0]["port"] = "http"  # a port is a number
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(crd_schema(HTTPROUTE_CRD)).validate(route)
