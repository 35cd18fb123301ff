"""Drift report over the sliding window, computed off the request path.

``DriftMonitor.report()`` is called by the metrics collector on scrape and by
``GET /v1/drift``. It recomputes only when new rows arrived and the last
computation is older than ``refresh_seconds``; otherwise it returns the
cached report, so frequent scrapes cost nothing.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from modelops_service import drift
from modelops_service.card import ReferenceProfile
from modelops_service.window import PodWindow, SlidingWindow


@dataclass(frozen=True)
class DriftReport:
    window_rows: int
    min_rows: int
    computed_at: float  # unix time
    features: dict[str, drift.Scores] = field(default_factory=dict)
    prediction: drift.Scores | None = None

    @property
    def ready(self) -> bool:
        """Scores exist only once the window holds enough rows to mean something."""
        return self.prediction is not None

    @property
    def max_feature_psi(self) -> float | None:
        return max((s.psi for s in self.features.values()), default=None)

    def as_dict(self) -> dict:
        return {
            "status": "ok" if self.ready else "insufficient_data",
            "window_rows": self.window_rows,
            "min_rows": self.min_rows,
            "computed_at": self.computed_at,
            "max_feature_psi": self.max_feature_psi,
            "features": {name: {"psi": s.psi, "ks": s.ks} for name, s in self.features.items()},
            "prediction": (
                {"psi": self.prediction.psi, "ks": self.prediction.ks} if self.prediction else None
            ),
        }


class DriftMonitor:
    def __init__(
        self,
        reference: ReferenceProfile,
        feature_names: tuple[str, ...],
        window: SlidingWindow | PodWindow,
        *,
        min_rows: int,
        refresh_seconds: float,
    ) -> None:
        self.window = window
        self.min_rows = min_rows
        self.refresh_seconds = refresh_seconds
        self._names = feature_names
        self._feature_bins = [
            (
                np.asarray(reference.features[n].edges),
                np.asarray(reference.features[n].fractions),
            )
            for n in feature_names
        ]
        self._prediction_bins = (
            np.asarray(reference.prediction.edges),
            np.asarray(reference.prediction.fractions),
        )
        self._lock = threading.Lock()
        self._cached: DriftReport | None = None
        self._cached_appended = -1

    def report(self) -> DriftReport:
        with self._lock:
            cached = self._cached
            if cached is not None and (
                self.window.appended == self._cached_appended
                or time.time() - cached.computed_at < self.refresh_seconds
            ):
                return cached
            features, signal, appended = self.window.snapshot()
            report = self._compute(features, signal)
            self._cached, self._cached_appended = report, appended
            return report

    def _compute(self, features: np.ndarray, signal: np.ndarray) -> DriftReport:
        rows = len(signal)
        now = time.time()
        if rows < max(self.min_rows, 1):
            return DriftReport(window_rows=rows, min_rows=self.min_rows, computed_at=now)
        per_feature = {
            name: drift.scores(features[:, j], edges, fractions)
            for j, (name, (edges, fractions)) in enumerate(
                zip(self._names, self._feature_bins, strict=True)
            )
        }
        prediction = drift.scores(signal, *self._prediction_bins)
        return DriftReport(
            window_rows=rows,
            min_rows=self.min_rows,
            computed_at=now,
            features=per_feature,
            prediction=prediction,
        )
