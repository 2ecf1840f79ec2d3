"""The fused engine's conv stages: every stage, every step, in one time loop, with the
backward pass through time written by hand (``_ConvSequence``).

Why a loop over steps with every stage inside, and not one stage over all steps at a time:
at a conv student's sizes a stage's per-step tensors are a few MB, (T, B, C·H·W) blocks tens
of MB. Measured with one CPU thread (batch 128, channels [16, 32], 28×28, 8 steps), one
convolution over T·B = 1024 pooled maps took 40 ms forward and 46 ms backward, eight per-step
convolutions 9 ms and 21 ms: the per-step maps stay in the 32 MB L3 cache, the batched ones
do not. The same holds for the elementwise work, so each step's membrane, spikes, pooling and
the next stage's convolution are computed while they are in cache, and only what the backward
needs is kept: per stage the surrogate factors (T, B, N) and the pooled spikes (T, B, C, H/2,
W/2) the next convolution read. A step's full-size spikes are kept only where the backward
reads them (a zero reset, max pooling, odd maps).

Exactness: the forward performs the loop engine's operations (``SpikingConvStages.step``) in
the same order on operands of the same shapes — one (B, C, H, W) convolution per step, the
neuron equation of ``spiking.functional``, 2×2 pooling of spikes (exact in any order) — so
spikes and counts are bit-identical; the backward sums the same terms in another order, so
gradients agree to rounding (``tests/test_conv_students.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torch.nn import functional as F

from spiking.spike_pooling import Shape, pool2d, pooled, unpool_matrix
from spiking.surrogate import SURROGATES, SurrogateFactor
from spiking.workspace import BLOCKS


@dataclass(frozen=True)
class ConvSpec:
    """What ``_ConvSequence`` needs besides tensors: the stages' maps (C, H, W) before pooling,
    the pooling, the convolutions' padding, the neuron's constants, and which stages' counts
    carry a gradient (a listened ``RateTap``)."""

    maps: Tuple[Shape, ...]
    pool: str
    padding: int
    steps: int
    constant: bool
    beta: Optional[torch.Tensor]
    kind: str
    slope: float
    zero_reset: bool
    tapped: Tuple[bool, ...]


def _fast_avg(shape: Shape, kind: str) -> bool:
    """Average pooling of even maps: pooled by strided adds, unpooled without the spikes."""
    return kind == "avg" and shape[1] % 2 == 0 and shape[2] % 2 == 0


def _borrow(lent: List[torch.Tensor], like: torch.Tensor, batch: int, n: int) -> torch.Tensor:
    """A (B, N) scratch tensor from ``spiking.workspace`` (recorded in ``lent``, to be given
    back): fresh memory would page-fault on its first write every pass (measured: zeroing a
    fresh (128, 12544) state took 1.7 ms, a pass over a warm one 0.2)."""
    block = BLOCKS.take((1, batch, n), like)
    lent.append(block)
    return block[0]


def _pool_into(spikes: torch.Tensor, kind: str, rows: Optional[torch.Tensor], out: torch.Tensor) -> None:
    """2×2 pooling of one step's spikes (B, C, H, W) written into ``out`` (B, C, H/2, W/2);
    even average pooling as the adds of ``spiking.spike_pooling._EvenAvgPool`` (row pairs into ``rows``,
    then column pairs), anything else through ``pool2d``. Of spikes every form is exact."""
    if rows is None:
        out.copy_(pool2d(spikes, kind))
        return
    b, c, h, w = spikes.shape
    pairs = spikes.view(b, c, h // 2, 2, w)
    torch.add(pairs[:, :, :, 0], pairs[:, :, :, 1], out=rows)
    cols = rows.view(b, c, h // 2, w // 2, 2)
    torch.add(cols[..., 0], cols[..., 1], out=out).mul_(0.25)


def _pool_grad(spikes: torch.Tensor, grad: torch.Tensor, kind: str) -> torch.Tensor:
    """∂L/∂spikes of one step's pooling, by autograd through ``pool2d`` (max pooling routes the
    gradient to the window's chosen spike, as the loop engine's autograd does)."""
    with torch.enable_grad():
        x = spikes.detach().requires_grad_()
        return torch.autograd.grad(pool2d(x, kind), x, grad)[0]


class _ConvSequence(torch.autograd.Function):
    """All conv stages for all steps; gradients reach the first stage's currents and the
    convolutions above it (θ and β are buffers), and, for tapped stages, the spike counts.

    Per stage, with P_t = sg((v_t − θ)/θ)/θ and r_t the reset's pass-through (1 − s_t for a
    zero reset, else 1), as in ``spiking.functional._NetworkSequence``:

        ∂L/∂s_t = unpool(∂L/∂pooled_t) + ∂L/∂count,   ∂L/∂v_t = P_t·∂L/∂s_t + β·r_t·∂L/∂v_{t+1},

    ∂L/∂I_t = ∂L/∂v_t, and for the stage below ∂L/∂pooled_t is the convolution's input gradient
    of ∂L/∂I_t at the same step (``convolution_backward``, which also gives its weight and bias
    gradients, summed over steps).
    """

    @staticmethod
    def forward(ctx, first, spec: ConvSpec, thetas, keep, *params):  # type: ignore[override]
        weights, biases = params[0::2], params[1::2]
        maps, steps = spec.maps, spec.steps
        batch = first.shape[0] if spec.constant else first.shape[1]
        sizes = [c * h * w for c, h, w in maps]
        fast = [_fast_avg(m, spec.pool) for m in maps]
        keep_spikes = [spec.zero_reset or not f for f in fast]
        lent: List[torch.Tensor] = []
        v = [_borrow(lent, first, batch, n).zero_() for n in sizes]
        scaled = [_borrow(lent, first, batch, n) for n in sizes] if spec.beta is not None else []
        counts = [first.new_zeros(batch, n) for n in sizes]
        factors = [SurrogateFactor(theta, spec.kind, spec.slope) for theta in thetas] if keep else []
        # The membranes before reset, overwritten by the surrogate factors; the spikes, one
        # step's scratch unless the backward reads them; the pooled spikes the next stage reads
        # (the last stage's are the output, their own tensor).
        before = [BLOCKS.take((steps, batch, n), first) for n in sizes]
        spikes = [BLOCKS.take((steps if k else 1, batch, n), first) for k, n in zip(keep_spikes, sizes)]
        outs = [BLOCKS.take((steps, batch, *pooled(m)), first) for m in maps[:-1]]
        outs.append(first.new_empty(steps, batch, *pooled(maps[-1])))
        rows = [_borrow(lent, first, batch, n).view(-1)[: batch * n // 2].view(batch, c, h // 2, w) if f else None
                for f, n, (c, h, w) in zip(fast, sizes, maps)]
        before_at = [block.unbind(0) for block in before]
        spikes_at = [block.unbind(0) for block in spikes]
        outs_at = [block.unbind(0) for block in outs]
        first_at = None if spec.constant else first.unbind(0)
        for t in range(steps):
            for l, shape in enumerate(maps):
                if l == 0:
                    current = first if spec.constant else first_at[t]
                else:
                    current = F.conv2d(outs_at[l - 1][t], weights[l - 1], biases[l - 1], padding=spec.padding)
                    current = current.view(batch, -1)
                state = v[l] if spec.beta is None else torch.mul(spec.beta, v[l], out=scaled[l])
                v_t = torch.add(state, current, out=before_at[l][t])
                s = torch.gt(v_t, thetas[l], out=spikes_at[l][t if keep_spikes[l] else 0])
                torch.addcmul(v_t, s, v_t if spec.zero_reset else thetas[l], value=-1.0, out=v[l])
                if keep:
                    factors[l](v_t, out=v_t)
                counts[l].add_(s)
                _pool_into(s.view(batch, *shape), spec.pool, rows[l], outs_at[l][t])
        if keep:
            ctx.save_for_backward(*params)
            ctx.blocks = (before, spikes, outs[:-1])
        else:  # no backward will come: the blocks can serve the next pass now
            BLOCKS.give(before + spikes + outs[:-1])
        BLOCKS.give(lent)
        ctx.spec, ctx.fast, ctx.keep_spikes = spec, fast, keep_spikes
        ctx.mark_non_differentiable(*(c for c, tapped in zip(counts, spec.tapped) if not tapped))
        # Unused outputs' gradients stay None: autograd would otherwise fill a (B, N) block of
        # zeros per stage's counts (2.3 ms each at (128, 12544)).
        ctx.set_materialize_grads(False)
        return (outs[-1].view(steps, batch, -1), *counts)

    @staticmethod
    def backward(ctx, grad_out, *grad_counts):  # type: ignore[override]
        if not getattr(ctx, "blocks", None):
            raise RuntimeError("the fused spiking engine's backward runs once per pass; for retain_graph use "
                               "student.engine: loop")
        spec, fast, keep_spikes = ctx.spec, ctx.fast, ctx.keep_spikes
        params = ctx.saved_tensors
        weights = params[0::2]
        before, spikes, outs = ctx.blocks
        ctx.blocks = None
        maps, steps, beta = spec.maps, spec.steps, spec.beta
        batch = before[0].shape[1]
        grad_counts = [g if tapped else None for g, tapped in zip(grad_counts, spec.tapped)]
        factors_at = [block.unbind(0) for block in before]
        spikes_at = [block.unbind(0) for block in spikes]
        outs_at = [block.unbind(0) for block in outs]
        grad_out_at = grad_out.unbind(0) if grad_out is not None else None
        grad_w = [torch.zeros_like(w) for w in weights]
        grad_b = [torch.zeros_like(b) for b in params[1::2]]
        first_shape = (batch, before[0].shape[2]) if spec.constant else before[0].shape
        # Held: ∂L/∂I summed over steps, starting as the first step's copy (a zeroed fresh block
        # cost a pass). Per step: every step is written where a gradient reaches the stage.
        grad_first = before[0].new_empty(first_shape) if spec.constant else before[0].new_zeros(first_shape)
        summed = False
        grad_first_at = None if spec.constant else grad_first.unbind(0)
        lent: List[torch.Tensor] = []
        sizes = [c * h * w for c, h, w in maps]
        turns = [(_borrow(lent, grad_first, batch, n), _borrow(lent, grad_first, batch, n)) for n in sizes]
        unpooled = [_borrow(lent, grad_first, batch, n) if f else None for f, n in zip(fast, sizes)]
        carry: List[Optional[torch.Tensor]] = [None] * len(maps)
        for t in range(steps - 1, -1, -1):
            grad_pooled = grad_out_at[t] if grad_out_at is not None else None
            for l in range(len(maps) - 1, -1, -1):
                shape = maps[l]
                c = carry[l]
                target = turns[l][1] if c is turns[l][0] else turns[l][0]
                if c is not None and spec.zero_reset:
                    c = torch.addcmul(c, c, spikes_at[l][t], value=-1.0, out=target)
                grad_v = _grad_membrane(grad_pooled, grad_counts[l], factors_at[l][t],
                                        spikes_at[l][t if keep_spikes[l] else 0], c, target, shape, spec.pool,
                                        unpooled[l])
                if grad_v is None:
                    grad_pooled = None
                    continue
                if l > 0:
                    grad_pooled, gw, gb = torch.ops.aten.convolution_backward(
                        grad_v.view(batch, *shape), outs_at[l - 1][t], weights[l - 1], [shape[0]], [1, 1],
                        [spec.padding, spec.padding], [1, 1], False, [0, 0], 1, [True, True, True])
                    grad_w[l - 1].add_(gw)
                    grad_b[l - 1].add_(gb)
                elif grad_first_at is None:
                    grad_first.add_(grad_v) if summed else grad_first.copy_(grad_v)
                    summed = True
                else:
                    grad_first_at[t].copy_(grad_v)
                if beta is not None:  # consumed above, so it can become the carry in place
                    grad_v = grad_v.mul_(beta) if grad_v is target else grad_v * beta
                carry[l] = grad_v
        if spec.constant and not summed:
            grad_first.zero_()
        BLOCKS.give(before + spikes + outs + lent)
        grads = [g for pair in zip(grad_w, grad_b) for g in pair]
        return (grad_first, None, None, None, *grads)


def _grad_membrane(grad_pooled: Optional[torch.Tensor], grad_count: Optional[torch.Tensor], factor: torch.Tensor,
                   spikes: torch.Tensor, carry: Optional[torch.Tensor], out: torch.Tensor, shape: Shape, pool: str,
                   unpooled: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """One stage's ∂L/∂v_t (B, N) = P_t·∂L/∂s_t + carry, into ``out``; None when nothing flows.
    ∂L/∂s_t of even average pooling is one product into the scratch ``unpooled`` (B, N)
    (``spiking.spike_pooling.unpool_matrix``); of other pooling autograd's, from the step's kept spikes."""
    batch = factor.shape[0]
    c, h, w = shape
    grad_s = None
    if grad_pooled is not None and unpooled is not None:
        grad_s = torch.mm(grad_pooled.reshape(-1, w // 2), unpool_matrix(w, factor.dtype, factor.device),
                          out=unpooled.view(-1, 2 * w)).view(batch, -1)
    elif grad_pooled is not None:
        grad_s = _pool_grad(spikes.view(batch, *shape), grad_pooled.reshape(batch, c, h // 2, w // 2), pool)
        grad_s = grad_s.reshape(batch, -1)
    if grad_count is not None:
        grad_s = grad_count if grad_s is None else grad_s.add_(grad_count)
    if grad_s is None:
        return carry
    if carry is None:
        return torch.mul(factor, grad_s, out=out)
    return torch.addcmul(carry, factor, grad_s, out=out)


def conv_sequence(first: torch.Tensor, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor],
                  thetas: Sequence[torch.Tensor], maps: Sequence[Shape], pool: str, padding: int,
                  beta: Optional[torch.Tensor], surrogate: str, slope: float, zero_reset: bool,
                  steps: Optional[int] = None, tapped: Optional[Sequence[bool]] = None
                  ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """Conv stages from rest, all steps in one loop: the last stage's pooled spikes (T, B, F)
    and every stage's spike counts (B, N).

    ``first`` is the first stage's current, (T, B, N0) or (B, N0) held for ``steps``; stage
    l > 0 is driven by the convolution ``weights[l-1]``/``biases[l-1]`` (stride 1, ``padding``)
    of the pooled spikes below it. A stage's counts are differentiable where ``tapped[l]``
    (its ``RateTap`` is listened to), else statistics without a gradient."""
    if surrogate not in SURROGATES:
        raise ValueError(f"unknown surrogate {surrogate!r}; allowed: {sorted(SURROGATES)}")
    constant = steps is not None
    steps = steps if constant else first.shape[0]
    thetas = [theta.to(first) for theta in thetas]
    tapped = tuple(bool(x) for x in (tapped or [False] * len(maps)))
    spec = ConvSpec(tuple(tuple(m) for m in maps), pool, padding, steps, constant, beta, surrogate, float(slope),
                    zero_reset, tapped)
    params = [p for pair in zip(weights, biases) for p in pair]
    keep = torch.is_grad_enabled() and any(t.requires_grad for t in (first, *params))
    out = _ConvSequence.apply(first, spec, thetas, keep, *params)
    return out[0], list(out[1:])
