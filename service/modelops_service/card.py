"""The model card: the schema of ``model.json`` beside every ``model.joblib``.

Training writes it, the service reads it (it is plain JSON, so reading it runs no
code, unlike the joblib pickle). It carries everything the service needs before
the model itself is loaded: name and version (metric labels), the feature
schema (validation and OpenAPI), the reference profile (drift) and the digest
of the artifact (integrity).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CARD_FILE = "model.json"
ARTIFACT_FILE = "model.joblib"
CARD_SCHEMA_VERSION = 1

Task = Literal["classification", "regression"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSpec(_Strict):
    """One input column: a finite number, with the range seen in training."""

    name: str
    type: Literal["number"] = "number"
    min: float
    max: float
    mean: float
    std: float
    description: str = ""


class BinProfile(_Strict):
    """Quantile bins of a reference sample.

    ``edges`` are the inner bin edges (ascending, deduplicated); the bins are
    ``(-inf, e0], (e0, e1], ..., (e_last, +inf)``, so ``fractions`` has one more
    entry than ``edges`` and sums to 1.
    """

    edges: list[float]
    fractions: list[float]

    @model_validator(mode="after")
    def _consistent(self) -> BinProfile:
        if len(self.fractions) != len(self.edges) + 1:
            raise ValueError("fractions must have len(edges) + 1 entries")
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError("edges must be strictly ascending")
        if abs(sum(self.fractions) - 1.0) > 1e-6:
            raise ValueError("fractions must sum to 1")
        return self


class ReferenceProfile(_Strict):
    """What drift is measured against: the training distribution."""

    rows: int
    features: dict[str, BinProfile]
    prediction: BinProfile
    prediction_signal: Literal["value", "class_index"] = Field(
        description="What the prediction profile bins: the predicted value (regressors) "
        "or the index of the predicted class in target.classes (classifiers)."
    )


class TargetSpec(_Strict):
    name: str
    classes: list[int] | None = None
    class_names: list[str] | None = None


class DatasetSpec(_Strict):
    name: str
    rows: int
    train_rows: int
    test_rows: int
    slice: str = Field(description="Which part of the data set the model was trained on.")


class ModelCard(_Strict):
    schema_version: int = CARD_SCHEMA_VERSION
    name: str
    version: str
    task: Task
    description: str
    framework: str = "sklearn"
    framework_version: str
    estimator: str
    artifact: str = ARTIFACT_FILE
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    dataset: DatasetSpec
    features: list[FeatureSpec]
    target: TargetSpec
    prediction_buckets: list[float] = Field(
        default_factory=list,
        description="Histogram buckets for model_prediction_value (regressors); the same "
        "for every version of a model so dashboards can compare versions.",
    )
    reference: ReferenceProfile
    metrics: dict[str, float]

    @model_validator(mode="after")
    def _consistent(self) -> ModelCard:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError("feature names must be unique")
        if set(self.reference.features) != set(names):
            raise ValueError("reference profile must cover exactly the features")
        if self.task == "classification" and not self.target.classes:
            raise ValueError("a classifier's card must list target.classes")
        return self

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)


def read_card(model_dir: Path) -> ModelCard:
    """Parse ``model_dir/model.json``; raises FileNotFoundError or pydantic.ValidationError."""
    return ModelCard.model_validate_json((Path(model_dir) / CARD_FILE).read_bytes())
