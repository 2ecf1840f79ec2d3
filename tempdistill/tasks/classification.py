"""Classification distillation: a fixed, seeded train/validation/test split of an array dataset.

Batches are minibatches of the training rows in a seeded order, each with the teacher's
logits (computed once) and the true labels; every epoch is measured on the validation rows,
scored by top-1 accuracy (``val_accuracy``, the ``best_val`` choice's score). The test rows
are shown to each reported student once, at the end: its accuracy (``student_accuracy``) and
its predictions in the user's own class labels (``test_predictions``) come from that one
seeded pass. ``/data`` keeps the label mapping and input normalisation that exports need.

The teacher is tempdistill's own or the user's (``tempdistill.tasks.teacher_sources``): the task asks
the bound teacher for its logits on each part and never chooses the inputs it reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from tempdistill.config import AugmentConfig, ConfigError, RunConfig
from tempdistill.tasks.augment import draw_transform
from tempdistill.tasks.data import Split, load_split
from tempdistill.core.predict import fair_argmax, seeded_argmax
from tempdistill.core.student import Backend, Student, StudentOutput
from tempdistill.tasks.sources import InMemory
from tempdistill.core.task import Batch
from tempdistill.tasks.base import RecordGroup, Task
from tempdistill.tasks.teacher import TeacherOrigin
from tempdistill.tasks.teacher_sources import ClassifierTeacher, NetworkTeacher, OwnTeacher, source_of, user_source
from tempdistill.core.training import iterate_minibatches, seed_everything


def prepare_teacher(
    config: RunConfig, teacher_backend: Optional[Backend], teacher_options: Any,
    log: Callable[[str], None] = lambda _: None, given: InMemory = InMemory(),
) -> Tuple[Split, ClassifierTeacher]:
    """The data split and the teacher bound to it: tempdistill's own (from checkpoint, cache,
    or trained now) or the user's, checked against the data, as ``plan_teacher`` planned it."""
    source = source_of(teacher_backend, teacher_options)
    seed_everything(config.seed)
    split: Split = load_split(config.data, config.seed, given.data, keep_as_given=source.inputs_as_given)
    split = split.to(config.device)
    return split, source.bind(config, split, given, log)


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((fair_argmax(logits) == y).float().mean())


