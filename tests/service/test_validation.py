"""modelops_service.decoding and .validation: request bodies to feature matrices (pure)."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from modelops_service.decoding import REFUSED, decode_v1, decode_v2
from modelops_service.validation import (
    MAX_DETAILS,
    Batch,
    Decoded,
    FeatureSchema,
    InputError,
    check_content_encoding,
    check_content_type,
    v1_batch,
    v1_matrix,
)

NAMES = ("a", "b", "c")
OUTPUTS = ("predict", "predict_proba")


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


def batch_from_v1(payload, schema_: FeatureSchema) -> Batch:
    """Python's json writes NaN, Infinity and ints beyond float64, as clients do."""
    return decode_v1(json.dumps(payload).encode(), schema_).batch


def batch_from_v2(payload, schema_: FeatureSchema, outputs: tuple[str, ...]) -> Decoded:
    return decode_v2(json.dumps(payload).encode(), schema_, outputs)


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


def test_nan_infinity_and_overflow_are_read_then_refused_as_not_finite() -> None:
    for body in (
        json.dumps({"instances": [ROW | {"a": float("nan")}]}).encode(),
        b'{"a": 0.5, "b": 1e999, "c": 0}',
        b'{"instances": [[0.5, -Infinity, 0]]}',
    ):
        err = error_of(lambda body=body: decode_v1(body, schema()))
        assert err.reasons == {"not_finite"}, body


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b'{"a": }', b"[1,]", b"\xff", b"[" * 3000, b'{"instances": [[1, 2, 3]]} x'],
)
def test_malformed_json_is_a_400(body: bytes) -> None:
    for decode in (lambda: decode_v1(body, schema()), lambda: decode_v2(body, schema(), OUTPUTS)):
        err = error_of(decode)
        assert err.status == 400
        assert err.reasons == {"malformed_json"}
        assert err.errors[0].msg.startswith("malformed JSON")


@pytest.mark.parametrize(
    "body",
    [
        b'{"instances": [{"a": 0.5, "b": 5, "\xff": 0}]}',  # a key that is not UTF-8
        b'{"instances": [[0.5, 5, 0]], "\xc3\x28": 1}',
        b'{"instances": [{"a": 0.5, "b": 5, "\\ud800": 0}]}',  # a lone surrogate escape
        b'{"instances": [[0.5, 5, 0]], "\\udfff": 1}',
    ],
)
def test_a_key_that_is_no_valid_unicode_is_a_4xx_on_both_protocols(body: bytes) -> None:
    v2_body = body.replace(b'"instances": [[0.5, 5, 0]]', b'"inputs": []')
    for decode in (
        lambda: decode_v1(body, schema()),
        lambda: decode_v2(v2_body, schema(), OUTPUTS),
    ):
        err = error_of(decode)
        assert 400 <= err.status < 500
        assert err.reasons <= {"malformed_json", "extra_field", "missing_field", "wrong_type"}


def test_a_byte_order_mark_is_ignored() -> None:
    body = b"\xef\xbb\xbf" + json.dumps({"instances": [ROW]}).encode()
    assert decode_v1(body, schema()).batch.features.tolist() == [[0.5, 5.0, 0.0]]


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


@pytest.mark.parametrize("value", ["identity", "IDENTITY", " identity ", "identity, identity", ""])
def test_identity_content_encodings_pass(value: str) -> None:
    check_content_encoding(value)


