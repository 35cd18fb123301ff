"""Request bodies in, ``Decoded`` or ``InputError`` out: the one way a body goes.

``decode_v1`` and ``decode_v2`` decode with msgspec's typed decoders and check the
result (``validation.py``). A body msgspec refuses goes to the explainer and nowhere
else: it is parsed leniently (orjson, then Python's json, which reads NaN, Infinity and
numbers beyond float64, as Python clients write them) and walked in the order the checks
run, to name every field at fault with its reason. When the walk finds nothing, the
payload goes through the typed checks (a non-finite number is named there); when those
pass too, msgspec's own complaint is the answer (e.g. a lone UTF-16 surrogate escape).
The explainer never returns a batch: a body is served only by the typed path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import msgspec
import orjson

from modelops_service.validation import (
    V2_NUMERIC_DATATYPES,
    Batch,
    Decoded,
    Errors,
    FeatureSchema,
    InferRequest,
    InputError,
    Loc,
    check_count,
    json_type,
    number_of,
    output_names,
    tensor_values,
    v1_batch,
    v1_matrix,
    v2_decoded,
)

# What msgspec raises for a body it will not decode: bad JSON or types (DecodeError and
# its ValidationError), invalid UTF-8 in a key, nesting deeper than its stack.
REFUSED = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
# Bodies the in-range decoder is tried on: a body with a value to flag is decoded twice,
# the first time up to that value; up to this size (a dozen rows) that costs a few
# microseconds, and the checks it saves are a tenth of a single-row request in process.
IN_RANGE_BODY_BYTES = 4096
_BOM = b"\xef\xbb\xbf"  # RFC 8259 lets a parser ignore it; some .NET clients send it
_DECODE_V2 = msgspec.json.Decoder(InferRequest).decode
_V2_ENVELOPE = frozenset(("id", "parameters", "inputs", "outputs"))
_V2_TENSOR = frozenset(("name", "shape", "datatype", "data", "parameters"))


def decode_v1(body: bytes, schema: FeatureSchema) -> Decoded:
    """``{"instances": [...]}`` or one instance; each an object of features or a list."""
    body = body.removeprefix(_BOM)
    if schema.v1_in_range is not None and len(body) <= IN_RANGE_BODY_BYTES:
        try:  # the usual small body: valid, nothing to flag, nothing left to check
            return Decoded(Batch(v1_matrix(schema.v1_in_range(body).instances)))
        except REFUSED:
            pass
    types = schema.v1
    try:
        rows = types.decode_envelope(body).instances
        prefix: Loc = ("body", "instances")
    except REFUSED:
        try:
            rows = [types.decode_instance(body)]
            prefix = ("body",)
        except REFUSED as refused:
            raise _explained(body, refused, lambda p: _explain_v1(p, schema)) from None
    return Decoded(v1_batch(rows, prefix, schema))


def decode_v2(body: bytes, schema: FeatureSchema, served: Sequence[str]) -> Decoded:
    """An inference request: one [N, F] tensor, or one [N] (or [N, 1]) tensor per feature."""
    body = body.removeprefix(_BOM)
    try:
        request = _DECODE_V2(body)
    except REFUSED as refused:
        raise _explained(body, refused, lambda p: _explain_v2(p, schema, served)) from None
    return v2_decoded(request, schema, served)


# --- the explainer ----------------------------------------------------------------


def _explained(body: bytes, refused: Exception, explain: Any) -> InputError:
    """The InputError that names what is wrong with a body msgspec refused."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as strict:
        try:
            payload = json.loads(body, object_pairs_hook=_unicode_keys)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            return _malformed(strict)
    try:
        explain(payload)
    except InputError as error:
        return error
    except msgspec.ValidationError:  # the walk passed a value the typed struct takes not
        pass
    return _malformed(refused)


def _unicode_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are text: a key with a lone surrogate escape ("\\ud800"),
    which Python's json reads but no UTF-8 answer can name, is malformed JSON."""
    for key, _ in pairs:
        key.encode()  # UnicodeEncodeError, a ValueError
    return dict(pairs)


def _malformed(error: Exception) -> InputError:
    return InputError.single(("body",), f"malformed JSON: {error}", "malformed_json")


def _explain_v1(payload: Any, schema: FeatureSchema) -> None:
    """Raise the InputError of a /v1 payload, if it has one."""
    if isinstance(payload, dict) and "instances" in payload:
        errors = Errors()
        for key in payload:
            if key != "instances":
                errors.add(
                    ("body", key), f"unexpected field {key!r} beside 'instances'", "extra_field"
                )
        errors.raise_if_any()
        instances = payload["instances"]
        if not isinstance(instances, list):
            raise InputError.single(
                ("body", "instances"),
                f"expected a list of instances, got {json_type(instances)}",
                "wrong_type",
            )
        prefix: Loc = ("body", "instances")
    elif isinstance(payload, dict):
        instances, prefix = [payload], ("body",)
    else:
        raise InputError.single(
            ("body",),
            "expected an object (one instance, or "
            f'{{"instances": [...]}}), got {json_type(payload)}',
            "wrong_type",
        )
    check_count(len(instances), prefix, schema)
    _walk_instances(instances, prefix, schema)
    envelope = msgspec.convert({"instances": instances}, schema.v1.envelope)
    v1_batch(envelope.instances, prefix, schema)  # type: ignore[attr-defined]


