"""Intervals and tests (:mod:`gradcam_core.statistics`) against values computed by hand: the
Wilson interval from its formula, the paired bootstrap on known differences, McNemar's exact
test from the binomial distribution."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradcam_core import statistics
from gradcam_core.statistics import PairedDifference

Z95 = 1.959963984540054  # the 97.5 % quantile of the standard normal


def wilson_by_hand(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson (1927): (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)."""
    p = successes / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def test_wilson_interval_matches_the_formula_and_the_published_value():
    low, high = statistics.proportion_ci(8, 10)
    assert (low, high) == pytest.approx(wilson_by_hand(8, 10), abs=1e-9)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert statistics.proportion_ci(37, 120) == pytest.approx(wilson_by_hand(37, 120), abs=1e-9)


def test_wilson_interval_of_all_or_no_successes_is_not_a_point():
    low, high = statistics.proportion_ci(10, 10)
    assert high == pytest.approx(1.0) and 0.6 < low < 1.0
    assert low == pytest.approx(wilson_by_hand(10, 10)[0], abs=1e-9)
    low, high = statistics.proportion_ci(0, 10)
    assert low == pytest.approx(0.0, abs=1e-12) and 0.0 < high < 0.4


def test_proportion_with_ci_is_in_percent():
    value, low, high = statistics.proportion_with_ci([True] * 8 + [False] * 2)
    assert value == pytest.approx(80.0)
    assert (low, high) == pytest.approx(tuple(100 * v for v in wilson_by_hand(8, 10)), abs=1e-7)


@pytest.mark.parametrize("successes, n", [(0, 0), (3, 2), (-1, 5)])
def test_proportion_ci_refuses_impossible_counts(successes, n):
    with pytest.raises(ValueError, match="need 0 <= successes <= n and n >= 1"):
        statistics.proportion_ci(successes, n)


def test_paired_difference_of_known_differences():
    a = np.array([3.0, 5.0, 4.0, 6.0, 2.0, 7.0, 5.0, 4.0])
    b = np.array([1.0, 2.0, 2.0, 3.0, 1.0, 3.0, 2.0, 2.0])  # differences 2 3 2 3 1 4 3 2
    result = statistics.paired_difference(a, b)
    assert result.mean == pytest.approx(2.5) and result.n == 8
    # the percentile interval of resampled means lies within the differences' range, around the mean
    assert 1.0 <= result.low < 2.5 < result.high <= 4.0
    assert result.excludes_zero() == 1
    assert statistics.paired_difference(b, a).excludes_zero() == -1
    assert statistics.paired_difference(a, b) == result  # seeded: the same interval every time


def test_paired_difference_of_constant_differences_is_that_value():
    b = np.array([0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0])  # + 0.5 is exact in binary floating point
    assert statistics.paired_difference(b + 0.5, b) == PairedDifference(0.5, 0.5, 0.5, 7)
    assert statistics.paired_difference(b, b) == PairedDifference(0.0, 0.0, 0.0, 7)
    assert statistics.paired_difference(b, b).excludes_zero() == 0
    assert statistics.paired_difference([2.0], [1.0]) == PairedDifference(1.0, 1.0, 1.0, 1)


def test_paired_difference_drops_incomplete_pairs_and_straddles_zero_when_mixed():
    result = statistics.paired_difference([1.0, np.nan, 3.0, 0.0], [0.0, 5.0, np.nan, 1.0])
    assert result.n == 2 and result.mean == pytest.approx(0.0)
    assert result.low < 0 < result.high and result.excludes_zero() == 0


def test_paired_difference_refuses_bad_input():
    with pytest.raises(ValueError, match="differ in shape"):
        statistics.paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="no complete pair"):
        statistics.paired_difference([np.nan, 1.0], [1.0, np.nan])


