"""A HistGradientBoosting model flattened into arrays, for the raw predictions of small batches.

scikit-learn's ``predict_proba`` of one row costs about 2 ms for the 90 trees of the wine
model: validation, then one Python call per tree. Here every tree of the model walks one
level per numpy operation, all trees and rows at once, a few dozen operations in all: about
0.05 ms for one row, 0.15 ms for 16. Past ``MAX_ROWS`` rows scikit-learn's compiled per-tree
loop costs less per row, so larger batches go to scikit-learn.

The answers are scikit-learn's, bit for bit: the same float64 comparison at each split (a
NaN follows the node's ``missing_go_to_left``, infinities compare as they do in its Cython
loop), and the leaf values added to the baseline in the same order (iteration by iteration,
``np.add.accumulate`` is strictly sequential). tests/service/test_trees.py checks this on
every demo model. A model this does not describe (categorical splits, a preprocessor,
another estimator) is not flattened: ``flatten`` returns None and scikit-learn predicts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Rows up to which the flattened walk beats scikit-learn's per-tree loop on the demo
# models (measured crossover 300-800 rows, bench/README.md); larger batches go to sklearn.
MAX_ROWS = 256


@dataclass(frozen=True)
class FlatTrees:
    """Every node of every tree in one set of arrays (a leaf's children are itself, so a
    row that reached a leaf stays there while deeper trees go on)."""

    feature: np.ndarray  # (nodes,) intp: the feature a node splits on (0 for a leaf)
    threshold: np.ndarray  # (nodes,) float64: go left when the value is <= this
    missing_left: np.ndarray  # (nodes,) bool: where a NaN goes
    left: np.ndarray  # (nodes,) intp: global index of the left child
    right: np.ndarray  # (nodes,) intp
    value: np.ndarray  # (nodes,) float64: a leaf's value
    roots: np.ndarray  # (trees, 1) intp: iteration-major, the K trees of an iteration together
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
        for _ in range(self.depth):
            value = flat[self.feature[node] + row_start]
            go_left = value <= self.threshold[node]
            missing = np.isnan(value)
            if missing.any():
                go_left = np.where(missing, self.missing_left[node], go_left)
            node = np.where(go_left, self.left[node], self.right[node])
        k = self.n_trees_per_iteration
        leaves = self.value[node].reshape(self.n_iterations, k * n)
        start = np.repeat(self.baseline, n)[None, :]
        total = np.add.accumulate(np.concatenate([start, leaves]), axis=0)[-1]
        return total.reshape(k, n).T


def flatten(estimator: object) -> FlatTrees | None:
    """The estimator's trees as arrays, or None when it is not a HistGradientBoosting model
    this module describes exactly (numeric splits only, no preprocessor)."""
    from sklearn.ensemble._hist_gradient_boosting.gradient_boosting import (
        BaseHistGradientBoosting,
    )

    if not isinstance(estimator, BaseHistGradientBoosting):
        return None
    if getattr(estimator, "_preprocessor", None) is not None:
        return None  # categorical features are encoded before the trees
    iterations = getattr(estimator, "_predictors", None)
    k = getattr(estimator, "n_trees_per_iteration_", None)
    if not iterations or not k or any(len(trees) != k for trees in iterations):
        return None
    trees = [tree.nodes for per_iteration in iterations for tree in per_iteration]
    nodes = np.concatenate(trees)
    if nodes["is_categorical"].any():
        return None
    sizes = [len(t) for t in trees]
    starts = np.cumsum([0, *sizes[:-1]])
    offset = np.repeat(starts, sizes)
    index = np.arange(len(nodes))
    leaf = nodes["is_leaf"].astype(bool)
    return FlatTrees(
        feature=np.where(leaf, 0, nodes["feature_idx"]).astype(np.intp),
        threshold=nodes["num_threshold"].astype(np.float64),
        missing_left=nodes["missing_go_to_left"].astype(bool),
        left=np.where(leaf, index, nodes["left"].astype(np.intp) + offset),
        right=np.where(leaf, index, nodes["right"].astype(np.intp) + offset),
        value=nodes["value"].astype(np.float64),
        roots=starts.astype(np.intp)[:, None],
        depth=int(nodes["depth"].max()),
        baseline=np.asarray(estimator._baseline_prediction, dtype=np.float64).ravel(),
        n_iterations=len(iterations),
        n_trees_per_iteration=int(k),
        n_features=int(estimator.n_features_in_),
    )