@pytest.mark.parametrize("value", ["gzip", "br", "Deflate", "gzip, identity", "identity,br"])
def test_other_content_encodings_are_a_415(value: str) -> None:
    err = error_of(lambda: check_content_encoding(value))
    assert err.status == 415
    assert err.reasons == {"wrong_content_type"}
    assert list(err.errors[0].loc) == ["header", "content-encoding"]
    assert "identity" in err.errors[0].msg
    assert value in err.errors[0].msg


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
        # Nested data has one level per dimension, each list as long as its dimension
        # (the same total is not enough); values in it are named by their nested index.
        (
            {"inputs": [tensor(data=[[0.5, 5], [0, 1, 0, -1]])]},
            "wrong_type",
            ["body", "inputs", 0, "data", 0],
        ),
        (
            {"inputs": [tensor(data=[[0.5, 5], [0, 1], [0, -1]])]},
            "wrong_type",
            ["body", "inputs", 0, "data"],
        ),
        (
            {"inputs": [tensor(data=[[0.5, 5, 0], 1])]},
            "wrong_type",
            ["body", "inputs", 0, "data", 1],
        ),
        (
            {"inputs": [tensor(shape=[2, 1, 3], data=[[[0.5, 5, 0]], [[1, 0], [-1]]])]},
            "wrong_type",
            ["body", "inputs", 0, "data", 1],
        ),
        (
            {"inputs": [tensor(shape=[2, 1, 3], data=[[[0.5, 5]], [[0, 1, 0, -1]]])]},
            "wrong_type",
            ["body", "inputs", 0, "data", 0, 0],
        ),
        (
            {"inputs": [tensor(data=[[[0.5], [5], [0]], [[1], [0], [-1]]])]},
            "wrong_type",
            ["body", "inputs", 0, "data", 0, 0],
        ),
        (
            {"inputs": [tensor(data=[[0.5, 5, 0], [1, "0", -1]])]},
            "wrong_type",
            ["body", "inputs", 0, "data", 1, 1],
        ),
        (
            {"inputs": [tensor(data=[[0.5, 5, 0], [1, 99, -1]])]},
            "out_of_range",
            ["body", "inputs", 0, "data", 1, 1],
        ),
        (
            {
                "inputs": [
                    {"name": "a", "shape": [2, 1], "datatype": "FP64", "data": [[0.5], [1]]},
                    {"name": "b", "shape": [2, 1], "datatype": "FP64", "data": [[5], [99]]},
                    {"name": "c", "shape": [2], "datatype": "FP64", "data": [0, -1]},
                ]
            },
            "out_of_range",
            ["body", "inputs", 1, "data", 1, 0],
        ),
    ],
)
def test_v2_errors_name_the_field_and_reason(payload, reason: str, loc: list) -> None:
    err = error_of(lambda: batch_from_v2(payload, schema(), OUTPUTS))
    assert err.status == 422
    assert reason in err.reasons
    assert list(err.errors[0].loc) == loc, err.errors


def test_v2_an_integer_tensor_takes_whole_numbers_within_its_type() -> None:
    """Read as float64 for the model, but a client's INT8 13.2 is its mistake, said at the value
    (another v2 server would truncate it); a floating type takes any number."""
    fraction = {"inputs": [tensor(datatype="INT8", data=[0, 5, 0, 1, 0.5, -1])]}
    err = error_of(lambda: batch_from_v2(fraction, schema(), OUTPUTS))
    assert (err.status, err.reasons) == (422, {"wrong_type"})
    assert [(list(e.loc), e.msg) for e in err.errors] == [
        (["body", "inputs", 0, "data", 4], "0.5 is not a valid INT8 value")
    ]
    negative = {"inputs": [tensor(datatype="UINT8", data=[[0, 5, 0], [1, 0, -1]])]}
    err = error_of(lambda: batch_from_v2(negative, schema(), OUTPUTS))
    assert [list(e.loc) for e in err.errors] == [["body", "inputs", 0, "data", 1, 2]]
    columns = {"inputs": [
        {"name": n, "shape": [1], "datatype": "INT16", "data": [v]}
        for n, v in zip(NAMES, (1, 40000, 0), strict=True)
    ]}  # fmt: skip
    err = error_of(lambda: batch_from_v2(columns, schema(), OUTPUTS))
    assert [list(e.loc) for e in err.errors] == [["body", "inputs", 1, "data", 0]]
    for datatype in ("INT8", "INT64", "UINT16"):  # whole and in range: taken
        whole = {"inputs": [tensor(datatype=datatype, data=[0, 5, 0, 1, 0, 1])]}
        assert batch_from_v2(whole, schema(), OUTPUTS).batch.features.shape == (2, 3)
    floats = {"inputs": [tensor(datatype="FP32", data=[0.5, 5, 0, 1, 0, -1])]}
    assert batch_from_v2(floats, schema(), OUTPUTS).batch.features.shape == (2, 3)


