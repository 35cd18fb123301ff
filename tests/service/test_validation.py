"""modelops_service.validation: request bodies to feature matrices (pure)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelops_service.validation import (
    MAX_DETAILS,
    FeatureSchema,
    InputError,
    batch_from_v1,
    batch_from_v1_body,
    batch_from_v2,
    check_content_type,
    parse_json,
)

NAMES = ("a", "b", "c")


def schema(policy: str = "reject", max_instances: int = 10) -> FeatureSchema:
    lo = np.array([0.0, 0.0, -1.0])
    hi = np.array([1.0, 10.0, 1.0])
    return FeatureSchema(
        names=NAMES,
        train_min=lo,
        train_max=hi,
        low=lo - (hi - lo) * 0.1,
        high=hi + (hi - lo) * 0.1,
        policy=policy,
        tolerance=0.1,
        max_instances=max_instances,
    )


ROW = {"a": 0.5, "b": 5, "c": 0.0}


def test_objects_lists_and_one_instance_give_the_same_matrix() -> None:
    expected = np.array([[0.5, 5.0, 0.0], [1.0, 0.0, -1.0]])
    as_objects = batch_from_v1({"instances": [ROW, {"c": -1, "b": 0, "a": 1}]}, schema())
    as_lists = batch_from_v1({"instances": [[0.5, 5, 0.0], [1, 0, -1]]}, schema())
    mixed = batch_from_v1({"instances": [ROW, [1, 0, -1]]}, schema())
    for batch in (as_objects, as_lists, mixed):
        assert batch.features.dtype == np.float64
        assert np.array_equal(batch.features, expected)
        assert batch.warnings == ()
    one = batch_from_v1(ROW, schema())
    assert np.array_equal(one.features, expected[:1])


def test_an_object_with_as_many_keys_but_one_misnamed_is_refused_by_name() -> None:
    renamed = {"a": 0.5, "b": 5, "z": 0.0}
    err = error_of(lambda: batch_from_v1({"instances": [ROW, renamed]}, schema()))
    assert {(tuple(e["loc"]), e["type"]) for e in err.body()["detail"]} == {
        (("body", "instances", 1, "z"), "extra_field"),
        (("body", "instances", 1, "c"), "missing_field"),
    }


def test_a_one_feature_model_takes_objects_and_lists() -> None:
    one = FeatureSchema(
        names=("x",),
        train_min=np.array([0.0]),
        train_max=np.array([1.0]),
        low=np.array([-0.1]),
        high=np.array([1.1]),
        policy="reject",
        tolerance=0.1,
        max_instances=10,
    )
    batch = batch_from_v1({"instances": [{"x": 0.25}, [1], {"x": 0}]}, one)
    assert np.array_equal(batch.features, np.array([[0.25], [1.0], [0.0]]))
    err = error_of(lambda: batch_from_v1({"instances": [{"x": True}]}, one))
    assert err.body()["detail"][0]["loc"] == ["body", "instances", 0, "x"]
    assert err.reasons == {"wrong_type"}


def error_of(call) -> InputError:
    with pytest.raises(InputError) as info:
        call()
    return info.value


@pytest.mark.parametrize(
    ("payload", "reason", "loc"),
    [
        ({"instances": [{"a": 0.5, "b": 5}]}, "missing_field", ["body", "instances", 0, "c"]),
        ({"a": 0.5, "b": 5}, "missing_field", ["body", "c"]),
        ({"instances": [[0.5, 5]]}, "missing_field", ["body", "instances", 0, 2]),
        ({"instances": [ROW | {"d": 1}]}, "extra_field", ["body", "instances", 0, "d"]),
        ({"instances": [[0.5, 5, 0, 9]]}, "extra_field", ["body", "instances", 0, 3]),
        ({"instances": [ROW], "x": 1}, "extra_field", ["body", "x"]),
        ({"instances": [ROW | {"a": "0.5"}]}, "wrong_type", ["body", "instances", 0, "a"]),
        ({"instances": [ROW | {"a": True}]}, "wrong_type", ["body", "instances", 0, "a"]),
        ({"instances": [ROW | {"a": None}]}, "wrong_type", ["body", "instances", 0, "a"]),
        ({"instances": [ROW | {"a": [1]}]}, "wrong_type", ["body", "instances", 0, "a"]),
        ({"instances": [ROW, "row"]}, "wrong_type", ["body", "instances", 1]),
        ({"instances": {"a": 1}}, "wrong_type", ["body", "instances"]),
        ([ROW], "wrong_type", ["body"]),
        ({"instances": [ROW | {"a": float("nan")}]}, "not_finite", ["body", "instances", 0, "a"]),
        ({"instances": [ROW | {"b": float("-inf")}]}, "not_finite", ["body", "instances", 0, "b"]),
        ({"instances": [ROW | {"b": 10**400}]}, "not_finite", ["body", "instances", 0, "b"]),
        ({"instances": [ROW | {"b": 11.5}]}, "out_of_range", ["body", "instances", 0, "b"]),
        ({"instances": [[0.5, 5, -1.3]]}, "out_of_range", ["body", "instances", 0, 2]),
        ({"instances": []}, "empty_batch", ["body", "instances"]),
        ({"instances": [ROW] * 11}, "too_many_instances", ["body", "instances"]),
    ],
)
def test_v1_errors_name_the_field_and_reason(payload, reason: str, loc: list) -> None:
    err = error_of(lambda: batch_from_v1(payload, schema()))
    assert err.status == 422
    assert reason in err.reasons
    assert err.errors[0].reason == reason
    assert list(err.errors[0].loc) == loc
    body = err.body()
    assert body["detail"][0] == {"loc": loc, "msg": err.errors[0].msg, "type": reason}
    assert body["error"].startswith(".".join(map(str, loc)))


def test_a_value_within_the_tolerance_is_accepted() -> None:
    batch = batch_from_v1({"instances": [ROW | {"b": 10.9, "a": -0.09}]}, schema())
    assert batch.warnings == ()


def test_flag_policy_answers_with_warnings_instead() -> None:
    batch = batch_from_v1({"instances": [ROW, ROW | {"b": 50}]}, schema("flag"))
    assert batch.features[1, 1] == 50
    assert batch.flagged == frozenset({"out_of_range"})
    assert [w.loc for w in batch.warnings] == [("body", "instances", 1, "b")]
    assert "training range [0, 10]" in batch.warnings[0].msg


def test_every_reason_is_reported_but_details_are_capped() -> None:
    bad = [{"a": "x", "b": None}] * 30  # 30 wrong_type a, 30 wrong_type b, 30 missing c
    err = error_of(lambda: batch_from_v1({"instances": bad}, schema(max_instances=100)))
    assert err.reasons == {"wrong_type", "missing_field"}
    assert err.total == 90
    assert len(err.errors) == MAX_DETAILS
    assert err.body()["errors_total"] == 90


def test_parse_json_reads_nan_and_infinity_as_numbers() -> None:
    payload = parse_json(json.dumps({"instances": [ROW | {"a": float("nan")}]}).encode())
    err = error_of(lambda: batch_from_v1(payload, schema()))
    assert err.reasons == {"not_finite"}
    assert parse_json(b'{"x": 1e999}')["x"] == float("inf")


@pytest.mark.parametrize("body", [b"", b"{", b'{"a": }', b"[1,]", b"\xff", b"[" * 3000])
def test_malformed_json_is_a_400(body: bytes) -> None:
    err = error_of(lambda: parse_json(body))
    assert err.status == 400
    assert err.reasons == {"malformed_json"}
    assert err.errors[0].msg.startswith("malformed JSON")


@pytest.mark.parametrize(
    "value", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
def test_json_content_types_pass(value: str) -> None:
    check_content_type(value)


@pytest.mark.parametrize("value", [None, "", "text/plain", "application/x-www-form-urlencoded"])
def test_other_content_types_are_a_415(value: str | None) -> None:
    err = error_of(lambda: check_content_type(value))
    assert err.status == 415
    assert err.reasons == {"wrong_content_type"}
    assert list(err.errors[0].loc) == ["header", "content-type"]


OUTPUTS = ("predict", "predict_proba")


def tensor(**over) -> dict:
    return {
        "name": "input-0",
        "shape": [2, 3],
        "datatype": "FP64",
        "data": [0.5, 5, 0, 1, 0, -1],
    } | over


def test_v2_matrix_nested_and_columns_give_the_same_matrix() -> None:
    expected = np.array([[0.5, 5.0, 0.0], [1.0, 0.0, -1.0]])
    flat = batch_from_v2({"inputs": [tensor()], "id": "q"}, schema(), OUTPUTS)
    nested = batch_from_v2({"inputs": [tensor(data=[[0.5, 5, 0], [1, 0, -1]])]}, schema(), OUTPUTS)
    columns = batch_from_v2(
        {
            "inputs": [
                {"name": "c", "shape": [2, 1], "datatype": "INT32", "data": [0, -1]},
                {"name": "a", "shape": [2], "datatype": "FP32", "data": [0.5, 1]},
                {"name": "b", "shape": [2], "datatype": "FP64", "data": [5, 0]},
            ],
            "outputs": [{"name": "predict_proba"}],
        },
        schema(),
        OUTPUTS,
    )
    for request in (flat, nested, columns):
        assert np.array_equal(request.batch.features, expected)
    assert flat.id == "q"
    assert flat.outputs is None
    assert columns.outputs == ("predict_proba",)


@pytest.mark.parametrize(
    ("payload", "reason", "loc"),
    [
        ({}, "missing_field", ["body", "inputs"]),
        ({"inputs": []}, "wrong_type", ["body", "inputs"]),
        ({"inputs": [tensor()], "extra": 1}, "extra_field", ["body", "extra"]),
        (
            {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64"}]},
            "missing_field",
            ["body", "inputs", 0, "data"],
        ),
        ({"inputs": [tensor(datatype="BYTES")]}, "wrong_type", ["body", "inputs", 0, "datatype"]),
        ({"inputs": [tensor(shape=[2, 2])]}, "wrong_type", ["body", "inputs", 0, "data"]),
        ({"inputs": [tensor(shape=[3, 2])]}, "missing_field", ["body", "inputs", 0, "shape"]),
        ({"inputs": [tensor(shape=[1, 6])]}, "extra_field", ["body", "inputs", 0, "shape"]),
        ({"inputs": [tensor(shape=[6])]}, "wrong_type", ["body", "inputs", 0, "shape"]),
        (
            {"inputs": [tensor(data=[0.5, 5, 0, 1, "0", -1])]},
            "wrong_type",
            ["body", "inputs", 0, "data", 4],
        ),
        (
            {"inputs": [tensor(data=[0.5, 5, 0, 1, 0, float("nan")])]},
            "not_finite",
            ["body", "inputs", 0, "data", 5],
        ),
        (
            {"inputs": [tensor(data=[0.5, 5, 0, 1, 99, -1])]},
            "out_of_range",
            ["body", "inputs", 0, "data", 4],
        ),
        (
            {"inputs": [tensor(shape=[0, 3], data=[])]},
            "empty_batch",
            ["body", "inputs", 0, "shape"],
        ),
        (
            {"inputs": [tensor(shape=[11, 3], data=[0] * 33)]},
            "too_many_instances",
            ["body", "inputs", 0, "shape"],
        ),
        (
            {"inputs": [tensor()], "outputs": [{"name": "embedding"}]},
            "extra_field",
            ["body", "outputs", 0, "name"],
        ),
        (
            {
                "inputs": [
                    {"name": "a", "shape": [1], "datatype": "FP64", "data": [0.5]},
                    {"name": "b", "shape": [1], "datatype": "FP64", "data": [1]},
                ]
            },
            "missing_field",
            ["body", "inputs"],
        ),
        ({"inputs": [tensor()], "id": 7}, "wrong_type", ["body", "id"]),
    ],
)
def test_v2_errors_name_the_field_and_reason(payload, reason: str, loc: list) -> None:
    err = error_of(lambda: batch_from_v2(payload, schema(), OUTPUTS))
    assert err.status == 422
    assert reason in err.reasons
    assert list(err.errors[0].loc) == loc, err.errors


def outcome(call) -> tuple:
    """What a body becomes: the matrix and warnings, or the refusal's status and body."""
    try:
        batch = call()
    except InputError as err:
        return ("refused", err.status, err.body())
    return ("ok", batch.features.tolist(), [w.as_dict() for w in batch.warnings], batch.flagged)


