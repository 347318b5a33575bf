"""Intervals and tests that fit the statistic: Wilson intervals for proportions, the paired
bootstrap of a mean difference when two methods see the same images, McNemar's exact test for
paired right/wrong decisions. Everything runs on plain arrays with fixed seeds (scipy).

The percentile bootstrap of a proportion collapses to a point ("100.0 [100.0, 100.0]") when
every value agrees; a Wilson interval does not, so proportions use :func:`proportion_ci`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
N_RESAMPLES = 2000


def proportion_ci(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes / n`` (scipy's
    ``binomtest(...).proportion_ci(method="wilson")``), as fractions in [0, 1]."""
    successes, n = int(successes), int(n)
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1; got successes={successes}, n={n}")
    interval = stats.binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def proportion_with_ci(values, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """The proportion of true values in a boolean array with its Wilson interval, all in %."""
    values = np.asarray(values, bool)
    low, high = proportion_ci(int(values.sum()), values.size, confidence)
    return 100 * float(values.mean()), 100 * low, 100 * high


class PairedDifference(NamedTuple):
    """The mean of the per-item differences ``a - b`` (the same items measured twice), its
    interval, and the number of pairs."""

    mean: float
    low: float
    high: float
    n: int

    def excludes_zero(self) -> int:
        """+1 when the whole interval is above 0, -1 when below, 0 when it contains 0."""
        return 1 if self.low > 0 else -1 if self.high < 0 else 0


def paired_difference(
    a, b, confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES, seed: int = 0
) -> PairedDifference:
    """Mean paired difference ``mean(a - b)`` over items measured by both (NaN pairs dropped)
    with the percentile bootstrap interval that resamples the pairs (scipy.stats.bootstrap,
    fixed seed). When every difference is equal the interval is that value (no variation)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values differ in shape: {a.shape} vs {b.shape}")
    differences = (a - b)[np.isfinite(a) & np.isfinite(b)]
    if differences.size == 0:
        raise ValueError("no complete pair to compare")
    mean = float(differences.mean())
    if differences.size < 2 or np.all(differences == differences[0]):
        return PairedDifference(mean, mean, mean, int(differences.size))
    result = stats.bootstrap(
        (differences,),
        np.mean,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    interval = result.confidence_interval
    return PairedDifference(mean, float(interval.low), float(interval.high), int(differences.size))


def mean_with_interval(
    values, confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES, seed: int = 0
) -> tuple[float, float, float]:
    """The mean of ``values`` (NaN dropped) with its percentile bootstrap interval: the
    :func:`paired_difference` of the values and 0. All NaN (or none): three NaN."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    result = paired_difference(values, np.zeros_like(values), confidence, n_resamples, seed)
    return result.mean, result.low, result.high


def mcnemar_p(a, b) -> float:
    """McNemar's exact test of paired right/wrong decisions (two boolean arrays over the same
    items): the two-sided binomial test of the discordant pairs. 1.0 when there are none."""
    a = np.asarray(a, bool)
    b = np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"paired decisions differ in shape: {a.shape} vs {b.shape}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def digits_for(low: float, high: float, most: int = 3) -> int:
    """Decimals an interval supports: two significant figures of its half-width (at most
    ``most``, at least 0), so a ±2.7 pp interval prints one decimal and ±0.028 three."""
    half = abs(float(high) - float(low)) / 2
    if not np.isfinite(half) or half == 0:
        return most
    return int(min(most, max(0, 1 - np.floor(np.log10(half)))))


def format_interval(value: float, low: float, high: float, digits: int | None = None) -> str:
    """``value (low-high)`` as the report's tables print an estimate with its interval, e.g.
    ``57.7 (55.0-60.3)``; ``value (low to high)`` when a bound is negative, so the minus signs
    stay readable (``-18.0 (-24.0 to -12.0)``). ``digits`` defaults to :func:`digits_for`; a
    rounded -0 prints as 0; "n/a" when a number is missing (NaN)."""
    if not all(np.isfinite(float(v)) for v in (value, low, high)):
        return "n/a"
    digits = digits_for(low, high) if digits is None else digits
    return f"{_rounded(value, digits)} ({format_bounds(low, high, digits)})"


def _rounded(value: float, digits: int) -> str:
    return f"{round(float(value), digits) + 0.0:.{digits}f}"


def format_bounds(low: float, high: float, digits: int | None = None) -> str:
    """An interval alone, ``low-high`` (``low to high`` when a bound is negative), rounded as
    :func:`format_interval` rounds it."""
    digits = digits_for(low, high) if digits is None else digits
    shown = [_rounded(v, digits) for v in (low, high)]
    separator = " to " if float(shown[0]) < 0 or float(shown[1]) < 0 else "-"
    return f"{shown[0]}{separator}{shown[1]}"


#: Asymptotic relative efficiency of the Wilcoxon signed-rank test against the t-test when the
#: values are normal (3 / pi): the signed-rank test needs about 1 / 0.955 times as many raters.
WILCOXON_ARE = 3 / np.pi


def one_sample_t_power(effect_size: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided one-sample (or paired) t-test at level ``alpha`` with ``n``
    values when the true mean is ``effect_size`` standard deviations from 0 (Cohen's d): the
    probability that |t| exceeds the critical value under the noncentral t distribution with
    ``n - 1`` degrees of freedom and noncentrality ``d * sqrt(n)`` (as G*Power computes it)."""
    if n < 2:
        return float("nan")
    df = n - 1
    critical = stats.t.ppf(1 - alpha / 2, df)
    noncentrality = effect_size * np.sqrt(n)
    return float(stats.nct.sf(critical, df, noncentrality) + stats.nct.cdf(-critical, df, noncentrality))


def raters_needed(
    effect: float,
    sd: float,
    power: float = 0.8,
    alpha: float = 0.05,
    wilcoxon: bool = True,
    most: int = 100_000,
) -> int:
    """The number of raters a study needs to detect a mean per-rater effect ``effect`` (on the
    rating scale) when per-rater values spread with standard deviation ``sd``, at ``power`` and
    two-sided level ``alpha``: the smallest n whose one-sample t-test power
    (:func:`one_sample_t_power`, d = effect / sd) reaches ``power``, divided by the Wilcoxon
    test's efficiency :data:`WILCOXON_ARE` and rounded up when ``wilcoxon`` (the test the
    analysis runs, :func:`gradcam_core.tasks.user_study.per_rater_test`)."""
    if effect == 0 or sd <= 0:
        raise ValueError(f"need a non-zero effect and a positive sd, got effect={effect!r}, sd={sd!r}")
    d = abs(effect) / sd
    n = 2
    while one_sample_t_power(d, n, alpha) < power:
        n += 1
        if n > most:
            raise ValueError(f"more than {most} raters needed for effect {effect} with sd {sd}")
    return int(np.ceil(n / WILCOXON_ARE)) if wilcoxon else n