def test_v2_nested_rows_that_disagree_with_the_shape_are_refused_on_both_paths() -> None:
    """Twelve values then fourteen: as many as [2, 13] holds, but not rows of 13. Refused
    (not re-chunked), each row at fault named, the same way whether msgspec takes the body
    (typed path) or refuses it (NaN elsewhere: the explainer)."""
    ragged = [[0.5, 5], [0, 1, 0, -1]]
    typed = error_of(lambda: batch_from_v2({"inputs": [tensor(data=ragged)]}, schema(), OUTPUTS))
    nan = [[0.5, 5], [0, 1, 0, float("nan")]]
    explained = error_of(lambda: batch_from_v2({"inputs": [tensor(data=nan)]}, schema(), OUTPUTS))
    for err in (typed, explained):
        assert (err.status, err.reasons) == (422, {"wrong_type"})
        assert err.body()["detail"] == [
            {
                "loc": ["body", "inputs", 0, "data", 0],
                "msg": "row 0 has 2 values, shape [2, 3] says 3",
                "type": "wrong_type",
            },
            {
                "loc": ["body", "inputs", 0, "data", 1],
                "msg": "row 1 has 4 values, shape [2, 3] says 3",
                "type": "wrong_type",
            },
        ]
    assert (
        typed.message
        == "body.inputs.0.data.0: row 0 has 2 values, shape [2, 3] says 3 (and 1 more)"
    )
    rows = error_of(
        lambda: batch_from_v2({"inputs": [tensor(data=[[0.5, 5]] * 3)]}, schema(), OUTPUTS)
    )
    assert rows.errors[0].msg == "data has 3 rows, shape [2, 3] says 2"
    deep = error_of(
        lambda: batch_from_v2(
            {
                "inputs": [
                    tensor(
                        shape=[2, 2, 3], data=[[[0.5, 5, 0]] * 2, [[1, 0, -1]] * 2 + [[0, 0, 0]]]
                    )
                ]
            },
            schema(),
            OUTPUTS,
        )
    )
    assert list(deep.errors[0].loc) == ["body", "inputs", 0, "data", 1]
    assert deep.errors[0].msg == "row 1 has 3 rows, shape [2, 2, 3] says 2"
    leaf = error_of(
        lambda: batch_from_v2(
            {"inputs": [tensor(shape=[1, 2, 3], data=[[[0.5, 5, 0], [1, 0]]])]}, schema(), OUTPUTS
        )
    )
    assert list(leaf.errors[0].loc) == ["body", "inputs", 0, "data", 0, 1]
    assert leaf.errors[0].msg == "row [0, 1] has 2 values, shape [1, 2, 3] says 3"


@pytest.mark.parametrize(
    ("outputs", "loc", "msg"),
    [
        (["predict"], ("body", "outputs", 0), 'expected an object {"name": ...}, got string'),
        (
            [{"name": "predict"}, 7],
            ("body", "outputs", 1),
            'expected an object {"name": ...}, got int',
        ),
        ([{"name": 7}], ("body", "outputs", 0, "name"), "expected a string"),
    ],
)
def test_v2_outputs_that_are_not_objects_are_named_as_such(outputs, loc, msg) -> None:
    payload = {"inputs": [tensor()], "outputs": outputs}
    err = error_of(lambda: batch_from_v2(payload, schema(), OUTPUTS))
    assert err.reasons == {"wrong_type"}
    assert [(e.loc, e.msg) for e in err.errors] == [(loc, msg)]


def test_v2_an_output_without_a_name_is_missing_its_name() -> None:
    payload = {"inputs": [tensor()], "outputs": [{"parameters": {}}]}
    err = error_of(lambda: batch_from_v2(payload, schema(), OUTPUTS))
    assert err.reasons == {"missing_field"}
    assert [e.loc for e in err.errors] == [("body", "outputs", 0, "name")]


def test_v2_an_output_asked_twice_is_refused() -> None:
    payload = {
        "inputs": [tensor()],
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}, {"name": "predict"}],
    }
    err = error_of(lambda: batch_from_v2(payload, schema(), OUTPUTS))
    assert err.status == 422
    assert err.reasons == {"extra_field"}
    assert [(e.loc, e.msg) for e in err.errors] == [
        (("body", "outputs", 2, "name"), 'output "predict" asked twice')
    ]
    one_each = payload | {"outputs": [{"name": "predict_proba"}, {"name": "predict"}]}
    assert batch_from_v2(one_each, schema(), OUTPUTS).outputs == ("predict_proba", "predict")


