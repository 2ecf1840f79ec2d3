"""Starting the output layer where the teacher's logits are, so a spiking student does not begin silent.

With default initialisation the output current of a fresh student is a fraction of a unit
per step while its thresholds are θ0·T (tens): the output neurons stay silent for the first
epochs, the surrogate gradient far below threshold is tiny, and training waits until the
weights have grown by an order of magnitude.

For an integrate-and-fire output neuron the tempered readout is ≈ Ī/T, where Ī is the mean
current per step, so a student whose Ī has the teacher's logit spread already speaks at the
teacher's scale at every T; T keeps its meaning (it still divides Ī through the thresholds).
The output layer being affine, Ī = W·r + b exactly, with r the presynaptic spikes per step.
Fitting rescales W by g (spread matched to the teacher's) and shifts b so the mean current is
θ0/2: mid-range of what the readout can express at T = 1, and still above zero at larger T.
"""

from __future__ import annotations

import torch
from torch import nn

# A sample this large pins the spreads to a few percent and costs one forward pass.
FIT_SAMPLES = 512


@torch.no_grad()
def fit_output_layer(linear: nn.Linear, presynaptic_rate: torch.Tensor, teacher_logits: torch.Tensor, theta0: float) -> float:
    """Rescale ``linear`` in place; returns the gain g applied to its weights.

    ``presynaptic_rate`` (B, H): spikes per step into the layer; ``teacher_logits`` (B, K) for
    the same B inputs, with K the layer's outputs.
    """
    if teacher_logits.shape != (presynaptic_rate.shape[0], linear.out_features):
        raise ValueError(f"teacher logits {tuple(teacher_logits.shape)} do not match "
                         f"{presynaptic_rate.shape[0]} inputs x {linear.out_features} outputs")
    current = nn.functional.linear(presynaptic_rate, linear.weight, linear.bias)  # W·r + b, no module hooks
    student_spread = float(current.std(dim=-1).mean())
    teacher_spread = float(teacher_logits.float().std(dim=-1).mean())
    if student_spread <= 0.0 or teacher_spread <= 0.0:
        return 1.0  # nothing to match (a silent layer below, or a constant teacher)
    gain = teacher_spread / student_spread
    linear.weight.mul_(gain)
    if linear.bias is not None:
        linear.bias.mul_(gain).add_(theta0 / 2.0 - gain * float(current.mean()))
    return gain
