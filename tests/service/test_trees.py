"""The flattened trees (modelops_service/trees.py) answer what scikit-learn answers, bit for
bit, on every demo model, on each side of MAX_ROWS, for odd values too (NaN, infinities,
values far outside the training range and exactly on a split's threshold)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from modelops_service.artifact import load_model
from modelops_service.trees import MAX_ROWS, flatten

DEMO = [(name, version) for name in ("wine", "diabetes") for version in "123"] + [("diabetes", "4")]


def odd_rows(thresholds: np.ndarray, n_features: int, n: int, seed: int) -> np.ndarray:
    """Rows drawn around the model's own split thresholds, with some values exactly on a
    threshold, NaN, +-inf and far out of range."""
    rng = np.random.default_rng(seed)
    spread = max(float(np.ptp(thresholds)), 1.0)
    x = rng.choice(thresholds, size=(n, n_features)) + rng.normal(0, spread / 4, (n, n_features))
    on_split = rng.random((n, n_features)) < 0.2
    x[on_split] = rng.choice(thresholds, size=int(on_split.sum()))
    for value, share in ((np.nan, 0.05), (np.inf, 0.02), (-np.inf, 0.02), (1e300, 0.01)):
        x[rng.random((n, n_features)) < share] = value
    return x


@pytest.mark.parametrize(("name", "version"), DEMO)
def test_flattened_trees_answer_what_sklearn_answers(
    model_root: Path, name: str, version: str
) -> None:
    model = load_model(model_root / name / version, expected=None)
    est = model.estimator
    assert model.trees is not None, "every demo model is a HistGradientBoosting model"
    x = odd_rows(model.trees.threshold, model.trees.n_features, MAX_ROWS + 40, seed=len(name))
    for n in (1, 2, 17, MAX_ROWS, MAX_ROWS + 1, MAX_ROWS + 40):
        rows = x[:n]
        assert np.array_equal(model.trees.raw_predict(rows), est._raw_predict(rows))
        out = model.infer(rows)
        assert np.array_equal(out.predictions, est.predict(rows)), n
        if model.is_classifier:
            assert np.array_equal(out.probabilities, est.predict_proba(rows)), n
            assert out.probabilities.flags.c_contiguous
            assert np.array_equal(out.confidence, out.probabilities.max(axis=1))
        else:
            assert np.array_equal(out.signal, est.predict(rows))


def test_one_row_of_a_batch_is_answered_as_if_alone(model_root: Path) -> None:
    model = load_model(model_root / "wine" / "1", expected=None)
    assert model.trees is not None
    x = odd_rows(model.trees.threshold, model.trees.n_features, 32, seed=3)
    together = model.trees.raw_predict(x)
    alone = np.vstack([model.trees.raw_predict(x[i : i + 1]) for i in range(len(x))])
    assert np.array_equal(together, alone)


def test_what_it_cannot_describe_is_left_to_sklearn() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    x[:, 0] = rng.integers(0, 4, 200)
    y = (x[:, 0] > 1).astype(int)
    assert flatten(LogisticRegression().fit(x, y)) is None
    categorical = HistGradientBoostingClassifier(max_iter=5, categorical_features=[0]).fit(x, y)
    assert flatten(categorical) is None
    assert flatten(HistGradientBoostingClassifier(max_iter=5).fit(x, y)) is not None
