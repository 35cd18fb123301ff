"""A HistGradientBoosting model flattened into arrays, for the raw predictions of small batches.

scikit-learn's ``predict_proba`` of one row costs about 0.5 ms for the 90 trees of the wine
model: validation, then one Python call per tree. Here every tree of the model walks one
level per few numpy operations, all trees and rows at once, a few dozen operations in all:
about 0.022 ms for one row, 0.043 ms for 8 (bench/tree_walk.py). Past ``MAX_ROWS`` rows
scikit-learn's compiled per-tree loop costs less per row, so larger batches go to scikit-learn.

The answers are scikit-learn's, bit for bit: at each split the float64 comparison of its
Cython loop, negated (``value > threshold`` goes right exactly where its ``value <=
threshold`` fails, infinities included; a NaN follows the node's ``missing_go_to_left``),
and the leaf values added to the baseline in the same order (iteration by iteration,
``np.add.accumulate`` is strictly sequential). A model this does not describe (categorical
splits, a preprocessor, another estimator) is not flattened: ``flatten`` returns None and
scikit-learn predicts.

The trees are read from scikit-learn's private attributes (``_predictors``, each
predictor's ``nodes`` record array, ``_baseline_prediction``, ``_preprocessor``; the
service turns raw predictions into answers with ``_loss``). Treelite, the maintained
importer, reads the very same attributes and was slower here (bench/README.md, "Flattened
trees"). So these are guarded where a change would show, at load and never at predict:
scikit-learn outside ``SKLEARN_VERIFIED``, or an attribute or node field missing, raise
``UnverifiedInternalsError``; and the loaded model answers ``probe_rows`` through its
flattened trees exactly as scikit-learn's public ``predict``/``predict_proba`` do
(artifact.LoadedModel), or it is not served. tests/service/test_trees.py checks every
shipped HistGradientBoosting model, bit for bit. diabetes/4, the slower canary, is bagged on
purpose: not flattened, it stays slow (modelops_service/train.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sklearn

# The scikit-learn releases (major.minor) whose internals this module was verified against;
# pyproject.toml pins one of them. A new release: run tests/service/test_trees.py, then add it.
SKLEARN_VERIFIED = ("1.9",)
# The fields of a predictor's ``nodes`` that the walk reads.
NODE_FIELDS = (
    "feature_idx",
    "num_threshold",
    "missing_go_to_left",
    "left",
    "right",
    "value",
    "is_leaf",
    "is_categorical",
    "depth",
)
PRIVATE_ATTRIBUTES = ("_predictors", "_baseline_prediction", "_preprocessor", "_loss")

# Rows up to which the flattened walk beats scikit-learn's per-tree loop on the demo
# models (measured crossover: about 500 rows for wine/1, past 1000 for the others);
# larger batches go to sklearn.
MAX_ROWS = 256


@dataclass(frozen=True)
class FlatTrees:
    """Every node of every tree in one set of arrays. Node i owns two slots, 2i (where a row
    that goes left goes) and 2i + 1 (right); the walk holds each row's slot base 2i, so one
    step is ``child[node + go_right]``, and the per-node arrays repeat each value for both
    slots. A leaf's children are itself, so a row that reached a leaf stays there while
    deeper trees go on."""

    feature: np.ndarray  # (2 * nodes,) intp: the feature a node splits on (0 for a leaf)
    threshold: np.ndarray  # (2 * nodes,) float64: go left when the value is <= this
    missing_right: np.ndarray  # (2 * nodes,) bool: a NaN goes right (False for a leaf)
    child: np.ndarray  # (2 * nodes,) intp: the slot base of the child each slot leads to
    value: np.ndarray  # (2 * nodes,) float64: a leaf's value
    roots: np.ndarray  # (trees, 1) intp slot bases: iteration-major, an iteration's K together
    depth: int  # levels to walk: the deepest tree's
    baseline: np.ndarray  # (K,) the raw prediction before any tree
    n_iterations: int
    n_trees_per_iteration: int
    n_features: int

    def raw_predict(self, features: np.ndarray) -> np.ndarray:
        """What ``estimator._raw_predict`` answers: (n, K) float64, the baseline plus the
        leaves' values of every iteration."""
        x = np.ascontiguousarray(features, dtype=np.float64)
        n = x.shape[0]
        flat = x.ravel()
        row_start = np.arange(0, n * self.n_features, self.n_features)
        node = np.broadcast_to(self.roots, (len(self.roots), n))  # (trees, rows)
        # "value > threshold" is "not value <= threshold" except for NaN, which only goes
        # right where its node says so: checked once, not on every level
        any_missing = bool(np.isnan(flat).any())
        for _ in range(self.depth):
            value = flat[self.feature[node] + row_start]
            go_right = value > self.threshold[node]
            if any_missing:
                go_right |= np.isnan(value) & self.missing_right[node]
            node = self.child[node + go_right]
        k = self.n_trees_per_iteration
        leaves = self.value[node].reshape(self.n_iterations, k * n)
        start = np.repeat(self.baseline, n)[None, :]
        total = np.add.accumulate(np.concatenate([start, leaves]), axis=0)[-1]
        return total.reshape(k, n).T


