"""Parse and validate request bodies into a float64 feature matrix.

Pure functions, no FastAPI: bytes or parsed JSON in, a ``Batch`` or an
``InputError`` out. Every error names the field at fault (``loc``, as FastAPI
does) and carries one of the reasons of ``catalog.INPUT_ERROR_REASONS``.

The common case (well-formed numbers) takes a fast path: a few whole-batch
checks and one ``np.array`` call. Only a batch that fails them is walked value
by value to say exactly what is wrong, so per-request cost stays small.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from typing import Any, Literal

import msgspec
import numpy as np
import orjson

from modelops_service.card import ModelCard

MAX_DETAILS = 20  # error details returned per request; all are counted

STATUS_BY_REASON = {
    "malformed_json": 400,
    "wrong_content_type": 415,
    "body_too_large": 413,
}
DEFAULT_STATUS = 422

Loc = tuple[str | int, ...]
_NUMBER_TYPES = frozenset((int, float))
V2_NUMERIC_DATATYPES = frozenset(
    {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
    | {"FP16", "FP32", "FP64"}
)
_V2_ENVELOPE = frozenset(("id", "parameters", "inputs", "outputs"))
_V2_TENSOR = frozenset(("name", "shape", "datatype", "data", "parameters"))


@dataclass(frozen=True)
class FieldError:
    loc: Loc
    msg: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"loc": list(self.loc), "msg": self.msg, "type": self.reason}


class InputError(Exception):
    """A request the service will not predict on: answered 4xx, counted by reason."""

    def __init__(self, errors: Sequence[FieldError], reasons: Iterable[str] = (), total: int = 0):
        self.errors = list(errors[:MAX_DETAILS])
        self.reasons = frozenset(reasons) | {e.reason for e in self.errors}
        self.total = max(total, len(errors))
        statuses = {STATUS_BY_REASON.get(r, DEFAULT_STATUS) for r in self.reasons}
        # Transport-level problems (400/413/415) come alone; otherwise 422.
        self.status = statuses.pop() if len(statuses) == 1 else DEFAULT_STATUS
        super().__init__(self.message)

    @classmethod
    def single(cls, loc: Loc, msg: str, reason: str) -> InputError:
        return cls([FieldError(loc, msg, reason)])

    @property
    def message(self) -> str:
        first = self.errors[0] if self.errors else None
        where = ".".join(str(p) for p in first.loc) if first else "body"
        more = f" (and {self.total - 1} more)" if self.total > 1 else ""
        return f"{where}: {first.msg if first else 'invalid input'}{more}"

    def body(self) -> dict[str, Any]:
        return {
            "error": self.message,
            "reasons": sorted(self.reasons),
            "errors_total": self.total,
            "detail": [e.as_dict() for e in self.errors],
        }


class _Errors:
    """Collects field errors: keeps the first MAX_DETAILS, counts all, remembers every reason."""

    def __init__(self) -> None:
        self.kept: list[FieldError] = []
        self.reasons: set[str] = set()
        self.total = 0

    def add(self, loc: Loc, msg: str, reason: str) -> None:
        self.total += 1
        self.reasons.add(reason)
        if len(self.kept) < MAX_DETAILS:
            self.kept.append(FieldError(loc, msg, reason))

    def __bool__(self) -> bool:
        return self.total > 0

    def raise_if_any(self) -> None:
        if self.total:
            raise InputError(self.kept, self.reasons, self.total)


# --- transport: content type, size, JSON ----------------------------------------


def check_content_type(value: str | None) -> None:
    media = (value or "").split(";", 1)[0].strip().lower()
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return
    raise InputError.single(
        ("header", "content-type"),
        f"expected application/json, got {value or 'no content type'}",
        "wrong_content_type",
    )


def body_too_large(limit: int) -> InputError:
    return InputError.single(("body",), f"body larger than {limit} bytes", "body_too_large")


def parse_json(body: bytes) -> Any:
    """orjson first; on failure the standard parser, which reads NaN and Infinity
    (as Python's json.dumps writes them), so those get a field-level not_finite
    error instead of a bare syntax error."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as fast_err:
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise InputError.single(
                ("body",), f"malformed JSON: {fast_err}", "malformed_json"
            ) from None


# --- the feature schema ------------------------------------------------------


@dataclass(frozen=True)
class FeatureSchema:
    names: tuple[str, ...]
    train_min: np.ndarray
    train_max: np.ndarray
    low: np.ndarray  # accepted range: training range widened by the tolerance
    high: np.ndarray
    policy: Literal["flag", "reject"]
    tolerance: float
    max_instances: int
    name_set: frozenset[str] = field(init=False)
    # An object's values in feature order, as a tuple (KeyError when one is missing).
    values_of: Callable[[dict], tuple] = field(init=False, repr=False, compare=False)

    # Decodes the usual /v1 body straight into typed rows (see ``batch_from_v1_body``).
    v1_decoder: _V1Decoder = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name_set", frozenset(self.names))
        object.__setattr__(self, "v1_decoder", _V1Decoder(self.names))
        getter = itemgetter(*self.names)
        if len(self.names) == 1:  # itemgetter of one key answers the value, not a tuple
            name = self.names[0]
            object.__setattr__(self, "values_of", lambda instance: (instance[name],))
        else:
            object.__setattr__(self, "values_of", getter)

    @classmethod
    def from_card(
        cls,
        card: ModelCard,
        *,
        tolerance: float,
        policy: Literal["flag", "reject"],
        max_instances: int,
    ) -> FeatureSchema:
        lo = np.array([f.min for f in card.features], dtype=np.float64)
        hi = np.array([f.max for f in card.features], dtype=np.float64)
        slack = (hi - lo) * tolerance
        return cls(
            names=card.feature_names,
            train_min=lo,
            train_max=hi,
            low=lo - slack,
            high=hi + slack,
            policy=policy,
            tolerance=tolerance,
            max_instances=max_instances,
        )

    @property
    def width(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class Batch:
    features: np.ndarray  # (n, n_features) float64, finite
    warnings: tuple[FieldError, ...] = ()  # flagged (not rejected) values, at most MAX_DETAILS
    flagged: frozenset[str] = frozenset()  # reasons flagged in this batch

    def __len__(self) -> int:
        return len(self.features)


LocFn = Callable[[int, int], Loc]  # (row, column) -> loc of that value in the request


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _number(value: Any, loc: Loc, what: str, errors: _Errors) -> float | None:
    """The float of a JSON number, or None after recording why it is not one.
    ``what`` names the value when ``loc`` does not (positional data)."""
    prefix = f"{what}: " if what else ""
    if type(value) not in _NUMBER_TYPES:  # bool is an int subclass: excluded on purpose
        errors.add(loc, f"{prefix}expected a number, got {_json_type(value)}", "wrong_type")
        return None
    try:
        number = float(value)
    except OverflowError:
        errors.add(loc, f"{prefix}number too large for float64", "not_finite")
        return None
    if not math.isfinite(number):
        errors.add(loc, f"{prefix}{number} is not a finite number", "not_finite")
        return None
    return number


def _check_count(n: int, loc: Loc, schema: FeatureSchema) -> None:
    if n == 0:
        raise InputError.single(loc, "at least one instance is required", "empty_batch")
    if n > schema.max_instances:
        raise InputError.single(
            loc,
            f"{n} instances, more than the limit of {schema.max_instances}",
            "too_many_instances",
        )


def _check_values(features: np.ndarray, schema: FeatureSchema, loc_of: LocFn) -> Batch:
    """Finite and in range: the vectorized checks every batch goes through."""
    finite = np.isfinite(features)
    if not finite.all():
        errors = _Errors()
        for i, j in np.argwhere(~finite):
            errors.add(
                loc_of(int(i), int(j)),
                f"{schema.names[j]}: {features[i, j]} is not a finite number",
                "not_finite",
            )
        errors.raise_if_any()
    outside = (features < schema.low) | (features > schema.high)
    if not outside.any():
        return Batch(features)
    errors = _Errors()
    for i, j in np.argwhere(outside):
        errors.add(
            loc_of(int(i), int(j)),
            f"{schema.names[j]}: {features[i, j]:g} is outside the accepted range "
            f"[{schema.low[j]:g}, {schema.high[j]:g}] (training range "
            f"[{schema.train_min[j]:g}, {schema.train_max[j]:g}] plus "
            f"{schema.tolerance:.0%} tolerance)",
            "out_of_range",
        )
    if schema.policy == "reject":
        errors.raise_if_any()
    return Batch(features, tuple(errors.kept), frozenset(errors.reasons))


def _to_array(rows: list) -> np.ndarray | None:
    try:
        return np.array(rows, dtype=np.float64)
    except (OverflowError, ValueError):
        return None


# --- /v1/predict --------------------------------------------------------------


def _fast_rows(instances: list, schema: FeatureSchema) -> np.ndarray | None:
    """The matrix if every instance is well-formed and every value a number, else None.

    C-level passes only (no Python loop per value): one over the instances (type and
    length), one to flatten them in feature order, one over the values' types, one
    array build; that is about half the cost of building nested lists and converting
    those. An object holds exactly the features when it has as many keys and each
    feature is among them."""
    width = schema.width
    first = instances[0]
    if type(first) is dict:
        if not all(type(i) is dict and len(i) == width for i in instances):
            return None
        try:
            flat = list(chain.from_iterable(map(schema.values_of, instances)))
        except KeyError:
            return None
    elif type(first) is list:
        if not all(type(i) is list and len(i) == width for i in instances):
            return None
        flat = list(chain.from_iterable(instances))
    else:
        return None
    if not _NUMBER_TYPES.issuperset(map(type, flat)):
        return None
    array = _to_array(flat)
    return None if array is None else array.reshape(len(instances), width)


def _slow_rows(instances: list, schema: FeatureSchema, loc_of_row: Callable[[int], Loc]):
    """Walk every value and record what is wrong; return the matrix if nothing is."""
    names, width = schema.names, schema.width
    features = np.empty((len(instances), width), dtype=np.float64)
    errors = _Errors()
    for i, instance in enumerate(instances):
        loc = loc_of_row(i)
        if isinstance(instance, dict):
            for name in instance:
                if name not in schema.name_set:
                    errors.add((*loc, name), f"unexpected field {name!r}", "extra_field")
            for j, name in enumerate(names):
                if name not in instance:
                    errors.add((*loc, name), f"field {name!r} is required", "missing_field")
                    continue
                number = _number(instance[name], (*loc, name), "", errors)
                if number is not None:
                    features[i, j] = number
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
                number = _number(value, (*loc, j), names[j], errors)
                if number is not None:
                    features[i, j] = number
        else:
            errors.add(
                loc,
                f"an instance is an object of features or a list of {width} numbers, "
                f"got {_json_type(instance)}",
                "wrong_type",
            )
    errors.raise_if_any()
    return features


def rows_to_batch(instances: list, schema: FeatureSchema, prefix: Loc, indexed: bool) -> Batch:
    """Instances (objects keyed by feature, or lists in schema order) to a checked Batch."""
    _check_count(len(instances), prefix, schema)

    def loc_of_row(i: int) -> Loc:
        return (*prefix, i) if indexed else prefix

    def loc_of(i: int, j: int) -> Loc:
        key = schema.names[j] if isinstance(instances[i], dict) else j
        return (*loc_of_row(i), key)

    features = _fast_rows(instances, schema)
    if features is None:
        features = _slow_rows(instances, schema, loc_of_row)
    return _check_values(features, schema, loc_of)


class _V1Decoder:
    """msgspec's typed JSON decoder for the common /v1 body: ``{"instances": [...]}``
    whose instances are objects with exactly the features (numbers), or lists of
    numbers. It checks the types while it parses (no dicts built, no per-value type
    scan in Python): for 100 objects about half the cost of orjson plus the checks.
    Anything it refuses goes the general way (orjson, then the walk that names every
    field at fault), so errors read the same whichever way a body went."""

    def __init__(self, names: tuple[str, ...]) -> None:
        fields = [(f"f{j}", float, msgspec.field(name=name)) for j, name in enumerate(names)]
        self.instance = msgspec.defstruct("Instance", fields, forbid_unknown_fields=True, gc=False)
        envelope = msgspec.defstruct(
            "Envelope",
            [("instances", list[self.instance | tuple[float, ...]])],  # type: ignore[name-defined]
            forbid_unknown_fields=True,
        )
        self.width = len(names)
        self._decode = msgspec.json.Decoder(envelope).decode

    def instances(self, body: bytes) -> list | None:
        """The instances as tuples of floats in feature order (Instance structs for
        objects), or None when this decoder does not take the body."""
        try:
            return self._decode(body).instances
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None


def batch_from_v1_body(body: bytes, schema: FeatureSchema) -> Batch:
    """A /v1 request body to a checked Batch: the typed decoder for the usual body,
    else ``parse_json`` and ``batch_from_v1``. Both give the same Batch or InputError."""
    decoder = schema.v1_decoder
    instances = decoder.instances(body)
    if instances is None:
        return batch_from_v1(parse_json(body), schema)
    prefix: Loc = ("body", "instances")
    _check_count(len(instances), prefix, schema)
    instance, width, astuple = decoder.instance, decoder.width, msgspec.structs.astuple
    rows = [astuple(i) if type(i) is instance else i for i in instances]
    if not all(len(r) == width for r in rows):  # a list of the wrong length: say which
        return batch_from_v1(parse_json(body), schema)
    array = _to_array(list(chain.from_iterable(rows)))
    if array is None:
        return batch_from_v1(parse_json(body), schema)
    names = schema.names

    def loc_of(i: int, j: int) -> Loc:
        return (*prefix, i, names[j] if type(instances[i]) is instance else j)

    return _check_values(array.reshape(len(rows), width), schema, loc_of)


def batch_from_v1(payload: Any, schema: FeatureSchema) -> Batch:
    """``{"instances": [...]}`` or one instance; each an object or a list of numbers."""
    if isinstance(payload, dict) and "instances" in payload:
        errors = _Errors()
        for key in payload:
            if key != "instances":
                errors.add(
                    ("body", key),
                    f"unexpected field {key!r} beside 'instances'",
                    "extra_field",
                )
        errors.raise_if_any()
        instances = payload["instances"]
        if not isinstance(instances, list):
            raise InputError.single(
                ("body", "instances"),
                f"expected a list of instances, got {_json_type(instances)}",
                "wrong_type",
            )
        return rows_to_batch(instances, schema, ("body", "instances"), indexed=True)
    if isinstance(payload, dict):
        return rows_to_batch([payload], schema, ("body",), indexed=False)
    raise InputError.single(
        ("body",),
        f'expected an object (one instance, or {{"instances": [...]}}), got {_json_type(payload)}',
        "wrong_type",
    )


# --- Open Inference Protocol (KServe v2) ------------------------------------------


@dataclass(frozen=True)
class V2Request:
    batch: Batch
    id: str | None
    outputs: tuple[str, ...] | None  # requested outputs; None: all of them


def _flatten(data: list) -> list:
    while data and all(type(d) is list for d in data):
        data = list(chain.from_iterable(data))
    return data


def _tensor(tensor: Any, loc: Loc, errors: _Errors) -> tuple[str, list[int], list] | None:
    """(name, shape, flat data) of one input tensor, or None after recording errors."""
    if not isinstance(tensor, dict):
        errors.add(loc, f"an input tensor is an object, got {_json_type(tensor)}", "wrong_type")
        return None
    before = errors.total
    for key in tensor:
        if key not in _V2_TENSOR:
            errors.add((*loc, key), f"unexpected field {key!r}", "extra_field")
    for key in ("name", "shape", "datatype", "data"):
        if key not in tensor:
            errors.add((*loc, key), f"field {key!r} is required", "missing_field")
    if errors.total > before:
        return None
    name, shape, datatype, data = (tensor[k] for k in ("name", "shape", "datatype", "data"))
    if not isinstance(name, str):
        errors.add((*loc, "name"), "expected a string", "wrong_type")
    if not (isinstance(shape, list) and shape and all(type(s) is int and s >= 0 for s in shape)):
        errors.add((*loc, "shape"), "expected a list of non-negative integers", "wrong_type")
    if not isinstance(datatype, str) or datatype not in V2_NUMERIC_DATATYPES:
        errors.add(
            (*loc, "datatype"),
            f"datatype {datatype!r} is not numeric (use FP64, FP32 or an integer type)",
            "wrong_type",
        )
    if not isinstance(data, list):
        errors.add((*loc, "data"), f"expected an array, got {_json_type(data)}", "wrong_type")
    if errors.total > before:
        return None
    flat = _flatten(data)
    if len(flat) != math.prod(shape):
        errors.add(
            (*loc, "data"),
            f"shape {shape} holds {math.prod(shape)} values, data has {len(flat)}",
            "wrong_type",
        )
        return None
    return name, shape, flat


def _numbers(flat: list, loc: Loc, what: Callable[[int], str], errors: _Errors) -> np.ndarray:
    if _NUMBER_TYPES.issuperset(map(type, flat)):
        array = _to_array(flat)
        if array is not None:
            return array
    values = np.zeros(len(flat), dtype=np.float64)
    for k, value in enumerate(flat):
        number = _number(value, (*loc, k), what(k), errors)
        if number is not None:
            values[k] = number
    return values


def batch_from_v2(payload: Any, schema: FeatureSchema, output_names: Sequence[str]) -> V2Request:
    """An inference request: one [N, F] tensor, or one [N] (or [N, 1]) tensor per feature."""
    if not isinstance(payload, dict):
        raise InputError.single(
            ("body",),
            f"expected an inference request object, got {_json_type(payload)}",
            "wrong_type",
        )
    errors = _Errors()
    for key in payload:
        if key not in _V2_ENVELOPE:
            errors.add(("body", key), f"unexpected field {key!r}", "extra_field")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        errors.add(("body", "id"), "expected a string", "wrong_type")
    if "parameters" in payload and not isinstance(payload["parameters"], dict):
        errors.add(("body", "parameters"), "expected an object", "wrong_type")
    outputs = _requested_outputs(payload.get("outputs"), output_names, errors)
    inputs = payload.get("inputs")
    if inputs is None:
        errors.add(("body", "inputs"), "field 'inputs' is required", "missing_field")
    elif not isinstance(inputs, list) or not inputs:
        errors.add(("body", "inputs"), "expected a non-empty list of input tensors", "wrong_type")
    errors.raise_if_any()

    tensors = [_tensor(t, ("body", "inputs", k), errors) for k, t in enumerate(inputs)]
    errors.raise_if_any()
    if len(tensors) == 1 and tensors[0][0] not in schema.name_set:
        batch = _v2_matrix(tensors[0], schema, errors)
    else:
        batch = _v2_columns(tensors, schema, errors)
    return V2Request(batch=batch, id=request_id, outputs=outputs)


def _requested_outputs(
    outputs: Any, output_names: Sequence[str], errors: _Errors
) -> tuple[str, ...] | None:
    if outputs is None:
        return None
    if not isinstance(outputs, list):
        errors.add(("body", "outputs"), "expected a list of {'name': ...}", "wrong_type")
        return None
    names = []
    for k, out in enumerate(outputs):
        name = out.get("name") if isinstance(out, dict) else None
        if not isinstance(name, str):
            errors.add(("body", "outputs", k, "name"), "expected a string", "wrong_type")
        elif name not in output_names:
            errors.add(
                ("body", "outputs", k, "name"),
                f"unknown output {name!r}; this model has {', '.join(output_names)}",
                "extra_field",
            )
        else:
            names.append(name)
    return tuple(names)


def _v2_matrix(
    tensor: tuple[str, list[int], list], schema: FeatureSchema, errors: _Errors
) -> Batch:
    _, shape, flat = tensor
    loc = ("body", "inputs", 0)
    width = schema.width
    if len(shape) != 2:
        raise InputError.single(
            (*loc, "shape"), f"expected shape [N, {width}], got {shape}", "wrong_type"
        )
    n, columns = shape
    if columns != width:
        raise InputError.single(
            (*loc, "shape"),
            f"the model takes {width} features, shape {shape} has {columns}",
            "missing_field" if columns < width else "extra_field",
        )
    _check_count(n, (*loc, "shape"), schema)
    values = _numbers(
        flat, (*loc, "data"), lambda k: f"row {k // width} {schema.names[k % width]}", errors
    )
    errors.raise_if_any()
    return _check_values(
        values.reshape(n, width), schema, lambda i, j: (*loc, "data", i * width + j)
    )


def _v2_columns(
    tensors: list[tuple[str, list[int], list]], schema: FeatureSchema, errors: _Errors
) -> Batch:
    position: dict[str, int] = {}
    for k, (name, shape, _) in enumerate(tensors):
        loc = ("body", "inputs", k)
        if name not in schema.name_set:
            errors.add((*loc, "name"), f"unexpected input {name!r}: not a feature", "extra_field")
        elif name in position:
            errors.add((*loc, "name"), f"input {name!r} given twice", "extra_field")
        else:
            position[name] = k
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            errors.add((*loc, "shape"), f"expected shape [N] or [N, 1], got {shape}", "wrong_type")
    for name in schema.names:
        if name not in position:
            errors.add(
                ("body", "inputs"), f"input for feature {name!r} is required", "missing_field"
            )
    errors.raise_if_any()
    counts = {tensors[k][1][0] for k in position.values()}
    if len(counts) != 1:
        raise InputError.single(
            ("body", "inputs"), f"inputs disagree on N: {sorted(counts)}", "wrong_type"
        )
    n = counts.pop()
    _check_count(n, ("body", "inputs"), schema)
    columns = []
    for name in schema.names:
        k = position[name]
        loc = ("body", "inputs", k, "data")
        columns.append(_numbers(tensors[k][2], loc, lambda r, name=name: f"row {r} {name}", errors))
    errors.raise_if_any()
    order = [position[name] for name in schema.names]
    return _check_values(
        np.column_stack(columns), schema, lambda i, j: ("body", "inputs", order[j], "data", i)
    )
