"""KD loss, DKD parts and policy KL, checked against independent float64 computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from tempdistill.losses import dkd_parts, kd_loss, policy_kl

FAST = settings(max_examples=60, deadline=None)


def ref_log_softmax(z: np.ndarray, T) -> np.ndarray:
    a = np.asarray(z, dtype=np.float64) / np.asarray(T, dtype=np.float64)
    a = a - a.max(axis=-1, keepdims=True)
    return a - np.log(np.exp(a).sum(axis=-1, keepdims=True))


def ref_kl(teacher: np.ndarray, student: np.ndarray, T) -> np.ndarray:
    """KL(softmax(t/T) || softmax(s/T)) per row, float64."""
    lt, ls = ref_log_softmax(teacher, T), ref_log_softmax(student, T)
    return (np.exp(lt) * (lt - ls)).sum(axis=-1)


def ref_ce(student: np.ndarray, labels: np.ndarray) -> float:
    ls = ref_log_softmax(student, 1.0)
    return float(-ls[np.arange(len(labels)), labels].mean())


def pair(b=8, k=10, scale=3.0, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(b, k, generator=g, dtype=dtype) * scale
    t = torch.randn(b, k, generator=g, dtype=dtype) * scale
    y = torch.randint(0, k, (b,), generator=g)
    return s, t, y


# ---------------------------------------------------------------- kd_loss
@pytest.mark.parametrize("T", [0.5, 1.0, 4.0, 20.0])
def test_kd_loss_zero_for_identical_logits(T):
    s, _, _ = pair()
    assert float(kd_loss(s, s.clone(), T)) == pytest.approx(0.0, abs=1e-12)
    assert float(kd_loss(s.float(), s.float().clone(), T)) == pytest.approx(0.0, abs=1e-5)


@FAST
@given(
    T=st.sampled_from([0.5, 1.0, 2.0, 4.0, 16.0]),
    alpha=st.floats(0.0, 1.0),
    seed=st.integers(0, 10_000),
    scale=st.sampled_from([0.1, 1.0, 5.0, 30.0]),
)
def test_kd_loss_with_labels_matches_independent_formula(T, alpha, seed, scale):
    s, t, y = pair(seed=seed, scale=scale)
    got = float(kd_loss(s, t, T, labels=y, alpha=alpha))
    kl = ref_kl(t.numpy(), s.numpy(), T).mean()
    want = alpha * T**2 * kl + (1 - alpha) * ref_ce(s.numpy(), y.numpy())
    assert got == pytest.approx(want, rel=1e-9, abs=1e-10)


@FAST
@given(T=st.sampled_from([0.5, 1.0, 3.0, 8.0]), alpha=st.floats(0.0, 1.0), seed=st.integers(0, 10_000))
def test_kd_loss_without_labels_is_alpha_T2_KL(T, alpha, seed):
    s, t, _ = pair(seed=seed)
    got = float(kd_loss(s, t, T, alpha=alpha))
    want = alpha * T**2 * ref_kl(t.numpy(), s.numpy(), T).mean()
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_kd_loss_default_alpha_is_0_9():
    s, t, y = pair(seed=3)
    assert float(kd_loss(s, t, 2.0, labels=y)) == pytest.approx(float(kd_loss(s, t, 2.0, labels=y, alpha=0.9)))
    kl = ref_kl(t.numpy(), s.numpy(), 2.0).mean()
    assert float(kd_loss(s, t, 2.0, labels=y)) == pytest.approx(0.9 * 4 * kl + 0.1 * ref_ce(s.numpy(), y.numpy()))


def test_kd_loss_nonnegative_and_finite_at_extremes():
    s, t, y = pair(scale=1e4, dtype=torch.float32)
    for T in (1e-3, 1.0, 1e3):
        v = kd_loss(s, t, T, labels=y)
        assert torch.isfinite(v) and float(v) >= 0


@pytest.mark.parametrize("T", [0.5, 1.0, 4.0])
def test_kd_loss_gradcheck(T):
    s, t, y = pair(b=4, k=5, scale=2.0, seed=1)
    s.requires_grad_()
    t.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: kd_loss(a, b, T), (s, t))
    assert torch.autograd.gradcheck(lambda a: kd_loss(a, t.detach(), T, labels=y, alpha=0.7), (s,))


def test_kd_loss_gradcheck_tensor_temperature():
    s, t, _ = pair(b=4, k=5, scale=2.0, seed=2)
    s.requires_grad_()
    T = torch.tensor([[0.5], [1.0], [2.0], [8.0]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, temp: kd_loss(a, t, temp), (s, T))


def _grad_norm(s, t, T, with_t2=True):
    s = s.clone().requires_grad_()
    loss = kd_loss(s, t, T, alpha=1.0)
    if not with_t2:
        loss = loss / T**2
    (g,) = torch.autograd.grad(loss, s)
    return float(g.norm())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kd_gradient_scale_is_temperature_invariant(seed):
    """The T² factor keeps soft-gradient magnitudes comparable across T (Hinton et al. 2015)."""
    s, t, _ = pair(b=32, k=10, scale=2.0, seed=seed)
    temps = [1.0, 2.0, 4.0, 8.0]
    with_t2 = [_grad_norm(s, t, T) for T in temps]
    without = [_grad_norm(s, t, T, with_t2=False) for T in temps]
    assert max(with_t2) / min(with_t2) < 4.0, with_t2
    # The check can fail: dropping T² makes the gradient shrink ~1/T² (ratio ~ 64 here).
    assert max(without) / min(without) > 20.0, without


def test_kd_loss_per_class_and_per_sample_temperature():
    s, t, _ = pair(b=6, k=4, seed=5)
    T_sample = torch.tensor([[0.5], [1.0], [2.0], [3.0], [4.0], [8.0]], dtype=torch.float64)
    got = float(kd_loss(s, t, T_sample, alpha=1.0))
    want = np.mean(T_sample.numpy()[:, 0] ** 2 * ref_kl(t.numpy(), s.numpy(), T_sample.numpy()))
    assert got == pytest.approx(want, rel=1e-10)
    T_class = torch.tensor([1.0, 2.0, 4.0, 8.0], dtype=torch.float64)
    v = kd_loss(s, t, T_class, alpha=1.0)
    assert torch.isfinite(v) and float(v) >= 0
    assert float(kd_loss(s, s, T_class)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    "shapes", [((4, 10), (4, 9)), ((4, 10), (5, 10)), ((4, 10), (4, 10, 1)), ((10,), (4, 10))], ids=str
)
def test_kd_loss_shape_mismatch_raises(shapes):
    a, b = (torch.zeros(*shape) for shape in shapes)
    with pytest.raises(ValueError, match="shape"):
        kd_loss(a, b, 2.0)


def test_kd_loss_label_batch_mismatch_raises():
    s, t, _ = pair(b=4)
    with pytest.raises(ValueError):
        kd_loss(s, t, 2.0, labels=torch.zeros(3, dtype=torch.long), alpha=0.5)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_kd_loss_bad_alpha_raises(alpha):
    s, t, _ = pair()
    with pytest.raises(ValueError, match="alpha"):
        kd_loss(s, t, 2.0, alpha=alpha)


@pytest.mark.parametrize("T", [0.0, -2.0, float("nan"), float("inf")])
def test_kd_loss_bad_temperature_raises(T):
    s, t, y = pair()
    with pytest.raises(ValueError):
        kd_loss(s, t, T)
    with pytest.raises(ValueError):
        kd_loss(s, t, T, labels=y, alpha=0.0)  # even when the soft term has weight 0


# ---------------------------------------------------------------- DKD
@pytest.mark.parametrize("T", [0.5, 1.0, 4.0, 16.0])
@pytest.mark.parametrize("scale", [0.3, 3.0, 20.0])
def test_dkd_parts_decompose_kl(T, scale):
    """KL(p_t || p_s) = TCKD + (1 - p_t[target]) · NCKD, per sample (Zhao et al. 2022)."""
    for seed in range(10):
        s, t, y = pair(b=16, k=7, scale=scale, seed=seed)
        tckd, nckd = dkd_parts(s, t, y, T, reduction="none")
        assert tckd.shape == nckd.shape == (16,)
        kl = ref_kl(t.numpy(), s.numpy(), T)
        pt_target = np.exp(ref_log_softmax(t.numpy(), T))[np.arange(16), y.numpy()]
        np.testing.assert_allclose(tckd.numpy() + (1 - pt_target) * nckd.numpy(), kl, rtol=1e-8, atol=1e-12)
        assert (tckd >= -1e-12).all() and (nckd >= -1e-12).all()
        assert torch.isfinite(tckd).all() and torch.isfinite(nckd).all()


def test_dkd_parts_match_independent_definitions():
    s, t, y = pair(b=12, k=6, seed=9)
    T = 2.0
    tckd, nckd = dkd_parts(s, t, y, T, reduction="none")
    ls, lt = ref_log_softmax(s.numpy(), T), ref_log_softmax(t.numpy(), T)
    ps, pt = np.exp(ls), np.exp(lt)
    for i, c in enumerate(y.numpy()):
        bs = np.array([ps[i, c], 1 - ps[i, c]])
        bt = np.array([pt[i, c], 1 - pt[i, c]])
        assert float(tckd[i]) == pytest.approx(float((bt * np.log(bt / bs)).sum()), rel=1e-8, abs=1e-12)
        keep = np.arange(6) != c
        qs, qt = ps[i, keep] / ps[i, keep].sum(), pt[i, keep] / pt[i, keep].sum()
        assert float(nckd[i]) == pytest.approx(float((qt * np.log(qt / qs)).sum()), rel=1e-8, abs=1e-12)


def test_dkd_parts_mean_reduction_and_identical_logits():
    s, t, y = pair(seed=4)
    tn, nn_ = dkd_parts(s, t, y, 4.0, reduction="none")
    tm, nm = dkd_parts(s, t, y, 4.0)
    assert float(tm) == pytest.approx(float(tn.mean())) and float(nm) == pytest.approx(float(nn_.mean()))
    z0, z1 = dkd_parts(s, s.clone(), y, 4.0, reduction="none")
    assert torch.allclose(z0, torch.zeros_like(z0), atol=1e-12) and torch.allclose(z1, torch.zeros_like(z1), atol=1e-12)


def test_dkd_parts_finite_with_extreme_logits():
    s, t, y = pair(scale=1e4, dtype=torch.float32)
    for T in (1e-3, 1.0, 1e3):
        tckd, nckd = dkd_parts(s, t, y, T, reduction="none")
        assert torch.isfinite(tckd).all() and torch.isfinite(nckd).all()


def test_dkd_parts_bad_inputs():
    s, t, y = pair()
    with pytest.raises(ValueError):
        dkd_parts(s, t[:, :5], y, 2.0)
    with pytest.raises(ValueError):
        dkd_parts(s, t, y, 2.0, reduction="sum")
    with pytest.raises(ValueError):
        dkd_parts(s, t, y, 0.0)


# ---------------------------------------------------------------- policy KL
def test_policy_kl_zero_for_identical_policy_at_T1():
    s, _, _ = pair(k=4)
    assert float(policy_kl(s, s.clone(), 1.0)) == pytest.approx(0.0, abs=1e-12)


@FAST
@given(T=st.floats(0.01, 100.0), seed=st.integers(0, 10_000), scale=st.sampled_from([0.1, 1.0, 10.0]))
def test_policy_kl_nonnegative_and_matches_reference(T, seed, scale):
    s, t, _ = pair(b=8, k=4, scale=scale, seed=seed)
    v = float(policy_kl(s, t, T))
    assert v >= -1e-12
    lt = ref_log_softmax(t.numpy(), T)
    ls = ref_log_softmax(s.numpy(), 1.0)  # the student acts at T = 1
    want = (np.exp(lt) * (lt - ls)).sum(-1).mean()
    assert v == pytest.approx(want, rel=1e-8, abs=1e-12)
    assert float(policy_kl(s, s, T)) >= -1e-12


def test_policy_kl_shape_mismatch_and_bad_T():
    s, t, _ = pair(k=4)
    with pytest.raises(ValueError):
        policy_kl(s, t[:, :3], 1.0)
    with pytest.raises(ValueError):
        policy_kl(s, t, -1.0)


def test_dkd_loss_weights_its_parts_with_t_squared() -> None:
    torch.manual_seed(3)
    student, teacher = torch.randn(16, 10, dtype=torch.float64), torch.randn(16, 10, dtype=torch.float64)
    labels = torch.randint(0, 10, (16,))
    from tempdistill.losses import dkd_loss

    tckd, nckd = dkd_parts(student, teacher, labels, 4.0, reduction="none")
    expected = (16.0 * (1.0 * tckd + 8.0 * nckd)).mean()
    assert torch.allclose(dkd_loss(student, teacher, labels, 4.0, alpha=1.0, beta=8.0), expected)
    assert torch.allclose(dkd_loss(student, teacher, labels, 4.0, alpha=1.0, beta=0.0), 16.0 * tckd.mean())
    assert dkd_loss(teacher, teacher, labels, 4.0) == pytest.approx(0.0, abs=1e-12)
