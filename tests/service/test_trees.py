"""The flattened trees (modelops_service/trees.py) answer what scikit-learn answers, bit for
bit, on every model the project ships, on each side of MAX_ROWS, for odd values too (NaN,
infinities, values far outside the training range and exactly on a split's threshold); and
a scikit-learn whose internals are not the verified ones stops the model at load."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.ensemble import BaggingRegressor, HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from modelops_service import trees
from modelops_service.artifact import LoadedModel, load_model
from modelops_service.train import DEMO_MODELS
from modelops_service.trees import MAX_ROWS, UnverifiedInternalsError, flatten, probe_rows

# diabetes/4 is bagged: slow for a reason the flattened walk does not remove
FLATTENED = [(d.name, d.version) for d in DEMO_MODELS if (d.name, d.version) != ("diabetes", "4")]


@pytest.mark.parametrize(("name", "version"), FLATTENED)
def test_flattened_trees_answer_what_sklearn_answers(
    model_root: Path, name: str, version: str
) -> None:
    model = load_model(model_root / name / version, expected=None)
    est = model.estimator
    assert model.trees is not None, "a HistGradientBoosting model"
    x = probe_rows(model.trees, MAX_ROWS + 40, seed=len(name))
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


def test_the_bagged_slower_canary_is_left_to_sklearn(model_root: Path) -> None:
    """diabetes/4 must stay slow with trees.py in the service (the slower-canary test of
    tests/cluster/test_operator.py): a BaggingRegressor is not flattened, even though each
    of its members would be, and is answered by scikit-learn's own predict."""
    model = load_model(model_root / "diabetes" / "4", expected=None)
    est = model.estimator
    assert isinstance(est, BaggingRegressor)
    assert model.trees is None
    assert all(flatten(member) is not None for member in est.estimators_)
    x = load_diabetes().data
    for n in (1, 16, len(x)):
        assert np.array_equal(model.infer(x[:n]).predictions, est.predict(x[:n])), n


def test_one_row_of_a_batch_is_answered_as_if_alone(model_root: Path) -> None:
    model = load_model(model_root / "wine" / "1", expected=None)
    assert model.trees is not None
    x = probe_rows(model.trees, 32, seed=3)
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


def test_an_unverified_sklearn_release_stops_the_model_at_load(
    model_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trees.sklearn, "__version__", "1.10.0")
    with pytest.raises(UnverifiedInternalsError, match=r"scikit-learn 1\.10\.0.*SKLEARN_VERIFIED"):
        load_model(model_root / "wine" / "1", expected=None)


@pytest.mark.parametrize("attribute", trees.PRIVATE_ATTRIBUTES)
def test_a_missing_private_attribute_stops_the_model_at_load(
    model_root: Path, attribute: str
) -> None:
    model = load_model(model_root / "diabetes" / "1", expected=None)
    est = copy.deepcopy(model.estimator)
    delattr(est, attribute)
    with pytest.raises(UnverifiedInternalsError, match=attribute):
        LoadedModel(model.card, est)


def test_a_missing_node_field_stops_the_model_at_load(model_root: Path) -> None:
    model = load_model(model_root / "wine" / "2", expected=None)
    est = copy.deepcopy(model.estimator)
    tree = est._predictors[-1][0]
    fields = [f for f in tree.nodes.dtype.names if f != "missing_go_to_left"]
    tree.nodes = np.ascontiguousarray(tree.nodes[fields])
    with pytest.raises(UnverifiedInternalsError, match="missing_go_to_left"):
        LoadedModel(model.card, est)


@pytest.mark.parametrize(("name", "version"), [("wine", "1"), ("diabetes", "1")])
def test_a_walk_that_answers_otherwise_stops_the_model_at_load(
    model_root: Path, monkeypatch: pytest.MonkeyPatch, name: str, version: str
) -> None:
    """What the load-time probe is for: internals that are all there but mean something
    else now (here, one ulp off in the raw predictions)."""
    model = load_model(model_root / name / version, expected=None)
    walk = trees.FlatTrees.raw_predict
    monkeypatch.setattr(trees.FlatTrees, "raw_predict", lambda s, x: np.nextafter(walk(s, x), 9))
    with pytest.raises(UnverifiedInternalsError, match="do not answer what scikit-learn answers"):
        LoadedModel(model.card, model.estimator)
