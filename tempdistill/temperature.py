"""Tempered softmax and entropy, stable for any finite T > 0.

Temperature is applied by dividing logits before a max-shifted log-softmax, so extreme
ratios |z|/T (up to ~1e7 in float32) never overflow; probabilities are taken from the log
domain so that entropy stays finite when some probabilities underflow to zero.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Union

import torch

Temperature = Union[float, torch.Tensor]


def check_temperature(temperature: Temperature, name: str = "temperature") -> Temperature:
    """Reject T <= 0, NaN and inf early, naming the offending value.

    A bad T silently turns every loss into NaN many steps later; failing here keeps the
    error next to its cause.
    """
    if isinstance(temperature, torch.Tensor):
        if temperature.numel() == 0:
            raise ValueError(f"{name} must be a finite number > 0, got an empty tensor")
        bad = ~torch.isfinite(temperature) | (temperature <= 0)
        if bool(bad.any()):
            value = temperature[bad].flatten()[0].item()
            raise ValueError(f"{name} must be a finite number > 0, got {value}")
        return temperature
    if isinstance(temperature, bool) or not isinstance(temperature, Real):
        raise ValueError(f"{name} must be a finite number > 0, got {temperature!r}")
    value = float(temperature)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def _as_divisor(logits: torch.Tensor, temperature: Temperature) -> Temperature:
    temperature = check_temperature(temperature)
    if isinstance(temperature, torch.Tensor):
        return temperature.to(device=logits.device, dtype=logits.dtype)
    return temperature


def log_softmax(logits: torch.Tensor, T: Temperature = 1.0, dim: int = -1) -> torch.Tensor:
    """log softmax(logits / T); T is a scalar or a tensor that broadcasts against logits."""
    return torch.log_softmax(logits / _as_divisor(logits, T), dim=dim)


def softmax(logits: torch.Tensor, T: Temperature = 1.0, dim: int = -1) -> torch.Tensor:
    """softmax(logits / T), computed through the log domain for stability."""
    return log_softmax(logits, T, dim=dim).exp()


def entropy(probs: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Shannon entropy in nats; 0·log 0 is taken as 0."""
    return -torch.special.xlogy(probs, probs).sum(dim=dim)


def entropy_from_logits(logits: torch.Tensor, T: Temperature = 1.0, dim: int = -1) -> torch.Tensor:
    """Entropy of softmax(logits / T) computed from log-probabilities (no log(0))."""
    log_p = log_softmax(logits, T, dim=dim)
    return -(log_p.exp() * log_p).sum(dim=dim)
