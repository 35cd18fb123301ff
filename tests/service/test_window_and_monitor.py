"""The sliding window (ring buffer) and the drift monitor's caching (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from modelops_service import drift
from modelops_service.card import BinProfile, ReferenceProfile
from modelops_service.monitor import DriftMonitor
from modelops_service.window import SlidingWindow


def rows(start: int, n: int, width: int = 2) -> tuple[np.ndarray, np.ndarray]:
    values = np.arange(start, start + n, dtype=float)
    return np.repeat(values[:, None], width, axis=1), values


def held(window: SlidingWindow) -> list[float]:
    features, signal, _ = window.snapshot()
    assert np.array_equal(features[:, 0], signal)
    return sorted(signal.tolist())


def test_window_keeps_the_newest_rows_across_wrap_around() -> None:
    window = SlidingWindow(n_features=2, capacity=5)
    window.append(*rows(0, 3))
    assert held(window) == [0, 1, 2]
    window.append(*rows(3, 4))  # wraps: 0 and 1 fall out
    assert held(window) == [2, 3, 4, 5, 6]
    assert len(window) == 5
    assert window.appended == 7


def test_a_batch_larger_than_the_window_keeps_its_last_rows() -> None:
    window = SlidingWindow(n_features=2, capacity=4)
    window.append(*rows(0, 10))
    assert held(window) == [6, 7, 8, 9]
    window.append(*rows(10, 0))
    assert window.appended == 10


def test_snapshot_is_a_copy() -> None:
    window = SlidingWindow(n_features=2, capacity=3)
    window.append(*rows(0, 2))
    features, signal, _ = window.snapshot()
    features[:] = -1
    signal[:] = -1
    assert held(window) == [0, 1]


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        SlidingWindow(n_features=1, capacity=0)


def reference() -> ReferenceProfile:
    edges, fractions = drift.profile(np.linspace(0, 1, 101), 4)
    profile = BinProfile(edges=edges.tolist(), fractions=fractions.tolist())
    return ReferenceProfile(
        rows=101,
        features={"a": profile, "b": profile},
        prediction=profile,
        prediction_signal="value",
    )


def test_no_scores_until_the_window_holds_min_rows() -> None:
    window = SlidingWindow(n_features=2, capacity=100)
    monitor = DriftMonitor(reference(), ("a", "b"), window, min_rows=10, refresh_seconds=0)
    window.append(np.full((9, 2), 0.5), np.full(9, 0.5))
    report = monitor.report()
    assert not report.ready
    assert report.as_dict()["status"] == "insufficient_data"
    window.append(np.full((1, 2), 0.5), np.full(1, 0.5))
    report = monitor.report()
    assert report.ready
    assert set(report.features) == {"a", "b"}
    assert report.max_feature_psi > 1.0  # every row in one bin of four


def test_report_is_cached_until_new_rows_and_refresh_interval() -> None:
    window = SlidingWindow(n_features=2, capacity=100)
    monitor = DriftMonitor(reference(), ("a", "b"), window, min_rows=1, refresh_seconds=3600)
    window.append(np.full((5, 2), 0.1), np.full(5, 0.1))
    first = monitor.report()
    assert monitor.report() is first  # nothing new
    window.append(np.full((5, 2), 0.9), np.full(5, 0.9))
    assert monitor.report() is first  # new rows, but within the refresh interval
    monitor.refresh_seconds = 0
    assert monitor.report() is not first
