"""The task interface: the part of distillation that differs between a classifier and a policy.

The ``Distiller`` asks a task for an epoch's batches (each with the teacher's logits and, where
there are any, hard targets), for the validation batch that per-epoch measures use, for a score
of the student on it, for probe inputs whose spike traces are recorded, and at the end the
runner asks for the figures of the teacher and of the student on the test data and for the
extra groups of the record. It never looks at labels, argmaxes or environments itself.

Validation and test never meet: everything measured per epoch, and every choice made from it
(schedule signals, the ``best_val`` epoch), uses validation data; the test data is looked at
once per model the run reports (``teacher_figures`` for the teacher, ``test_figures`` once for
the final student and once for the best-validation weights when ``distill.select: best_val``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple

import numpy as np
import torch
from torch import nn

from tempdistill.errors import ConfigError
from tempdistill.information import information_metrics
from tempdistill.losses import distillation_objective
from tempdistill.core.student import Student, StudentOutput
from tempdistill.core.task import Batch, TrainingTask
from tempdistill.temperature import Temperature


# A record group a task adds: its arrays and its attrs (``RunRecorder.write_arrays``).
RecordGroup = Tuple[Mapping[str, np.ndarray], Mapping[str, Any]]


class TrainingSide(TrainingTask, ABC):
    """What the loop asks of a task (the ``tempdistill.core.task.TrainingTask`` protocol,
    implemented here), with the defaults of a classifier where one fits every task."""

    # The per-epoch measure (higher is better) that ``distill.select: best_val`` picks the epoch
    # by; None where the task has no single validation score (then only ``final`` is allowed).
    validation_score: Optional[str] = None
    # Whether training batches carry the teacher's inputs (``Batch.teacher_inputs``): switched
    # on by the runner when a feature term runs the teacher on each batch (``distill.features``);
    # off, batches cost nothing extra.
    teacher_inputs_in_batches: bool = False

    def objective(self, student: Student, output: StudentOutput, batch: Batch, temperature: Temperature,
                  alpha: float, loss: str) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(total, kd, ce) of one training batch. By default the classifier's: softmax of the
        tempered outputs against the teacher's logits at T, plus CE on the hard targets."""
        return distillation_objective(torch.log_softmax(output.tempered, dim=-1), output.logits,
                                      batch.teacher_logits, temperature, batch.targets, alpha, loss)

    def soft_label_measures(self, student: Student, tempered: torch.Tensor, logits: torch.Tensor, batch: Batch,
                            temperature: Temperature) -> Dict[str, float]:
        """The information record of the validation batch (``tempdistill.information``); it must
        hold ``kl``, the adaptive schedule's signal."""
        assert batch.targets is not None
        return information_metrics(tempered, logits, batch.teacher_logits, batch.targets, temperature)

    def begin_epoch(self, epoch: int, student: Student, temperature: float) -> Dict[str, float]:
        """Called before each epoch's batches with the student as it is (a policy task collects
        states with it here); returns figures for the epoch's record. Nothing by default."""
        return {}

    @abstractmethod
    def fitting_logits(self) -> torch.Tensor:
        """The teacher's logits over the training inputs (a student sizes θ0 from them)."""

    def fitting_inputs(self) -> Optional[torch.Tensor]:
        """The inputs ``fitting_logits`` answer, row for row, where the task has them fixed (a
        spiking student can start its output current at the teacher's scale); None otherwise."""
        return None

    @abstractmethod
    def steps_per_epoch(self, batch_size: int) -> int:
        """Optimisation steps in one epoch (schedules plan over steps)."""

    @abstractmethod
    def train_batches(self, epoch: int, batch_size: int, generator: torch.Generator,
                      teacher: bool = True) -> Iterator[Batch]:
        """The epoch's training batches, in an order drawn from ``generator`` (``teacher``: see
        ``tempdistill.core.task.TrainingTask.train_batches``)."""

    @abstractmethod
    def evaluation_batch(self) -> Batch:
        """The validation inputs, teacher logits and targets every epoch is measured on (never
        test data)."""

    @abstractmethod
    def score(self, student: Student, output: StudentOutput, batch: Batch) -> Dict[str, float]:
        """The task's own measure of the student (in eval mode, at the evaluation T) given its
        outputs on ``batch`` (e.g. accuracy); a task may also run the student itself."""

    @abstractmethod
    def probe_inputs(self, count: int) -> torch.Tensor:
        """Fixed validation inputs whose spike traces are recorded."""

    def probe_facts(self, count: int) -> Dict[str, np.ndarray]:
        """What the probes of ``probe_inputs(count)`` are, recorded beside their spikes so a
        trace can be tied to its input: ``probe_rows``, their validation row indices, and
        where the task has one, ``probe_labels``, each probe's label. By default the probes
        are the first validation rows, without labels."""
        return {"probe_rows": np.arange(len(self.probe_inputs(count)), dtype=np.int64)}


