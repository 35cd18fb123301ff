"""A fixed-size ring buffer of recent feature rows and their prediction signal.

The request path appends (O(1) per row: one slice copy into preallocated
arrays); drift is computed elsewhere, from a snapshot. A lock makes the two
safe across threads: requests append on the event loop thread, while
``/metrics`` runs its collectors in a worker thread.

With several workers (``MODELOPS_WORKERS``), each worker's window lives in a
file of its own (``SlidingWindow.shared``, memory-mapped: an append costs the
same), and ``PodWindow`` reads every worker's file, so drift is one report
over the pod's rows whichever worker is scraped.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Literal

import numpy as np

# Header of a window file: next slot, rows held, rows ever appended (int64 each).
_NEXT, _ROWS, _APPENDED = range(3)
_HEADER = 3
WINDOW_FILE_PREFIX = "drift_window_"


class SlidingWindow:
    def __init__(self, n_features: int, capacity: int, path: Path | None = None) -> None:
        """In memory, or, with ``path``, in a memory-mapped file other processes can read."""
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        if path is None:
            self._state = np.zeros(_HEADER, dtype=np.int64)
            self._features = np.empty((capacity, n_features), dtype=np.float64)
            self._signal = np.empty(capacity, dtype=np.float64)
        else:
            self._state, self._features, self._signal = _map(path, n_features, capacity, "w+")
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return int(self._state[_ROWS])

    @property
    def appended(self) -> int:
        """Rows ever appended; changes whenever the content does."""
        return int(self._state[_APPENDED])

    def append(self, features: np.ndarray, signal: np.ndarray) -> None:
        """Add rows (n, n_features) and their signal (n,); the oldest rows fall out."""
        total = n = len(features)
        if n == 0:
            return
        cap = self.capacity
        if n >= cap:  # only the newest rows can stay
            features, signal, n = features[-cap:], signal[-cap:], cap
        with self._lock:
            state = self._state
            start = int(state[_NEXT])
            first = min(n, cap - start)
            self._features[start : start + first] = features[:first]
            self._signal[start : start + first] = signal[:first]
            if first < n:  # wrap around
                self._features[: n - first] = features[first:]
                self._signal[: n - first] = signal[first:]
            state[_NEXT] = (start + n) % cap
            state[_ROWS] = min(int(state[_ROWS]) + n, cap)
            state[_APPENDED] += total

    def snapshot(self) -> tuple[np.ndarray, np.ndarray, int]:
        """Copies of the rows held (in no particular order), their signal, and ``appended``."""
        with self._lock:
            rows = int(self._state[_ROWS])
            return (
                self._features[:rows].copy(),
                self._signal[:rows].copy(),
                int(self._state[_APPENDED]),
            )


def window_path(directory: Path, pid: int) -> Path:
    return directory / f"{WINDOW_FILE_PREFIX}{pid}.bin"


def _map(
    path: Path, n_features: int, capacity: int, mode: Literal["r", "w+"]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(header, features, signal) views of one window file."""
    header = np.memmap(path, dtype=np.int64, mode=mode, shape=(_HEADER,))
    offset = header.nbytes
    features = np.memmap(
        path, dtype=np.float64, mode=mode, offset=offset, shape=(capacity, n_features)
    )
    offset += features.nbytes
    signal = np.memmap(path, dtype=np.float64, mode=mode, offset=offset, shape=(capacity,))
    return header, features, signal


class PodWindow:
    """The windows of every worker of a pod, read as one (same interface as a
    ``SlidingWindow``'s reading side). Another worker may be appending while this
    reads: a row can be read half-written, one row among hundreds in a statistic
    over the window, so no lock between processes is taken on the request path.
    A dead worker's file may vanish between the listing and the read (skipped)."""

    def __init__(self, directory: Path, n_features: int, capacity: int) -> None:
        self.directory = directory
        self.n_features = n_features
        self.capacity = capacity

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob(f"{WINDOW_FILE_PREFIX}*.bin"))

    @property
    def appended(self) -> int:
        total = 0
        for path in self._files():
            with contextlib.suppress(FileNotFoundError, ValueError):
                total += int(np.fromfile(path, dtype=np.int64, count=_HEADER)[_APPENDED])
        return total

    def __len__(self) -> int:
        return len(self.snapshot()[1])

    def snapshot(self) -> tuple[np.ndarray, np.ndarray, int]:
        features, signal, appended = [], [], 0
        for path in self._files():
            with contextlib.suppress(FileNotFoundError, ValueError):
                header, f, s = _map(path, self.n_features, self.capacity, "r")
                rows = int(header[_ROWS])
                features.append(np.array(f[:rows]))
                signal.append(np.array(s[:rows]))
                appended += int(header[_APPENDED])
        if not signal:
            return np.empty((0, self.n_features)), np.empty(0), 0
        return np.concatenate(features), np.concatenate(signal), appended


def remove_dead_windows(directory: Path) -> None:
    """Drop the window files of workers that are gone (their rows are stale)."""
    for path in directory.glob(f"{WINDOW_FILE_PREFIX}*.bin"):
        if not pid_alive(int(path.stem.removeprefix(WINDOW_FILE_PREFIX))):
            path.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True
