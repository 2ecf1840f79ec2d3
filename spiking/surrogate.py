"""The spike nonlinearity shared by both libraries: Heaviside forward, surrogate backward.

The surrogate is evaluated on the *normalised* distance to threshold x = (v − θ)/θ, and the
chain rule's 1/θ is kept, so dS/dv = sg(x)/θ. Why: when a temperature T raises θ to θ0·T,
membrane values scale with θ too; on x the surrogate window covers the same fraction of the
membrane range at every T, and the 1/θ makes d(readout)/d(input) ≈ 1/T, exactly the
derivative of a dense student's z/T. Together with the T² factor of the KD loss this keeps
the weight gradients' magnitude independent of T (tested).

Both libraries spike on the strict v > θ; so does this function.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

SpikeFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def fast_sigmoid_grad(x: torch.Tensor, slope: float) -> torch.Tensor:
    """SuperSpike / snnTorch fast_sigmoid derivative: 1/(slope·|x|+1)². Overwrites ``x``
    (the fused engine's backward calls it once per step on a scratch tensor)."""
    return x.abs_().mul_(slope).add_(1.0).square_().reciprocal_()


def atan_grad(x: torch.Tensor, slope: float) -> torch.Tensor:
    """snnTorch atan derivative with alpha=slope: (α/2)/(1+(π/2·α·x)²). Overwrites ``x``."""
    return x.mul_(math.pi / 2.0 * slope).square_().add_(1.0).reciprocal_().mul_(slope / 2.0)


SURROGATE_GRADS = {"fast_sigmoid": fast_sigmoid_grad, "atan": atan_grad}


class NormSpike(torch.autograd.Function):
    """H(v − θ) with surrogate derivative sg((v − θ)/θ)/θ with respect to v (θ gets none)."""

    @staticmethod
    def forward(ctx, v: torch.Tensor, theta: torch.Tensor, kind: str, slope: float) -> torch.Tensor:  # type: ignore[override]
        if not (isinstance(theta, torch.Tensor) and theta.dtype == v.dtype and theta.device == v.device):
            theta = torch.as_tensor(theta, dtype=v.dtype, device=v.device)
        ctx.save_for_backward(v, theta)
        ctx.kind, ctx.slope = kind, slope
        # A float comparison written straight into a float tensor: on CPU several times faster
        # than comparing into bools and converting.
        return torch.gt(v, theta, out=torch.empty(torch.broadcast_shapes(v.shape, theta.shape), dtype=v.dtype, device=v.device))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        v, theta = ctx.saved_tensors
        x = (v - theta) / theta  # a fresh tensor: the gradient functions work in place
        return grad * SURROGATE_GRADS[ctx.kind](x, ctx.slope) / theta, None, None, None


def make_spike_fn(kind: str = "fast_sigmoid", slope: float = 25.0) -> SpikeFn:
    """A spike function ``f(v, theta)`` for the configured surrogate."""
    if kind not in SURROGATE_GRADS:
        raise ValueError(f"unknown surrogate {kind!r}; allowed: {sorted(SURROGATE_GRADS)}")

    def spike(v: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        return NormSpike.apply(v, theta, kind, float(slope))

    return spike
