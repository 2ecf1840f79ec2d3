"""Per-class temperature and the argmax: what the best bounded readout does to a student's currents.

With a per-class T_k, softmax(z / T_k) is not invariant to adding a constant to every z_k. A
spiking student's readout at T is r_k = Ī_k / T_k (thresholds θ0·T_k), held in [0, θ0]
(``count_membrane``'s range, ``spiking.floor``). Without centring, the loss KL(softmax(z/T) ‖
softmax(r)) is minimised by r = z/T + c (clipped to the box), so the currents are
Ī_k = z_k + c·T_k: offset by c·T_k, and c > 0 whenever a class would go negative, which biases
the argmax at T = 1 toward the high-T classes. With the tempered distribution taken on centred
logits (``tempdistill.temperature``), the loss depends on Ī only through Ī − mean Ī, so
Ī = z + c is optimal and the argmax is the teacher's wherever the box allows it.

``readout_agreement`` finds, for each row, the readout in the box that minimises the KD loss
under either definition (projected gradient descent from the least-shifted start) and reports
how often the argmax of the currents Ī = r·T agrees with the teacher's.
"""

from __future__ import annotations

from typing import Dict

import torch

from spiking.theta0 import auto_theta0
from tempdistill.core.predict import fair_argmax
from tempdistill.temperature import Temperature, centre_tempered, log_softmax


def gaussian_teacher(rows: int, classes: int, margin: float, seed: int = 0) -> Dict[str, torch.Tensor]:
    """Labels uniform over the classes; logits N(0, 1) plus ``margin`` on the label's class."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(classes, (rows,), generator=generator)
    logits = torch.randn(rows, classes, generator=generator, dtype=torch.float64)
    logits[torch.arange(rows), labels] += margin
    return {"logits": logits, "labels": labels}


def best_readout(z: torch.Tensor, T: Temperature, theta0: float, centred: bool, steps: int = 4000) -> torch.Tensor:
    """Per row, the readout r ∈ [0, θ0]^K minimising KL(teacher at T ‖ student), by projected
    gradient descent. ``centred``: the tempered distributions on centred logits (the current
    definition); otherwise the old softmax(z / T) against softmax(r)."""
    t = torch.as_tensor(T, dtype=z.dtype).expand_as(z)
    if centred:
        teacher = log_softmax(z, t)
        start = (z - z.min(dim=-1, keepdim=True).values) / t
    else:
        teacher = torch.log_softmax(z / t, dim=-1)
        start = z / t - (z / t).min(dim=-1, keepdim=True).values
    p = teacher.exp()
    # Step below 1/L: softmax's Hessian is at most 1, times the centring map's norm squared.
    scale = float(torch.linalg.matrix_norm(torch.eye(z.shape[-1], dtype=z.dtype) - t[0].reciprocal()[:, None]
                                           * t[0][None, :] / z.shape[-1], ord=2)) if centred else 1.0
    step = 1.0 / scale**2
    r = start.clamp(0.0, theta0)
    for _ in range(steps):
        s = centre_tempered(r, t) if centred else r
        q = torch.softmax(s, dim=-1)
        grad_s = q - p
        if centred:  # s = r − mean_k(r·T)/T: the transpose of that map
            grad = grad_s - t * (grad_s / t).sum(dim=-1, keepdim=True) / z.shape[-1]
        else:
            grad = grad_s
        r = (r - step * grad).clamp(0.0, theta0)
    return r


def kd_loss_at(z: torch.Tensor, T: Temperature, r: torch.Tensor, centred: bool) -> torch.Tensor:
    """Per-row KL(teacher ‖ student readout r) under either definition (nats)."""
    t = torch.as_tensor(T, dtype=z.dtype).expand_as(z)
    teacher = log_softmax(z, t) if centred else torch.log_softmax(z / t, dim=-1)
    student = torch.log_softmax(centre_tempered(r, t) if centred else r, dim=-1)
    return (teacher.exp() * (teacher - student)).sum(dim=-1)


def readout_agreement(z: torch.Tensor, T: Temperature, theta0: float, centred: bool) -> float:
    """Share of rows where the best readout's currents Ī = r·T have the teacher's argmax."""
    r = best_readout(z, T, theta0, centred)
    currents = r * torch.as_tensor(T, dtype=z.dtype)
    return float((fair_argmax(currents) == fair_argmax(z)).double().mean())


def shift_figures(rows: int = 2000, classes: int = 10, margins: Dict[str, float] | None = None,
                  high: float = 8.0, seed: int = 0) -> Dict[str, Dict[str, float]]:
    """Agreement with the teacher of the best readout's currents, per teacher: shared T = 1 and
    T = ``high`` (no shift issue), and per-class T (1 for the first half of the classes, ``high``
    for the rest) with the old and the centred definition. θ0 as a student picks it."""
    margins = margins or {"confident": 5.0, "less confident": 1.5}
    per_class = torch.ones(classes, dtype=torch.float64)
    per_class[classes // 2:] = high
    out: Dict[str, Dict[str, float]] = {}
    for name, margin in margins.items():
        teacher = gaussian_teacher(rows, classes, margin, seed)
        z = teacher["logits"]
        theta0 = auto_theta0(z)
        out[name] = {
            "teacher_accuracy": float((fair_argmax(z) == teacher["labels"]).double().mean()),
            "theta0": theta0,
            "shared_T1": readout_agreement(z, 1.0, theta0, centred=True),
            f"shared_T{high:g}": readout_agreement(z, high, theta0, centred=True),
            "per_class_before": readout_agreement(z, per_class, theta0, centred=False),
            "per_class_after": readout_agreement(z, per_class, theta0, centred=True),
        }
    return out