def both_ways(body: bytes, schema_: FeatureSchema) -> tuple[tuple, tuple]:
    def general():
        return batch_from_v1(parse_json(body), schema_)

    return outcome(lambda: batch_from_v1_body(body, schema_)), outcome(general)


EDGE_BODIES = [
    b'{"instances": [{"a": 0.5, "b": 5, "c": 0}]}',
    b'{"instances": [{"c": 0, "b": 5, "a": 1}, [0.5, 5, 0.0]]}',
    b'{"instances": [{"a": 0.5, "a": 0.7, "b": 5, "c": 0}]}',  # duplicate key: the last
    b'{"instances": [{"a": 1e400, "b": 5, "c": 0}]}',
    b'{"instances": [{"a": ' + b"9" * 400 + b', "b": 5, "c": 0}]}',
    b'{"instances": [{"a": 18446744073709551616, "b": 5, "c": 0}]}',
    b'{"instances": [{"a": true, "b": 5, "c": 0}]}',
    b'{"instances": [{"a": null, "b": 5, "c": 0}]}',
    b'{"instances": [{"a": "0.5", "b": 5, "c": 0}]}',
    b'{"instances": [{"a": 0.5, "b": 5}]}',
    b'{"instances": [{"a": 0.5, "b": 5, "c": 0, "d": 1}]}',
    b'{"instances": [[0.5, 5]], "extra": 1}',
    b'{"instances": [[0.5, 5, 0, 1]]}',
    b'{"instances": [[0.5, 5, NaN]]}',
    b'{"instances": [[0.5, 50, -3]]}',  # out of range
    b'{"instances": []}',
    b'{"instances": ' + b"[[0.5, 5, 0]," * 10 + b"[0.5, 5, 0]]}",  # 11 > max_instances
    b'{"instances": {}}',
    b'{"a": 0.5, "b": 5, "c": 0}',  # one instance, no envelope
    b"[1, 2, 3]",
    b'{"instances": [1]}',
    b'{"instances": [[0.5, 5, 0]]',  # malformed
]


@pytest.mark.parametrize("policy", ["reject", "flag"])
@pytest.mark.parametrize("body", EDGE_BODIES, ids=range(len(EDGE_BODIES)))
def test_the_typed_decoder_and_the_general_path_agree_on_edge_bodies(
    body: bytes, policy: str
) -> None:
    fast, general = both_ways(body, schema(policy))
    assert fast == general


_VALUES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-2, max_value=12),
    st.integers(min_value=-3, max_value=12),
    st.sampled_from([True, False, None, "1", 10**400, 1e308, [], {}]),
)
_OBJECT = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), _VALUES, max_size=4)
_LIST = st.lists(_VALUES, min_size=2, max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    instances=st.lists(st.one_of(_OBJECT, _LIST, _VALUES), max_size=12),
    policy=st.sampled_from(["reject", "flag"]),
)
def test_the_typed_decoder_and_the_general_path_agree_on_any_body(instances, policy) -> None:
    body = json.dumps({"instances": instances}).encode()
    fast, general = both_ways(body, schema(policy))
    assert fast == general
