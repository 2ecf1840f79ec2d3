"""Choosing the output threshold base θ0 from the teacher, so defaults need no tuning.

The count readout (θ0/N)·count lies in [0, θ0]: an output neuron fires at most once a step.
So θ0 bounds the logit spread the student can express. DESIGN's measurement (teacher logit
std 8.4: θ0 = 10 at T = 4 reached 0.55, θ0 = 20 reached 0.97) says θ0 must cover the
teacher's spread, while a far larger θ0 only coarsens the readout (one spike = θ0/N). We take
a high quantile of each sample's spread (max − min logit), which covers the T = 1 logits of
nearly all samples and hence the tempered ones at any T >= 1.
"""

from __future__ import annotations

import torch

SPREAD_QUANTILE = 0.9
MIN_THETA0 = 1.0


def auto_theta0(teacher_logits: torch.Tensor, quantile: float = SPREAD_QUANTILE) -> float:
    """θ0 = the ``quantile`` of per-sample logit spread (max − min), at least MIN_THETA0."""
    logits = teacher_logits.detach().float()
    spread = logits.max(dim=-1).values - logits.min(dim=-1).values
    return max(float(torch.quantile(spread, quantile)), MIN_THETA0)
