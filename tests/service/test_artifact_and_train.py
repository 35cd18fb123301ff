"""Training output (the model cards) and safe loading of artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_wine
from sklearn.ensemble import BaggingRegressor

from modelops_service.artifact import (
    ArtifactRejectedError,
    load_model,
    sha256_file,
    verify_artifact,
)
from modelops_service.card import read_card
from modelops_service.train import nice_buckets, train_all

DEMO = [(name, version) for name in ("wine", "diabetes") for version in "123"] + [("diabetes", "4")]


@pytest.mark.parametrize(("name", "version"), DEMO)
def test_each_artifact_has_a_consistent_card(model_root: Path, name: str, version: str) -> None:
    model_dir = model_root / name / version
    card = read_card(model_dir)  # validates the schema (profiles sum to 1, etc.)
    assert (card.name, card.version) == (name, version)
    assert card.sha256 == sha256_file(model_dir / "model.joblib")
    data = {"wine": load_wine, "diabetes": load_diabetes}[name]()
    assert list(card.feature_names) == list(data.feature_names)
    assert card.task == ("classification" if name == "wine" else "regression")
    assert card.reference.prediction_signal == ("class_index" if name == "wine" else "value")
    for feature in card.features:
        assert feature.min <= feature.mean <= feature.max
        profile = card.reference.features[feature.name]
        assert all(feature.min <= e <= feature.max for e in profile.edges)
    assert card.metrics
    assert card.dataset.train_rows == card.reference.rows


def test_version_2_is_deliberately_different(model_root: Path) -> None:
    wine1, wine2 = (read_card(model_root / "wine" / v) for v in "12")
    assert wine2.metrics["accuracy"] < wine1.metrics["accuracy"] - 0.2
    # trained on the low-alcohol half: a narrower reference, so full traffic drifts
    alcohol = {c.version: c.features[0] for c in (wine1, wine2)}
    assert alcohol["2"].max < alcohol["1"].max
    x = load_wine().data
    wine2_model = joblib.load(model_root / "wine" / "2" / "model.joblib")
    assert 0 not in set(wine2_model.predict(x))  # never predicts the high-alcohol cultivar

    diabetes1, diabetes2 = (read_card(model_root / "diabetes" / v) for v in "12")
    assert diabetes2.metrics["bias"] > diabetes1.metrics["bias"] + 20
    assert diabetes1.prediction_buckets == diabetes2.prediction_buckets  # comparable panels
    assert diabetes1.reference.features == diabetes2.reference.features  # same inputs


def test_version_3_is_the_healthy_next_version(model_root: Path) -> None:
    """Predictions within a couple of percent of version 1 on the data set, the same inputs."""
    wine = load_wine().data
    wine1, wine3 = (joblib.load(model_root / "wine" / v / "model.joblib") for v in "13")
    shares1, shares3 = (
        np.bincount(m.predict(wine), minlength=3) / len(wine) for m in (wine1, wine3)
    )
    assert 0.5 * np.abs(shares1 - shares3).sum() <= 0.02  # class-share distance
    diabetes = load_diabetes().data
    reg1, reg3 = (joblib.load(model_root / "diabetes" / v / "model.joblib") for v in "13")
    p1, p3 = reg1.predict(diabetes), reg3.predict(diabetes)
    assert abs(p3.mean() - p1.mean()) / p1.mean() <= 0.02
    assert np.median(np.abs(p3 - p1) / p1) <= 0.02
    for name in ("wine", "diabetes"):
        card1, card3 = (read_card(model_root / name / v) for v in "13")
        assert card1.reference.features == card3.reference.features  # no input drift
        assert card1.prediction_buckets == card3.prediction_buckets


def test_diabetes_4_is_version_1_bagged(model_root: Path) -> None:
    """The slower canary: about the same predictions and the same inputs, from 50 copies of
    version 1's regressor, each fit on a bootstrap sample and called in turn."""
    diabetes = load_diabetes().data
    reg1, reg4 = (joblib.load(model_root / "diabetes" / v / "model.joblib") for v in "14")
    p1, p4 = reg1.predict(diabetes), reg4.predict(diabetes)
    assert abs(p4.mean() - p1.mean()) / p1.mean() <= 0.01  # far inside the 10% shift gate
    assert np.median(np.abs(p4 - p1) / p1) <= 0.03
    assert isinstance(reg4, BaggingRegressor)
    assert len(reg4.estimators_) == 50
    params = {k: v for k, v in reg1.get_params().items() if k != "random_state"}
    for member in reg4.estimators_:  # each its own seed: only the samples differ
        assert params.items() <= member.get_params().items()
        assert member.n_iter_ == reg1.n_iter_
    card1, card4 = (read_card(model_root / "diabetes" / v) for v in "14")
    assert card4.estimator == "BaggingRegressor"
    assert card1.reference.features == card4.reference.features
    assert card1.prediction_buckets == card4.prediction_buckets


