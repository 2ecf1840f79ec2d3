"""The neuron equation, written once as pure functions (state in, state out).

One step of every spiking layer in this project is

    v ← β·v + I,   s = H(v − θ),   v ← v − s·θ  (subtract)  or  v·(1 − s)  (zero),

with the spike's surrogate derivative taken on the normalised distance (v − θ)/θ
(``spiking.surrogate``) and the reset detached (no gradient flows through s in the reset).
β = 1 (integrate-and-fire) skips the multiplication: the same numbers, fewer operations.
A layer above the first is driven by ``synaptic_current`` of the spikes below it.

Two ways to run it, like Norse's ``functional`` next to its modules:

- ``neuron_step`` advances one time step; the snnTorch and Norse neuron modules call it (the
  *reference* path, ``student.engine: loop``), so both libraries run the same arithmetic;
- ``network_sequence`` runs a whole chain of layers for all T steps (``student.engine:
  fused``) without building a per-step autograd graph; the backward pass through time is
  written by hand (``_NetworkSequence``).

Why the forward is one loop over steps with every layer inside, rather than one layer at a
time: the layer above needs W·s_t, computed per step exactly as the reference engine computes
it (``synaptic_current``), which keeps the spikes bit-identical. The backward is the other way
round, one layer at a time from the top: a layer's ∂L/∂I_t depends only on the layer above at
the same and later steps, so each layer's chain through time runs alone and its products
(∂L/∂W, ∂L/∂s below) are one product over all steps each instead of one per step — measured
with two threads, a forward and backward at (B, N, T) = (100, [256, 256], 25) took 10.8 ms
against 12.0 ms step by step, at (128, 1024, 100) 42 ms against 68. The per-step state lives in
blocks borrowed from ``spiking.workspace`` and every operation writes into memory that is
already mapped (``out=``), so a pass does not page-fault its way through fresh memory.

The fused forward performs the reference's floating-point operations in the same order, so
its spikes are bit-identical; its gradients agree with autograd through the reference to
rounding (the backward sums the same terms in another order). Tested in
``tests/test_spiking_engine.py``.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch

from spiking.surrogate import SURROGATES, SpikeFn, SurrogateFactor
from spiking.workspace import BLOCKS


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


# Below this many elements a step's tensors are so small that an operation costs its dispatch,
# not its arithmetic: a layer that small is counted by one sum over its block after the loop
# (25 adds of (8, 16) took 134 µs, the sum 6 µs), a larger one by an add per step while its
# spikes are in cache (at (128, 1024) × 100 steps: 2 ms in the loop, 11 ms as a sum afterwards).
COUNT_IN_LOOP_ELEMENTS = 1 << 14
# A projection this narrow from a layer this wide is computed as (W·sᵀ)ᵀ (see synaptic_current).
NARROW_OUT, WIDE_IN = 16, 256


def synaptic_current(spikes: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """W·s + b for a batch of spike vectors (B, N) → (B, K), as both engines compute it.

    Both engines call this one function, so their currents, and hence their spikes, are
    identical. A narrow projection from a wide layer (K ≤ 16 outputs from N ≥ 256 neurons, the
    readout of a wide student) is written as (W·sᵀ)ᵀ: one thread's BLAS took 104 µs for it
    against ``F.linear``'s 150 µs at (B, N, K) = (128, 1024, 10). Elsewhere ``F.linear`` is as
    fast or faster, and under autograd its backward is cheaper: the transposed form made the
    reference engine's demo-size step 8% slower.
    """
    if weight.shape[0] <= NARROW_OUT and weight.shape[1] >= WIDE_IN:
        return torch.addmm(bias.unsqueeze(1), weight, spikes.t()).t()
    return torch.nn.functional.linear(spikes, weight, bias)


class _NetworkSequence(torch.autograd.Function):
    """Every layer, every step, in one time loop; gradients reach the first layer's currents
    and the weights and biases above it (θ and β are buffers).

    Backward through time, layer by layer from the top, with P_t = ∂L/∂s_t · sg((v_t − θ)/θ)/θ and r_t the
    reset's pass-through (1 for subtract, 1 − s_t for zero):

        ∂L/∂v_t = P_t + r_t·a_t,   a_{T−1} = ∂L/∂v_final,   a_{t−1} = β·∂L/∂v_t,   ∂L/∂I_t = ∂L/∂v_t,

    and, for the layer below, ∂L/∂s_t = ∂L/∂I_t·W for all steps in one product. A ``constant``
    first current (B, N) is the same at every step (direct encoding): its gradient is the sum
    over steps, accumulated without a (T, B, N) tensor.
    """

    @staticmethod
    def forward(ctx, first, steps, constant, thetas, beta, kind, slope, zero_reset, keep, *params):  # type: ignore[override]
        weights, biases = params[0::2], params[1::2]
        n_layers = len(thetas)
        batch = first.shape[0] if constant else first.shape[1]
        widths = [first.shape[-1]] + [w.shape[0] for w in weights]
        v = [first.new_zeros(batch, n) for n in widths]
        in_loop = [batch * n >= COUNT_IN_LOOP_ELEMENTS for n in widths[:-1]]
        counts = [first.new_zeros(batch, n) for n in widths[:-1]]
        scaled = [torch.empty_like(state) for state in v] if beta is not None else []
        # Per layer, one (T, B, N) block for the membranes before reset (overwritten by the
        # surrogate factors the backward needs, computed while the membrane is in cache) and one
        # for the spikes, borrowed; the last layer's spikes are an output: their own tensor.
        factors = [SurrogateFactor(theta, kind, slope) for theta in thetas] if keep else []
        before = [BLOCKS.take((steps, batch, n), first) for n in widths]
        spikes = [BLOCKS.take((steps, batch, n), first) for n in widths[:-1]]
        spikes.append(first.new_empty(steps, batch, widths[-1]))
        # Per-step views made once, in C++, rather than indexed step by step in Python.
        before_at = [block.unbind(0) for block in before]
        spikes_at = [block.unbind(0) for block in spikes]
        first_at = None if constant else first.unbind(0)
        for t in range(steps):
            signal = None
            for l in range(n_layers):
                if l == 0:
                    current = first if constant else first_at[t]
                else:
                    current = synaptic_current(signal, weights[l - 1], biases[l - 1])
                state = v[l] if beta is None else torch.mul(beta, v[l], out=scaled[l])
                v_t = torch.add(state, current, out=before_at[l][t])
                s = torch.gt(v_t, thetas[l], out=spikes_at[l][t])
                torch.addcmul(v_t, s, v_t if zero_reset else thetas[l], value=-1.0, out=v[l])
                if keep:
                    factors[l](v_t, out=v_t)
                if l < n_layers - 1 and in_loop[l]:
                    counts[l].add_(s)
                signal = s
        for l, count in enumerate(counts):
            if not in_loop[l]:
                torch.sum(spikes[l], dim=0, out=count)
        if keep:
            ctx.save_for_backward(*params)
            ctx.spikes, ctx.slopes = spikes, before
        else:  # no backward will come: the blocks can serve the next pass now
            BLOCKS.give(before + spikes[:-1])
        ctx.beta, ctx.constant, ctx.zero_reset = beta, constant, zero_reset
        ctx.mark_non_differentiable(*counts)
        return (spikes[-1], v[-1], *counts)

    @staticmethod
    def backward(ctx, grad_spikes, grad_final, *unused):  # type: ignore[override]
        if not getattr(ctx, "slopes", None):
            raise RuntimeError("the fused spiking engine's backward runs once per pass; for retain_graph use "
                               "student.engine: loop")
        weights = ctx.saved_tensors[0::2]
        spikes, slopes, beta, zero_reset = ctx.spikes, ctx.slopes, ctx.beta, ctx.zero_reset
        ctx.spikes, ctx.slopes = [], []
        n_layers, steps = len(slopes), slopes[0].shape[0]
        batch = slopes[0].shape[1]
        grad_w: List[Optional[torch.Tensor]] = [None] * len(weights)
        grad_b: List[Optional[torch.Tensor]] = [None] * len(weights)
        grad_first: Optional[torch.Tensor] = None
        lent: List[torch.Tensor] = []
        # Layer by layer, top down: a layer's ∂L/∂I_t at every step depends only on the layer
        # above at the same and later steps, so each layer's chain through time runs alone and
        # its three products (∂L/∂W, ∂L/∂b, ∂L/∂s below) are one product over all steps each.
        grad_s = grad_spikes
        for l in range(n_layers - 1, -1, -1):
            carry = grad_final if l == n_layers - 1 else None
            if grad_s is None and carry is None:
                break  # nothing reaches this layer, nor any below it
            # ∂L/∂I_t for every step: over the surrogate factors (read once, at the same step), or
            # for the first layer straight into its gradient
            if l == 0:
                held = ctx.constant
                grad_first = slopes[0].new_zeros(slopes[0].shape[1:]) if held else slopes[0].new_empty(slopes[0].shape)
                _chain_through_time(grad_s, carry, slopes[0], spikes[0] if zero_reset else None, beta,
                                    slopes[0] if held else grad_first, grad_first if held else None, lent)
                break
            grad_v_all = slopes[l]
            _chain_through_time(grad_s, carry, slopes[l], spikes[l] if zero_reset else None, beta, grad_v_all,
                                None, lent)
            n, below = grad_v_all.shape[-1], spikes[l - 1].shape[-1]
            rows = grad_v_all.reshape(steps * batch, n)
            grad_w[l - 1] = torch.mm(rows.t(), spikes[l - 1].reshape(steps * batch, below))
            grad_b[l - 1] = rows.sum(dim=0)
            grad_s = BLOCKS.take((steps, batch, below), rows)
            lent.append(grad_s)
            if grad_s.is_contiguous():
                torch.mm(rows, weights[l - 1], out=grad_s.view(-1, below))
            else:  # a block whose steps are padded to alignment
                grad_s.copy_(torch.mm(rows, weights[l - 1]).view(steps, batch, below))
        if grad_first is None:
            shape = slopes[0].shape[1:] if ctx.constant else slopes[0].shape
            grad_first = slopes[0].new_zeros(shape)
        grad_w = [g if g is not None else torch.zeros_like(w) for g, w in zip(grad_w, weights)]
        grad_b = [g if g is not None else torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
                  for g, w in zip(grad_b, weights)]
        BLOCKS.give(slopes + spikes[:-1] + lent)
        grads = [g for pair in zip(grad_w, grad_b) for g in pair]
        return (grad_first, None, None, None, None, None, None, None, None, *grads)


def _chain_through_time(grad_s: Optional[torch.Tensor], carry: Optional[torch.Tensor], factors: torch.Tensor,
                        spikes: Optional[torch.Tensor], beta: Optional[torch.Tensor], out: torch.Tensor,
                        summed: Optional[torch.Tensor], lent: List[torch.Tensor]) -> None:
    """One layer's ∂L/∂I_t = ∂L/∂v_t for every step, from the last step back, written into
    ``out`` (T, B, N) (which may be ``factors`` itself: step t's factor is read before it is
    overwritten), or summed over steps into ``summed`` (a held first current).

        ∂L/∂v_t = factor_t·∂L/∂s_t + r_t·a_t,   a_{T−1} = ``carry``,   a_{t−1} = β·∂L/∂v_t,

    with r_t = 1 − s_t for a zero reset (``spikes`` given), else 1."""
    steps, batch, n = factors.shape
    factors_at, out_at = factors.unbind(0), out.unbind(0)
    grad_s_at = grad_s.unbind(0) if grad_s is not None else None
    spikes_at = spikes.unbind(0) if spikes is not None else None
    scratch = BLOCKS.take((2, batch, n), factors)
    lent.append(scratch)
    turns = scratch.unbind(0)
    c = carry
    for t in range(steps - 1, -1, -1):
        target = out_at[t]
        if c is not None and spikes_at is not None:
            c = torch.addcmul(c, c, spikes_at[t], value=-1.0, out=turns[t % 2])
        if grad_s_at is None:
            grad_v = target.copy_(c)
        elif c is None:
            grad_v = torch.mul(factors_at[t], grad_s_at[t], out=target)
        else:
            grad_v = torch.addcmul(c, factors_at[t], grad_s_at[t], out=target)
        if summed is not None:
            summed.add_(grad_v)
        c = grad_v if beta is None else torch.mul(grad_v, beta, out=turns[(t + 1) % 2])


def network_sequence(
    first: torch.Tensor,
    weights: Sequence[torch.Tensor],
    biases: Sequence[torch.Tensor],
    thetas: Sequence[torch.Tensor],
    beta: Optional[torch.Tensor],
    surrogate: str,
    slope: float,
    zero_reset: bool,
    steps: Optional[int] = None,
) -> Tuple[torch.Tensor, torch.Tensor, List[torch.Tensor]]:
    """A chain of spiking layers from rest, all steps in one loop.

    ``first`` is the first layer's input current, (T, B, N) or (B, N) held for ``steps``;
    layer l > 0 is driven by ``synaptic_current`` through ``weights[l-1]``/``biases[l-1]``
    from the spikes below it; ``thetas[l]`` is (N,) or (B, N). Returns the last layer's spikes
    (T, B, K), its membrane after the last reset (B, K), and the spike counts (B, N) of the
    layers below it (statistics: no gradient).
    """
    if surrogate not in SURROGATES:
        raise ValueError(f"unknown surrogate {surrogate!r}; allowed: {sorted(SURROGATES)}")
    if len(weights) != len(thetas) - 1 or len(biases) != len(weights):
        raise ValueError(f"{len(thetas)} layers need {len(thetas) - 1} weights and biases; "
                         f"got {len(weights)} and {len(biases)}")
    constant = steps is not None
    steps = steps if constant else first.shape[0]
    thetas = [theta.to(first) for theta in thetas]
    params = [p for pair in zip(weights, biases) for p in pair]
    keep = torch.is_grad_enabled() and any(t.requires_grad for t in (first, *params))
    out = _NetworkSequence.apply(first, steps, constant, thetas, beta, surrogate, float(slope), zero_reset, keep, *params)
    return out[0], out[1], list(out[2:])