class RunSide(ABC):
    """What the runner asks of a task around the loop: the teacher, the student's extras, the
    schedule, the test figures and the record's extra groups. ``teacher`` is the teacher's
    network, whose parameters and latency are reported (by default it maps the student's inputs
    to the teacher's logits; a classification teacher of the user's own reads the inputs as
    given, and stored logits have no network: None)."""

    input_dim: int
    num_outputs: int
    # One sample's shape where the samples are images, (C, H, W); None for flat samples
    # (vectors, observations). Tensors stay flat, (B, input_dim), either way.
    input_shape: Optional[Tuple[int, ...]] = None
    teacher: Optional[nn.Module]
    # Whether the task takes objects given in memory (``tempdistill.tasks.sources.InMemory``: arrays,
    # a teacher module, stored logits) beside its config.
    accepts_in_memory: bool = False

    @classmethod
    @abstractmethod
    def plan_teacher(cls, config: Any) -> Tuple[Any, Any]:
        """Check the config's teacher section before any work: (teacher backend or None, options)."""

    @classmethod
    @abstractmethod
    def build(cls, config: Any, teacher_backend: Any, teacher_options: Any, log: Any,
              given: Any = None) -> Tuple["Task", Any]:
        """The task for a config, with its teacher ready: (task, ``TeacherOrigin``); ``given``:
        what a Python caller handed over in memory (only where ``accepts_in_memory``)."""

    @classmethod
    def prepare_teacher(cls, config: Any, teacher_backend: Any, teacher_options: Any, log: Any) -> Optional[Path]:
        """Make the teacher ready once before parallel runs start (train and cache it); returns
        the cache file it made or found (an executor ships it to other machines), or None for a
        teacher loaded from the user's file."""
        return None

    @classmethod
    def check_features(cls, config: Any) -> None:
        """Refuse, as a ConfigError naming ``distill.features``, feature terms the task cannot
        serve, before any work. By default a task has no teacher network whose layers a
        feature term could read."""
        if config.distill.features:
            raise ConfigError(f"distill.features: only used when task is 'classification' (feature terms read layers "
                              f"of a classifier teacher's network), but task is {config.task!r}; drop distill.features")

    def feature_teacher(self) -> Tuple[nn.Module, torch.Tensor, torch.Tensor]:
        """(network, student rows, teacher rows): the teacher network whose layers feature terms
        read, and two training rows as the student reads them and as that network reads them
        (the dry run that fixes the features' shapes)."""
        raise ConfigError(f"distill.features: task {getattr(self, 'name', type(self).__name__)!r} has no teacher "
                          "network to take features from")

    def prepare_student(self, student: Student) -> None:
        """Give a freshly built student what the task needs besides its network (a Gaussian
        policy's learned log σ); nothing by default."""

    def build_schedule(self, config: Any) -> Any:
        """The run's temperature schedule: ``distill.temperature`` over the task's outputs."""
        from tempdistill.schedules import build_schedule

        steps = self.steps_per_epoch(config.distill.batch_size)  # type: ignore[attr-defined]
        return build_schedule(config.distill.temperature, config.distill.epochs, steps, self.num_outputs)

    def check_schedule(self, schedule: Any) -> None:
        """Refuse, as a ConfigError, a temperature schedule the task cannot apply."""

    @abstractmethod
    def teacher_figures(self) -> Dict[str, Any]:
        """The teacher's figures on the test data (asked once, before training)."""

    @abstractmethod
    def test_figures(self, student: Student, temperature: float, weights: str = "final") -> Dict[str, Any]:
        """The student's figures on the test data at ``temperature``: one pass over the test
        data, asked once per weight set the run reports (``weights``: ``final``, or
        ``best_val`` for the best-validation epoch's weights, whose keys the runner suffixes
        ``_best_val``). The only place a task shows the test data to a student."""

    def teacher_parameter_count(self) -> Optional[int]:
        """The teacher's size a student is compared against (all parameters by default); None
        where unknown (recorded as absent)."""
        assert self.teacher is not None
        return sum(p.numel() for p in self.teacher.parameters())

    def teacher_latency_ms(self) -> Optional[float]:
        """The teacher's forward time per sample on validation inputs (``tempdistill.core.latency``);
        None where there is no teacher network to time (recorded as absent)."""
        from tempdistill.core.latency import inference_latency_ms

        assert self.teacher is not None
        return inference_latency_ms(self.teacher, self.evaluation_batch().x)  # type: ignore[attr-defined]

    def export_facts(self) -> Dict[str, Any]:
        """What an exported student needs besides its weights to act for this task (saved with
        the student; ``tempdistill.record.export.Predictor`` reads it). Nothing for a classifier."""
        return {}

    def record_groups(self) -> Dict[str, RecordGroup]:
        """Extra record groups written when the run starts (e.g. ``/data``); none by default."""
        return {}

    def final_groups(self) -> Dict[str, RecordGroup]:
        """Extra record groups written with the final figures (e.g. ``/episodes``); none by default."""
        return {}

    def close(self) -> None:
        """Release what the task holds open (environments)."""


class Task(TrainingSide, RunSide):
    """One kind of distillation problem: the loop's side and the runner's side. ``input_dim``
    and ``num_outputs`` size the student; ``teacher`` maps the student's inputs to the
    teacher's logits (parameters and latency are reported from it)."""

    name: str
