"""Tempered softmax and entropy, stable for any finite T > 0.

Temperature is applied by dividing logits before a max-shifted log-softmax, so extreme
ratios |z|/T (up to ~1e7 in float32) never overflow; probabilities are taken from the log
domain so that entropy stays finite when some probabilities underflow to zero.

A per-class T (one T_k per output, (K,) or per sample (B, K)) is applied to *centred* logits:
the tempered distribution is softmax((z − mean_k z) / T_k). softmax(z / T) is invariant to adding
a constant to every z only when T is the same for every class; with T_k varying, softmax(z / T_k)
moves, and a student whose outputs are bounded (a spiking student's non-negative count readout)
is driven to offset its currents by c·T_k, which biases its argmax toward the high-T classes.
Centring makes the distribution depend on z − mean z only, for the teacher (``log_softmax``,
``tempered_logits``) and for the student (``centre_tempered``) alike. A scalar T, a per-sample T
(B, 1) and a T equal across classes are shift-invariant already and take the plain path, bit
for bit as before.
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


def _as_divisor(logits: torch.Tensor, temperature: Temperature, check: bool = True) -> Temperature:
    if check:
        temperature = check_temperature(temperature)
    if isinstance(temperature, torch.Tensor):
        return temperature.to(device=logits.device, dtype=logits.dtype)
    return temperature


def varies_by_class(T: Temperature, dim: int = -1) -> bool:
    """Whether T differs between classes (along ``dim``): a per-class or per-group T."""
    if not isinstance(T, torch.Tensor) or T.dim() == 0 or T.shape[dim] <= 1:
        return False
    return bool((T != T.narrow(dim, 0, 1)).any())


def tempered_logits(logits: torch.Tensor, T: Temperature = 1.0, dim: int = -1, check: bool = True) -> torch.Tensor:
    """logits / T, on centred logits where T varies by class: (z − mean_k z) / T_k.

    Every tempered distribution in tempdistill is the softmax of this (see the module
    docstring for why a per-class T needs the centring). ``check=False`` skips the T > 0
    check, for a caller whose T was checked when it was set.
    """
    divisor = _as_divisor(logits, T, check)
    if varies_by_class(divisor, dim):
        logits = logits - logits.mean(dim=dim, keepdim=True)
    return logits / divisor


def centre_tempered(tempered: torch.Tensor, T: Temperature, dim: int = -1) -> torch.Tensor:
    """A student's outputs already divided by its per-class T, centred as ``tempered_logits`` would.

    The untempered outputs are u = tempered·T, so the centred tempered outputs are
    (u − mean_k u) / T_k = tempered − mean_k(tempered·T) / T_k: differentiable in ``tempered``,
    and the same rule for a dense student (which divides by T) and a spiking one (whose
    thresholds θ0·T_k do). Unchanged (the same tensor) where T does not vary by class.
    """
    divisor = _as_divisor(tempered, T, check=False)  # a student's T, checked when it was set
    if not isinstance(divisor, torch.Tensor) or divisor.dim() == 0 or divisor.shape[dim] <= 1:
        return tempered
    if tempered.device.type != "cpu":
        return _centre_on_device(tempered, divisor, dim)
    if not varies_by_class(divisor, dim):
        return tempered
    return tempered - (tempered * divisor).mean(dim=dim, keepdim=True) / divisor


def _centre_on_device(tempered: torch.Tensor, divisor: torch.Tensor, dim: int) -> torch.Tensor:
    """``centre_tempered`` without asking the accelerator whether T varies (a host sync on every
    forward pass): both forms are computed and the device picks one, the uncentred values exactly."""
    varies = (divisor != divisor.narrow(dim, 0, 1)).any()
    return torch.where(varies, tempered - (tempered * divisor).mean(dim=dim, keepdim=True) / divisor, tempered)


def log_softmax(logits: torch.Tensor, T: Temperature = 1.0, dim: int = -1) -> torch.Tensor:
    """log softmax(logits / T); T is a scalar or a tensor that broadcasts against logits.

    A T that varies by class is applied to centred logits (``tempered_logits``).
    """
    return torch.log_softmax(tempered_logits(logits, T, dim=dim), dim=dim)


def softmax(logits: torch.Tensor, T: Temperature = 1.0, dim: int = -1) -> torch.Tensor:
    """softmax(logits / T) (centred logits at a per-class T), through the log domain for stability."""
    return log_softmax(logits, T, dim=dim).exp()


def entropy(probs: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Shannon entropy in nats; 0·log 0 is taken as 0."""
    return -torch.special.xlogy(probs, probs).sum(dim=dim)


def entropy_from_logits(logits: torch.Tensor, T: Temperature = 1.0, dim: int = -1) -> torch.Tensor:
    """Entropy of softmax(logits / T) (centred at a per-class T) from log-probabilities (no log(0))."""
    log_p = log_softmax(logits, T, dim=dim)
    return -(log_p.exp() * log_p).sum(dim=dim)