@pytest.mark.parametrize(
    ("body", "msg"),
    [
        (
            b'{"instances": [{"a": 1e400, "b": 5, "c": 0}]}',
            "inf is not finite or too large for float64",
        ),
        (b'{"a": -1e400, "b": 5, "c": 0}', "-inf is not finite or too large for float64"),
        (b'{"instances": [[1e400, 5, 0]]}', "a: inf is not finite or too large for float64"),
        (b'{"instances": [[0.5, 5, NaN]]}', "c: nan is not a finite number"),
        (
            b'{"instances": [{"a": ' + b"9" * 400 + b', "b": 5, "c": 0}]}',
            "number too large for float64",
        ),
    ],
)
def test_v1_an_infinite_number_reads_as_too_large_for_float64(body: bytes, msg: str) -> None:
    err = error_of(lambda: decode_v1(body, schema()))
    assert err.reasons == {"not_finite"}
    assert [e.msg for e in err.errors] == [msg]


def test_v2_an_infinite_number_reads_as_too_large_for_float64() -> None:
    body = json.dumps({"inputs": [tensor(data=[0.5, 5, 0, 1, 0, 12345.5])]}).encode()
    err = error_of(lambda: decode_v2(body.replace(b"12345.5", b"-1e400"), schema(), OUTPUTS))
    assert [e.msg for e in err.errors] == ["c: -inf is not finite or too large for float64"]


def test_the_typed_checks_say_inf_is_too_large_for_float64() -> None:
    """check_values, on rows msgspec decoded (it reads 1e400 as inf in some forms)."""
    rows = [(float("inf"), 5.0, 0.0), (0.5, float("-inf"), float("nan"))]
    err = error_of(lambda: v1_batch(rows, ("body", "instances"), schema()))
    assert [(e.loc, e.msg) for e in err.errors] == [
        (("body", "instances", 0, 0), "a: inf is not finite or too large for float64"),
        (("body", "instances", 1, 1), "b: -inf is not finite or too large for float64"),
        (("body", "instances", 1, 2), "c: nan is not a finite number"),
    ]


def test_v2_null_optional_fields_are_accepted() -> None:
    """id, parameters and outputs (and a tensor's parameters) may be null, as absent."""
    payload = {"id": None, "parameters": None, "outputs": None, "inputs": [tensor(parameters=None)]}
    decoded = batch_from_v2(payload, schema(), OUTPUTS)
    assert decoded.batch.features.tolist() == [[0.5, 5.0, 0.0], [1.0, 0.0, -1.0]]
    assert (decoded.id, decoded.outputs) == (None, None)
    # the explainer (NaN: msgspec refuses the body) names only the NaN
    nan = tensor(data=[0.5, 5, 0, 1, 0, float("nan")])
    err = error_of(lambda: batch_from_v2(payload | {"inputs": [nan]}, schema(), OUTPUTS))
    assert err.reasons == {"not_finite"}
    assert [e.loc for e in err.errors] == [("body", "inputs", 0, "data", 5)]
    bad = error_of(lambda: batch_from_v2(payload | {"parameters": []}, schema(), OUTPUTS))
    assert [e.loc for e in bad.errors] == [("body", "parameters")]