class ClassificationTask(Task):
    """Distil a classifier on a fixed train/validation/test split."""

    name = "classification"
    validation_score = "val_accuracy"
    accepts_in_memory = True

    def __init__(self, split: Split, teacher: Union[ClassifierTeacher, nn.Module],
                 augment: Optional[AugmentConfig] = None) -> None:
        """``teacher``: the bound teacher, or a bare network, which is taken to be tempdistill's
        own kind (it reads the normalised inputs the student reads). ``augment``: shifts and
        flips of the training images, whose teacher logits then come per batch."""
        if isinstance(teacher, nn.Module):
            origin = TeacherOrigin("network", None, "", class_name=type(teacher).__name__)
            teacher = NetworkTeacher(teacher.eval(), split, origin, inputs_as_given=False)
        if augment is not None and not isinstance(teacher, NetworkTeacher):
            raise ConfigError("data.augment: stored teacher logits answer only the images as stored; augmentation needs "
                              "a teacher network (drop data.augment, or give the teacher as a module or file)")
        self.split = split
        self.bound = teacher
        self.augment = augment if augment is not None and augment.changes_images else None
        self.teacher = teacher.network
        self.input_dim = split.input_dim
        self.input_shape = split.image_shape
        self.num_outputs = split.num_classes
        self.teacher_train_logits = self._needed_logits("train")
        self.teacher_val_logits = self._needed_logits("val")

    def _needed_logits(self, part: str) -> torch.Tensor:
        logits = self.bound.logits(part)
        assert logits is not None, f"a classification teacher has logits for its {part} rows"
        return logits

    @classmethod
    def plan_teacher(cls, config: RunConfig) -> Tuple[Optional[Backend], Any]:
        """(backend, options) of tempdistill's own teacher; (None, the source) for a user's."""
        source = user_source(config.teacher)
        if source is not None:
            return None, source
        from backends import get_backend

        backend = get_backend(config.teacher.backend, "teacher.backend")
        return backend, backend.validate(config.teacher.backend_options(), "teacher")

    @classmethod
    def build(
        cls, config: RunConfig, teacher_backend: Optional[Backend], teacher_options: Any, log: Callable[[str], None],
        given: InMemory = InMemory(),
    ) -> Tuple["ClassificationTask", TeacherOrigin]:
        split, teacher = prepare_teacher(config, teacher_backend, teacher_options, log, given)
        return cls(split, teacher, config.data.augment), teacher.origin

    @classmethod
    def prepare_teacher(cls, config: RunConfig, teacher_backend: Optional[Backend], teacher_options: Any,
                        log: Callable[[str], None]) -> Optional[Path]:
        if not isinstance(source_of(teacher_backend, teacher_options), OwnTeacher):
            return None  # the user's teacher: nothing to train or cache
        _, teacher = prepare_teacher(config, teacher_backend, teacher_options, log)
        origin = teacher.origin
        return Path(origin.file) if origin.kind in ("cache", "trained") and origin.file else None

    @classmethod
    def check_features(cls, config: RunConfig) -> None:
        """Stored logits have no network whose layers a feature term could read."""
        if config.distill.features and config.teacher.source == "logits":
            raise ConfigError("distill.features: needs a teacher network to take features from, but teacher.source is "
                              "'logits' (stored logits have none); drop distill.features or give the teacher's network")

    def feature_teacher(self) -> Tuple[nn.Module, torch.Tensor, torch.Tensor]:
        """The bound teacher's network and two training rows, fed to it as its source says."""
        if not isinstance(self.bound, NetworkTeacher):
            raise ConfigError("distill.features: needs a teacher network to take features from, but this teacher "
                              f"({self.bound.origin.kind}) has none")
        return self.bound.network, self.split.x_train[:2], self.bound.inputs("train")[:2]

    def fitting_logits(self) -> torch.Tensor:
        return self.teacher_train_logits

    def fitting_inputs(self) -> torch.Tensor:
        return self.split.x_train

    def steps_per_epoch(self, batch_size: int) -> int:
        return -(-self.split.x_train.shape[0] // batch_size)

    def train_batches(self, epoch: int, batch_size: int, generator: torch.Generator,
                      teacher: bool = True) -> Iterator[Batch]:
        x, y, logits = self.split.x_train, self.split.y_train, self.teacher_train_logits
        if self.augment is not None:
            yield from self._augmented_batches(batch_size, generator, teacher)
            return
        teacher_x = self.bound.inputs("train") if self.teacher_inputs_in_batches else None  # type: ignore[attr-defined]
        for index in iterate_minibatches(x.shape[0], batch_size, generator):
            yield Batch(x[index], logits[index], y[index], teacher_inputs=None if teacher_x is None else teacher_x[index])

    def _augmented_batches(self, batch_size: int, generator: torch.Generator, teacher: bool) -> Iterator[Batch]:
        """Each batch shifted and flipped by one draw, applied alike to the student's rows and
        the teacher's; the teacher answers the augmented images (logits per batch), unless
        nothing will read its answer (``teacher`` False, hard labels only): on Fashion-MNIST its
        pass is a third of a spiking student's epoch. The draws are the same either way."""
        assert self.augment is not None and isinstance(self.bound, NetworkTeacher)
        split, shape = self.split, self.split.input_shape
        teacher_x = self.bound.inputs("train")
        for index in iterate_minibatches(split.x_train.shape[0], batch_size, generator):
            transform = draw_transform(len(index), self.augment.crop, self.augment.flip, generator)
            student_x = transform(split.x_train[index].view(len(index), *shape)).flatten(1)
            rows = teacher_x[index]
            seen = transform(rows.view(len(index), *shape))
            seen = seen if rows.dim() > 2 else seen.flatten(1)  # as that teacher reads its rows
            yield Batch(student_x, self.bound.logits_of(seen) if teacher else None, split.y_train[index],
                        teacher_inputs=seen)

    def evaluation_batch(self) -> Batch:
        return Batch(self.split.x_val, self.teacher_val_logits, self.split.y_val)

    def score(self, student: Student, output: StudentOutput, batch: Batch) -> Dict[str, float]:
        """Top-1 accuracy of the T = 1 outputs (``val_accuracy`` in the per-epoch record)."""
        return {"val_accuracy": _accuracy(output.logits, batch.targets)}

    def probe_inputs(self, count: int) -> torch.Tensor:
        return self.split.x_val[:count]

    def probe_facts(self, count: int) -> Dict[str, np.ndarray]:
        """The first validation rows, labelled as the user labels them (``/data/class_labels``)."""
        classes = self.split.y_val[:count].cpu().numpy().astype(np.int64)
        labels = self.split.class_labels[classes] if len(self.split.class_labels) else classes
        return {"probe_rows": np.arange(len(classes), dtype=np.int64), "probe_labels": np.asarray(labels, dtype=np.int64)}

    def teacher_figures(self) -> Dict[str, Any]:
        """The teacher's test accuracy (its one test pass; absent for stored logits that do not
        cover the test rows), and its validation accuracy, the figure a teacher's settings are
        chosen by."""
        figures: Dict[str, Any] = {}
        test = self.bound.logits("test")
        if test is not None:
            figures["teacher_accuracy"] = _accuracy(test, self.split.y_test)
        figures["teacher_val_accuracy"] = _accuracy(self.teacher_val_logits, self.split.y_val)
        return figures

    def teacher_parameter_count(self) -> Optional[int]:
        return self.bound.parameter_count()

    def teacher_latency_ms(self) -> Optional[float]:
        return self.bound.latency_ms()

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
