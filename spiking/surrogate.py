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


SURROGATES = ("fast_sigmoid", "atan")


class SurrogateFactor:
    """dS/dv = sg((v − θ)/θ)/θ of one layer, for both engines, in five passes written into ``out``
    (the fused engine passes the membrane itself: it is not needed afterwards).

    fast_sigmoid (SuperSpike / snnTorch): 1/(slope·|x| + 1)²/θ = θ/(slope·|v − θ| + θ)²
    atan (snnTorch, α = slope):           (α/2)/(1 + (π/2·α·x)²)/θ = (α/2)·θ/(θ² + (π/2·α·(v − θ))²)

    The right-hand forms never divide by θ twice, which saves passes over the membrane.
    """

    def __init__(self, theta: torch.Tensor, kind: str, slope: float) -> None:
        if kind not in SURROGATES:
            raise ValueError(f"unknown surrogate {kind!r}; allowed: {sorted(SURROGATES)}")
        self.theta, self.kind, self.slope = theta, kind, slope
        if kind == "atan":
            self.theta_sq, self.numerator = theta * theta, theta * (slope / 2.0)

    def __call__(self, v: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        d = torch.sub(v, self.theta, out=out)
        if self.kind == "fast_sigmoid":
            torch.add(self.theta, d.abs_(), alpha=self.slope, out=d)
            return torch.div(self.theta, d.square_(), out=d)
        d.mul_(math.pi / 2.0 * self.slope).square_().add_(self.theta_sq)
        return torch.div(self.numerator, d, out=d)


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
        out = torch.empty(torch.broadcast_shapes(v.shape, theta.shape), dtype=v.dtype, device=v.device)
        factor = SurrogateFactor(theta, ctx.kind, ctx.slope)(v, out=out)
        return grad * factor, None, None, None


def make_spike_fn(kind: str = "fast_sigmoid", slope: float = 25.0) -> SpikeFn:
    """A spike function ``f(v, theta)`` for the configured surrogate."""
    if kind not in SURROGATES:
        raise ValueError(f"unknown surrogate {kind!r}; allowed: {sorted(SURROGATES)}")

    def spike(v: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        return NormSpike.apply(v, theta, kind, float(slope))

    return spike
