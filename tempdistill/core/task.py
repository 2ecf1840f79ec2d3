"""What the training loop needs of a task: batches with the teacher's logits, the objective, the
validation batch and its score, probes. The runner needs more (building the teacher, test
figures, record groups); that is ``tempdistill.tasks.base.Task``, which implements this too.

Kept here, beside the loop, so that the loop depends on the interface it uses and not on the
tasks that implement it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, Optional, Protocol, Tuple

import numpy as np
import torch

from tempdistill.core.student import Student, StudentOutput
from tempdistill.temperature import Temperature


@dataclass
class Batch:
    """Student inputs (B, F), the teacher's logits for them (B, K), hard targets (B,) or None,
    for a multi-head task the head each row belongs to (B,) or None, and, where the task has
    them per batch (a feature term runs the teacher on the batch, ``distill.features``; augmented
    images, ``data.augment``), the same rows as the teacher reads them (normalised or as the user
    gave them, per its source; (B, C, H, W) for a user's teacher of images), else None."""

    x: torch.Tensor
    teacher_logits: Optional[torch.Tensor]
    targets: Optional[torch.Tensor] = None
    groups: Optional[torch.Tensor] = None
    teacher_inputs: Optional[torch.Tensor] = None


class TrainingTask(Protocol):
    """The loop's view of a task (``tempdistill.core.distiller.Distiller``)."""

    # The per-epoch measure (higher is better) that ``distill.select: best_val`` picks by.
    validation_score: Optional[str]

    def fitting_logits(self) -> torch.Tensor:
        """The teacher's logits over the training inputs (a student sizes θ0 from them)."""

    def fitting_inputs(self) -> Optional[torch.Tensor]:
        """The inputs ``fitting_logits`` answer, row for row, or None."""

    def begin_epoch(self, epoch: int, student: Student, temperature: float) -> Dict[str, float]:
        """Called before each epoch's batches; returns figures for the epoch's record."""

    def train_batches(self, epoch: int, batch_size: int, generator: torch.Generator,
                      teacher: bool = True) -> Iterator[Batch]:
        """The epoch's training batches, in an order drawn from ``generator``. With ``teacher``
        False nothing will read their teacher logits (hard labels only): a task that runs the
        teacher per batch may skip it and give None."""

    def objective(self, student: Student, output: StudentOutput, batch: Batch, temperature: Temperature,
                  alpha: float, loss: str) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(total, kd, ce) of one training batch."""

    def evaluation_batch(self) -> Batch:
        """The validation batch every epoch is measured on (never test data)."""

    def score(self, student: Student, output: StudentOutput, batch: Batch) -> Dict[str, float]:
        """The task's own measure of the student on ``batch``."""

    def soft_label_measures(self, student: Student, tempered: torch.Tensor, logits: torch.Tensor, batch: Batch,
                            temperature: Temperature) -> Dict[str, float]:
        """The information record of the validation batch; it holds ``kl``."""

    def probe_inputs(self, count: int) -> torch.Tensor:
        """Fixed validation inputs whose spike traces are recorded."""

    def probe_facts(self, count: int) -> Dict[str, np.ndarray]:
        """What the probes are: ``probe_rows`` and, where the task has them, ``probe_labels``."""
