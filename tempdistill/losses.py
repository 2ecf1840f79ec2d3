"""Distillation losses: Hinton KD, hard CE, decoupled KD parts (DKD) and policy KL.

All soft terms compare log-probabilities (never probabilities divided by probabilities) so
that they stay finite at extreme temperatures.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from tempdistill.temperature import Temperature, check_temperature, log_softmax


def _check_pair(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> None:
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits "
            f"{tuple(teacher_logits.shape)} must have the same shape"
        )


def kl_per_sample(teacher_log_probs: torch.Tensor, student_log_probs: torch.Tensor) -> torch.Tensor:
    """KL(p_teacher || p_student) per row, from log-probabilities."""
    return (teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)).sum(dim=-1)


def temperature_squared(temperature: Temperature, like: torch.Tensor) -> torch.Tensor:
    """The T² gradient-scale factor per sample.

    A scalar gives T²; a per-sample T (B, 1) gives T_i²; a per-class T (K,) gives the mean of
    T_k² over classes, which keeps soft-gradient magnitudes comparable across groups.
    """
    if not isinstance(temperature, torch.Tensor):
        return like.new_full(like.shape[:-1], float(temperature) ** 2)
    t = temperature.to(dtype=like.dtype, device=like.device)
    return (t**2).expand_as(like).mean(dim=-1)


def soft_term(
    student_log_probs_T: torch.Tensor, teacher_logits: torch.Tensor, temperature: Temperature
) -> torch.Tensor:
    """T²·KL(p_teacher^T || p_student^T), batch mean.

    Takes the student's *tempered* log-probabilities so that a student that applies T
    itself (a spiking student raising its thresholds) uses the same objective as one whose
    logits are divided by T here.
    """
    teacher_log_probs = log_softmax(teacher_logits, temperature)
    if not isinstance(temperature, torch.Tensor):  # one T for the batch: PyTorch's own KL, scaled
        kl = F.kl_div(student_log_probs_T, teacher_log_probs, reduction="batchmean", log_target=True)
        return kl * (float(temperature) ** 2)
    kl = kl_per_sample(teacher_log_probs, student_log_probs_T)
    return (temperature_squared(temperature, teacher_logits) * kl).mean()


def hard_ce(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with the true labels at T = 1, batch mean."""
    if labels.shape[0] != student_logits.shape[0]:
        raise ValueError(
            f"labels ({labels.shape[0]}) and logits ({student_logits.shape[0]}) differ in batch size"
        )
    return F.cross_entropy(student_logits, labels)


TEACHER_LOSSES = ("kl", "nll", "mse")


def teacher_term(
    student_log_probs_T: torch.Tensor, student_logits_T1: torch.Tensor, teacher_logits: torch.Tensor,
    temperature: Temperature, loss: str = "kl",
) -> torch.Tensor:
    """The term that matches the teacher, batch mean (see ``distillation_objective``)."""
    if loss == "kl":
        return soft_term(student_log_probs_T, teacher_logits, temperature)
    if loss == "nll":
        return F.cross_entropy(student_logits_T1, teacher_logits.argmax(dim=-1))
    if loss == "mse":
        _check_pair(student_logits_T1, teacher_logits)
        return F.mse_loss(student_logits_T1, teacher_logits)
    raise ValueError(f"loss: got {loss!r}; allowed: {', '.join(TEACHER_LOSSES)}")


