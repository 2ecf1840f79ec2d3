"""Threshold plasticity (how T reaches a spiking student) and gradient scale across T."""

from __future__ import annotations

import math

import pytest
import torch

from backends import get_backend
from tempdistill.losses import distillation_objective

torch.set_num_threads(1)


def _student(name: str = "snntorch", num_inputs: int = 8, num_classes: int = 4, **options):
    backend = get_backend(name)
    return backend.build_student(backend.validate({"backend": name, **options}, "student"), num_inputs, num_classes)


@pytest.mark.parametrize("tau", [1.0, 5.0, 20.0])
def test_threshold_follows_time_constant_after_step_change(tau: float) -> None:
    student = _student(threshold_tau=tau, theta0=2.0)
    student.train()
    for _ in range(200):
        student.set_temperature(1.0)
    out = student.thresholds[-1]
    assert torch.allclose(out.applied, out.theta0)
    reached = None
    for k in range(1, 200):
        student.set_temperature(4.0)
        progress = float(((student.effective_temperature() - 1.0) / 3.0).mean())
        if reached is None and progress >= 1 - 1 / math.e:
            reached = k
    assert reached is not None and abs(reached - tau) <= 1
    assert torch.allclose(student.effective_temperature(), torch.full((4,), 4.0), atol=1e-3)


def test_eval_sets_directly_and_leaves_the_trace_alone() -> None:
    student = _student(threshold_tau=10.0, theta0=2.0)
    student.train()
    student.set_temperature(4.0)
    trace = student.thresholds[-1].trace.clone()
    student.eval()
    student.set_temperature(1.0)
    assert torch.allclose(student.effective_temperature(), torch.ones(4))
    assert torch.equal(student.thresholds[-1].trace, trace)
    student.train()
    student.set_temperature(4.0)  # resumes from the trace, not from the eval thresholds
    assert float(student.effective_temperature().mean()) > float((trace / 2.0).mean())


def test_per_class_temperature_and_hidden_option() -> None:
    student = _student(threshold_tau=1.0, theta0=2.0, temperature_on_hidden=True)
    student.train()
    student.set_temperature(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert torch.allclose(student.effective_temperature(), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert torch.allclose(student.thresholds[0].applied, torch.full((64,), 2.5))


def test_homeostasis_pulls_rates_toward_target() -> None:
    student = _student(threshold_tau=1000.0, theta0=0.2, homeostasis={"target_rate": 0.05, "strength": 0.5})
    student.train()
    x = torch.rand(32, 8) * 4
    first = None
    for _ in range(40):
        student.set_temperature(1.0)
        rate = float(student(x).measured["rate.output"])
        first = rate if first is None else first
    assert abs(rate - 0.05) < abs(first - 0.05)


@pytest.mark.parametrize("name", ["snntorch", "norse"])
def test_weight_gradient_scale_is_stable_across_T(name: str) -> None:
    """The KD objective's gradient on the weights keeps its order of magnitude for T in 1..8."""
    torch.manual_seed(0)
    teacher_logits = torch.randn(64, 10) * 8.4
    x = torch.rand(64, 32)
    y = teacher_logits.argmax(-1)
    norms = []
    for T in (1.0, 2.0, 4.0, 8.0):
        torch.manual_seed(0)
        student = _student(name, 32, 10, threshold_tau=1.0)
        student.fit_to_teacher(teacher_logits)
        student.train()
        student.set_temperature(T)
        out = student(x)
        total, _, _ = distillation_objective(torch.log_softmax(out.tempered, -1), out.logits, teacher_logits, T, y, 0.9)
        total.backward()
        norms.append(float(sum(p.grad.norm() ** 2 for p in student.parameters()) ** 0.5))
    print(f"grad norms {name} T=1,2,4,8: {[round(n, 4) for n in norms]}")
    assert max(norms) / min(norms) < 10, norms


def test_a_settled_trace_still_follows_a_new_temperature_of_any_kind():
    """A trace that reached θ0·T skips further steps at that T, but moves on for another
    scalar, a per-class tensor, or after its buffers were overwritten (a loaded state)."""
    from spiking.threshold import ThresholdTrace

    trace = ThresholdTrace(3, 20.0, tau=1.0)
    trace.plasticity_step(4.0)
    trace.plasticity_step(4.0)
    assert torch.equal(trace.applied, torch.full((3,), 80.0))
    trace.plasticity_step(torch.tensor([1.0, 2.0, 3.0]))
    assert torch.equal(trace.applied, torch.tensor([20.0, 40.0, 60.0]))
    trace.plasticity_step(2.0)
    trace.plasticity_step(2.0)
    trace.trace.fill_(33.0)  # as load_state_dict would
    trace.plasticity_step(2.0)
    assert torch.equal(trace.trace, torch.full((3,), 40.0)) and torch.equal(trace.applied, trace.trace)
