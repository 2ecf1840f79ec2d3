"""Classification distillation: a fixed, seeded train/validation/test split of an array dataset.

Batches are minibatches of the training rows in a seeded order, each with the teacher's
logits (computed once) and the true labels; every epoch is measured on the validation rows,
scored by top-1 accuracy (``val_accuracy``, the ``best_val`` choice's score). The test rows
are shown to each reported student once, at the end: its accuracy (``student_accuracy``) and
its predictions in the user's own class labels (``test_predictions``) come from that one
seeded pass. ``/data`` keeps the label mapping and input normalisation that exports need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import numpy as np
import torch
from torch import nn

from tempdistill.config import RunConfig
from tempdistill.tasks.data import Split, load_split
from tempdistill.core.predict import seeded_argmax
from tempdistill.core.student import Backend, Student, StudentOutput
from tempdistill.core.task import Batch
from tempdistill.tasks.base import RecordGroup, Task
from tempdistill.tasks.teacher import TeacherOrigin, obtain_teacher
from tempdistill.core.training import accuracy, batched_forward, iterate_minibatches, seed_everything


def prepare_teacher(
    config: RunConfig, teacher_backend: Backend, teacher_options: Any, log: Callable[[str], None] = lambda _: None
) -> Tuple[Split, nn.Module, TeacherOrigin]:
    """The data split and the teacher (from checkpoint, cache, or trained now)."""
    seed_everything(config.seed)
    split: Split = load_split(config.data, config.seed).to(config.device)
    network = teacher_backend.build_teacher(teacher_options, split.input_dim, split.num_classes)
    teacher, origin = obtain_teacher(
        network.to(config.device), teacher_options.model_dump(mode="json"), config.teacher,
        config.data, split, config.seed, log,
    )
    return split, teacher, origin


class ClassificationTask(Task):
    """Distil a classifier on a fixed train/validation/test split."""

    name = "classification"
    validation_score = "val_accuracy"

    def __init__(self, split: Split, teacher: nn.Module) -> None:
        self.split = split
        self.teacher = teacher.eval()
        self.input_dim = split.input_dim
        self.num_outputs = split.num_classes
        self.teacher_train_logits = batched_forward(teacher, split.x_train)
        self.teacher_val_logits = batched_forward(teacher, split.x_val)

    @classmethod
    def plan_teacher(cls, config: RunConfig) -> Tuple[Backend, Any]:
        from backends import get_backend

        backend = get_backend(config.teacher.backend, "teacher.backend")
        return backend, backend.validate(config.teacher.backend_options(), "teacher")

    @classmethod
    def build(
        cls, config: RunConfig, teacher_backend: Backend, teacher_options: Any, log: Callable[[str], None]
    ) -> Tuple["ClassificationTask", TeacherOrigin]:
        split, teacher, origin = prepare_teacher(config, teacher_backend, teacher_options, log)
        return cls(split, teacher), origin

    @classmethod
    def prepare_teacher(cls, config: RunConfig, teacher_backend: Backend, teacher_options: Any,
                        log: Callable[[str], None]) -> Optional[Path]:
        _, _, origin = prepare_teacher(config, teacher_backend, teacher_options, log)
        return Path(origin.file) if origin.kind in ("cache", "trained") else None

    def fitting_logits(self) -> torch.Tensor:
        return self.teacher_train_logits

    def fitting_inputs(self) -> torch.Tensor:
        return self.split.x_train

    def steps_per_epoch(self, batch_size: int) -> int:
        return -(-self.split.x_train.shape[0] // batch_size)

    def train_batches(self, epoch: int, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        x, y, logits = self.split.x_train, self.split.y_train, self.teacher_train_logits
        for index in iterate_minibatches(x.shape[0], batch_size, generator):
            yield Batch(x[index], logits[index], y[index])

    def evaluation_batch(self) -> Batch:
        return Batch(self.split.x_val, self.teacher_val_logits, self.split.y_val)

    def score(self, student: Student, output: StudentOutput, batch: Batch) -> Dict[str, float]:
        """Top-1 accuracy of the T = 1 outputs (``val_accuracy`` in the per-epoch record)."""
        return {"val_accuracy": float((output.logits.argmax(dim=-1) == batch.targets).float().mean())}

    def probe_inputs(self, count: int) -> torch.Tensor:
        return self.split.x_val[:count]

    def probe_facts(self, count: int) -> Dict[str, np.ndarray]:
        """The first validation rows, labelled as the user labels them (``/data/class_labels``)."""
        classes = self.split.y_val[:count].cpu().numpy().astype(np.int64)
        labels = self.split.class_labels[classes] if len(self.split.class_labels) else classes
        return {"probe_rows": np.arange(len(classes), dtype=np.int64), "probe_labels": np.asarray(labels, dtype=np.int64)}

    def teacher_figures(self) -> Dict[str, Any]:
        """The teacher's test accuracy (its one test pass), and its validation accuracy, the
        figure a teacher's settings are chosen by."""
        return {"teacher_accuracy": accuracy(self.teacher, self.split.x_test, self.split.y_test),
                "teacher_val_accuracy": accuracy(self.teacher, self.split.x_val, self.split.y_val)}

    def test_figures(self, student: Student, temperature: float, weights: str = "final") -> Dict[str, Any]:
        """Test accuracy and the test predictions in the user's labels, from one seeded pass.

        The pass is ``tempdistill.core.predict``'s, so an exported student given the same raw
        inputs predicts the same labels, Poisson encoders included, and the recorded accuracy
        is exactly that of the recorded predictions.
        """
        student.eval()
        student.set_temperature(temperature)
        indices = seeded_argmax(student, self.split.x_test)
        labels = np.asarray(self.split.class_labels)
        return {
            "student_accuracy": float(np.mean(indices == self.split.y_test.cpu().numpy())),
            "test_predictions": labels[indices] if labels.size else indices,
        }

    def record_groups(self) -> Dict[str, RecordGroup]:
        facts = self.split.record()
        labels = facts.pop("class_labels")
        return {"data": ({"class_labels": labels}, facts)}