def test_training_is_deterministic(model_root: Path, tmp_path: Path) -> None:
    train_all(tmp_path, only=["wine"])
    for version in "123":
        again = json.loads((tmp_path / "wine" / version / "model.json").read_text())
        assert again["sha256"] == read_card(model_root / "wine" / version).sha256
    assert not (tmp_path / "diabetes").exists()


@pytest.mark.parametrize(("name", "version"), DEMO)
def test_loaded_model_infers_what_the_estimator_predicts(
    model_root: Path, name: str, version: str
) -> None:
    model = load_model(model_root / name / version, expected=None)
    x = {"wine": load_wine, "diabetes": load_diabetes}[name]().data
    out = model.infer(x)
    assert np.array_equal(out.predictions, model.estimator.predict(x))
    if name == "wine":
        np.testing.assert_allclose(out.probabilities, model.estimator.predict_proba(x))
        assert out.probabilities.flags.c_contiguous
        assert np.array_equal(model.classes[out.signal.astype(int)], out.predictions)
        assert np.all(out.confidence == out.probabilities.max(axis=1))
    else:
        assert out.probabilities is None
        assert np.array_equal(out.signal, out.predictions)


def test_a_wrong_declared_digest_is_refused_before_unpickling(
    model_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_unpickle(*args, **kwargs):
        raise AssertionError("joblib.load ran on an unverified artifact")

    monkeypatch.setattr(joblib, "load", must_not_unpickle)
    model_dir = model_root / "wine" / "1"
    with pytest.raises(ArtifactRejectedError, match="MODELOPS_MODEL_SHA256 declares 0000"):
        load_model(model_dir, expected="0" * 64)
    with pytest.raises(ArtifactRejectedError, match="MODELOPS_MODEL_SHA256"):
        verify_artifact(model_dir, expected="f" * 64)


def test_an_artifact_differing_from_its_card_is_refused(model_root: Path, tmp_path: Path) -> None:
    card = read_card(model_root / "wine" / "1")
    (tmp_path / "model.json").write_text((model_root / "wine" / "1" / "model.json").read_text())
    (tmp_path / "model.joblib").write_bytes(
        (model_root / "wine" / "2" / "model.joblib").read_bytes()
    )
    with pytest.raises(ArtifactRejectedError, match=r"model\.json declares"):
        load_model(tmp_path, expected=None)
    # declaring the card's digest does not help: the bytes are what is checked
    with pytest.raises(ArtifactRejectedError):
        load_model(tmp_path, expected=card.sha256)


@pytest.mark.parametrize(
    ("name", "version", "refused"),
    [
        ("wine", "1", None),
        (None, None, None),
        (
            "wine-prod",
            None,
            "MODELOPS_MODEL_NAME declares name 'wine-prod' but its model.json says 'wine'",
        ),
        (None, "2", "MODELOPS_MODEL_VERSION declares version '2' but its model.json says '1'"),
        (
            "diabetes",
            "3",
            "MODELOPS_MODEL_NAME declares name 'diabetes' but its model.json says 'wine' and "
            "MODELOPS_MODEL_VERSION declares version '3' but its model.json says '1'",
        ),
    ],
)
def test_an_artifact_other_than_the_declared_model_is_refused_before_unpickling(
    model_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str | None,
    version: str | None,
    refused: str | None,
) -> None:
    model_dir = model_root / "wine" / "1"
    if refused is None:
        assert verify_artifact(model_dir, None, name=name, version=version).name == "wine"
        assert load_model(model_dir, None, name=name, version=version).card.version == "1"
        return

    def must_not_unpickle(*args, **kwargs):
        raise AssertionError("joblib.load ran on an artifact that is not the declared one")

    monkeypatch.setattr(joblib, "load", must_not_unpickle)
    for check in (verify_artifact, load_model):
        with pytest.raises(ArtifactRejectedError) as err:
            check(model_dir, None, name=name, version=version)
        assert f"refusing to serve {model_dir}: {refused};" in str(err.value)
        assert "chart: model.name and model.version" in str(err.value)


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0, 100, [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]),
        (0, 432.5, [0, 50, 100, 150, 200, 250, 300, 350, 400, 450]),
    ],
)
def test_nice_buckets(low: float, high: float, expected: list[float]) -> None:
    assert nice_buckets(low, high, count=10) == expected
