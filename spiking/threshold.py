"""Threshold plasticity: how temperature reaches a spiking layer.

A layer's thresholds θ are a trace with memory. Each *training* optimisation step moves them
toward θ0·T with time constant τ (in optimisation steps),

    θ ← θ + (θ0·T − θ)/τ  [+ strength·(rate − target)·θ0 if homeostasis is on],

so after a step change of T the gap closes by 1 − 1/e in ≈ τ steps (exactly: in
ln(1/e)/ln(1 − 1/τ) steps; τ = 1 jumps). T may be a scalar or one value per neuron (per-class
temperatures on the output layer). In *eval* the thresholds are set to θ0·T directly and the
trace is left untouched, so evaluating never perturbs training.

Everything lives in buffers (θ0, the trace, the applied θ) so a student rebuilt from its
``state_dict`` resumes with the same thresholds.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import nn

TemperatureLike = Union[float, torch.Tensor]

# Thresholds never go below this fraction of θ0 (homeostasis could otherwise drive them to 0).
MIN_FRACTION = 1e-3


class ThresholdTrace(nn.Module):
    """Per-neuron thresholds θ of one layer: base θ0, plastic trace, and the θ applied now."""

    def __init__(self, size: int, theta0: float, tau: float = 1.0) -> None:
        super().__init__()
        if tau < 1:
            raise ValueError(f"threshold time constant must be >= 1 step, got {tau}")
        self.tau = float(tau)
        self.register_buffer("theta0", torch.full((size,), float(theta0)))
        self.register_buffer("trace", torch.full((size,), float(theta0)))
        self.register_buffer("applied", torch.full((size,), float(theta0)))
        # Per-sample temperatures (B, 1) or (B, N) have no identity across batches, so they
        # cannot be remembered: the trace follows their batch mean, and each sample's θ is
        # the trace scaled by that sample's T relative to the mean (for this batch only).
        self.sample_factor: Optional[torch.Tensor] = None
        # (T, buffer versions) when the trace reached θ0·T exactly for a scalar T: a further
        # step at that T without homeostasis cannot move it, so it is skipped (the
        # hidden layers sit at T = 1 all run). Versions change with any in-place write,
        # a loaded state_dict or an evaluation's ``set_direct`` included.
        self._settled: Optional[tuple] = None

    def _split(self, temperature: TemperatureLike) -> tuple:
        """(the part the trace remembers, the per-sample factor or None)."""
        t = torch.as_tensor(temperature, dtype=self.theta0.dtype, device=self.theta0.device)
        if t.dim() == 2:
            base = t.mean(dim=0)
            return base.reshape(-1) if base.numel() > 1 else base.reshape(()), t / base
        return (t.reshape(-1) if t.dim() > 0 else t), None

    def _target(self, temperature: TemperatureLike) -> torch.Tensor:
        return self.theta0 * temperature

    def theta(self) -> torch.Tensor:
        """The thresholds a forward pass uses: (N,), or (B, N) under per-sample temperatures."""
        return self.applied if self.sample_factor is None else self.applied * self.sample_factor

    @torch.no_grad()
    def rescale_base(self, theta0: float) -> None:
        """Choose a new θ0, carrying the trace along at the same θ/θ0 ratio."""
        ratio = self.trace / self.theta0
        applied_ratio = self.applied / self.theta0
        self.theta0.fill_(float(theta0))
        self.trace.copy_(self.theta0 * ratio)
        self.applied.copy_(self.theta0 * applied_ratio)

    @torch.no_grad()
    def plasticity_step(
        self,
        temperature: TemperatureLike,
        rate: Optional[torch.Tensor] = None,
        target_rate: float = 0.0,
        strength: float = 0.0,
    ) -> None:
        """One optimisation step of the rule; the new trace becomes the applied θ."""
        homeostatic = rate is not None and strength > 0
        if (not homeostatic and isinstance(temperature, float) and self._settled is not None
                and self._settled == (temperature, self._versions())):
            self.sample_factor = None
            return
        base, self.sample_factor = self._split(temperature)
        target = self._target(base)
        delta = (target - self.trace) / self.tau
        if rate is not None and strength > 0:
            delta = delta + strength * (rate.to(self.trace) - target_rate) * self.theta0
        self.trace.add_(delta).clamp_(min=0.0)
        self.trace.copy_(torch.maximum(self.trace, self.theta0 * MIN_FRACTION))
        self.applied.copy_(self.trace)
        self._settled = None
        if not homeostatic and isinstance(temperature, float) and torch.equal(self.trace, target.expand_as(self.trace)):
            self._settled = (temperature, self._versions())

    def _versions(self) -> tuple:
        return (self.theta0._version, self.trace._version, self.applied._version)

    @torch.no_grad()
    def set_direct(self, temperature: TemperatureLike) -> None:
        """θ = θ0·T for the next forward passes; the trace is not touched (evaluation)."""
        base, self.sample_factor = self._split(temperature)
        self.applied.copy_(self._target(base).expand_as(self.applied))

    def effective_temperature(self) -> torch.Tensor:
        """θ/θ0 as applied now, per neuron (and per sample under per-sample temperatures)."""
        return self.theta() / self.theta0