# Edge bodies and what they become (reject policy): the matrix, or the refusal's
# status, reasons and the loc of its first detail.
EDGE_BODIES = [
    (b'{"instances": [{"a": 0.5, "b": 5, "c": 0}]}', [[0.5, 5.0, 0.0]]),
    (b'{"instances": [{"c": 0, "b": 5, "a": 1}, [0.5, 5, 0.0]]}', [[1, 5, 0], [0.5, 5, 0]]),
    (b'{"instances": [{"a": 0.5, "a": 0.7, "b": 5, "c": 0}]}', [[0.7, 5.0, 0.0]]),  # the last
    (b'{"instances": [{"a": 1e400, "b": 5, "c": 0}]}', (422, "not_finite", [0, "a"])),
    (b'{"instances": [{"a": ' + b"9" * 400 + b', "b": 5, "c": 0}]}', (422, "not_finite", [0, "a"])),
    (b'{"instances": [{"a": 18446744073709551616, "b": 5, "c": 0}]}', (422, "out_of_range", [0, "a"])),  # noqa: E501
    (b'{"instances": [{"a": true, "b": 5, "c": 0}]}', (422, "wrong_type", [0, "a"])),
    (b'{"instances": [{"a": null, "b": 5, "c": 0}]}', (422, "wrong_type", [0, "a"])),
    (b'{"instances": [{"a": "0.5", "b": 5, "c": 0}]}', (422, "wrong_type", [0, "a"])),
    (b'{"instances": [{"a": 0.5, "b": 5}]}', (422, "missing_field", [0, "c"])),
    (b'{"instances": [{"a": 0.5, "b": 5, "c": 0, "d": 1}]}', (422, "extra_field", [0, "d"])),
    (b'{"instances": [[0.5, 5]], "extra": 1}', (422, "extra_field", "extra")),
    (b'{"instances": [[0.5, 5, 0, 1]]}', (422, "extra_field", [0, 3])),
    (b'{"instances": [[0.5, 5, NaN]]}', (422, "not_finite", [0, 2])),
    (b'{"instances": [[0.5, 50, -3]]}', (422, "out_of_range", [0, 1])),
    (b'{"instances": []}', (422, "empty_batch", [])),
    (b'{"instances": ' + b"[[0.5, 5, 0]," * 10 + b"[0.5, 5, 0]]}", (400, "malformed_json", None)),
    (b'{"instances": ' + b"[0.5, 5, 0], " * 11 + b"]}", (400, "malformed_json", None)),
    (b'{"instances": [' + b"[0.5, 5, 0], " * 10 + b"[0.5, 5, 0]]}", (422, "too_many_instances", [])),  # noqa: E501
    (b'{"instances": {}}', (422, "wrong_type", [])),
    (b'{"a": 0.5, "b": 5, "c": 0}', [[0.5, 5.0, 0.0]]),
    (b"[1, 2, 3]", (422, "wrong_type", None)),
    (b'{"instances": [1]}', (422, "wrong_type", [0])),
    (b'{"instances": [[0.5, 5, 0]]', (400, "malformed_json", None)),
]  # fmt: skip


@pytest.mark.parametrize(("body", "expected"), EDGE_BODIES, ids=range(len(EDGE_BODIES)))
def test_edge_bodies(body: bytes, expected) -> None:
    if isinstance(expected, list):
        assert decode_v1(body, schema()).batch.features.tolist() == expected
        return
    status, reason, where = expected
    err = error_of(lambda: decode_v1(body, schema()))
    assert (err.status, sorted(err.reasons)) == (status, [reason])
    if where is None:
        loc = ["body"]
    elif isinstance(where, str):
        loc = ["body", where]
    else:
        loc = ["body", "instances", *where]
    assert list(err.errors[0].loc) == loc


_VALUES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-2, max_value=12),
    st.integers(min_value=-3, max_value=12),
    st.sampled_from([True, False, None, "1", 10**400, 1e308, [], {}]),
)
_OBJECT = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), _VALUES, max_size=4)
_LIST = st.lists(_VALUES, min_size=2, max_size=4)


def expected_reasons(instances: list) -> set[str]:
    """What is wrong with ``{"instances": instances}``, worked out without the service's
    code: the reasons of the refusal, or an empty set."""
    if not instances:
        return {"empty_batch"}
    if len(instances) > 10:
        return {"too_many_instances"}
    reasons: set[str] = set()

    def value(v) -> None:
        if type(v) not in (int, float):
            reasons.add("wrong_type")
        elif abs(v) > sys.float_info.max:
            reasons.add("not_finite")

    for instance in instances:
        if isinstance(instance, dict):
            if set(instance) - set(NAMES):
                reasons.add("extra_field")
            if set(NAMES) - set(instance):
                reasons.add("missing_field")
            for name in NAMES:
                if name in instance:
                    value(instance[name])
        elif isinstance(instance, list):
            if len(instance) < 3:
                reasons.add("missing_field")
            if len(instance) > 3:
                reasons.add("extra_field")
            for v in instance[:3]:
                value(v)
        else:
            reasons.add("wrong_type")
    return reasons


