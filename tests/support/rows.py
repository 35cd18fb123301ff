"""Rows of the example models' data sets that the strict service accepts: inside the
training range its model card records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_diabetes, load_wine

from devstack.paths import MODELS_ROOT
from modelops_service.card import read_card

LOADERS = {"wine": load_wine, "diabetes": load_diabetes}


def in_range_rows(model_dir: Path, name: str) -> np.ndarray:
    """Data set rows inside the training range (so the strict service accepts them)."""
    card = read_card(model_dir)
    data = LOADERS[name]().data
    lo = np.array([f.min for f in card.features])
    hi = np.array([f.max for f in card.features])
    return data[((data >= lo) & (data <= hi)).all(axis=1)]


def instances(model: str, n: int | None = None) -> list[dict[str, float]]:
    """Rows of the model's data set inside version 1's training range, as the predict body's
    instances: all of them by default, so the traffic is shaped like the training data (a few
    rows sent over and over are a distribution of their own: the tour's first run rolled
    diabetes 3 back for drift 0.31 on 40 rows)."""
    model_dir = MODELS_ROOT / model / "1"
    # tests/node/load.py sends them round-robin: in data-set order (wine's is sorted by class)
    # two periods of the same traffic would see different class mixes.
    rows = np.random.default_rng(0).permutation(in_range_rows(model_dir, model))[:n]
    names = read_card(model_dir).feature_names
    return [dict(zip(names, map(float, r), strict=True)) for r in rows]
