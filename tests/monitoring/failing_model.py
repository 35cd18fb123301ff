"""A model artifact that fails part of its predictions, for the 5xx alerts.

The service never answers 5xx for bad input, so a real failure has to come from the model:
``FailingEstimator`` wraps a fitted estimator and raises on every ``every``-th predict call
after the first (the warm-up call must pass for the service to become ready). The artifact
is a real one (joblib, model.json with the matching sha256); unpickling it imports this
module, so the service process must run from the repository root (devstack.service_process
does).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from pathlib import Path

import joblib


class FailingEstimator:
    def __init__(self, base: object, every: int = 3) -> None:
        self.base = base
        self.every = every
        self._calls = 0

    def __getattr__(self, name: str) -> object:
        # classes_, n_features_in_, ... of the wrapped estimator; guarded for unpickling,
        # which looks attributes up before __dict__ is filled
        if name.startswith("__") or "base" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.base, name)

    def __getstate__(self) -> dict:
        return {"base": self.base, "every": self.every}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _calls=0, _lock=threading.Lock())

    def _call(self) -> None:
        lock = self.__dict__.setdefault("_lock", threading.Lock())
        with lock:
            self._calls += 1
            calls = self._calls
        if calls > 1 and calls % self.every == 0:
            raise RuntimeError(f"injected failure of predict call {calls}")

    def predict(self, x):
        self._call()
        return self.base.predict(x)

    def predict_proba(self, x):
        self._call()
        return self.base.predict_proba(x)


def build_failing_model(source: Path, target: Path, version: str, every: int = 3) -> Path:
    """Copy the artifact in ``source`` to ``target`` as ``version``, failing 1/``every``."""
    shutil.copytree(source, target)
    card = json.loads((source / "model.json").read_text())
    joblib.dump(
        FailingEstimator(joblib.load(source / card["artifact"]), every), target / card["artifact"]
    )
    card["version"] = version
    card["description"] = f"{card['description']} (test build: every {every}th predict call fails)"
    card["sha256"] = hashlib.sha256((target / card["artifact"]).read_bytes()).hexdigest()
    (target / "model.json").write_text(json.dumps(card, indent=2))
    return target