def distillation_objective(
    student_log_probs_T: torch.Tensor,
    student_logits_T1: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: Temperature,
    labels: Optional[torch.Tensor],
    alpha: float,
    loss: str = "kl",
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, kd, ce): the one objective every student trains on.

    kd is the teacher term, chosen by ``loss`` among Rusu et al.'s (2016) three: ``kl``,
    T²·KL at temperature T (the default); ``nll``, cross-entropy with the teacher's greedy
    class/action at T = 1; ``mse``, squared error between student and teacher logits (or
    Q-values) at T = 1. ce = cross-entropy with ``labels`` at T = 1 (zero when labels is
    None); total = alpha·kd + (1 - alpha)·ce. A term whose weight is 0 is not computed.
    """
    kd = teacher_term(student_log_probs_T, student_logits_T1, teacher_logits, temperature, loss) if alpha > 0 else None
    ce = hard_ce(student_logits_T1, labels) if (labels is not None and alpha < 1) else None
    zero = student_logits_T1.new_zeros(()) if kd is None or ce is None else None
    kd = zero if kd is None else kd
    ce = zero if ce is None else ce
    total = alpha * kd + (1.0 - alpha) * ce if labels is not None else alpha * kd
    return total, kd, ce


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: Temperature,
    labels: Optional[torch.Tensor] = None,
    alpha: float = 0.9,
) -> torch.Tensor:
    """Hinton KD: alpha·T²·KL(p_teacher^T || p_student^T) + (1 - alpha)·CE(student, labels).

    Batch mean. With labels=None the CE term is dropped (the result is alpha·T²·KL).
    """
    _check_pair(student_logits, teacher_logits)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    check_temperature(temperature)
    total, _, _ = distillation_objective(
        log_softmax(student_logits, temperature),
        student_logits,
        teacher_logits,
        temperature,
        labels,
        alpha,
    )
    return total


def dkd_parts(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: Temperature,
    reduction: str = "mean",
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(TCKD, NCKD) of Decoupled KD (Zhao et al. 2022), without the T² factor.

    TCKD is the KL between binary (target vs rest) distributions; NCKD the KL between the
    distributions over the non-target classes. Per sample,
    KL(p_t || p_s) = TCKD + (1 - p_t[target])·NCKD exactly. reduction: 'mean' or 'none'.

    The argument order (labels before temperature) is the published contract and differs from
    ``kd_loss`` (temperature before the optional labels); swapped arguments are caught here,
    since labels are always an integer tensor and a temperature never is.
    """
    if not (isinstance(labels, torch.Tensor) and not labels.is_floating_point() and not labels.is_complex()):
        raise ValueError(
            "dkd_parts(student_logits, teacher_logits, labels, temperature): labels must be an integer tensor "
            f"of class indices, got {type(labels).__name__}"
            + (f" {labels.dtype}" if isinstance(labels, torch.Tensor) else "")
            + " (were labels and temperature swapped? kd_loss takes temperature first)"
        )
    _check_pair(student_logits, teacher_logits)
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    target = F.one_hot(labels, student_logits.shape[-1]).bool()
    log_ps = log_softmax(student_logits, temperature)
    log_pt = log_softmax(teacher_logits, temperature)

    def binary(log_p: torch.Tensor) -> torch.Tensor:
        log_target = log_p.masked_select(target).view(-1, 1)
        log_rest = torch.logsumexp(log_p.masked_fill(target, float("-inf")), dim=-1, keepdim=True)
        return torch.cat([log_target, log_rest], dim=-1)

    tckd = kl_per_sample(binary(log_pt), binary(log_ps))

    def non_target(log_p: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(log_p.masked_fill(target, float("-inf")), dim=-1)

    nt_t, nt_s = non_target(log_pt), non_target(log_ps)
    # Exclude the masked target column explicitly: -inf - -inf would be NaN.
    terms = (nt_t.exp() * (nt_t - nt_s)).masked_fill(target, 0.0)
    nckd = terms.sum(dim=-1)
    if reduction == "mean":
        return tckd.mean(), nckd.mean()
    return tckd, nckd


def dkd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: Temperature,
    alpha: float = 1.0,
    beta: float = 8.0,
) -> torch.Tensor:
    """Decoupled KD: T²·(alpha·TCKD + beta·NCKD), batch mean."""
    tckd, nckd = dkd_parts(student_logits, teacher_logits, labels, temperature, reduction="none")
    scale = temperature_squared(temperature, teacher_logits)
    return (scale * (alpha * tckd + beta * nckd)).mean()


def policy_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: Temperature
) -> torch.Tensor:
    """Policy distillation loss (Rusu et al. 2016): KL(softmax(q_teacher / T) || softmax(student)).

    The teacher's action preferences are tempered (T < 1 sharpens them, as in the paper);
    the student is read at T = 1, because it is the student's own policy that acts.
    """
    _check_pair(student_logits, teacher_logits)
    return kl_per_sample(log_softmax(teacher_logits, temperature), torch.log_softmax(student_logits, -1)).mean()
