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
from modelops_service.trees import MAX_ROWS, UnverifiedInternalsError, flatten, probe_rows


class ArtifactRejectedError(Exception):
    """The artifact is not the one declared (digest, name or version): it must not be served."""


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


def check_identity(card: ModelCard, model_dir: Path, name: str | None, version: str | None) -> None:
    """Raise ArtifactRejectedError unless the card is the model the deployment declares.

    The service labels its metrics with the card's name and version, and the deployment's
    rules, autoscaler and canary analysis select them by what it declares: a difference
    would serve while every one of them silently saw nothing.
    """
    declared = [
        (variable, field, want, got)
        for variable, field, want, got in (
            ("MODELOPS_MODEL_NAME", "name", name, card.name),
            ("MODELOPS_MODEL_VERSION", "version", version, card.version),
        )
        if want is not None and want != got
    ]
    if declared:
        wrong = " and ".join(
            f"{variable} declares {field} {want!r} but its model.json says {got!r}"
            for variable, field, want, got in declared
        )
        raise ArtifactRejectedError(
            f"refusing to serve {model_dir}: {wrong}; the metrics would carry labels that the "
            "alert rules, the autoscaler and the canary analysis do not select. Deploy the "
            "declared artifact, or declare this one (chart: model.name and model.version; "
            "ModelDeployment: spec.model.name and spec.model.version)"
        )


def verify_artifact(
    model_dir: Path,
    expected: str | None,
    *,
    name: str | None = None,
    version: str | None = None,
) -> ModelCard:
    """Check the identity and the digest without unpickling anything (the entry point's
    preflight)."""
    card = read_card(model_dir)
    check_identity(card, model_dir, name, version)
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
        # HistGradientBoosting: small batches walk the flattened trees (trees.py), which
        # must answer what scikit-learn answers before anything is served.
        self.trees = flatten(estimator)
        if self.trees is not None:
            self._check_trees()

    def infer(self, features: np.ndarray) -> Prediction:
        """Predict a (n, n_features) float64 array: one model call, n rows."""
        if self.trees is not None and 0 < len(features) <= MAX_ROWS:
            return self._from_raw(self.trees.raw_predict(features))
        est = self.estimator
        if self.is_classifier:
            # C order: HistGradientBoosting hands back a transposed (Fortran-order) array
            proba = np.ascontiguousarray(est.predict_proba(features))  # type: ignore[attr-defined]
            # argmax over probabilities is exactly how most sklearn classifiers pick the
            # class, so one call gives both outputs.
            return self._classified(proba, np.argmax(proba, axis=1))
        return _regressed(est.predict(features))  # type: ignore[attr-defined]

    def _check_trees(self) -> None:
        """Raise UnverifiedInternalsError unless the flattened trees answer the probe rows
        exactly as scikit-learn's public predict and predict_proba do."""
        assert self.trees is not None
        rows = probe_rows(self.trees, 64, seed=0)
        ours, est = self.infer(rows), self.estimator
        same = np.array_equal(ours.predictions, est.predict(rows))  # type: ignore[attr-defined]
        if ours.probabilities is not None:
            expected = est.predict_proba(rows)  # type: ignore[attr-defined]
            same = same and np.array_equal(ours.probabilities, expected)
        if not same:
            raise UnverifiedInternalsError(
                f"the flattened trees of {self.card.name}/{self.card.version} do not answer "
                "what scikit-learn answers: its internals changed (modelops_service/trees.py)"
            )

    def _from_raw(self, raw: np.ndarray) -> Prediction:
        """HistGradientBoosting's outputs from its raw predictions, as its own
        ``predict_proba`` and ``predict`` make them."""
        loss = self.estimator._loss  # type: ignore[attr-defined]
        if not self.is_classifier:
            return _regressed(loss.link.inverse(raw.ravel()))
        proba = np.ascontiguousarray(loss.predict_proba(raw))
        # predict's rule: "> 0" for one tree per iteration (binary), argmax otherwise
        index = (raw.ravel() > 0).astype(np.intp) if raw.shape[1] == 1 else np.argmax(raw, axis=1)
        return self._classified(proba, index)

    def _classified(self, proba: np.ndarray, index: np.ndarray) -> Prediction:
        return Prediction(
            predictions=self.classes[index],
            probabilities=proba,
            confidence=proba[np.arange(len(index)), index],
            signal=index.astype(np.float64),
        )


def _regressed(values: np.ndarray) -> Prediction:
    values = np.asarray(values, dtype=np.float64)
    return Prediction(predictions=values, probabilities=None, confidence=None, signal=values)


def load_model(
    model_dir: Path,
    expected: str | None,
    *,
    name: str | None = None,
    version: str | None = None,
) -> LoadedModel:
    """Verify, then unpickle. Raises ArtifactRejectedError on a digest, name or version
    that differs from the declared one."""
    import joblib  # here, not at the top: the entry point's preflight needs no joblib

    model_dir = Path(model_dir)
    card = read_card(model_dir)
    check_identity(card, model_dir, name, version)
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
