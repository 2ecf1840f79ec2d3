"""Tempered softmax / log-softmax / entropy against a float64 NumPy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from tempdistill.temperature import check_temperature, entropy, entropy_from_logits, log_softmax, softmax

FAST = settings(max_examples=60, deadline=None)


# ---------------------------------------------------------------- float64 reference
def ref_log_softmax(z: np.ndarray, T) -> np.ndarray:
    a = np.asarray(z, dtype=np.float64) / np.asarray(T, dtype=np.float64)
    a = a - a.max(axis=-1, keepdims=True)
    return a - np.log(np.exp(a).sum(axis=-1, keepdims=True))


def ref_softmax(z: np.ndarray, T) -> np.ndarray:
    return np.exp(ref_log_softmax(z, T))


def ref_entropy(z: np.ndarray, T) -> np.ndarray:
    lp = ref_log_softmax(z, T)
    return -(np.exp(lp) * lp).sum(axis=-1)


def scale_of(z: np.ndarray, T) -> float:
    """Largest |z/T|: float64 round-off in the log domain is proportional to it."""
    return float(np.max(np.abs(np.asarray(z, dtype=np.float64) / np.asarray(T, dtype=np.float64))))


# ---------------------------------------------------------------- strategies
temperatures = st.floats(min_value=-3.0, max_value=3.0).map(lambda e: float(10.0**e))  # 1e-3 .. 1e3
logit_scales = st.sampled_from([1e-3, 1.0, 10.0, 1e2, 1e3, 1e4])


@st.composite
def logit_arrays(draw, max_batch=4, max_classes=12):
    b = draw(st.integers(1, max_batch))
    k = draw(st.integers(2, max_classes))
    unit = draw(hnp.arrays(np.float64, (b, k), elements=st.floats(-1.0, 1.0, allow_nan=False)))
    return unit * draw(logit_scales)


# ---------------------------------------------------------------- against the reference
@FAST
@given(z=logit_arrays(), T=temperatures)
def test_log_softmax_matches_float64_reference(z, T):
    out = log_softmax(torch.from_numpy(z), T).numpy()
    ref = ref_log_softmax(z, T)
    assert np.all(np.isfinite(out))
    tol = 1e-12 * max(1.0, scale_of(z, T)) + 1e-12
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=tol)


@FAST
@given(z=logit_arrays(), T=temperatures)
def test_softmax_matches_reference_and_sums_to_one(z, T):
    p = softmax(torch.from_numpy(z), T).numpy()
    assert np.all(np.isfinite(p)) and np.all(p >= 0) and np.all(p <= 1)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(p, ref_softmax(z, T), rtol=1e-9, atol=1e-12 * max(1.0, scale_of(z, T)))


@FAST
@given(z=logit_arrays(), T=temperatures)
def test_entropy_matches_reference_and_is_bounded(z, T):
    k = z.shape[-1]
    h_logits = entropy_from_logits(torch.from_numpy(z), T).numpy()
    h_probs = entropy(softmax(torch.from_numpy(z), T)).numpy()
    ref = ref_entropy(z, T)
    for h in (h_logits, h_probs):
        assert np.all(np.isfinite(h))
        assert np.all(h >= -1e-12) and np.all(h <= math.log(k) + 1e-9)
        np.testing.assert_allclose(h, ref, rtol=1e-8, atol=1e-9 * max(1.0, scale_of(z, T)))


@FAST
@given(z=logit_arrays(), T=temperatures)
def test_float32_extremes_stay_finite(z, T):
    """float32, |z| up to 1e4 and T in [1e-3, 1e3] (|z/T| up to 1e7): no NaN, no inf."""
    z32 = torch.from_numpy(z).float()
    lp = log_softmax(z32, T)
    p = softmax(z32, T)
    h = entropy_from_logits(z32, T)
    h2 = entropy(p)
    for t in (lp, p, h, h2):
        assert torch.isfinite(t).all(), t
    assert torch.allclose(p.sum(-1), torch.ones(z.shape[0]), atol=1e-5)
    assert (h >= -1e-6).all() and (h <= math.log(z.shape[-1]) + 1e-5).all()
    # The arg-max class of the float64 reference keeps (almost) all the mass at tiny T.
    ref = ref_softmax(z, T)
    np.testing.assert_allclose(p.double().numpy(), ref, atol=1e-2 + 1e-6 * scale_of(z, T))


@pytest.mark.parametrize("T", [1e-3, 1e-2, 1.0, 1e2, 1e3])
@pytest.mark.parametrize("scale", [1e-2, 1.0, 1e4])
def test_extreme_grid_float32_and_float64(T, scale):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((8, 10)) * scale
    z[0, 0] = 1e4  # a single enormous logit
    z[1, :] = -1e4
    for dtype in (torch.float32, torch.float64):
        zt = torch.tensor(z, dtype=dtype)
        for out in (log_softmax(zt, T), softmax(zt, T), entropy_from_logits(zt, T), entropy(softmax(zt, T))):
            assert torch.isfinite(out).all()
            assert not torch.isnan(out).any()
    np.testing.assert_allclose(
        log_softmax(torch.tensor(z), T).numpy(), ref_log_softmax(z, T), rtol=1e-10, atol=1e-12 * scale_of(z, T) + 1e-12
    )
    np.testing.assert_allclose(entropy_from_logits(torch.tensor(z), T).numpy(), ref_entropy(z, T), atol=1e-9)


def test_limits_uniform_and_one_hot():
    z = torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=torch.float64)
    # T -> inf: uniform, entropy log K; T -> 0: one-hot, entropy 0.
    assert torch.allclose(softmax(z, 1e6), torch.full((1, 4), 0.25, dtype=torch.float64), atol=1e-6)
    assert abs(float(entropy_from_logits(z, 1e6)) - math.log(4)) < 1e-6
    assert torch.equal(softmax(z, 1e-3), torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64))
    assert float(entropy_from_logits(z, 1e-3)) == pytest.approx(0.0, abs=1e-12)
    assert float(entropy(softmax(z, 1e-3))) == 0.0  # 0·log 0 is 0, not NaN


def test_default_T_is_one_and_dim_argument():
    z = torch.randn(3, 5, dtype=torch.float64)
    assert torch.allclose(softmax(z), torch.softmax(z, -1))
    assert torch.allclose(log_softmax(z.T, 2.0, dim=0), log_softmax(z, 2.0, dim=-1).T)
    assert torch.allclose(entropy_from_logits(z.T, 2.0, dim=0), entropy_from_logits(z, 2.0))


# ---------------------------------------------------------------- tensor temperatures
@FAST
@given(z=logit_arrays(max_batch=5, max_classes=7), data=st.data())
def test_per_sample_temperature_broadcasts(z, data):
    b = z.shape[0]
    t = np.array([data.draw(temperatures) for _ in range(b)]).reshape(b, 1)
    T = torch.from_numpy(t)
    out = log_softmax(torch.from_numpy(z), T).numpy()
    np.testing.assert_allclose(out, ref_log_softmax(z, t), rtol=1e-10, atol=1e-12 * max(1.0, scale_of(z, t)))
    # Row i equals a scalar call with T_i.
    for i in range(b):
        row = log_softmax(torch.from_numpy(z[i : i + 1]), float(t[i, 0])).numpy()
        np.testing.assert_allclose(out[i : i + 1], row, rtol=1e-12, atol=1e-12 * max(1.0, scale_of(z, t)))
    h = entropy_from_logits(torch.from_numpy(z), T).numpy()
    assert h.shape == (b,)
    np.testing.assert_allclose(h, ref_entropy(z, t), rtol=1e-8, atol=1e-9 * max(1.0, scale_of(z, t)))


@FAST
@given(z=logit_arrays(max_batch=5, max_classes=7), data=st.data())
def test_per_class_temperature_broadcasts(z, data):
    k = z.shape[1]
    t = np.array([data.draw(temperatures) for _ in range(k)])
    T = torch.from_numpy(t)
    p = softmax(torch.from_numpy(z), T).numpy()
    assert p.shape == z.shape and np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-12)
    # A T that varies by class is applied to centred logits (shift invariance).
    zc = z - z.mean(axis=-1, keepdims=True) if np.any(t != t[0]) else z
    np.testing.assert_allclose(p, ref_softmax(zc, t), rtol=1e-9, atol=1e-12 * max(1.0, scale_of(z, t)))


def test_tensor_temperature_float32_logits_with_float64_T():
    z = torch.randn(4, 6) * 1e4
    T = torch.tensor([[1e-3], [1.0], [10.0], [1e3]], dtype=torch.float64)
    out = log_softmax(z, T)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    T_class = torch.logspace(-3, 3, 6)
    assert torch.isfinite(softmax(z, T_class)).all()
    assert torch.isfinite(entropy_from_logits(z, T_class)).all()


def test_gradient_is_finite_at_extremes():
    z = (torch.randn(4, 10, dtype=torch.float64) * 1e4).requires_grad_()
    for T in (1e-3, 1.0, 1e3):
        (entropy_from_logits(z, T).sum() + log_softmax(z, T)[:, 0].sum()).backward()
        assert torch.isfinite(z.grad).all()
        z.grad = None


# ---------------------------------------------------------------- bad temperatures
BAD_SCALARS = [0.0, -1.0, -1e-9, float("nan"), float("inf"), float("-inf")]


@pytest.mark.parametrize("bad", BAD_SCALARS, ids=repr)
@pytest.mark.parametrize(
    "fn",
    [check_temperature, lambda T: softmax(torch.zeros(2, 3), T), lambda T: log_softmax(torch.zeros(2, 3), T),
     lambda T: entropy_from_logits(torch.zeros(2, 3), T)],
    ids=["check_temperature", "softmax", "log_softmax", "entropy_from_logits"],
)
def test_bad_scalar_temperature_raises_naming_value(fn, bad):
    with pytest.raises(ValueError) as info:
        fn(bad)
    assert str(float(bad)) in str(info.value)  # '0.0', '-1.0', 'nan', 'inf', '-inf'


@pytest.mark.parametrize("bad", BAD_SCALARS, ids=repr)
def test_bad_tensor_temperature_raises_naming_value(bad):
    T = torch.tensor([[1.0], [bad], [2.0]], dtype=torch.float64)
    with pytest.raises(ValueError) as info:
        softmax(torch.zeros(3, 4), T)
    assert str(float(bad)) in str(info.value)
    T_class = torch.tensor([2.0, 3.0, bad, 1.0], dtype=torch.float64)
    with pytest.raises(ValueError) as info:
        log_softmax(torch.zeros(3, 4), T_class)
    assert str(float(bad)) in str(info.value)


@pytest.mark.parametrize("bad", ["4", None, True, [1.0]], ids=repr)
def test_non_numeric_temperature_raises(bad):
    with pytest.raises(ValueError):
        check_temperature(bad)


def test_empty_tensor_temperature_raises():
    with pytest.raises(ValueError):
        check_temperature(torch.tensor([]))


@FAST
@given(T=st.floats(min_value=1e-300, max_value=1e300))
def test_check_temperature_accepts_every_positive_finite(T):
    assert check_temperature(T) == T
    assert check_temperature(np.float32(1.5)) == 1.5
    assert check_temperature(3) == 3.0
