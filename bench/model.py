"""The model under benchmark: its card, its estimator and real rows to send."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np


@dataclass
class Model:
    name: str
    version: str
    directory: Path
    joblib_file: Path
    sha256: str | None
    feature_names: list[str]
    estimator: Any
    rows: np.ndarray  # in-distribution rows to send

    @property
    def is_classifier(self) -> bool:
        return hasattr(self.estimator, "classes_")


def load_model(directory: Path) -> Model:
    card = json.loads((directory / "model.json").read_text())
    estimator = joblib.load(directory / "model.joblib")
    name = str(card.get("name") or directory.parent.name)
    version = str(card.get("version") or directory.name)
    feature_names = feature_names_of(card, estimator)
    return Model(
        name=name,
        version=version,
        directory=directory,
        joblib_file=directory / "model.joblib",
        sha256=card.get("sha256"),
        feature_names=feature_names,
        estimator=estimator,
        rows=sample_rows(directory.parent.name, card, len(feature_names)),
    )


def feature_names_of(card: dict, estimator: Any) -> list[str]:
    features = card.get("features") or card.get("feature_schema") or []
    if isinstance(features, dict):
        features = features.get("fields") or features.get("features") or list(features)
    names = [f["name"] if isinstance(f, dict) else str(f) for f in features]
    if not names:
        names = [f"x{i}" for i in range(int(estimator.n_features_in_))]
    return names


def sample_rows(dataset: str, card: dict, n_features: int) -> np.ndarray:
    """Real rows of the data set the demo model was trained on (shipped inside scikit-learn)."""
    from sklearn import datasets

    loader = getattr(datasets, f"load_{dataset}", None)
    if loader is not None:
        data = loader().data
        if data.shape[1] == n_features:
            return np.ascontiguousarray(data[:100], dtype=np.float64)
    # Unknown data set: uniform rows inside the training ranges of the model card.
    rng = np.random.default_rng(0)
    lows, highs = [], []
    for f in card.get("features") or []:
        lows.append(float(f.get("min", 0.0)))
        highs.append(float(f.get("max", 1.0)))
    if len(lows) != n_features:
        lows, highs = [0.0] * n_features, [1.0] * n_features
    return rng.uniform(lows, highs, size=(100, n_features))


def answers_match(model: Model, got: list, n_rows: int) -> tuple[bool, np.ndarray, np.ndarray]:
    """Whether a server's predictions for the first ``n_rows`` rows equal model.predict's
    (labels compared as text, numbers within float tolerance); also both arrays."""
    want = model.estimator.predict(model.rows[:n_rows])
    got_arr = np.asarray(got).ravel()
    if got_arr.shape != want.shape:
        return False, got_arr, want
    if model.is_classifier:
        ok = all(str(g) == str(w) for g, w in zip(got_arr, want, strict=True))
    else:
        ok = bool(np.allclose(got_arr.astype(float), want, rtol=1e-6, atol=1e-9))
    return ok, got_arr, want