def _walk_instances(instances: list, prefix: Loc, schema: FeatureSchema) -> None:
    """Record what is wrong with each instance and value."""
    names, width = schema.names, schema.width
    errors = Errors()
    for i, instance in enumerate(instances):
        loc = (*prefix, i) if len(prefix) > 1 else prefix
        if isinstance(instance, dict):
            for name in instance:
                if name not in schema.name_set:
                    errors.add((*loc, name), f"unexpected field {name!r}", "extra_field")
            for name in names:
                if name in instance:
                    number_of(instance[name], (*loc, name), "", errors)
                else:
                    errors.add((*loc, name), f"field {name!r} is required", "missing_field")
        elif isinstance(instance, list):
            for j in range(len(instance), width):
                errors.add((*loc, j), f"missing value for feature {names[j]!r}", "missing_field")
            if len(instance) > width:
                errors.add(
                    (*loc, width),
                    f"{len(instance)} values, but the model takes {width} features",
                    "extra_field",
                )
            for j, value in enumerate(instance[:width]):
                number_of(value, (*loc, j), names[j], errors)
        else:
            errors.add(
                loc,
                f"an instance is an object of features or a list of {width} numbers, "
                f"got {json_type(instance)}",
                "wrong_type",
            )
    errors.raise_if_any()


def _explain_v2(payload: Any, schema: FeatureSchema, served: Sequence[str]) -> None:
    """Raise the InputError of an inference request payload, if it has one."""
    if not isinstance(payload, dict):
        raise InputError.single(
            ("body",),
            f"expected an inference request object, got {json_type(payload)}",
            "wrong_type",
        )
    errors = Errors()
    for key in payload:
        if key not in _V2_ENVELOPE:
            errors.add(("body", key), f"unexpected field {key!r}", "extra_field")
    if payload.get("id") is not None and not isinstance(payload["id"], str):
        errors.add(("body", "id"), "expected a string", "wrong_type")
    if payload.get("parameters") is not None and not isinstance(payload["parameters"], dict):
        errors.add(("body", "parameters"), "expected an object", "wrong_type")
    outputs = payload.get("outputs")
    if outputs is not None and not isinstance(outputs, list):
        errors.add(("body", "outputs"), "expected a list of {'name': ...}", "wrong_type")
    elif outputs is not None:
        _walk_outputs(outputs, served, errors)
    inputs = payload.get("inputs")
    if inputs is None:
        errors.add(("body", "inputs"), "field 'inputs' is required", "missing_field")
    elif not isinstance(inputs, list) or not inputs:
        errors.add(("body", "inputs"), "expected a non-empty list of input tensors", "wrong_type")
    errors.raise_if_any()
    assert isinstance(inputs, list)  # checked just above
    for k, tensor in enumerate(inputs):
        _walk_tensor(tensor, ("body", "inputs", k), errors)
    errors.raise_if_any()
    v2_decoded(msgspec.convert(payload, InferRequest), schema, served)


def _walk_outputs(outputs: list, served: Sequence[str], errors: Errors) -> None:
    """Each output asked for is an object with a name (other keys allowed), one served."""
    named: list[tuple[int, Any]] = []  # (index in outputs, name)
    for k, out in enumerate(outputs):
        if not isinstance(out, dict):
            errors.add(
                ("body", "outputs", k),
                f'expected an object {{"name": ...}}, got {json_type(out)}',
                "wrong_type",
            )
        elif "name" not in out:
            errors.add(("body", "outputs", k, "name"), "field 'name' is required", "missing_field")
        else:
            named.append((k, out["name"]))
    output_names(named, served, errors)


def _walk_tensor(tensor: Any, loc: Loc, errors: Errors) -> None:
    if not isinstance(tensor, dict):
        errors.add(loc, f"an input tensor is an object, got {json_type(tensor)}", "wrong_type")
        return
    before = errors.total
    for key in tensor:
        if key not in _V2_TENSOR:
            errors.add((*loc, key), f"unexpected field {key!r}", "extra_field")
    for key in ("name", "shape", "datatype", "data"):
        if key not in tensor:
            errors.add((*loc, key), f"field {key!r} is required", "missing_field")
    if errors.total > before:
        return
    shape, datatype = tensor["shape"], tensor["datatype"]
    if not isinstance(tensor["name"], str):
        errors.add((*loc, "name"), "expected a string", "wrong_type")
    if not (isinstance(shape, list) and shape and all(type(s) is int and s >= 0 for s in shape)):
        errors.add((*loc, "shape"), "expected a list of non-negative integers", "wrong_type")
    if not isinstance(datatype, str) or datatype not in V2_NUMERIC_DATATYPES:
        errors.add(
            (*loc, "datatype"),
            f"datatype {datatype!r} is not numeric (use FP64, FP32 or an integer type)",
            "wrong_type",
        )
    if not isinstance(tensor["data"], list):
        errors.add(
            (*loc, "data"), f"expected an array, got {json_type(tensor['data'])}", "wrong_type"
        )
    if errors.total == before:
        tensor_values(shape, tensor["data"], (*loc, "data"), errors)
