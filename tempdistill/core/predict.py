"""Predictions that a run and its exports agree on, sample for sample.

A spiking student with a random input encoder (Poisson) draws new spikes on every pass, so
"the same predictions" needs the same draws: every prediction here is one forward pass over
all inputs with the global RNG forked and seeded with ``PREDICTION_SEED``. The run records its
held-out predictions this way (``/eval/test_predictions``), and a loaded export
(``tempdistill.record.export.load_predictor``) predicts the same inputs the same way.

Every class prediction that is scored or recorded takes its class from ``fair_argmax``: the
argmax, with exact ties broken by a key hashed from the row's own values instead of toward
the lowest index (a spiking student's count readout ties often).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from tempdistill.core.student import logits_of

PREDICTION_SEED = 0
# Rows per forward pass: a spiking conv student keeps (steps, rows, C·H·W) per layer, 3 GB for
# Fashion-MNIST's 10,000 test images at 8 steps in one pass. Sets up to this size are one pass,
# as before; a larger one goes in chunks that draw from the one seeded stream in turn.
PREDICTION_CHUNK = 4096


_MASK = (1 << 31) - 1
_MULTIPLIERS = (0x2C1B3C6D, 0x297A2D39, 0x5851F42D)


def _mix(x: torch.Tensor, salt: int) -> torch.Tensor:
    """A 31-bit integer hash of each entry of ``x`` (int64 in [0, 2³¹)); every product stays
    below 2⁶², so nothing overflows and the result is the same on every device."""
    for multiplier in _MULTIPLIERS:
        x = ((x ^ salt) * multiplier) & _MASK
        x = x ^ (x >> 15)
    return x


def fair_argmax(logits: torch.Tensor) -> torch.Tensor:
    """Index of each row's maximum (over the last dim), exact ties broken without a class bias.

    A row with one maximum gets exactly ``logits.argmax(dim=-1)``. Among a row's tied maxima the
    class with the largest priority key wins, the key being a fixed hash of (the row's order
    pattern, the class index): over rows that differ, each tied class is equally likely, where
    ``torch.argmax`` always takes the lowest index (a systematic bias toward class 0 when a
    spiking student's integer spike counts tie).

    The row's order pattern is each entry's rank within its row (how many entries are smaller).
    It depends on the row alone, never on its position, batch or device: the same row gives the
    same class whether it is predicted alone, in chunks, in another order or by a reloaded
    export, so recorded predictions are reproduced exactly (a key from the row's position would
    change with the order and subset of the inputs a user predicts). Ranks rather than the
    values' bits, because an export computes the same spike counts × θ0/N with other roundings
    (a few ulp apart), which leaves every rank and every tie, hence the choice, unchanged. The
    price: rows with the same order pattern (two all-silent outputs, say) get the same class.
    A row holding NaN keeps ``torch.argmax``'s answer.
    """
    plain = logits.argmax(dim=-1)
    if logits.shape[-1] <= 1 or logits.numel() == 0:
        return plain
    values = logits.detach()
    tied = values == values.max(dim=-1, keepdim=True).values
    ordered = values.sort(dim=-1).values.contiguous()
    ranks = torch.searchsorted(ordered, values.contiguous(), side="left").to(torch.int64)
    classes = torch.arange(values.shape[-1], device=values.device, dtype=torch.int64)
    row = _mix(_mix(ranks, 1) ^ classes, 2).sum(dim=-1, keepdim=True) & _MASK
    keys = _mix(row ^ classes, 3)
    chosen = keys.masked_fill(~tied, -1).argmax(dim=-1)
    return torch.where(tied.sum(dim=-1) > 1, chosen, plain)


def seeded_logits(forward: Callable[[torch.Tensor], Any], x: torch.Tensor, seed: int = PREDICTION_SEED) -> torch.Tensor:
    """forward(x)'s (tempered) logits, with every random draw inside taken from ``seed``."""
    devices = [x.device.index or 0] if x.is_cuda else []
    with torch.no_grad(), torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return torch.cat([logits_of(forward(x[start:start + PREDICTION_CHUNK]))
                          for start in range(0, max(x.shape[0], 1), PREDICTION_CHUNK)])


def seeded_argmax(forward: Callable[[torch.Tensor], Any], x: torch.Tensor, seed: int = PREDICTION_SEED) -> np.ndarray:
    """Class indices ``fair_argmax(forward(x))``, with every random draw inside taken from ``seed``.

    Ties (equal spike counts) are broken by ``fair_argmax``'s content key, not toward index 0.
    """
    return fair_argmax(seeded_logits(forward, x, seed)).cpu().numpy()
