"""What soft labels carry: entropies, the target/non-target split of the KL, calibration, and
an estimate of the mutual information between soft labels and true labels.

All functions take logits and a temperature and return plain floats or tensors; they are
measured on the held-out split every epoch and recorded, so a schedule's effect can be read
as information, not only accuracy.
"""

from __future__ import annotations

import math
from typing import Dict

import torch

from tempdistill.losses import dkd_parts, kl_per_sample
from tempdistill.temperature import Temperature, entropy_from_logits, log_softmax


def entropy_summary(logits: torch.Tensor, temperature: Temperature) -> Dict[str, float]:
    """Mean and std of the soft-label entropy (nats), and the mean as % of log K."""
    h = entropy_from_logits(logits, temperature)
    k = logits.shape[-1]
    return {
        "mean": float(h.mean()),
        "std": float(h.std()) if h.numel() > 1 else 0.0,
        "percent_of_max": 100.0 * float(h.mean()) / math.log(k),
    }


def expected_calibration_error(logits: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """ECE with equal-width confidence bins: Σ_b (n_b/n)·|accuracy_b - confidence_b|."""
    probs = torch.softmax(logits.double(), dim=-1)
    confidence, predicted = probs.max(dim=-1)
    correct = (predicted == labels).double()
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64, device=probs.device)
    ece = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            ece += float(inside.double().mean() * (correct[inside].mean() - confidence[inside].mean()).abs())
    return ece


def soft_label_mutual_information(logits: torch.Tensor, labels: torch.Tensor, temperature: Temperature) -> float:
    """Plug-in estimate of I(Y; Ŷ) in nats, Ŷ a label drawn from the soft labels.

    The joint P(y, ŷ) = (1/n)·Σ_{i: y_i = y} p_i(ŷ) is the confusion matrix of the soft
    labels; its mutual information is log K for perfect confident labels and 0 for soft
    labels that say nothing about the class. Raising T lowers it: a measure of what
    softening costs in label information, beside what it adds in entropy.
    """
    probs = log_softmax(logits.double(), temperature).exp()
    k = probs.shape[-1]
    joint = torch.zeros(k, k, dtype=torch.float64, device=probs.device)
    joint.index_add_(0, labels.long(), probs)
    joint /= joint.sum()
    p_true = joint.sum(dim=1, keepdim=True)
    p_soft = joint.sum(dim=0, keepdim=True)
    ratio = torch.where(joint > 0, joint / (p_true * p_soft), torch.ones_like(joint))
    return float((joint * ratio.log()).sum())


def information_metrics(
    student_tempered: torch.Tensor,
    student_logits_t1: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: Temperature,
) -> Dict[str, float]:
    """The per-epoch information record: entropies at T and at 1, KL and its DKD split, ECE, MI."""
    t = temperature = temperature.detach() if isinstance(temperature, torch.Tensor) else temperature
    teacher_log_p = log_softmax(teacher_logits, temperature)
    student_log_p = torch.log_softmax(student_tempered, dim=-1)
    tckd, nckd = dkd_parts(student_logits_t1, teacher_logits, labels, temperature)
    return {
        "kl": float(kl_per_sample(teacher_log_p, student_log_p).mean()),
        "kl_t1": float(
            kl_per_sample(torch.log_softmax(teacher_logits, -1), torch.log_softmax(student_logits_t1, -1)).mean()
        ),
        "tckd": float(tckd),
        "nckd": float(nckd),
        "teacher_entropy": float(entropy_from_logits(teacher_logits, t).mean()),
        "student_entropy": float(entropy_from_logits(student_tempered).mean()),
        "teacher_entropy_t1": float(entropy_from_logits(teacher_logits).mean()),
        "student_entropy_t1": float(entropy_from_logits(student_logits_t1).mean()),
        "teacher_ece": expected_calibration_error(teacher_logits, labels),
        "student_ece": expected_calibration_error(student_logits_t1, labels),
        "teacher_mi": soft_label_mutual_information(teacher_logits, labels, t),
        "student_mi": soft_label_mutual_information(student_tempered, labels, 1.0),
    }
