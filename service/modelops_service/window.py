"""A fixed-size ring buffer of recent feature rows and their prediction signal.

The request path appends (O(1) per row: one slice copy into preallocated
arrays); drift is computed elsewhere, from a snapshot. A lock makes the two
safe across threads: requests append on the event loop thread, while
``/metrics`` runs its collectors in a worker thread.
"""

from __future__ import annotations

import threading

import numpy as np


class SlidingWindow:
    def __init__(self, n_features: int, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._features = np.empty((capacity, n_features), dtype=np.float64)
        self._signal = np.empty(capacity, dtype=np.float64)
        self._next = 0  # slot the next row goes to
        self._rows = 0  # rows held, at most capacity
        self._appended = 0  # rows ever appended; changes whenever the content does
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._rows

    @property
    def appended(self) -> int:
        return self._appended

    def append(self, features: np.ndarray, signal: np.ndarray) -> None:
        """Add rows (n, n_features) and their signal (n,); the oldest rows fall out."""
        total = n = len(features)
        if n == 0:
            return
        cap = self.capacity
        if n >= cap:  # only the newest rows can stay
            features, signal, n = features[-cap:], signal[-cap:], cap
        with self._lock:
            start = self._next
            first = min(n, cap - start)
            self._features[start : start + first] = features[:first]
            self._signal[start : start + first] = signal[:first]
            if first < n:  # wrap around
                self._features[: n - first] = features[first:]
                self._signal[: n - first] = signal[first:]
            self._next = (start + n) % cap
            self._rows = min(self._rows + n, cap)
            self._appended += total

    def snapshot(self) -> tuple[np.ndarray, np.ndarray, int]:
        """Copies of the rows held (in no particular order), their signal, and ``appended``."""
        with self._lock:
            rows = self._rows
            return self._features[:rows].copy(), self._signal[:rows].copy(), self._appended
