"""Tests, intervals, multiplicity and power for effects measured over a few paired seeds.

Which statistic gets which interval, and why:

- **A mean of per-seed values** (a paired difference of test scores, a per-seed share of epochs
  saved, a per-seed growth of entropy, a per-seed level such as an entropy or a ratio of mutual
  information): ``t_test`` — the mean ± t_{n−1, 0.975}·s/√n and the one-sample t-test against a
  null. With five seeds a percentile bootstrap of the mean is too narrow: it resamples the seeds
  as if they were the population and ignores that s itself is estimated from five values. In
  simulation (``tests/test_inference.py``: 2000 samples of five normal seeds) the percentile
  bootstrap covered the true mean 83.7% of the time, the t-interval 94.2%.
- **A ratio of two seed-to-seed standard deviations** (C4: the spread of one arm against the
  other's, over the same seeds): not a mean of per-seed values, so no t-interval. It gets the
  Pitman–Morgan test (paired arms: the variances are equal exactly when the per-seed sums and
  differences of the two arms are uncorrelated; the t-test of that correlation is exact for normal
  scores), and the interval is the set of ratios that test does not reject (``std_ratio_test``),
  so its interval and its p-value always agree — a BCa bootstrap would not guarantee that, and
  with five seeds it is as coarse as the percentile bootstrap.

``holm`` adjusts a family of p-values (Holm 1979: step-down, controls the family-wise error
rate without assuming independence). ``t_power``/``seeds_for_power`` give the power of the
two-sided paired t-test (noncentral t) and the seeds it needs; ``std_ratio_power`` the
approximate power of the Pitman–Morgan test (Fisher's z of the correlation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import numpy as np
from scipy import stats

ALPHA = 0.05
LEVEL = 0.95
TARGET_POWER = 0.8
MAX_SEEDS = 100_000   # the most seeds ``seeds_for_power`` looks for


@dataclass(frozen=True)
class Estimate:
    """An estimate, its interval at ``level``, the two-sided p-value of the test against the null,
    the seeds it came from and the seed-to-seed standard deviation of what was averaged."""

    estimate: float
    low: float
    high: float
    p: float
    n: int
    sd: float

    @classmethod
    def missing(cls, n: int = 0, estimate: float = math.nan) -> "Estimate":
        return cls(estimate, math.nan, math.nan, math.nan, n, math.nan)

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    def map(self, f: Callable[[float], float]) -> "Estimate":
        """The same test on another (monotone increasing) scale: the p-value does not change."""
        return Estimate(f(self.estimate), f(self.low), f(self.high), self.p, self.n, self.sd)


def t_quantile(df: float, level: float = LEVEL) -> float:
    """The two-sided ``level`` quantile of Student's t: t_{df, (1 + level)/2}."""
    return float(stats.t.ppf((1.0 + level) / 2.0, df))


def t_test(values: Sequence[float], null: float = 0.0, level: float = LEVEL) -> Estimate:
    """Mean of the finite values ± t·s/√n and the two-sided one-sample t-test against ``null``.
    One value: an estimate without interval; values all equal: a point interval, p = 0 unless
    the value is the null (p = 1)."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = int(x.size)
    if n == 0:
        return Estimate.missing()
    mean = float(x.mean())
    if n < 2:
        return Estimate.missing(n, mean)
    sd = float(x.std(ddof=1))
    if sd <= 1e-12 * max(1.0, abs(mean)):   # every seed the same (up to rounding)
        return Estimate(mean, mean, mean, 1.0 if abs(mean - null) <= 1e-12 * max(1.0, abs(mean)) else 0.0, n, 0.0)
    se = sd / math.sqrt(n)
    half = t_quantile(n - 1, level) * se
    p = float(2.0 * stats.t.sf(abs(mean - null) / se, n - 1))
    return Estimate(mean, mean - half, mean + half, p, n, sd)


def holm(pvalues: Sequence[float]) -> List[float]:
    """Holm's step-down adjusted p-values, in the order given: the k-th smallest p times
    (m − k + 1), made non-decreasing, capped at 1. Non-finite p-values are not in the family
    and come back as nan."""
    indexed = [(p, i) for i, p in enumerate(pvalues) if p is not None and math.isfinite(p)]
    m = len(indexed)
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(indexed)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def t_power(effect: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided one-sample (paired) t-test at ``n`` seeds to detect a true mean
    ``effect`` away from the null when the seeds scatter with standard deviation ``sd``."""
    if n < 2 or not math.isfinite(effect) or not math.isfinite(sd):
        return math.nan
    if sd == 0.0:
        return 1.0 if effect != 0 else alpha
    df = n - 1
    crit = stats.t.ppf(1.0 - alpha / 2.0, df)
    nc = abs(effect) / (sd / math.sqrt(n))
    upper, lower = stats.nct.sf(crit, df, nc), stats.nct.cdf(-crit, df, nc)
    # far in the tail scipy's noncentral t can return nan for a probability that is 0 (or 1)
    upper = 1.0 if not math.isfinite(upper) and nc > crit else upper
    lower = 0.0 if not math.isfinite(lower) else lower
    return float(min(1.0, upper + lower)) if math.isfinite(upper) else math.nan


