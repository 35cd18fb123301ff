"""Small batches of a HistGradientBoosting model: scikit-learn, our flattened walk
(service/modelops_service/trees.py) and treelite's GTIL, one model call each, in this process.

Every figure is the median of ``--reps`` timings of ``--calls`` calls on real rows of the
model's data set, in microseconds per call; the ratios are within one run. Each path answers
the model's raw predictions (the sum of the trees: what the service turns into probabilities
or a regression value), so the three do the same work; scikit-learn's public
``predict_proba``/``predict`` (validation included, the service's path without trees.py) is
printed too. Treelite runs with one thread, as a pod with one CPU would (``nthread=1``).

    .venv/bin/python bench/tree_walk.py                 # every shipped model, 1, 8 and 64 rows
    .venv/bin/python bench/tree_walk.py --rows 1 16 --reps 9
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import treelite
import treelite.gtil

from bench.model import load_model as bench_model
from modelops_service.artifact import load_model
from modelops_service.trees import flatten

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = [("wine", v) for v in "123"] + [("diabetes", v) for v in "1234"]
GOAL_RATIO = 1.5  # a maintained library wins if it is at most this many times our walk


def per_call_us(call: Callable[[], object], calls: int, reps: int) -> float:
    call()  # warm
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        times.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(times)


def measure(directory: Path, rows: list[int], calls: int, reps: int) -> list[dict]:
    est = load_model(directory, expected=None).estimator
    public = est.predict_proba if hasattr(est, "predict_proba") else est.predict  # type: ignore[attr-defined]
    data = bench_model(directory).rows
    flat = flatten(est)
    if flat is None:  # diabetes/4, bagged: the service calls scikit-learn whatever the rows
        for n in rows:
            x = np.ascontiguousarray(np.resize(data, (n, data.shape[1])), dtype=np.float64)
            us = per_call_us(lambda x=x: public(x), max(1, calls // 20), reps)
            name = f"{directory.parent.name}/{directory.name}"
            kind = type(est).__name__
            print(f"{name:<12} {n:>4} rows  sklearn predict {us:8.1f} us  ({kind}: not flattened)")
        return []
    forest = treelite.sklearn.import_model(est)
    out = []
    for n in rows:
        x = np.ascontiguousarray(np.resize(data, (n, data.shape[1])), dtype=np.float64)
        ours = flat.raw_predict(x)
        theirs = treelite.gtil.predict(forest, x, pred_margin=True, nthread=1).reshape(ours.shape)
        cell = {
            "model": f"{directory.parent.name}/{directory.name}",
            "rows": n,
            "sklearn_public_us": per_call_us(lambda x=x: public(x), calls, reps),
            "sklearn_raw_us": per_call_us(lambda x=x: est._raw_predict(x), calls, reps),  # type: ignore[attr-defined]
            "trees_py_us": per_call_us(lambda x=x: flat.raw_predict(x), calls, reps),
            "treelite_us": per_call_us(
                lambda x=x: treelite.gtil.predict(forest, x, pred_margin=True, nthread=1),
                calls,
                reps,
            ),
            # what treelite's summation order changes against scikit-learn's (trees.py: 0)
            "treelite_max_abs_diff": float(np.abs(theirs - est._raw_predict(x)).max()),  # type: ignore[attr-defined]
            "trees_py_max_abs_diff": float(np.abs(ours - est._raw_predict(x)).max()),  # type: ignore[attr-defined]
        }
        cell["treelite_vs_trees_py"] = cell["treelite_us"] / cell["trees_py_us"]
        cell["sklearn_raw_vs_trees_py"] = cell["sklearn_raw_us"] / cell["trees_py_us"]
        out.append(cell)
        print(
            f"{cell['model']:<12} {n:>4} rows  sklearn predict {cell['sklearn_public_us']:8.1f} us"
            f"  sklearn raw {cell['sklearn_raw_us']:8.1f}  trees.py {cell['trees_py_us']:7.1f}"
            f"  treelite {cell['treelite_us']:8.1f}  treelite/trees.py "
            f"{cell['treelite_vs_trees_py']:5.2f}x  sklearn/trees.py "
            f"{cell['sklearn_raw_vs_trees_py']:5.2f}x  |diff| treelite "
            f"{cell['treelite_max_abs_diff']:.1e} trees.py {cell['trees_py_max_abs_diff']:.0e}",
            flush=True,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", nargs="*", type=Path, help="model directories (default: shipped)"
    )
    parser.add_argument("--rows", nargs="*", type=int, default=[1, 8, 64])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the cells here")
    args = parser.parse_args()
    models = args.models or [ROOT / "models" / n / v for n, v in SHIPPED]
    print(f"treelite {treelite.__version__}; per call, median of {args.reps} x {args.calls} calls")
    cells = [c for d in models for c in measure(d, args.rows, args.calls, args.reps)]
    worst = {n: max(c["treelite_vs_trees_py"] for c in cells if c["rows"] == n) for n in args.rows}
    median = {
        n: statistics.median(c["treelite_vs_trees_py"] for c in cells if c["rows"] == n)
        for n in args.rows
    }
    for n in args.rows:
        verdict = "within" if worst[n] <= GOAL_RATIO else "beyond"
        print(
            f"{n:>4} rows: treelite/trees.py median {median[n]:.2f}x, worst {worst[n]:.2f}x "
            f"({verdict} {GOAL_RATIO}x)"
        )
    if args.json:
        args.json.write_text(json.dumps(cells, indent=2))


if __name__ == "__main__":
    main()
