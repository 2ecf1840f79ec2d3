"""The neuron equation, written once as pure functions (state in, state out).

One step of every spiking layer in this project is

    v ← β·v + I,   s = H(v − θ),   v ← v − s·θ  (subtract)  or  v·(1 − s)  (zero),

with the spike's surrogate derivative taken on the normalised distance (v − θ)/θ
(``spiking.surrogate``) and the reset detached (no gradient flows through s in the reset).
β = 1 (integrate-and-fire) skips the multiplication: the same numbers, fewer operations.

Two ways to run it, like Norse's ``functional`` next to its modules:

- ``neuron_step`` advances one time step; the snnTorch and Norse neuron modules call it (the
  *reference* path, ``student.engine: loop``), so both libraries run the same arithmetic;
- ``neuron_sequence`` runs all T steps of one layer at once (``student.engine: fused``): the
  recurrence runs without building a per-step autograd graph, and the backward pass through
  time is written by hand (``_NeuronSequence``). It keeps the membrane before reset and the
  spikes of every step, and recomputes the surrogate slopes from them one step at a time.

The fused forward performs the reference's floating-point operations in the same order, so
its spikes are bit-identical; its gradients agree with autograd through the reference to
rounding (the backward sums the same terms in another order). Tested in
``tests/test_spiking_engine.py``.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from spiking.surrogate import SURROGATE_GRADS, SpikeFn


def neuron_step(
    v: torch.Tensor,
    current: torch.Tensor,
    theta: torch.Tensor,
    beta: Optional[torch.Tensor],
    spike_fn: SpikeFn,
    zero_reset: bool,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """One step: (spikes, membrane after reset). ``beta`` None means integrate-and-fire."""
    v = v + current if beta is None else beta * v + current
    spikes = spike_fn(v, theta)
    fired = spikes.detach()
    v = v * (1.0 - fired) if zero_reset else v - fired * theta
    return spikes, v


class _NeuronSequence(torch.autograd.Function):
    """All T steps of one layer; gradients reach the input currents only (θ and β are buffers).

    Backward through time, with P_t = ∂L/∂s_t · sg((v_t − θ)/θ)/θ and r_t the reset's
    pass-through (1 for subtract, 1 − s_t for zero):

        ∂L/∂v_t = P_t + r_t·a_t,   a_{T−1} = ∂L/∂v_final,   a_{t−1} = β·∂L/∂v_t,   ∂L/∂I_t = ∂L/∂v_t.

    A ``constant`` input (B, N) is the same current at every step (direct encoding): its
    gradient is the sum over steps, accumulated without a (T, B, N) tensor.
    """

    @staticmethod
    def forward(ctx, currents, theta, beta, steps, constant, kind, slope, zero_reset):  # type: ignore[override]
        # Float comparisons written into preallocated outputs: on CPU a float ``gt`` is ~5x
        # faster than one producing bools. The reset ``v − s·θ`` is exact for s ∈ {0, 1}, so
        # one addcmul gives the reference's numbers; β·v + I stays two operations, as there.
        # The membranes are kept one tensor per step: step-sized blocks are reused by the
        # allocator, where one (T, B, N) block would be fresh pages, faulted in, every pass.
        shape = currents.shape if constant else currents.shape[1:]
        spikes = torch.empty((steps, *shape), dtype=currents.dtype, device=currents.device)
        before = []
        v = torch.zeros(shape, dtype=currents.dtype, device=currents.device)
        for t in range(steps):
            current = currents if constant else currents[t]
            v_t = v + current if beta is None else beta * v + current
            torch.gt(v_t, theta, out=spikes[t])
            v = torch.addcmul(v_t, spikes[t], v_t if zero_reset else theta, value=-1.0)
            before.append(v_t)
        ctx.save_for_backward(spikes, theta, beta if beta is not None else torch.ones(()))
        ctx.before = before
        ctx.constant, ctx.kind, ctx.slope, ctx.zero_reset, ctx.leaky = constant, kind, slope, zero_reset, beta is not None
        return spikes, v

    @staticmethod
    def backward(ctx, grad_spikes, grad_final):  # type: ignore[override]
        # Step by step from the end, so each step's tensors stay in cache; the surrogate slope is
        # recomputed from the saved membrane, in place, rather than stored for every step.
        spikes, theta, beta = ctx.saved_tensors
        before = ctx.before
        surrogate = SURROGATE_GRADS[ctx.kind]
        steps = len(before)
        grad_currents = torch.zeros_like(before[0]) if ctx.constant else torch.empty_like(spikes)
        carry = grad_final if grad_final is not None else torch.zeros_like(before[0])
        for t in range(steps - 1, -1, -1):
            if ctx.zero_reset:
                carry = torch.addcmul(carry, carry, spikes[t], value=-1.0)
            if grad_spikes is None:
                grad_t = carry
            else:
                slope = surrogate((before[t] - theta).div_(theta), ctx.slope).div_(theta)
                grad_t = torch.addcmul(carry, slope, grad_spikes[t])
            if ctx.constant:
                grad_currents.add_(grad_t)
            else:
                grad_currents[t].copy_(grad_t)
            carry = grad_t * beta if ctx.leaky else grad_t
        return grad_currents, None, None, None, None, None, None, None


def neuron_sequence(
    currents: torch.Tensor,
    theta: torch.Tensor,
    beta: Optional[torch.Tensor],
    surrogate: str,
    slope: float,
    zero_reset: bool,
    steps: Optional[int] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """All steps of one layer from rest: (spikes (T, B, N), membrane after the last reset (B, N)).

    ``currents`` is (T, B, N), or (B, N) with ``steps`` given for a current held constant over
    the steps; ``theta`` is (N,) or (B, N).
    """
    if surrogate not in SURROGATE_GRADS:
        raise ValueError(f"unknown surrogate {surrogate!r}; allowed: {sorted(SURROGATE_GRADS)}")
    constant = steps is not None
    steps = steps if constant else currents.shape[0]
    theta = theta.to(currents)
    return _NeuronSequence.apply(currents, theta, beta, steps, constant, surrogate, float(slope), zero_reset)
