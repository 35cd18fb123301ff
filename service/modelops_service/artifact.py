"""Loading a model artifact safely, and calling it.

joblib files are pickles: loading one runs code from it. So the bytes are read
once, hashed, compared with the expected digests, and only then unpickled
(from those same bytes, so the file cannot change between check and load).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelops_service.card import ModelCard, read_card


class ArtifactRejectedError(Exception):
    """The artifact's digest is not the one declared: it must not be loaded."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_digest(actual: str, card: ModelCard, expected: str | None, path: Path) -> None:
    """Raise ArtifactRejectedError unless ``actual`` matches the declared and the card's digest."""
    if expected is not None and actual != expected:
        raise ArtifactRejectedError(
            f"refusing to load {path}: its sha256 is {actual} but MODELOPS_MODEL_SHA256 "
            f"declares {expected}"
        )
    if actual != card.sha256:
        raise ArtifactRejectedError(
            f"refusing to load {path}: its sha256 is {actual} but model.json declares {card.sha256}"
        )


def verify_artifact(model_dir: Path, expected: str | None) -> ModelCard:
    """Check the digest without unpickling anything (the entry point's preflight)."""
    card = read_card(model_dir)
    path = Path(model_dir) / card.artifact
    check_digest(sha256_file(path), card, expected, path)
    return card


@dataclass(frozen=True)
class Prediction:
    """The outputs of one model call for n rows."""

    predictions: np.ndarray  # (n,): what estimator.predict returns
    probabilities: np.ndarray | None  # (n, k) class probabilities (classifiers)
    confidence: np.ndarray | None  # (n,) probability of the predicted class
    signal: np.ndarray  # (n,) float: what prediction drift is measured on

    def __len__(self) -> int:
        return len(self.predictions)


class LoadedModel:
    def __init__(self, card: ModelCard, estimator: object) -> None:
        self.card = card
        self.estimator = estimator
        self.is_classifier = card.task == "classification"
        self.classes = np.asarray(getattr(estimator, "classes_", []))  # empty: a regressor

    def infer(self, features: np.ndarray) -> Prediction:
        """Predict a (n, n_features) float64 array: one model call, n rows."""
        est = self.estimator
        if self.is_classifier:
            # C order: HistGradientBoosting hands back a transposed (Fortran-order) array
            proba = np.ascontiguousarray(est.predict_proba(features))  # type: ignore[attr-defined]
            # argmax over probabilities is exactly how HistGradientBoosting (and most
            # sklearn classifiers) pick the class, so one call gives both outputs.
            index = np.argmax(proba, axis=1)
            return Prediction(
                predictions=self.classes[index],
                probabilities=proba,
                confidence=proba[np.arange(len(index)), index],
                signal=index.astype(np.float64),
            )
        values = np.asarray(est.predict(features), dtype=np.float64)  # type: ignore[attr-defined]
        return Prediction(predictions=values, probabilities=None, confidence=None, signal=values)


def load_model(model_dir: Path, expected: str | None) -> LoadedModel:
    """Verify, then unpickle. Raises ArtifactRejectedError on a digest mismatch."""
    import joblib  # here, not at the top: the entry point's preflight needs no joblib

    model_dir = Path(model_dir)
    card = read_card(model_dir)
    path = model_dir / card.artifact
    data = path.read_bytes()
    check_digest(sha256_bytes(data), card, expected, path)
    estimator = joblib.load(io.BytesIO(data))
    n_in = getattr(estimator, "n_features_in_", len(card.features))
    if n_in != len(card.features):
        raise ArtifactRejectedError(
            f"{path} expects {n_in} features but model.json lists {len(card.features)}"
        )
    return LoadedModel(card, estimator)
