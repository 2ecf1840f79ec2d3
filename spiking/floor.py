"""The KL floor of a spiking readout: the best KL a student can reach, whatever its weights.

A spiking student's tempered logits are its readout r, and distillation compares softmax(r)
with the teacher's softmax(z/T). With N steps and output thresholds θ0·T, the readouts reach:

``count``
    r = (θ0/N)·count, count ∈ {0..N}: quantised to one spike's worth q = θ0/N and bounded in
    [0, θ0]. At high T the tempered spread of z/T falls below a few quanta, so the floor grows
    with T (DESIGN, "The readout must keep what T carries").
``count_membrane``
    r = (count + v_N/θ)·θ0/N: exact for IF neurons below saturation, so no quantisation. It can
    go negative and slightly above θ0, but we take [0, θ0] as its range (a non-negative count
    plus a residual below one threshold). That assumption can only raise the floor, so the value
    is an upper bound for the real readout; it does not depend on N.
``li``
    a leaky-integrator output layer (Norse's LI cell): the output neurons do not spike, the
    readout is their membrane, unbounded and unquantised, so any logit vector is reachable and
    the floor is 0. tempdistill has no such student readout yet; the floor is here for comparison.

The floor is the mean over samples of min_r KL(softmax(z/T) ‖ softmax(r)) in nats. KL is
shift-invariant in r, which makes the searches below one-dimensional (plus a local polish).
Pure torch: no tempdistill import, so any backend or script can use it.
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import torch

FLOOR_READOUTS: Sequence[str] = ("count", "count_membrane", "li")

# Samples per chunk of the vectorised count search (memory: chunk × K·N candidates × K).
_CHUNK = 256
# Passes of the local polish (each moves at most one level on one or two classes per sample).
_POLISH_PASSES = 64


def kl_floor(teacher_logits: torch.Tensor, temperature: float, steps: int, theta0: float, readout: str) -> float:
    """Mean over samples of the smallest KL(softmax(z/T) ‖ softmax(r)) (nats) over every readout
    vector r the ``readout`` can produce with ``steps`` steps and output threshold base ``theta0``.

    ``count``: an upper bound on the true floor, equal to it wherever the search below finds the
    optimum (it matched an exhaustive search in every case tested, ``tests/test_floor.py``).
    ``count_membrane``: exact under the [0, θ0] range assumption. ``li``: 0.
    """
    logits = _check(teacher_logits, temperature, steps, theta0, readout)
    if readout == "li" or logits.shape[0] == 0:
        return 0.0
    u = logits.double() / float(temperature)
    if readout == "count_membrane":
        per_sample = _membrane_floor(u, float(theta0))
    else:
        per_sample = torch.cat([_count_floor(chunk, int(steps), float(theta0)) for chunk in u.split(_CHUNK)])
    return float(per_sample.clamp_min(0.0).mean())


def kl_to(u: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """KL(softmax(u) ‖ softmax(r)) over the last dimension, in nats (any leading shape)."""
    log_p = torch.log_softmax(u, dim=-1)
    return (log_p.exp() * (log_p - torch.log_softmax(r, dim=-1))).sum(dim=-1)


def _count_floor(u: torch.Tensor, steps: int, theta0: float) -> torch.Tensor:
    """Per-sample floor of the count readout for tempered logits ``u`` (n, K).

    1. The shift family: for a shift c, round each (u_k + c)/q to the nearest level and clip to
       {0..N}. The vector only changes where some (u_k + c)/q crosses a half level, so trying c
       between every pair of consecutive crossings (K·N of them, plus one beyond each end)
       covers the whole family exactly, not on a grid.
    2. A local polish from the best of the family: move one class ±1 level, or one class +1 and
       another −1, while that lowers the KL. Rounding is not always optimal (the softmax couples
       the classes), and this repairs the cases where a neighbour is better.
    """
    n, k = u.shape
    q = theta0 / steps
    halves = (torch.arange(steps, dtype=u.dtype) + 0.5) * q  # level j rounds up to j+1 past j+0.5
    crossings = (halves.view(1, 1, -1) - u.unsqueeze(-1)).reshape(n, -1).sort(dim=-1).values
    between = (crossings[:, 1:] + crossings[:, :-1]) / 2
    shifts = torch.cat([crossings[:, :1] - q, between, crossings[:, -1:] + q], dim=1)  # (n, C)
    levels = torch.round((u.unsqueeze(1) + shifts.unsqueeze(-1)) / q).clamp(0, steps)  # (n, C, K)
    kl = kl_to(u.unsqueeze(1).expand_as(levels), levels * q)
    best = kl.argmin(dim=1)
    counts = levels[torch.arange(n), best]  # (n, K)
    return _polish(u, counts, steps, q)


def _polish(u: torch.Tensor, counts: torch.Tensor, steps: int, q: float) -> torch.Tensor:
    """Greedy descent over ±1-level moves of one class and +1/−1 transfers between two classes."""
    n, k = counts.shape
    eye = torch.eye(k, dtype=counts.dtype)
    transfers = (eye.unsqueeze(1) - eye.unsqueeze(0)).reshape(k * k, k)[[i * k + j for i in range(k)
                                                                         for j in range(k) if i != j]]
    moves = torch.cat([eye, -eye, transfers])  # (M, K)
    current = kl_to(u, counts * q)
    for _ in range(_POLISH_PASSES):
        candidates = counts.unsqueeze(1) + moves.unsqueeze(0)  # (n, M, K)
        allowed = ((candidates >= 0) & (candidates <= steps)).all(dim=-1)
        kl = kl_to(u.unsqueeze(1).expand_as(candidates), candidates * q).masked_fill(~allowed, math.inf)
        value, index = kl.min(dim=1)
        better = value < current - 1e-12
        if not bool(better.any()):
            break
        counts = torch.where(better.unsqueeze(-1), candidates[torch.arange(n), index], counts)
        current = torch.where(better, value, current)
    return current


def _membrane_floor(u: torch.Tensor, theta0: float) -> torch.Tensor:
    """Per-sample floor over continuous r ∈ [0, θ0]^K (exact).

    KL(p ‖ softmax(r)) is convex in r; its KKT conditions on the box hold at r = clip(u + c, 0, θ0)
    for the c where g(c) = Σ_k exp(clip(u_k + c)) − Σ_k exp(u_k + c) is 0: the free classes then
    match p exactly, the ones clipped at 0 get more mass than p and the ones clipped at θ0 less,
    as optimality asks. g is continuous and non-increasing in c, positive when every class is
    clipped at 0 and negative when every class is clipped at θ0, so bisection finds its root.
    Sums are taken relative to exp(c) to stay in range.
    """
    lo = -u.max(dim=-1).values - 50.0  # every class clipped at 0: g > 0
    hi = theta0 - u.min(dim=-1).values + 50.0  # every class clipped at θ0: g < 0
    for _ in range(200):
        mid = (lo + hi) / 2
        shifted = u + mid.unsqueeze(-1)
        clipped = shifted.clamp(0.0, theta0)
        top = shifted.max(dim=-1, keepdim=True).values
        g = (torch.exp(clipped - top) - torch.exp(shifted - top)).sum(dim=-1)
        positive = g > 0
        lo = torch.where(positive, mid, lo)
        hi = torch.where(positive, hi, mid)
    r = (u + ((lo + hi) / 2).unsqueeze(-1)).clamp(0.0, theta0)
    return kl_to(u, r)


def _check(teacher_logits: torch.Tensor, temperature: float, steps: int, theta0: float, readout: str) -> torch.Tensor:
    """The logits as a (n, K) tensor, or a ValueError naming the argument at fault."""
    if readout not in FLOOR_READOUTS:
        raise ValueError(f"readout: got {readout!r}; allowed: {', '.join(FLOOR_READOUTS)}")
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature: must be a finite number > 0, got {temperature}")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"steps: must be an integer >= 1, got {steps}")
    if isinstance(theta0, bool) or not isinstance(theta0, numbers.Real) or not math.isfinite(theta0) or theta0 <= 0:
        raise ValueError(f"theta0: must be a finite number > 0, got {theta0}")
    logits = torch.as_tensor(teacher_logits)
    if logits.dim() != 2 or logits.shape[1] < 1:
        raise ValueError(f"teacher_logits: must be (n, K), got shape {tuple(logits.shape)}")
    if not bool(torch.isfinite(logits).all()):
        raise ValueError("teacher_logits: must be finite (found nan or inf)")
    return logits.detach().cpu()
