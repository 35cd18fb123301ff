"""Drift math: pure functions over numpy arrays, no I/O and no metrics.

The reference profile stores, per feature and for the predictions, quantile
bins of the training data (inner edges and the fraction of training rows in
each bin). Recent values are binned with the same edges, then compared:

- PSI (population stability index): sum over bins of (q - p) * ln(q / p), with
  p the reference and q the recent fractions, both floored at ``eps`` so an
  empty bin costs a large but finite amount. Rule of thumb: < 0.1 stable,
  0.1-0.25 moderate shift, > 0.25 major shift.
- KS (Kolmogorov-Smirnov statistic): the largest gap between the two
  cumulative distributions, evaluated at the bin edges. That is the exact KS
  statistic of the binned distributions and a lower bound of the KS statistic
  of the raw values; it lies in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PSI_EPS = 1e-4
DEFAULT_BINS = 10


def quantile_edges(values: np.ndarray, n_bins: int = DEFAULT_BINS) -> np.ndarray:
    """Inner edges of ``n_bins`` quantile bins, deduplicated (ties merge bins).

    Edges are observed values (no interpolation), so a discrete feature's bins
    fall on its values."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("cannot profile an empty sample")
    if n_bins < 2:
        raise ValueError("need at least two bins")
    probs = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    return np.unique(np.quantile(values, probs, method="inverted_cdf"))


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin ``(-inf, e0], (e0, e1], ..., (e_last, inf)``."""
    idx = np.searchsorted(edges, values, side="left")
    return np.bincount(idx, minlength=len(edges) + 1)


def bin_fractions(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts = bin_counts(np.asarray(values, dtype=np.float64), np.asarray(edges))
    total = counts.sum()
    if total == 0:
        raise ValueError("cannot take fractions of an empty sample")
    return counts / total


def profile(values: np.ndarray, n_bins: int = DEFAULT_BINS) -> tuple[np.ndarray, np.ndarray]:
    """(edges, fractions) of a reference sample."""
    edges = quantile_edges(values, n_bins)
    return edges, bin_fractions(values, edges)


def categorical_profile(indices: np.ndarray, n_categories: int) -> tuple[np.ndarray, np.ndarray]:
    """(edges, fractions) of category indices 0..n-1: one bin per category."""
    edges = np.arange(n_categories - 1, dtype=np.float64)
    return edges, bin_fractions(indices, edges)


def psi(reference: np.ndarray, current: np.ndarray, eps: float = PSI_EPS) -> float:
    """Population stability index of two bin-fraction vectors of equal length."""
    p = np.maximum(np.asarray(reference, dtype=np.float64), eps)
    q = np.maximum(np.asarray(current, dtype=np.float64), eps)
    if p.shape != q.shape:
        raise ValueError("fraction vectors differ in length")
    return float(np.sum((q - p) * np.log(q / p)))


def ks(reference: np.ndarray, current: np.ndarray) -> float:
    """Largest gap between the cumulative sums of two bin-fraction vectors."""
    p = np.asarray(reference, dtype=np.float64)
    q = np.asarray(current, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError("fraction vectors differ in length")
    return float(np.max(np.abs(np.cumsum(q) - np.cumsum(p)), initial=0.0))


@dataclass(frozen=True)
class Scores:
    psi: float
    ks: float


def scores(values: np.ndarray, edges: np.ndarray, ref_fractions: np.ndarray) -> Scores:
    """PSI and KS of recent ``values`` against one binned reference."""
    current = bin_fractions(values, edges)
    return Scores(psi=psi(ref_fractions, current), ks=ks(ref_fractions, current))
