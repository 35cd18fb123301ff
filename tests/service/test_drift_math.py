"""modelops_service.drift: PSI and KS over quantile bins (pure)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelops_service import drift


def test_quantile_edges_are_deciles_of_a_continuous_sample() -> None:
    values = np.arange(1, 101, dtype=float)  # 1..100
    edges = drift.quantile_edges(values, 10)
    assert len(edges) == 9
    assert set(edges) <= set(values)  # observed values, not interpolations
    np.testing.assert_allclose(drift.bin_fractions(values, edges), [0.1] * 10, atol=0.011)


def test_ties_merge_bins_so_a_binary_feature_gets_two_edges() -> None:
    values = np.array([0.0] * 70 + [1.0] * 30)
    edges, fractions = drift.profile(values, 10)
    assert edges.tolist() == [0.0, 1.0]
    assert fractions.tolist() == [0.7, 0.3, 0.0]


@pytest.mark.parametrize(
    ("value", "bin_index"),
    [(-1e9, 0), (1.0, 0), (1.5, 1), (2.0, 1), (2.0001, 2), (1e9, 2)],
)
def test_a_value_on_an_edge_belongs_to_the_bin_below(value: float, bin_index: int) -> None:
    counts = drift.bin_counts(np.array([value]), np.array([1.0, 2.0]))
    assert counts.tolist() == [int(i == bin_index) for i in range(3)]


def test_categorical_profile_has_one_bin_per_category() -> None:
    edges, fractions = drift.categorical_profile(np.array([0, 1, 1, 2, 2, 2]), 3)
    assert edges.tolist() == [0.0, 1.0]
    np.testing.assert_allclose(fractions, [1 / 6, 2 / 6, 3 / 6])


def test_psi_of_identical_distributions_is_zero() -> None:
    p = np.array([0.2, 0.3, 0.5])
    assert drift.psi(p, p) == 0.0
    assert drift.ks(p, p) == 0.0


def test_psi_matches_the_formula_and_is_symmetric() -> None:
    p = np.array([0.5, 0.5])
    q = np.array([0.9, 0.1])
    expected = (0.9 - 0.5) * math.log(0.9 / 0.5) + (0.1 - 0.5) * math.log(0.1 / 0.5)
    assert drift.psi(p, q) == pytest.approx(expected)
    assert drift.psi(q, p) == pytest.approx(expected)


def test_an_empty_bin_costs_a_large_but_finite_psi() -> None:
    score = drift.psi(np.array([1.0, 0.0]), np.array([0.5, 0.5]))
    assert math.isfinite(score)
    assert score > 2.0


def test_ks_is_the_largest_gap_of_the_cumulative_fractions() -> None:
    assert drift.ks(np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])) == 1.0
    assert drift.ks(np.array([0.5, 0.5, 0.0]), np.array([0.25, 0.5, 0.25])) == 0.25


def test_mismatched_lengths_are_an_error() -> None:
    with pytest.raises(ValueError, match="length"):
        drift.psi(np.array([1.0]), np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="length"):
        drift.ks(np.array([1.0]), np.array([0.5, 0.5]))


def test_empty_samples_are_an_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        drift.quantile_edges(np.array([]))
    with pytest.raises(ValueError, match="empty"):
        drift.bin_fractions(np.array([]), np.array([0.0]))


def test_same_distribution_scores_low_and_a_shift_scores_high() -> None:
    rng = np.random.default_rng(0)
    edges, reference = drift.profile(rng.normal(size=5000), 10)
    same = drift.scores(rng.normal(size=1000), edges, reference)
    shifted = drift.scores(rng.normal(loc=1.0, size=1000), edges, reference)
    assert same.psi < 0.05
    assert same.ks < 0.06
    assert shifted.psi > 0.5
    assert shifted.ks > 0.3
