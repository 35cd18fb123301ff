"""Train the demo models offline, from data sets scikit-learn ships (no download).

    python -m modelops_service.train --out models

writes ``<out>/<name>/<version>/{model.joblib,model.json}`` for

- ``wine/1``: HistGradientBoostingClassifier on all training rows.
- ``wine/2``: a much smaller classifier trained on another slice (low-alcohol
  wines only). It is less confident, never predicts the high-alcohol class, and the full range of
  inputs drifts against its narrower reference profile: the canary that should
  be rolled back.
- ``diabetes/1``: HistGradientBoostingRegressor on all training rows.
- ``diabetes/2``: the same inputs, targets inflated by 20%: deliberately
  biased predictions, visible in model_prediction_value, with no input drift.
- ``wine/3`` and ``diabetes/3``: the healthy next versions, version 1 with a few
  more boosting rounds on the same rows: predictions within a couple of percent of
  version 1 (the same classes on the data set; the regressor within about 1% per
  row), the same inputs, about the same cost per call.
- ``diabetes/4``: version 1 bagged: 50 copies of its regressor, each trained on a
  bootstrap sample of the same rows, averaged (the same mean prediction, about 2% apart
  per row). scikit-learn calls the members in turn, so a call of 1 or 16 rows costs
  about 35 ms against version 1's 0.6 ms, or 0.02 ms through trees.py, which walks plain
  HistGradientBoosting models only and leaves this one to scikit-learn: the canary that
  is only slower.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.datasets import load_diabetes, load_wine
from sklearn.ensemble import (
    BaggingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
)
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from modelops_service import drift
from modelops_service.artifact import sha256_file
from modelops_service.card import (
    ARTIFACT_FILE,
    CARD_FILE,
    BinProfile,
    DatasetSpec,
    FeatureSpec,
    ModelCard,
    ReferenceProfile,
    TargetSpec,
)

SEED = 0
TEST_SIZE = 0.25


@dataclass(frozen=True)
class DemoModel:
    name: str
    version: str
    description: str
    build: Callable[[], tuple[object, DatasetSpec, np.ndarray, dict[str, float]]]


def _wine_data():
    data = load_wine()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=TEST_SIZE, random_state=SEED, stratify=data.target
    )
    return data, x_train, x_test, y_train, y_test


def _diabetes_data():
    data = load_diabetes()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=TEST_SIZE, random_state=SEED
    )
    return data, x_train, x_test, y_train, y_test


def _classifier_metrics(model: Any, x_test: np.ndarray, y_test: np.ndarray) -> dict[str, float]:
    proba = model.predict_proba(x_test)
    pred = model.classes_[np.argmax(proba, axis=1)]
    return {
        "accuracy": float(accuracy_score(y_test, pred)),
        "f1_macro": float(f1_score(y_test, pred, average="macro")),
        "log_loss": float(log_loss(y_test, proba, labels=model.classes_)),
    }


def _regressor_metrics(model: Any, x_test: np.ndarray, y_test: np.ndarray) -> dict[str, float]:
    pred = model.predict(x_test)
    return {
        "r2": float(r2_score(y_test, pred)),
        "mae": float(mean_absolute_error(y_test, pred)),
        "rmse": float(math.sqrt(mean_squared_error(y_test, pred))),
        "bias": float(np.mean(pred - y_test)),
    }


def _spec(name: str, data: Any, x_train: np.ndarray, x_test: np.ndarray, part: str) -> DatasetSpec:
    """What a demo model was trained on: data set ``name``, the rows of ``x_train``."""
    return DatasetSpec(
        name=name, rows=len(data.data), train_rows=len(x_train), test_rows=len(x_test), slice=part
    )


def _wine_v1(rounds: int = 30) -> tuple[object, DatasetSpec, np.ndarray, dict[str, float]]:
    data, x_train, x_test, y_train, y_test = _wine_data()
    # 30 rounds x 3 classes = 90 trees: as accurate as the default 100 rounds on this data,
    # and a third of the cost per call (each tree costs a fixed few microseconds).
    model = HistGradientBoostingClassifier(max_iter=rounds, learning_rate=0.3, random_state=SEED)
    model.fit(x_train, y_train)
    spec = _spec("sklearn.datasets.load_wine", data, x_train, x_test, "all training rows")
    return model, spec, x_train, _classifier_metrics(model, x_test, y_test)


def _wine_v2():
    data, x_train, x_test, y_train, y_test = _wine_data()
    alcohol = list(data.feature_names).index("alcohol")
    cut = float(np.median(x_train[:, alcohol]))
    keep = x_train[:, alcohol] <= cut
    model = HistGradientBoostingClassifier(
        max_iter=10, max_depth=2, learning_rate=0.1, random_state=SEED
    )
    model.fit(x_train[keep], y_train[keep])
    spec = _spec(
        "sklearn.datasets.load_wine",
        data,
        x_train[keep],
        x_test,
        f"training rows with alcohol <= {cut:g} (the median)",
    )
    return model, spec, x_train[keep], _classifier_metrics(model, x_test, y_test)


def _diabetes_regressor(rounds: int = 100) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(
        max_iter=rounds, learning_rate=0.05, max_depth=2, random_state=SEED
    )


def _diabetes_v1(rounds: int = 100) -> tuple[object, DatasetSpec, np.ndarray, dict[str, float]]:
    data, x_train, x_test, y_train, y_test = _diabetes_data()
    model = _diabetes_regressor(rounds)
    model.fit(x_train, y_train)
    spec = _spec("sklearn.datasets.load_diabetes", data, x_train, x_test, "all training rows")
    return model, spec, x_train, _regressor_metrics(model, x_test, y_test)


def _diabetes_v4(members: int = 50) -> tuple[object, DatasetSpec, np.ndarray, dict[str, float]]:
    data, x_train, x_test, y_train, y_test = _diabetes_data()
    # Slow for a reason trees.py does not remove: scikit-learn calls every member in turn.
    model = BaggingRegressor(_diabetes_regressor(), n_estimators=members, random_state=SEED)
    model.fit(x_train, y_train)
    spec = _spec(
        "sklearn.datasets.load_diabetes",
        data,
        x_train,
        x_test,
        f"all training rows, {members} bootstrap samples of them",
    )
    return model, spec, x_train, _regressor_metrics(model, x_test, y_test)


def _diabetes_v2():
    data, x_train, x_test, y_train, y_test = _diabetes_data()
    model = _diabetes_regressor()
    model.fit(x_train, y_train * 1.2)
    spec = _spec(
        "sklearn.datasets.load_diabetes",
        data,
        x_train,
        x_test,
        "all training rows, targets inflated by 20% (deliberately biased)",
    )
    return model, spec, x_train, _regressor_metrics(model, x_test, y_test)


DEMO_MODELS: tuple[DemoModel, ...] = (
    DemoModel("wine", "1", "Wine cultivar classifier (3 classes).", _wine_v1),
    DemoModel(
        "wine",
        "2",
        "Wine cultivar classifier trained on low-alcohol wines only: biased, and its "
        "inputs drift in production.",
        _wine_v2,
    ),
    DemoModel("diabetes", "1", "Diabetes progression regressor.", _diabetes_v1),
    DemoModel(
        "diabetes",
        "2",
        "Diabetes progression regressor with targets inflated by 20%: biased high.",
        _diabetes_v2,
    ),
    DemoModel(
        "wine",
        "3",
        "Wine cultivar classifier, version 1 with 35 boosting rounds: the healthy next version.",
        lambda: _wine_v1(rounds=35),
    ),
    DemoModel(
        "diabetes",
        "3",
        "Diabetes progression regressor, version 1 with 110 boosting rounds: the healthy "
        "next version.",
        lambda: _diabetes_v1(rounds=110),
    ),
    DemoModel(
        "diabetes",
        "4",
        "Diabetes progression regressor, version 1 bagged over 50 bootstrap samples: about "
        "the same predictions, about 50 times slower per call.",
        _diabetes_v4,
    ),
)


def nice_buckets(low: float, high: float, count: int = 16) -> list[float]:
    """About ``count`` round, evenly spaced histogram bounds covering [low, high]."""
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    stop = math.ceil(high / step) * step
    n = round((stop - start) / step)
    return [round(start + i * step, 10) for i in range(n + 1)]


def _bins(edges: np.ndarray, fractions: np.ndarray) -> BinProfile:
    return BinProfile(edges=[float(e) for e in edges], fractions=[float(f) for f in fractions])


def build_card(
    demo: DemoModel,
    model: Any,  # a fitted scikit-learn estimator
    dataset: DatasetSpec,
    x_reference: np.ndarray,
    metrics: dict[str, float],
    sha256: str,
    *,
    n_bins: int = drift.DEFAULT_BINS,
) -> ModelCard:
    if demo.name == "wine":
        source = load_wine()
        task = "classification"
        target = TargetSpec(
            name="cultivar",
            classes=[int(c) for c in model.classes_],
            class_names=[str(source.target_names[c]) for c in model.classes_],
        )
        index = np.argmax(model.predict_proba(x_reference), axis=1)
        prediction = _bins(*drift.categorical_profile(index, len(model.classes_)))
        signal = "class_index"
        buckets: list[float] = []
    else:
        source = load_diabetes()
        task = "regression"
        target = TargetSpec(name="disease_progression")
        values = model.predict(x_reference)
        prediction = _bins(*drift.profile(values, n_bins))
        signal = "value"
        # Same bounds for every version: the data set's target range, with room for bias.
        buckets = nice_buckets(0.0, float(source.target.max()) * 1.25)

    names = [str(n) for n in source.feature_names]
    features = [
        FeatureSpec(
            name=name,
            min=float(col.min()),
            max=float(col.max()),
            mean=float(col.mean()),
            std=float(col.std()),
        )
        for name, col in zip(names, x_reference.T, strict=True)
    ]
    reference = ReferenceProfile(
        rows=len(x_reference),
        features={
            name: _bins(*drift.profile(col, n_bins))
            for name, col in zip(names, x_reference.T, strict=True)
        },
        prediction=prediction,
        prediction_signal=signal,
    )
    return ModelCard(
        name=demo.name,
        version=demo.version,
        task=task,
        description=demo.description,
        framework_version=sklearn.__version__,
        estimator=type(model).__name__,
        sha256=sha256,
        dataset=dataset,
        features=features,
        target=target,
        prediction_buckets=buckets,
        reference=reference,
        metrics={k: round(v, 6) for k, v in metrics.items()},
    )


def write_artifact(demo: DemoModel, out: Path) -> Path:
    """Train one demo model into ``out/<name>/<version>`` (replaced atomically)."""
    # One OpenMP thread: on data this small, more threads only add overhead (and
    # on a busy machine, a lot of it).
    with threadpool_limits(limits=1):
        model, dataset, x_reference, metrics = demo.build()
    target = out / demo.name / demo.version
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{demo.version}-", dir=target.parent))
    try:
        joblib.dump(model, staging / ARTIFACT_FILE)
        card = build_card(
            demo, model, dataset, x_reference, metrics, sha256_file(staging / ARTIFACT_FILE)
        )
        (staging / CARD_FILE).write_text(json.dumps(card.model_dump(mode="json"), indent=2) + "\n")
        os.chmod(staging, 0o755)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target


def train_all(out: Path, only: Sequence[str] = ()) -> list[Path]:
    return [write_artifact(d, Path(out)) for d in DEMO_MODELS if not only or d.name in only]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("models"), help="output directory")
    parser.add_argument(
        "--only", action="append", default=[], help="train only this model name (repeatable)"
    )
    args = parser.parse_args(argv)
    for path in train_all(args.out, args.only):
        card = json.loads((path / CARD_FILE).read_text())
        metrics = " ".join(f"{k}={v:.3f}" for k, v in card["metrics"].items())
        print(f"{path}  sha256={card['sha256'][:12]}...  {metrics}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
