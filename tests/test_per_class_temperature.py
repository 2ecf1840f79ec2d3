"""A per-class T is applied to centred logits, so the tempered distribution is shift-invariant
(teacher and student alike), and a bounded spiking readout is no longer pushed to offset its
currents by c·T_k (which biased the argmax toward the high-T classes)."""

import torch

from backends.dense import DenseOptions, DenseStudent
from tempdistill.analysis.shift import (
    best_readout,
    gaussian_teacher,
    kd_loss_at,
    shift_figures,
)
from tempdistill.core.student import Student
from tempdistill.losses import kd_loss, soft_term
from tempdistill.temperature import (
    centre_tempered,
    log_softmax,
    softmax,
    tempered_logits,
    varies_by_class,
)

K = 6
PER_CLASS = torch.tensor([1.0, 1.0, 1.0, 8.0, 8.0, 2.0])


def _logits(rows: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, K, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 3


class _Readout(Student):
    """A student whose forward is the spiking students' path: outputs already divided by T."""

    def forward(self, currents: torch.Tensor):
        return self.output(currents / self.effective_temperature())


def test_teacher_side_is_shift_invariant_at_a_per_class_t():
    z = _logits()
    for c in (-7.0, 0.5, 40.0):
        assert torch.allclose(log_softmax(z + c, PER_CLASS), log_softmax(z, PER_CLASS), atol=1e-12)
    # The old definition moved: softmax(z / T_k) changes with a common shift.
    assert not torch.allclose(torch.softmax((z + 5) / PER_CLASS, -1), torch.softmax(z / PER_CLASS, -1), atol=1e-3)


def test_student_side_is_shift_invariant_and_matches_the_teacher_side():
    z = _logits()
    for student in (_Readout(), DenseStudent(DenseOptions(hidden=[4]), 3, K).double()):
        student.set_temperature(PER_CLASS.double())
        if isinstance(student, DenseStudent):
            x = torch.randn(32, 3, dtype=torch.float64)
            base = student(x)
            with torch.no_grad():
                student.net[-1].bias += 11.0
            shifted = student(x)
            assert torch.allclose(shifted.logits, base.logits + 11.0)
        else:
            base, shifted = student(z), student(z + 11.0)
            assert torch.allclose(base.logits, z)  # logits stay the uncentred T = 1 outputs
        assert torch.allclose(torch.log_softmax(shifted.tempered, -1), torch.log_softmax(base.tempered, -1), atol=1e-10)
        # The student's tempered distribution is the teacher-side one of its own T = 1 outputs.
        assert torch.allclose(torch.log_softmax(base.tempered, -1), log_softmax(base.logits, PER_CLASS), atol=1e-10)


def test_centring_is_differentiable_and_agrees_with_tempered_logits():
    u = _logits().requires_grad_()
    tempered = u / PER_CLASS
    assert torch.allclose(centre_tempered(tempered, PER_CLASS), tempered_logits(u, PER_CLASS), atol=1e-12)
    centre_tempered(tempered, PER_CLASS).pow(2).sum().backward()
    assert u.grad is not None and torch.isfinite(u.grad).all()
    # KD at a per-class T ignores a shift of the student's logits or the teacher's.
    z, s = _logits(seed=1), _logits(seed=2)
    assert torch.allclose(kd_loss(s + 3, z - 2, PER_CLASS, alpha=1.0), kd_loss(s, z, PER_CLASS, alpha=1.0), atol=1e-10)


def test_scalar_per_sample_and_uniform_t_take_the_plain_path_bit_for_bit():
    z = _logits().float()
    for T in (3.0, torch.tensor(3.0), torch.rand(32, 1) + 0.5, torch.full((K,), 2.5)):
        divisor = T if not isinstance(T, torch.Tensor) else T.to(z.dtype)
        assert not varies_by_class(T)
        assert torch.equal(log_softmax(z, T), torch.log_softmax(z / divisor, dim=-1))
        assert torch.equal(tempered_logits(z, T), z / divisor)
        tempered = z / divisor
        assert centre_tempered(tempered, T) is tempered
    s = _logits(seed=3).float()
    assert torch.equal(soft_term(torch.log_softmax(s / 2.0, -1), z, 2.0),
                       soft_term(torch.log_softmax(s / 2.0, -1), z, torch.tensor(2.0)))


def test_the_accelerator_form_of_the_centring_gives_the_same_values():
    """On an accelerator the centring picks its form on the device (no host sync per pass)."""
    from tempdistill.temperature import _centre_on_device

    z = _logits()
    for T in (PER_CLASS, torch.full((K,), 2.5, dtype=torch.float64), torch.rand(32, 1, dtype=torch.float64) + 0.5):
        tempered = (z / T).requires_grad_()
        on_device = _centre_on_device(tempered, T.expand_as(z) if T.shape[-1] == 1 else T, -1)
        assert torch.equal(on_device, centre_tempered(tempered, T))   # uniform T: the uncentred values exactly
        on_device.sum().backward()
        assert tempered.grad is not None and torch.isfinite(tempered.grad).all()


def test_per_sample_t_with_per_class_factors_is_centred_per_row():
    z = _logits()
    T = (torch.rand(32, 1, generator=torch.Generator().manual_seed(4), dtype=torch.float64) + 0.5) * PER_CLASS
    assert varies_by_class(T)
    shift = torch.linspace(-5, 5, 32, dtype=torch.float64)[:, None]  # a different constant per row
    assert torch.allclose(softmax(z + shift, T), softmax(z, T), atol=1e-12)
    assert torch.allclose(centre_tempered((z + shift) / T, T), centre_tempered(z / T, T), atol=1e-12)


def test_best_readout_matches_the_floors_closed_form():
    """The projected-gradient solver reaches the KKT optimum clip(u + c, 0, θ0) of spiking.floor."""
    from spiking.floor import _membrane_floor

    z = gaussian_teacher(300, 10, 1.5)["logits"]
    T = torch.ones(10, dtype=torch.float64)
    T[5:] = 8.0
    r = best_readout(z, T, 4.0, centred=False)
    assert torch.allclose(kd_loss_at(z, T, r, centred=False).mean(), _membrane_floor(z / T, 4.0).mean(), atol=1e-6)


def test_per_class_t_no_longer_biases_the_best_readouts_argmax():
    """Teachers of 400 rows, K = 10, T = 1 for classes 0-4 and 8 for 5-9, θ0 as a student picks
    it: after centring, the best bounded readout's currents agree with the teacher as with a
    shared T; under the old definition they did not."""
    figures = shift_figures(rows=400)
    for name, row in figures.items():
        shared = min(row["shared_T1"], row["shared_T8"])
        assert row["per_class_after"] >= shared - 0.01, (name, row)
        assert row["per_class_before"] < shared - 0.1, (name, row)
