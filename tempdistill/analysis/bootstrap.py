"""The bootstrap of ``compare``: seeds resampled with replacement, arms kept paired.

``statistics`` (the intervals and verdicts of ``compare``, ``sweep`` and reports) resamples
here: the central 95% of ``BOOTSTRAP_RESAMPLES`` percentile-bootstrap draws of the statistic,
from a fixed seed (the same runs always give the same interval). With five seeds such an
interval of a mean is too narrow (it covered the true mean 84% of the time in simulation, see
``tests/test_inference.py``), so the claims study uses ``inference`` (t-intervals, Holm, power)
instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Tuple

import numpy as np

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
LEVEL = 0.95

# A statistic of resampled seeds: (resamples, seeds, arms) -> (resamples,)
Statistic = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Effect:
    """An estimate with its 95% interval, over ``n`` seeds (or settings, when pooled)."""

    estimate: float
    low: float
    high: float
    n: int

    @classmethod
    def missing(cls) -> "Effect":
        return cls(math.nan, math.nan, math.nan, 0)

    def map(self, f: Callable[[float], float]) -> "Effect":
        """The same effect on another (monotone increasing) scale, e.g. exp of a log-ratio."""
        return Effect(f(self.estimate), f(self.low), f(self.high), self.n)

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)


def quantiles(draws: np.ndarray, level: float = LEVEL) -> Tuple[float, float]:
    """The central ``level`` interval of the finite draws; (nan, nan) when there are none."""
    tail = (1.0 - level) / 2.0
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return math.nan, math.nan
    return float(np.quantile(finite, tail)), float(np.quantile(finite, 1.0 - tail))


def bootstrap_strata(strata: Mapping[str, np.ndarray], statistic: Statistic, resamples: int = BOOTSTRAP_RESAMPLES,
                     seed: int = BOOTSTRAP_SEED, level: float = LEVEL) -> Tuple[Effect, Dict[str, Effect]]:
    """(pooled effect, effect per stratum) of ``statistic`` over paired seeds.

    Each stratum (a setting) is a (seeds, arms) array; its rows are resampled with replacement,
    whole, so a seed's arms stay paired. The pooled effect is the mean of the strata's effects,
    resampled stratum by stratum; strata with fewer than two seeds get no interval and are left
    out of the pool."""
    rng = np.random.default_rng(seed)
    per: Dict[str, Effect] = {}
    pooled_points, pooled_draws = [], []
    for name, values in strata.items():
        values = np.asarray(values, dtype=float)
        n = values.shape[0]
        if n == 0:
            per[name] = Effect.missing()
            continue
        point = float(statistic(values[None])[0])
        if n < 2:
            per[name] = Effect(point, math.nan, math.nan, n)
            continue
        draws = statistic(values[rng.integers(n, size=(resamples, n))])
        per[name] = Effect(point, *quantiles(draws, level), n)
        pooled_points.append(point)
        pooled_draws.append(draws)
    if not pooled_points:
        return Effect.missing(), per
    pooled = np.mean(pooled_draws, axis=0)
    return Effect(float(np.mean(pooled_points)), *quantiles(pooled, level), len(pooled_points)), per


def mean_of_first(x: np.ndarray) -> np.ndarray:
    """The mean over seeds of the first column (a level)."""
    return x[..., 0].mean(axis=-1)


def mean_difference(x: np.ndarray) -> np.ndarray:
    """The mean over seeds of (second column − first): a treatment against its reference."""
    return (x[..., 1] - x[..., 0]).mean(axis=-1)
