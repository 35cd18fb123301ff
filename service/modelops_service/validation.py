"""Request bodies to checked float64 feature matrices: one typed decoder per protocol.

Pure functions, no FastAPI: bytes in, a ``Decoded`` (the rows, and what the answer
needs) or an ``InputError`` out. Every error names the field at fault (``loc``, as
FastAPI does) and carries one of the reasons of ``catalog.INPUT_ERROR_REASONS``.

What a valid body is: the typed structs msgspec decodes a body into (types, required
and unknown fields checked while parsing, no dicts built), and the checks that need the
whole request (row count, tensor shapes, finite and in-range values, vectorized) on
those structs. ``decoding.py`` runs them, and explains a body msgspec refuses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Annotated, Any, Literal, NamedTuple, Union, get_args

import msgspec
import numpy as np

from modelops_service.card import ModelCard

MAX_DETAILS = 20  # error details returned per request; all are counted

STATUS_BY_REASON = {
    "malformed_json": 400,
    "wrong_content_type": 415,
    "body_too_large": 413,
}
DEFAULT_STATUS = 422

Loc = tuple[str | int, ...]
V2Datatype = Literal[
    "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "FP16", "FP32", "FP64"
]  # fmt: skip
V2_NUMERIC_DATATYPES = get_args(V2Datatype)
_NUMBER_TYPES = frozenset((int, float))  # bool is an int subclass: excluded on purpose


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


class Errors:
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

    def raise_if_any(self) -> None:
        if self.total:
            raise InputError(self.kept, self.reasons, self.total)


# --- transport: content type, size ----------------------------------------------


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


def check_content_encoding(value: str) -> None:
    """A ``Content-Encoding`` header: identity only (a list of codings, e.g. "gzip,
    identity", is checked in full; empty elements are no coding). A compressed body is
    refused by its header, never decompressed nor read as JSON."""
    for coding in value.split(","):
        if coding.strip().lower() not in ("identity", ""):
            raise InputError.single(
                ("header", "content-encoding"),
                f"this service reads identity (uncompressed) bodies only, "
                f"got content-encoding {value}",
                "wrong_content_type",
            )


def body_too_large(limit: int) -> InputError:
    return InputError.single(("body",), f"body larger than {limit} bytes", "body_too_large")


# --- the typed bodies -----------------------------------------------------------


class Tensor(msgspec.Struct, forbid_unknown_fields=True):
    """One input tensor of the Open Inference Protocol (data flat or nested, row-major)."""

    name: str
    shape: Annotated[list[Annotated[int, msgspec.Meta(ge=0)]], msgspec.Meta(min_length=1)]
    datatype: V2Datatype
    data: list[Any]  # numbers, checked against the shape and converted in one numpy call
    parameters: Any = None


class RequestedOutput(msgspec.Struct):  # other keys (e.g. parameters) are allowed
    name: str


class InferRequest(msgspec.Struct, forbid_unknown_fields=True):
    inputs: Annotated[list[Tensor], msgspec.Meta(min_length=1)]
    id: str | None = None
    parameters: dict[str, Any] | None = None  # not used; an object, or null like id
    outputs: list[RequestedOutput] | None = None


@dataclass(frozen=True)
class V1Types:
    """The typed /v1 bodies of one model: an instance is an object with exactly the
    features (numbers) or a list of as many numbers; the body is one instance or
    ``{"instances": [...]}``."""

    instance: type[msgspec.Struct]
    envelope: type[msgspec.Struct]
    decode_envelope: Any
    decode_instance: Any

    @classmethod
    def of(cls, names: tuple[str, ...]) -> V1Types:
        instance, envelope = _v1_structs(names, [float] * len(names))
        return cls(
            instance,
            envelope,
            msgspec.json.Decoder(envelope).decode,
            msgspec.json.Decoder(instance).decode,
        )


def in_range_decoder(
    names: tuple[str, ...], low: np.ndarray, high: np.ndarray, max_instances: int
) -> Callable[[bytes], Any]:
    """A decoder of ``{"instances": [...]}`` bodies whose numbers are held to their
    feature's accepted range [low, high] and the instance count to [1, max_instances]
    while msgspec parses: a body it takes is a valid batch with nothing to flag and needs
    no check after. A body it refuses goes the checking way, which says why; the refused
    attempt stops at the first value out of range."""
    numbers = [
        Annotated[float, msgspec.Meta(ge=float(lo), le=float(hi))]
        for lo, hi in zip(low, high, strict=True)
    ]
    count = msgspec.Meta(min_length=1, max_length=max_instances)
    return msgspec.json.Decoder(_v1_structs(names, numbers, count)[1]).decode


def _v1_structs(
    names: tuple[str, ...], types: list[Any], count: msgspec.Meta | None = None
) -> tuple[Any, Any]:
    """The instance struct and the ``{"instances": [...]}`` envelope, the numbers typed
    ``types`` (one per feature), the list held to ``count``. Types built at run time, so
    spelled as calls: ``list[instance | tuple[float, ...]]``."""
    named = enumerate(zip(names, types, strict=True))
    fields = [(f"f{j}", t, msgspec.field(name=name)) for j, (name, t) in named]
    instance = msgspec.defstruct("Instance", fields, forbid_unknown_fields=True, gc=False)
    row = tuple.__class_getitem__(tuple(types))  # exactly as many numbers
    instances: Any = list.__class_getitem__(Union.__getitem__((instance, row)))
    if count is not None:
        instances = Annotated[instances, count]
    envelope = msgspec.defstruct("Envelope", [("instances", instances)], forbid_unknown_fields=True)
    return instance, envelope


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
    bounded: bool = field(init=False)  # low and high are finite numbers
    v1: V1Types = field(init=False, repr=False, compare=False)
    v1_in_range: Callable[[bytes], Any] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name_set", frozenset(self.names))
        bounded = bool(np.isfinite(self.low).all() and np.isfinite(self.high).all())
        object.__setattr__(self, "bounded", bounded)
        object.__setattr__(self, "v1", V1Types.of(self.names))
        in_range = (
            in_range_decoder(self.names, self.low, self.high, self.max_instances)
            if bounded
            else None
        )
        object.__setattr__(self, "v1_in_range", in_range)

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


@dataclass(frozen=True, slots=True)
class Decoded:
    """A request body, decoded and checked: the rows, and what the answer needs."""

    batch: Batch
    id: str | None = None  # the v2 request's id, echoed in its answer
    outputs: tuple[str, ...] | None = None  # v2 outputs asked for; None: all of them


# --- checks on decoded values -------------------------------------------------------


def check_count(n: int, loc: Loc, schema: FeatureSchema) -> None:
    if n == 0:
        raise InputError.single(loc, "at least one instance is required", "empty_batch")
    if n > schema.max_instances:
        raise InputError.single(
            loc,
            f"{n} instances, more than the limit of {schema.max_instances}",
            "too_many_instances",
        )


def check_values(features: np.ndarray, schema: FeatureSchema, loc_of: Any) -> Batch:
    """Finite and in range: the vectorized checks every batch goes through.
    ``loc_of(row, column)`` is the loc of that value in the request."""
    if schema.bounded and ((features >= schema.low) & (features <= schema.high)).all():
        # One test for the usual batch: with finite bounds, NaN and +-inf are never inside.
        return Batch(features)
    finite = np.isfinite(features)
    if not finite.all():
        errors = Errors()
        for i, j in np.argwhere(~finite):
            errors.add(
                loc_of(int(i), int(j)),
                f"{schema.names[j]}: {not_finite(features[i, j])}",
                "not_finite",
            )
        errors.raise_if_any()
    outside = (features < schema.low) | (features > schema.high)
    if not outside.any():
        return Batch(features)
    errors = Errors()
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


def check_datatype(
    values: np.ndarray, datatype: str, loc: Callable[[int], Loc], errors: Errors
) -> None:
    """An integer tensor's values must be whole and within its type: read as float64 for the
    model, a 13.2 in an INT8 tensor is a client's mistake that another v2 server would
    truncate. Floating types take any number (non-finite ones are refused later)."""
    if datatype[0] not in "IU":
        return
    info = np.iinfo(datatype.lower())
    with np.errstate(invalid="ignore"):
        bad = np.isfinite(values) & (
            (values != np.floor(values)) | (values < info.min) | (values > info.max)
        )
    for k in np.flatnonzero(bad):
        errors.add(loc(int(k)), f"{values[k]:g} is not a valid {datatype} value", "wrong_type")


def not_finite(number: float) -> str:
    """Why a non-finite float is refused: +-inf is also how a JSON number beyond float64
    (``1e400``) reads, so it says so, as for an integer of 400 digits."""
    if math.isnan(number):
        return f"{number} is not a finite number"
    return f"{number} is not finite or too large for float64"


def to_array(values: list) -> np.ndarray | None:
    """float64 of numbers (None when one does not fit: an int beyond float64)."""
    try:
        return np.array(values, dtype=np.float64)
    except (OverflowError, ValueError, TypeError):
        return None


def output_names(
    names: Iterable[tuple[int, Any]], served: Sequence[str], errors: Errors
) -> tuple[str, ...]:
    """The v2 outputs asked for, each one this model serves, each once; ``names`` pairs
    each name with its index in the request's ``outputs``."""
    wanted: list[str] = []
    for k, name in names:
        loc = ("body", "outputs", k, "name")
        if not isinstance(name, str):
            errors.add(loc, "expected a string", "wrong_type")
        elif name not in served:
            errors.add(
                loc, f"unknown output {name!r}; this model has {', '.join(served)}", "extra_field"
            )
        elif name in wanted:
            errors.add(loc, f'output "{name}" asked twice', "extra_field")
        else:
            wanted.append(name)
    return tuple(wanted)


def tensor_values(shape: list[int], data: list, loc: Loc, errors: Errors) -> tuple[list, bool]:
    """A tensor's values, row-major and flat, after checking them against ``shape``; and
    whether ``data`` was nested. Flat data (the usual form) is only counted. Nested data
    has one level of lists per dimension, each list as long as its dimension: every row
    is checked (per row, not per value), the first level at fault refused with the
    ``loc`` of each row there (``data`` itself, then ``data[i]``, ``data[i][j]``, ...)."""
    if not data or type(data[0]) is not list:
        if len(data) != math.prod(shape):
            errors.add(
                loc,
                f"shape {shape} holds {math.prod(shape)} values, data has {len(data)}",
                "wrong_type",
            )
        return data, False
    rows = [data]  # the lists at this level, row-major: prod(shape[:level]) of them
    for level, dim in enumerate(shape):
        before = errors.total
        noun = "values" if level == len(shape) - 1 else "rows"
        for r, row in enumerate(rows):
            if type(row) is list and len(row) == dim:
                continue
            at = _row_index(r, shape[:level])
            where = "data" if not at else f"row {at[0]}" if len(at) == 1 else f"row {list(at)}"
            if type(row) is list:
                msg = f"{where} has {len(row)} {noun}, shape {shape} says {dim}"
            else:
                msg = f"{where}: expected a list of {dim} {noun}, got {json_type(row)}"
            errors.add((*loc, *at), msg, "wrong_type")
        if errors.total > before:
            return [], True
        if level < len(shape) - 1:
            rows = list(chain.from_iterable(rows))
    return list(chain.from_iterable(rows)), True


def _row_index(r: int, dims: Sequence[int]) -> tuple[int, ...]:
    """The index path of row ``r`` of the row-major rows of ``dims``."""
    path = []
    for dim in reversed(dims):
        r, i = divmod(r, dim)
        path.append(i)
    return tuple(reversed(path))


# --- /v1/predict --------------------------------------------------------------


def v1_matrix(rows: list) -> np.ndarray:
    """Typed instances (structs or tuples of floats) to an (n, n_features) float64 matrix."""
    astuple = msgspec.structs.astuple
    return np.array([r if type(r) is tuple else astuple(r) for r in rows], dtype=np.float64)


def v1_batch(rows: list, prefix: Loc, schema: FeatureSchema) -> Batch:
    """Typed instances to a checked Batch; ``prefix`` is ``("body", "instances")`` for a
    list of them, ``("body",)`` for one."""
    check_count(len(rows), prefix, schema)
    features = v1_matrix(rows)
    instance, names = schema.v1.instance, schema.names
    indexed = len(prefix) > 1

    def loc_of(i: int, j: int) -> Loc:
        row = (*prefix, i) if indexed else prefix
        return (*row, names[j] if type(rows[i]) is instance else j)

    return check_values(features, schema, loc_of)


# --- Open Inference Protocol (KServe v2) ------------------------------------------


def v2_decoded(request: InferRequest, schema: FeatureSchema, served: Sequence[str]) -> Decoded:
    errors = Errors()
    outputs = None
    if request.outputs is not None:
        outputs = output_names(enumerate(o.name for o in request.outputs), served, errors)
    errors.raise_if_any()
    tensors: list[_Values] = []
    for k, tensor in enumerate(request.inputs):
        flat, nested = tensor_values(
            tensor.shape, tensor.data, ("body", "inputs", k, "data"), errors
        )
        tensors.append(_Values(tensor.name, tensor.shape, flat, nested, tensor.datatype))
    errors.raise_if_any()
    if len(tensors) == 1 and tensors[0][0] not in schema.name_set:
        batch = _v2_matrix(tensors[0], schema)
    else:
        batch = _v2_columns(tensors, schema)
    return Decoded(batch, request.id, outputs)


class _Values(NamedTuple):
    """One tensor of a request: its values flat, and whether its data was nested."""

    name: str
    shape: list[int]
    flat: list
    nested: bool
    datatype: str


def _numbers(flat: list, loc: Callable[[int], Loc], what: Any, errors: Errors) -> np.ndarray:
    """The values as float64; each one that is not a number is recorded (at ``loc(k)``,
    ``what(k)`` naming value k in the message)."""
    if _NUMBER_TYPES.issuperset(map(type, flat)):
        array = to_array(flat)
        if array is not None:
            return array
    values = np.zeros(len(flat), dtype=np.float64)
    for k, value in enumerate(flat):
        number = number_of(value, loc(k), what(k), errors)
        if number is not None:
            values[k] = number
    return values


def number_of(value: Any, loc: Loc, what: str, errors: Errors) -> float | None:
    """The float of a JSON number, or None after recording why it is not one.
    ``what`` names the value when ``loc`` does not (positional data)."""
    prefix = f"{what}: " if what else ""
    if type(value) not in _NUMBER_TYPES:
        errors.add(loc, f"{prefix}expected a number, got {json_type(value)}", "wrong_type")
        return None
    try:
        number = float(value)
    except OverflowError:
        errors.add(loc, f"{prefix}number too large for float64", "not_finite")
        return None
    if not math.isfinite(number):
        errors.add(loc, f"{prefix}{not_finite(number)}", "not_finite")
        return None
    return number


def json_type(value: Any) -> str:
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


def _v2_matrix(tensor: _Values, schema: FeatureSchema) -> Batch:
    _, shape, flat, nested, datatype = tensor
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
    check_count(n, (*loc, "shape"), schema)
    errors = Errors()

    def loc_of(i: int, j: int) -> Loc:  # data[i][j] when nested, else data[i * width + j]
        return (*loc, "data", i, j) if nested else (*loc, "data", i * width + j)

    values = _numbers(
        flat,
        lambda k: loc_of(*divmod(k, width)),
        lambda k: f"row {k // width} {schema.names[k % width]}",
        errors,
    )
    check_datatype(values, datatype, lambda k: loc_of(*divmod(k, width)), errors)
    errors.raise_if_any()
    return check_values(values.reshape(n, width), schema, loc_of)


def _v2_columns(tensors: list[_Values], schema: FeatureSchema) -> Batch:
    errors = Errors()
    position: dict[str, int] = {}
    for k, (name, shape, _, _, _) in enumerate(tensors):
        loc: Loc = ("body", "inputs", k)
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
    counts = {tensors[k].shape[0] for k in position.values()}
    if len(counts) != 1:
        raise InputError.single(
            ("body", "inputs"), f"inputs disagree on N: {sorted(counts)}", "wrong_type"
        )
    n = counts.pop()
    check_count(n, ("body", "inputs"), schema)

    def value_loc(k: int) -> Callable[[int], Loc]:
        """The loc of value r of tensor k: data[r][0] when [N, 1] and nested, else data[r]."""
        if tensors[k].nested and len(tensors[k].shape) == 2:
            return lambda r: ("body", "inputs", k, "data", r, 0)
        return lambda r: ("body", "inputs", k, "data", r)

    locs = [value_loc(k) for k in range(len(tensors))]
    columns = []
    for name in schema.names:
        k = position[name]
        column = _numbers(tensors[k].flat, locs[k], lambda r, name=name: f"row {r} {name}", errors)
        check_datatype(column, tensors[k].datatype, locs[k], errors)
        columns.append(column)
    errors.raise_if_any()
    order = [position[name] for name in schema.names]
    return check_values(np.column_stack(columns), schema, lambda i, j: locs[order[j]](i))
