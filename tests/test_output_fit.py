"""output_fit: teacher starts a spiking student's output current at the teacher's scale."""

from __future__ import annotations

import torch

from backends import get_backend
from tempdistill.config import DataConfig
from tempdistill.tasks.data import load_split


def _student(output_fit: str):
    backend = get_backend("snntorch")
    torch.manual_seed(0)
    options = backend.validate({"backend": "snntorch", "hidden": [64], "steps": 25, "output_fit": output_fit}, "student")
    return backend.build_student(options, 64, 10)


def test_fitted_output_current_has_the_teachers_spread_and_fires_at_a_high_temperature():
    split = load_split(DataConfig(name="digits"), seed=0)
    x = split.x_train
    # A teacher that knows the labels: one-hot logits with spread, plus noise, 8.4 logit std as in DESIGN.
    teacher = torch.nn.functional.one_hot(split.y_train, 10).float() * 25.0 + torch.randn(x.shape[0], 10) * 3.0
    fitted, plain = _student("teacher"), _student("none")
    fitted.fit_to_teacher(teacher, x)
    plain.fit_to_teacher(teacher, x)  # output_fit none: only θ0 is sized
    with torch.no_grad():
        sim = fitted._simulate(x[:512])
        current = fitted.linears[-1](sim.counts[-2] / 25.0)
    theta0 = float(fitted.thresholds[-1].theta0.mean())
    assert abs(float(current.std(dim=-1).mean()) / float(teacher[:512].std(dim=-1).mean()) - 1) < 0.1
    assert abs(float(current.mean()) - theta0 / 2) < 0.1 * theta0
    counts = {}
    for name, student in (("fitted", fitted), ("plain", plain)):
        student.eval()
        student.set_temperature(4.0)
        with torch.no_grad():
            counts[name] = float(student._simulate(x[:256]).counts[-1].sum())
    assert counts["plain"] == 0.0, "the unfitted student should start silent at T = 4 (the slow start)"
    assert counts["fitted"] > 256, counts


def test_without_inputs_or_with_none_nothing_but_theta0_changes():
    student = _student("teacher")
    before = [p.detach().clone() for p in student.parameters()]
    student.fit_to_teacher(torch.randn(100, 10) * 8.0)  # a task without fixed inputs (a policy)
    assert all(torch.equal(a, b) for a, b in zip(before, student.parameters()))
