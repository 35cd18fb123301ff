"""What the traffic generator sends: rows and requests per scenario (pure, no network).

The rows follow the model's own card (``GET /v1/model``): each feature is drawn from the
quantile bins of the training reference, so every feature's distribution is the training
one and the feature drift scores stay low. Those draws are independent per feature, though:
the joint distribution (and so the distribution of the predictions) is not the training
one, and a regressor's prediction drift may read high. Pass rows of real data (``rows``,
``--rows FILE``: a holdout set, an export of production inputs) to draw whole rows instead.
Scenarios:

- ``normal``: in-distribution rows at a constant rate.
- ``drift``: the population moves gradually: a fixed subset of the features slides by up to
  ``drift_shift`` standard deviations, linearly over the first ``drift_ramp`` of the run,
  then stays there (a real population shifts over days; this is the same in seconds).
- ``bad-input``: ``bad_fraction`` of the requests are malformed, one kind after another
  (every input-error reason of the service's catalog); the rest are normal.
- ``spike``: normal rows; the rate jumps to ``spike_factor`` times for the middle
  ``spike_width`` of the run.

The runner (``loadtest.runner``) and the locustfile share this module.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelops_service.catalog import INPUT_ERROR_REASONS

SCENARIOS = ("normal", "drift", "bad-input", "spike")
PREDICT_PATH = "/v1/predict"
JSON_TYPE = "application/json"

# Kinds of bad input: one per reason of model_input_errors_total.
BAD_KINDS = INPUT_ERROR_REASONS


@dataclass(frozen=True)
class Feature:
    name: str
    low: float
    high: float
    mean: float
    std: float
    edges: tuple[float, ...] = ()  # inner quantile-bin edges of the training reference
    fractions: tuple[float, ...] = ()  # len(edges) + 1 bin weights


@dataclass(frozen=True)
class ModelSchema:
    """The part of the model card the generator needs."""

    name: str
    version: str
    features: tuple[Feature, ...]
    max_instances: int = 1000
    max_body_bytes: int = 1_048_576

    @classmethod
    def from_card(cls, card: Mapping[str, Any]) -> ModelSchema:
        """From the JSON of ``GET /v1/model`` (or a model.json)."""
        reference = (card.get("reference") or {}).get("features") or {}
        features = []
        for f in card["features"]:
            bins = reference.get(f["name"]) or {}
            features.append(
                Feature(
                    name=f["name"],
                    low=float(f["min"]),
                    high=float(f["max"]),
                    mean=float(f["mean"]),
                    std=float(f["std"]) or 1.0,
                    edges=tuple(float(e) for e in bins.get("edges", ())),
                    fractions=tuple(float(x) for x in bins.get("fractions", ())),
                )
            )
        serving = card.get("serving") or {}
        return cls(
            name=str(card["name"]),
            version=str(card["version"]),
            features=tuple(features),
            max_instances=int(serving.get("max_instances", 1000)),
            max_body_bytes=int(serving.get("max_body_bytes", 1_048_576)),
        )


def sample_value(feature: Feature, rng: random.Random) -> float:
    """A value from the training distribution of one feature (its quantile bins)."""
    if feature.edges and len(feature.fractions) == len(feature.edges) + 1:
        bounds = (min(feature.low, feature.edges[0]), *feature.edges)
        bounds = (*bounds, max(feature.high, feature.edges[-1]))
        i = rng.choices(range(len(feature.fractions)), weights=feature.fractions)[0]
        lo, hi = bounds[i], bounds[i + 1]
        return rng.uniform(lo, hi) if hi > lo else lo
    value = rng.gauss(feature.mean, feature.std)
    return min(max(value, feature.low), feature.high)


@dataclass(frozen=True)
class Request:
    """One HTTP request to send; ``kind`` is ``ok`` or the kind of bad input."""

    body: bytes
    kind: str = "ok"
    content_type: str = JSON_TYPE
    method: str = "POST"
    path: str = PREDICT_PATH


DRIFT_SUBSET_SEED = 1  # which features `drift` moves: one choice per model, not per run


@dataclass
class Scenario:
    """Rows, requests and rate of one scenario over a run of ``duration`` seconds."""

    name: str
    schema: ModelSchema
    rate: float
    duration: float
    batch: int = 1
    seed: int = 0
    drift_shift: float = 1.5
    drift_ramp: float = 0.6
    drift_features: float = 0.5
    bad_fraction: float = 0.3
    spike_factor: float = 4.0
    spike_width: float = 0.2
    base_rows: tuple[dict[str, float], ...] = ()
    _rng: random.Random = field(init=False, repr=False)
    _bad_index: int = field(init=False, default=0, repr=False)
    _drifted: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.name not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.name!r}; choose one of {SCENARIOS}")
        self._rng = random.Random(self.seed)
        names = [f.name for f in self.schema.features]
        k = max(1, round(len(names) * self.drift_features))
        # the same subset whatever the seed of the rows: locust's users each have their own
        self._drifted = frozenset(random.Random(DRIFT_SUBSET_SEED).sample(names, k))
        for row in self.base_rows[:1]:
            if set(row) != set(names):
                raise ValueError(
                    f"rows have the fields {sorted(row)}; the model wants {sorted(names)}"
                )

    # --- rate --------------------------------------------------------------------------
    def rate_at(self, elapsed: float) -> float:
        """Requests per second the scenario asks for at ``elapsed`` seconds."""
        if self.name == "spike":
            start = self.duration * (0.5 - self.spike_width / 2)
            end = self.duration * (0.5 + self.spike_width / 2)
            if start <= elapsed < end:
                return self.rate * self.spike_factor
        return self.rate

    def peak_rate(self) -> float:
        return self.rate * (self.spike_factor if self.name == "spike" else 1.0)

    # --- rows --------------------------------------------------------------------------
    def shift_at(self, elapsed: float) -> float:
        """How many standard deviations the drifting features have moved (drift only)."""
        if self.name != "drift" or self.duration <= 0:
            return 0.0
        ramp = max(self.drift_ramp * self.duration, 1e-9)
        return self.drift_shift * min(1.0, elapsed / ramp)

    def row(self, elapsed: float = 0.0) -> dict[str, float]:
        shift = self.shift_at(elapsed)
        base = self._rng.choice(self.base_rows) if self.base_rows else None
        row = {}
        for f in self.schema.features:
            value = float(base[f.name]) if base else sample_value(f, self._rng)
            if shift and f.name in self._drifted:
                value += shift * f.std
            row[f.name] = value
        return row

    def rows(self, n: int, elapsed: float = 0.0) -> list[dict[str, float]]:
        return [self.row(elapsed) for _ in range(n)]

    # --- requests ----------------------------------------------------------------------
    def request(self, elapsed: float = 0.0) -> Request:
        if self.name == "bad-input" and self._rng.random() < self.bad_fraction:
            kind = BAD_KINDS[self._bad_index % len(BAD_KINDS)]
            self._bad_index += 1
            return bad_request(kind, self.schema, self.row(elapsed))
        return Request(dumps({"instances": self.rows(self.batch, elapsed)}))


def dumps(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=True).encode()


def bad_request(kind: str, schema: ModelSchema, row: dict[str, float]) -> Request:
    """A request the service must reject (or flag) for the reason ``kind``."""
    first = schema.features[0]
    if kind == "malformed_json":
        body = dumps({"instances": [row]})[:-3]
    elif kind == "wrong_content_type":
        return Request(dumps({"instances": [row]}), kind, content_type="text/plain")
    elif kind == "missing_field":
        body = dumps({"instances": [{k: v for k, v in row.items() if k != first.name}]})
    elif kind == "extra_field":
        body = dumps({"instances": [{**row, "unexpected_field": 1.0}]})
    elif kind == "wrong_type":
        body = dumps({"instances": [{**row, first.name: "not a number"}]})
    elif kind == "not_finite":
        # Python's json writes Infinity; a strict parser may count it as malformed instead.
        body = dumps({"instances": [{**row, first.name: math.inf}]})
    elif kind == "out_of_range":
        width = (first.high - first.low) or 1.0
        body = dumps({"instances": [{**row, first.name: first.high + 10 * width}]})
    elif kind == "empty_batch":
        body = dumps({"instances": []})
    elif kind == "too_many_instances":
        body = dumps({"instances": [row] * (schema.max_instances + 1)})
    elif kind == "body_too_large":
        padding = " " * (schema.max_body_bytes + 1)
        body = dumps({"instances": [row]})[:-1] + padding.encode() + b"}"
    else:
        raise ValueError(f"unknown kind of bad input {kind!r}")
    return Request(body, kind)


def load_rows(path: str | Path) -> tuple[dict[str, float], ...]:
    """Rows of feature values from JSON Lines (one object per line) or a JSON array."""
    text = Path(path).read_text()
    stripped = text.lstrip()
    if stripped.startswith("["):
        rows = json.loads(stripped)
    else:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not rows or not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"{path}: expected JSON objects of feature values, one per row")
    return tuple(rows)


def make_scenario(name: str, card: Mapping[str, Any], **options: Any) -> Scenario:
    return Scenario(name=name, schema=ModelSchema.from_card(card), **options)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of ascending values, nearest rank; NaN when empty."""
    if not sorted_values:
        return math.nan
    k = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[k]