class UnverifiedInternalsError(RuntimeError):
    """scikit-learn's internals are not the ones this module was verified against."""


def flatten(estimator: object) -> FlatTrees | None:
    """The estimator's trees as arrays, or None when it is not a HistGradientBoosting model
    this module describes exactly (numeric splits only, no preprocessor). Raises
    UnverifiedInternalsError when it is one but the internals read here are not as verified."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    if not isinstance(estimator, HistGradientBoostingClassifier | HistGradientBoostingRegressor):
        return None
    check_internals(estimator)
    if estimator._preprocessor is not None:
        return None  # categorical features are encoded before the trees
    iterations = estimator._predictors
    k = estimator.n_trees_per_iteration_
    if not iterations or any(len(trees) != k for trees in iterations):
        raise UnverifiedInternalsError(f"_predictors is not {k} trees per iteration")
    trees = [tree.nodes for per_iteration in iterations for tree in per_iteration]
    nodes = np.concatenate(trees)
    if nodes["is_categorical"].any():
        return None
    sizes = [len(t) for t in trees]
    starts = np.cumsum([0, *sizes[:-1]])
    offset = np.repeat(starts, sizes)
    index = np.arange(len(nodes))
    leaf = nodes["is_leaf"].astype(bool)
    child = np.empty(2 * len(nodes), dtype=np.intp)
    child[0::2] = 2 * np.where(leaf, index, nodes["left"].astype(np.intp) + offset)
    child[1::2] = 2 * np.where(leaf, index, nodes["right"].astype(np.intp) + offset)
    missing_right = ~nodes["missing_go_to_left"].astype(bool) & ~leaf
    return FlatTrees(
        feature=np.repeat(np.where(leaf, 0, nodes["feature_idx"]).astype(np.intp), 2),
        threshold=np.repeat(nodes["num_threshold"].astype(np.float64), 2),
        missing_right=np.repeat(missing_right, 2),
        child=child,
        value=np.repeat(nodes["value"].astype(np.float64), 2),
        roots=2 * starts.astype(np.intp)[:, None],
        depth=int(nodes["depth"].max()),
        baseline=np.asarray(estimator._baseline_prediction, dtype=np.float64).ravel(),
        n_iterations=len(iterations),
        n_trees_per_iteration=int(k),
        n_features=int(estimator.n_features_in_),
    )


def check_internals(estimator: object) -> None:
    """Raise UnverifiedInternalsError unless scikit-learn is a verified release and the
    estimator has every private attribute and node field this module reads."""
    release = ".".join(sklearn.__version__.split(".")[:2])
    if release not in SKLEARN_VERIFIED:
        raise UnverifiedInternalsError(
            f"scikit-learn {sklearn.__version__}: modelops_service/trees.py reads the private "
            f"internals of HistGradientBoosting and was verified on {', '.join(SKLEARN_VERIFIED)} "
            "only; run tests/service/test_trees.py on this release, then add it to SKLEARN_VERIFIED"
        )
    missing = [a for a in PRIVATE_ATTRIBUTES if not hasattr(estimator, a)]
    if missing:
        raise UnverifiedInternalsError(f"{type(estimator).__name__} has no {', '.join(missing)}")
    for per_iteration in estimator._predictors:  # type: ignore[attr-defined]
        for tree in per_iteration:
            fields = getattr(getattr(tree, "nodes", None), "dtype", np.dtype(float)).names or ()
            absent = [f for f in NODE_FIELDS if f not in fields]
            if absent:
                raise UnverifiedInternalsError(f"a predictor's nodes have no {', '.join(absent)}")


def probe_rows(trees: FlatTrees, n: int, seed: int) -> np.ndarray:
    """Rows drawn around the model's own split thresholds, with some values exactly on a
    threshold, NaN, +-inf and far out of range: where a walk that differs shows."""
    rng = np.random.default_rng(seed)
    thresholds = trees.threshold
    spread = max(float(np.ptp(thresholds)), 1.0)
    shape = (n, trees.n_features)
    x = rng.choice(thresholds, size=shape) + rng.normal(0, spread / 4, shape)
    on_split = rng.random(shape) < 0.2
    x[on_split] = rng.choice(thresholds, size=int(on_split.sum()))
    for value, share in ((np.nan, 0.05), (np.inf, 0.02), (-np.inf, 0.02), (1e300, 0.01)):
        x[rng.random(shape) < share] = value
    return x