def seeds_for_power(power: Callable[[int], float], target: float = TARGET_POWER) -> Optional[int]:
    """The fewest seeds (≥ 2) at which ``power(n)`` reaches ``target`` (power grows with n; an
    undefined power counts as none); None when not even ``MAX_SEEDS`` do."""
    def enough(n: int) -> bool:
        value = power(n)
        return math.isfinite(value) and value >= target

    if not enough(MAX_SEEDS):
        return None
    low, high = 2, 2
    while not enough(high):
        low, high = high + 1, min(2 * high, MAX_SEEDS)
    while low < high:                       # the first n in [low, high] with enough power
        mid = (low + high) // 2
        if enough(mid):
            high = mid
        else:
            low = mid + 1
    return high


# ---------------------------------------------------------------------------------------------
# A ratio of two standard deviations over the same seeds (Pitman–Morgan)


def _sum_difference_p(cov: np.ndarray, n: int, ratio: np.ndarray) -> np.ndarray:
    """Two-sided p-values of the t-test (df n − 2) that x + y/ρ and x − y/ρ are uncorrelated,
    for each ρ in ``ratio``, from the 2×2 sample covariance of (x, y)."""
    sxx, sxy, syy = cov[0, 0], cov[0, 1], cov[1, 1]
    c = 1.0 / ratio
    covariance = sxx - c * c * syy
    product = (sxx + c * c * syy) ** 2 - 4.0 * c * c * sxy * sxy
    r = np.clip(covariance / np.sqrt(np.maximum(product, 1e-300)), -1.0, 1.0)
    with np.errstate(divide="ignore"):
        t = np.abs(r) * np.sqrt((n - 2) / np.maximum(1.0 - r * r, 0.0))
    return 2.0 * stats.t.sf(t, n - 2)


def std_ratio_test(pairs: np.ndarray, null: float = 1.0, level: float = LEVEL) -> Estimate:
    """sd(second column) / sd(first) over paired seeds, with the Pitman–Morgan test of
    ``null`` and its inverted interval: the ratios ρ whose test (x + y/ρ uncorrelated with
    x − y/ρ) is not rejected at 1 − ``level``, on a grid of ρ 0.05% apart between 1/1000 and
    1000. Fewer than three seeds, or an arm without spread: an estimate at most. ``sd`` is nan:
    the power of this test comes from the arms' correlation (``std_ratio_power``)."""
    x = np.asarray(pairs, dtype=float)
    n = x.shape[0]
    if n < 2:
        return Estimate.missing(n)
    s1, s2 = float(x[:, 0].std(ddof=1)), float(x[:, 1].std(ddof=1))
    if s1 == 0.0 or s2 == 0.0:
        return Estimate.missing(n, s2 / s1 if s1 > 0 else math.nan)
    estimate = s2 / s1
    if n < 3:
        return Estimate.missing(n, estimate)
    cov = np.cov(x[:, 0], x[:, 1], ddof=1)
    p = float(_sum_difference_p(cov, n, np.asarray([null]))[0])
    grid = np.exp(np.linspace(math.log(1e-3), math.log(1e3), 27_633))
    kept = grid[_sum_difference_p(cov, n, grid) >= 1.0 - level]
    low, high = (float(kept.min()), float(kept.max())) if kept.size else (estimate, estimate)
    return Estimate(estimate, low, high, p, n, math.nan)


def std_ratio_power(ratio: float, correlation: float, n: int, alpha: float = ALPHA) -> float:
    """Approximate power of the two-sided Pitman–Morgan test at ``n`` seeds when the true ratio
    of standard deviations is ``ratio`` and the arms' scores correlate by ``correlation``
    over seeds: the correlation ρ of sum and difference, tested by Fisher's z
    (atanh r ~ N(atanh ρ, 1/(n − 3)))."""
    if n < 4 or not (math.isfinite(ratio) and math.isfinite(correlation)) or ratio <= 0:
        return math.nan
    c = max(-0.999, min(0.999, correlation))
    v = ratio * ratio                   # var(second) / var(first), var(first) = 1
    rho = (1.0 - v) / math.sqrt((1.0 + v) ** 2 - 4.0 * c * c * v)
    shift = abs(math.atanh(max(-0.999999, min(0.999999, rho)))) * math.sqrt(n - 3)
    z = stats.norm.ppf(1.0 - alpha / 2.0)
    return float(stats.norm.sf(z - shift) + stats.norm.cdf(-z - shift))
