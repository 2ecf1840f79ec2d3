"""Small training helpers shared by the teacher and the distiller."""

from __future__ import annotations

from typing import Dict, Iterator

import torch
from torch import nn

from tempdistill.core.predict import fair_argmax
from tempdistill.core.student import StudentOutput, logits_of


def iterate_minibatches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Index batches of a seeded permutation; the generator makes the order repeatable."""
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


@torch.no_grad()
def batched_forward(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Forward in eval mode over batches, so a large held-out set fits in memory."""
    was_training = model.training
    model.eval()
    outputs = [logits_of(model(x[i : i + batch_size])) for i in range(0, x.shape[0], batch_size)]
    model.train(was_training)
    return torch.cat(outputs)


def collect_outputs(student: nn.Module, x: torch.Tensor, batch_size: int = 512) -> StudentOutput:
    """A student's outputs over ``x`` batch by batch, in its current mode and temperature:
    logits concatenated, measurements as per-sample means over all of ``x``."""
    tempered, logits = [], []
    totals: Dict[str, float] = {}
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size]
        out = student(xb)
        tempered.append(out.tempered)
        logits.append(out.logits)
        for name, value in out.measured.items():
            totals[name] = totals.get(name, 0.0) + float(value) * xb.shape[0]
    measured = {name: total / x.shape[0] for name, total in totals.items()}  # floats: exact means
    return StudentOutput(torch.cat(tempered), torch.cat(logits), measured)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy in eval mode."""
    return float((fair_argmax(batched_forward(model, x)) == y).float().mean())


def parameter_count(model: nn.Module) -> int:
    """Trainable and frozen parameters (buffers such as thresholds are not counted)."""
    return sum(p.numel() for p in model.parameters())


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so that a config always gives the same run."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
