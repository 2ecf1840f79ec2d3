"""t-intervals, Holm, power and the Pitman–Morgan test of the claims study's statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tempdistill.analysis.inference import (
    holm,
    seeds_for_power,
    std_ratio_power,
    std_ratio_test,
    t_power,
    t_quantile,
    t_test,
)


def _coverage(seeds: int = 5, samples: int = 2000, resamples: int = 1000) -> tuple:
    """Share of samples whose interval covers the true mean: (t-interval, percentile bootstrap)."""
    rng = np.random.default_rng(0)
    data = rng.normal(0.3, 1.0, size=(samples, seeds))
    t_hits = boot_hits = 0
    for x in data:
        test = t_test(x)
        t_hits += test.low <= 0.3 <= test.high
        low, high = np.quantile(x[rng.integers(seeds, size=(resamples, seeds))].mean(axis=1), [0.025, 0.975])
        boot_hits += low <= 0.3 <= high
    return t_hits / samples, boot_hits / samples


def test_t_interval_covers_at_the_nominal_level_where_the_percentile_bootstrap_did_not() -> None:
    t_cover, boot_cover = _coverage()
    assert 0.93 <= t_cover <= 0.97          # measured: 0.942
    assert boot_cover < 0.88                # measured: 0.837, the old intervals of the claims study


def test_t_interval_by_hand() -> None:
    x = [0.01, 0.02, 0.0, 0.03, 0.015]
    found = t_test(x)
    half = 2.7764451 * np.std(x, ddof=1) / math.sqrt(5)        # t_{4, 0.975}
    assert t_quantile(4) == pytest.approx(2.7764451, rel=1e-6)
    assert (found.low, found.high) == pytest.approx((0.015 - half, 0.015 + half))
    assert found.p == pytest.approx(0.0399420, rel=1e-4)      # two-sided, t = 3.0, df 4
    assert t_test([0.5]).has_interval is False and t_test([0.5]).estimate == 0.5
    same = t_test([0.2, 0.2, 0.2])
    assert (same.low, same.high, same.p) == pytest.approx((0.2, 0.2, 0.0))
    assert t_test([0.0, 0.0]).p == 1.0


def test_holm_against_a_hand_computed_example() -> None:
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → raised to 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])       # capped at 1, then never below an earlier one
    adjusted = holm([0.01, math.nan, 0.02])                     # nan is not in the family
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)


def test_power_of_the_paired_t_test_against_known_values_and_simulation() -> None:
    # effect = sd, n = 10: the textbook value (G*Power, one-sample two-sided, d = 1) is 0.8031
    assert t_power(1.0, 1.0, 10) == pytest.approx(0.8031, abs=5e-4)
    assert seeds_for_power(lambda n: t_power(1.0, 1.0, n)) == 10
    assert seeds_for_power(lambda n: t_power(0.5, 1.0, n)) == 34      # d = 0.5: 34 (G*Power)
    rng = np.random.default_rng(1)
    samples = rng.normal(0.01, 0.01, size=(4000, 5))
    simulated = np.mean([t_test(x).p < 0.05 for x in samples])
    assert t_power(0.01, 0.01, 5) == pytest.approx(simulated, abs=0.03)   # 0.40
    assert t_power(0.01, 0.0, 5) == 1.0
    assert t_power(10.0, 0.001, 5) == 1.0                              # far tail: no nan


def test_std_ratio_test_and_its_power() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2)) * [1.0, 0.5]
    found = std_ratio_test(x)
    assert found.estimate == pytest.approx(x[:, 1].std(ddof=1) / x[:, 0].std(ddof=1))
    assert found.low < found.estimate < found.high and found.high < 1.0 and found.p < 0.05
    # the interval is the set of ratios the test does not reject: its ends test at p = 0.05
    for end in (found.low, found.high):
        assert std_ratio_test(x, null=end).p == pytest.approx(0.05, abs=0.002)
    assert not std_ratio_test(x[:2]).has_interval
    # C4 at five seeds: a 27% lower std is nearly invisible; ~80 seeds per arm for 80% power
    assert std_ratio_power(0.73, 0.0, 5) < 0.1
    assert 70 <= seeds_for_power(lambda n: std_ratio_power(0.73, 0.0, n)) <= 100
    simulated = np.mean([std_ratio_test(rng.normal(size=(30, 2)) * [1.0, 0.6]).p < 0.05 for _ in range(1000)])
    assert std_ratio_power(0.6, 0.0, 30) == pytest.approx(simulated, abs=0.06)
