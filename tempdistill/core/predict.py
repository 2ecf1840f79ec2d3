"""Predictions that a run and its exports agree on, sample for sample.

A spiking student with a random input encoder (Poisson) draws new spikes on every pass, so
"the same predictions" needs the same draws: every prediction here is one forward pass over
all inputs with the global RNG forked and seeded with ``PREDICTION_SEED``. The run records its
held-out predictions this way (``/eval/test_predictions``), and a loaded export
(``tempdistill.record.export.load_predictor``) predicts the same inputs the same way.
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


def seeded_logits(forward: Callable[[torch.Tensor], Any], x: torch.Tensor, seed: int = PREDICTION_SEED) -> torch.Tensor:
    """forward(x)'s (tempered) logits, with every random draw inside taken from ``seed``."""
    devices = [x.device.index or 0] if x.is_cuda else []
    with torch.no_grad(), torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return torch.cat([logits_of(forward(x[start:start + PREDICTION_CHUNK]))
                          for start in range(0, max(x.shape[0], 1), PREDICTION_CHUNK)])


def seeded_argmax(forward: Callable[[torch.Tensor], Any], x: torch.Tensor, seed: int = PREDICTION_SEED) -> np.ndarray:
    """Class indices argmax(forward(x)), with every random draw inside taken from ``seed``.

    Ties (equal spike counts) go to the lowest index, as ``torch.argmax`` documents.
    """
    return seeded_logits(forward, x, seed).argmax(dim=-1).cpu().numpy()