def out_of_range(instances: list, policy: str) -> bool:
    schema_ = schema(policy)
    rows = np.array([[i[n] for n in NAMES] if isinstance(i, dict) else i for i in instances])
    return bool(((rows < schema_.low) | (rows > schema_.high)).any())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    instances=st.lists(st.one_of(_OBJECT, _LIST, _VALUES), max_size=12),
    policy=st.sampled_from(["reject", "flag"]),
)
def test_any_v1_body_is_decoded_or_refused_for_exactly_what_is_wrong(instances, policy) -> None:
    body = json.dumps({"instances": instances}).encode()
    wrong = expected_reasons(instances)
    if not wrong and policy == "reject" and out_of_range(instances, policy):
        wrong = {"out_of_range"}
    if wrong:
        assert error_of(lambda: decode_v1(body, schema(policy))).reasons == wrong
        return
    batch = decode_v1(body, schema(policy)).batch
    rows = [[i[n] for n in NAMES] if isinstance(i, dict) else i for i in instances]
    assert batch.features.tolist() == [[float(v) for v in r] for r in rows]
    assert bool(batch.warnings) == out_of_range(instances, policy)


def _around_the_range(j: int) -> st.SearchStrategy:
    """Feature j's numbers of ``schema()``: mostly inside its accepted range, often at a
    bound or the float right beside one, inside or out."""
    s = schema()
    low, high = float(s.low[j]), float(s.high[j])
    edges = [low, high, float(np.nextafter(low, -np.inf)), float(np.nextafter(high, np.inf))]
    edges += [float(np.nextafter(low, np.inf)), float(np.nextafter(high, -np.inf))]
    return st.one_of(
        st.floats(min_value=low, max_value=high),
        st.integers(min_value=math.ceil(low), max_value=math.floor(high)),
        st.sampled_from(edges),
    )


_COLUMNS = [_around_the_range(j) for j in range(len(NAMES))]
_NEAR_BOUNDS = st.one_of(
    st.fixed_dictionaries(dict(zip(NAMES, _COLUMNS, strict=True))),
    st.tuples(*_COLUMNS).map(list),
)
_ABOVE_A = float(np.nextafter(1.1, np.inf))  # a's upper bound is 1.1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances=st.lists(_NEAR_BOUNDS, max_size=11))
@example(instances=[[1.1, 11.0, -1.2]])  # every value at its upper or lower bound: taken
@example(instances=[[_ABOVE_A, 5, 0]])  # one float above: left to the checking way
@example(instances=[{"a": 0.5, "b": 5, "c": -1.2000000000000002}])
@example(instances=[[0.5, 5, 0]] * 11)  # one more than the limit
@example(instances=[])
def test_the_in_range_decoder_takes_exactly_the_bodies_with_nothing_to_check(instances) -> None:
    """The shortcut of decode_v1: a body the in-range decoder takes is one the checking
    way accepts with nothing flagged, as the same matrix; every other body it leaves to
    the checking way. Numbers at the bounds and a float beside them on either side, and
    no or too many instances (bodies of other faults: the test above)."""
    schema_ = schema("flag")
    body = json.dumps({"instances": instances}).encode()
    try:
        shortcut = v1_matrix(schema_.v1_in_range(body).instances)
    except REFUSED:
        shortcut = None
    try:
        rows = schema_.v1.decode_envelope(body).instances
        checked = v1_batch(rows, ("body", "instances"), schema_)
    except (*REFUSED, InputError):
        checked = None
    if checked is None or checked.warnings:
        assert shortcut is None
    else:
        assert shortcut is not None
        assert shortcut.tolist() == checked.features.tolist()
    if checked is not None:
        assert decode_v1(body, schema_).batch.features.tolist() == checked.features.tolist()


def test_a_schema_with_an_unbounded_feature_decodes_without_the_in_range_decoder() -> None:
    s = schema()
    unbounded = FeatureSchema(
        names=NAMES,
        train_min=s.train_min,
        train_max=s.train_max,
        low=s.low,
        high=np.array([1.1, np.inf, 1.2]),
        policy="reject",
        tolerance=0.1,
        max_instances=10,
    )
    assert unbounded.v1_in_range is None
    assert schema().v1_in_range is not None
    body = b'{"instances": [[0.5, 1e300, 0]]}'
    assert decode_v1(body, unbounded).batch.features.tolist() == [[0.5, 1e300, 0.0]]
    assert error_of(lambda: decode_v1(body, schema())).reasons == {"out_of_range"}
