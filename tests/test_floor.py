"""spiking.floor: the best KL each spiking readout can reach against the tempered teacher."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from spiking.floor import FLOOR_READOUTS, kl_floor, kl_to
from spiking.theta0 import auto_theta0


def digits_like(n: int = 300, k: int = 10, seed: int = 0) -> torch.Tensor:
    """A confident teacher: the target logit ~15 above non-targets spread with std 3."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, k, generator=g) * 3
    z[torch.arange(n), torch.randint(0, k, (n,), generator=g)] += 15
    return z


def brute_force(u: torch.Tensor, steps: int, theta0: float) -> float:
    """min over every count vector in {0..N}^K of KL(softmax(u) ‖ softmax((θ0/N)·count)): the truth."""
    counts = torch.tensor(list(itertools.product(range(steps + 1), repeat=u.shape[-1])), dtype=torch.float64)
    return float(kl_to(u.double().expand(counts.shape[0], -1), counts * theta0 / steps).min())


def test_count_floor_is_zero_on_the_grid():
    steps, theta0 = 10, 5.0
    levels = torch.tensor([[0, 3, 10, 7], [2, 2, 9, 1]], dtype=torch.float64)
    temperature = 2.0
    z = levels * (theta0 / steps) * temperature  # z/T lies on the grid, within [0, θ0]
    assert kl_floor(z, temperature, steps, theta0, "count") == pytest.approx(0.0, abs=1e-12)
    # Shift-invariance: the same logits moved by a constant are just as reachable.
    assert kl_floor(z - 100.0, temperature, steps, theta0, "count") == pytest.approx(0.0, abs=1e-12)


def test_count_floor_grows_with_temperature_and_shrinks_with_steps():
    z = digits_like()
    theta0 = auto_theta0(z)
    by_t = [kl_floor(z, t, 25, theta0, "count") for t in (1, 2, 4, 8)]
    assert all(a < b for a, b in zip(by_t, by_t[1:])), by_t
    # Nested grids (each N divides the next) can only lower the floor; 8 -> 25 -> 100 does in practice.
    for t in (2.0, 8.0):
        nested = [kl_floor(z, t, n, theta0, "count") for n in (5, 10, 20, 40, 80)]
        assert all(a >= b for a, b in zip(nested, nested[1:])), nested
        assert nested[-1] < nested[0]
        table = [kl_floor(z, t, n, theta0, "count") for n in (8, 25, 100)]
        assert all(a > b for a, b in zip(table, table[1:])), table


def test_count_floor_falls_again_at_very_high_temperature():
    """Documented, not a bug: the floor is at most KL(p ‖ uniform), which vanishes as T grows."""
    z = digits_like()
    theta0 = auto_theta0(z)
    huge = kl_floor(z, 1000.0, 8, theta0, "count")
    uniform = float(kl_to(z.double() / 1000.0, torch.zeros_like(z, dtype=torch.float64)).mean())
    assert huge <= uniform + 1e-12 and huge < kl_floor(z, 8.0, 8, theta0, "count")


@pytest.mark.parametrize("steps", [1, 4, 25])
def test_membrane_floor_below_count_floor_and_non_negative(steps):
    for seed, scale in [(0, 1.0), (1, 3.0), (2, 0.2)]:
        z = digits_like(seed=seed) * scale
        for theta0 in (1.0, auto_theta0(z), 40.0):
            for t in (0.5, 1.0, 4.0, 16.0):
                count = kl_floor(z, t, steps, theta0, "count")
                membrane = kl_floor(z, t, steps, theta0, "count_membrane")
                assert 0.0 <= membrane <= count + 1e-12, (seed, theta0, t, membrane, count)
                assert kl_floor(z, t, steps, theta0, "li") == 0.0


def test_membrane_floor_is_zero_within_range_and_positive_beyond():
    z = digits_like()
    spread = float((z.max(dim=1).values - z.min(dim=1).values).max())
    assert kl_floor(z, 1.0, 25, spread, "count_membrane") == pytest.approx(0.0, abs=1e-12)
    assert kl_floor(z, 1.0, 25, spread / 4, "count_membrane") > 1e-3  # θ0 too small to hold the spread


def test_membrane_floor_matches_a_generic_optimiser():
    """The bisection on the clip shift is the box-constrained optimum (KKT); a projected gradient agrees."""
    z = digits_like(n=20, seed=3)
    theta0, t = 6.0, 1.0
    u = z.double() / t
    r = u.clamp(0, theta0).clone().requires_grad_(True)
    optimiser = torch.optim.Adam([r], lr=0.05)
    for _ in range(3000):
        optimiser.zero_grad()
        kl_to(u, r).sum().backward()
        optimiser.step()
        with torch.no_grad():
            r.clamp_(0, theta0)
    generic = float(kl_to(u, r.detach()).mean())
    exact = kl_floor(z, t, 25, theta0, "count_membrane")
    assert exact <= generic + 1e-9 and exact == pytest.approx(generic, rel=1e-3, abs=1e-6)


@pytest.mark.parametrize("k,steps", [(3, 4), (3, 7), (4, 5)])
def test_count_floor_equals_brute_force(k, steps):
    g = torch.Generator().manual_seed(k * 100 + steps)
    for _ in range(25):
        z = torch.randn(1, k, generator=g, dtype=torch.float64) * float(torch.rand(1, generator=g)) * 8
        t = 0.5 + 4 * float(torch.rand(1, generator=g))
        theta0 = 0.3 + 8 * float(torch.rand(1, generator=g))
        assert kl_floor(z, t, steps, theta0, "count") == pytest.approx(brute_force(z[0] / t, steps, theta0), abs=1e-12)


def test_mean_over_samples():
    z = digits_like(n=6, k=3)
    each = [brute_force(row / 4.0, 4, 5.0) for row in z]
    assert kl_floor(z, 4.0, 4, 5.0, "count") == pytest.approx(sum(each) / len(each), abs=1e-12)


@pytest.mark.parametrize("kwargs,name", [
    ({"temperature": 0.0}, "temperature"), ({"temperature": -1.0}, "temperature"),
    ({"temperature": math.nan}, "temperature"), ({"temperature": math.inf}, "temperature"),
    ({"steps": 0}, "steps"), ({"steps": 2.5}, "steps"),
    ({"theta0": 0.0}, "theta0"), ({"theta0": math.inf}, "theta0"),
    ({"readout": "rate"}, "readout"),
    ({"teacher_logits": torch.tensor([[1.0, math.nan]])}, "teacher_logits"),
    ({"teacher_logits": torch.ones(3)}, "teacher_logits"),
])
def test_bad_input_names_the_argument(kwargs, name):
    args = {"teacher_logits": torch.zeros(2, 3), "temperature": 1.0, "steps": 4, "theta0": 1.0, "readout": "count",
            **kwargs}
    with pytest.raises(ValueError, match=name):
        kl_floor(**args)


def test_readouts_listed():
    assert set(FLOOR_READOUTS) == {"count", "count_membrane", "li"}