@pytest.mark.parametrize(
    "difference, expected",
    [
        (PairedDifference(0.5, 0.1, 0.9, 10), 1),
        (PairedDifference(-0.5, -0.9, -0.1, 10), -1),
        (PairedDifference(0.0, -0.1, 0.1, 10), 0),
        (PairedDifference(0.4, 0.0, 0.8, 10), 0),  # an interval that touches 0 does not exclude it
        (PairedDifference(-0.4, -0.8, 0.0, 10), 0),
    ],
)
def test_excludes_zero(difference, expected):
    assert difference.excludes_zero() == expected


def test_mcnemar_exact_p_by_hand():
    # 0 pairs right only with a, 6 right only with b, 4 concordant: p = 2 * 0.5**6
    a = np.array([False] * 6 + [True, True, False, False])
    b = np.array([True] * 6 + [True, True, False, False])
    assert statistics.mcnemar_p(a, b) == pytest.approx(2 * 0.5**6) == pytest.approx(0.03125)
    assert statistics.mcnemar_p(b, a) == pytest.approx(0.03125)
    # 1 against 3 discordant: two-sided binomial p = 2 * P(X <= 1) = 2 * (1 + 4) / 16 = 0.625
    a = np.array([True, False, False, False, True])
    b = np.array([False, True, True, True, True])
    assert statistics.mcnemar_p(a, b) == pytest.approx(2 * (1 + 4) / 16)


def test_mcnemar_without_discordant_pairs_is_one_and_refuses_unequal_shapes():
    assert statistics.mcnemar_p([True, False], [True, False]) == 1.0
    with pytest.raises(ValueError, match="differ in shape"):
        statistics.mcnemar_p([True, False], [True])


@pytest.mark.parametrize(
    "value, low, high, digits, expected",
    [
        (57.71, 55.03, 60.31, None, "57.7 (55.0-60.3)"),  # half-width 2.6: one decimal
        (0.5391, 0.5112, 0.5671, None, "0.539 (0.511-0.567)"),  # half-width 0.028: three
        (56.0, 45.8, 65.8, None, "56 (46-66)"),  # half-width 10: none
        (-18.0, -24.0, -12.0, 1, "-18.0 (-24.0 to -12.0)"),  # negative bounds read with "to"
        (-0.01, -0.04, 0.0001, 1, "0.0 (0.0-0.0)"),  # rounded -0 prints as 0
        (5.0, 4.0, float("nan"), None, "n/a"),  # a missing bound: no interval
    ],
)
def test_format_interval_rounds_to_what_the_interval_supports(value, low, high, digits, expected):
    assert statistics.format_interval(value, low, high, digits) == expected


def test_t_test_power_matches_g_power():
    """G*Power 3.1, t tests, one sample, two tails, alpha 0.05: d = 0.5 needs n = 34 (power
    0.8078), d = 0.8 needs n = 15 (power 0.8213)."""
    assert statistics.one_sample_t_power(0.5, 34) == pytest.approx(0.8078, abs=5e-4)
    assert statistics.one_sample_t_power(0.5, 33) < 0.8
    assert statistics.raters_needed(0.5, 1.0, wilcoxon=False) == 34
    assert statistics.raters_needed(0.8, 1.0, wilcoxon=False) == 15
    assert statistics.raters_needed(-0.8, 1.0, wilcoxon=False) == 15
    assert np.isnan(statistics.one_sample_t_power(0.5, 1))
    with pytest.raises(ValueError, match="non-zero effect and a positive sd"):
        statistics.raters_needed(0.0, 1.0)


def test_raters_needed_gives_the_wilcoxon_test_its_power():
    """Monte Carlo: normal per-rater values with the effect, at the n returned for the
    signed-rank test, reach about 80 % power (2,000 simulated studies, seeded)."""
    from scipy import stats

    n = statistics.raters_needed(0.5, 1.0)
    assert n == 36  # 34 / (3 / pi), rounded up
    rng = np.random.default_rng(0)
    values = rng.normal(0.5, 1.0, size=(2000, n))
    power = np.mean(stats.wilcoxon(values, axis=1).pvalue < 0.05)
    assert power == pytest.approx(0.8, abs=0.03)
