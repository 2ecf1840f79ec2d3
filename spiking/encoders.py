"""Turning a static feature vector into per-time-step input for the first layer.

``direct`` feeds the analog features at every step (the first layer is then the only dense
one: its W·x is computed once and reused); ``poisson`` draws Bernoulli spikes with
probability x (features clipped to [0, 1], so min-max normalised data fits); ``latency``
emits one spike per feature at step round((1 − x)·(steps − 1)), earlier for larger x, none
for x <= 0.
"""

from __future__ import annotations

import torch

ENCODERS = ("direct", "poisson", "latency")


def encode(x: torch.Tensor, steps: int, kind: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, F) features -> (steps, B, F) inputs."""
    if kind == "direct":
        return x.unsqueeze(0).expand(steps, *x.shape)
    p = x.clamp(0.0, 1.0)
    if kind == "poisson":
        u = torch.rand((steps, *x.shape), generator=generator, device=x.device, dtype=x.dtype)
        return (u < p.unsqueeze(0)).to(x.dtype)
    if kind == "latency":
        when = torch.round((1.0 - p) * (steps - 1)).long()
        t = torch.arange(steps, device=x.device).view(steps, *([1] * x.dim()))
        return ((t == when.unsqueeze(0)) & (p.unsqueeze(0) > 0)).to(x.dtype)
    raise ValueError(f"unknown encoder {kind!r}; allowed: {ENCODERS}")


def is_spiking(kind: str) -> bool:
    """Whether the encoded input is binary events (counted as synaptic operations)."""
    return kind != "direct"
