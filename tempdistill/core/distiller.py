"""The one distillation loop, the same for every student backend and every task.

It asks the task for an epoch's batches, the schedule for T at every step, hands T to the
student (which applies it its own way), trains on the shared objective, and after every
epoch measures the student on the task's validation batch (the task scores it) and hands the
epoch to its callbacks (``tempdistill.core.callbacks``): choosing the best-validation weights,
committing the epoch to the record, warnings, progress and stop requests are theirs. A
callback may ask the loop to stop; it then ends after the epoch it is in. The loop never sees
test data and holds no label, argmax or environment code: that is the task's.

An optional extra term (``ExtraTerm``: the feature terms of ``distill.features``,
``tempdistill.core.features``) may watch each training forward pass of the student and adds
its loss to the task's objective; its parts are recorded per epoch beside ``loss``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from contextlib import nullcontext
from typing import Any, ContextManager, Dict, Iterable, Iterator, List, Optional, Protocol, Sequence, Tuple

import numpy as np
import torch

from tempdistill.core.callbacks import Callback, EpochEnd
from tempdistill.config import DistillConfig
from tempdistill.schedules import Schedule
from tempdistill.core.student import Student
from tempdistill.core.task import Batch, TrainingTask
from tempdistill.temperature import Temperature
from tempdistill.core.training import collect_outputs


def temperature_value(temperature: Temperature) -> float:
    """A scalar summary of T for series and tables (the mean of a per-group or per-sample T)."""
    if isinstance(temperature, torch.Tensor):
        return float(temperature.detach().float().mean())
    return float(temperature)


def detached(temperature: Temperature) -> Temperature:
    """T without its graph (a learned T is recorded and reused, not differentiated twice)."""
    return temperature.detach() if isinstance(temperature, torch.Tensor) else temperature


@dataclass
class EpochSums:
    """Running sums of one epoch's training losses, weighted by batch size."""

    loss: float = 0.0
    kd: float = 0.0
    ce: float = 0.0
    n: int = 0
    parts: Dict[str, float] = field(default_factory=dict)  # an extra term's parts, summed
    temperatures: List[float] = field(default_factory=list)
    step_series: Dict[str, List[float]] = field(default_factory=dict)
    last_loss: float = 0.0

    def add(self, total: torch.Tensor, kd: torch.Tensor, ce: torch.Tensor, n: int) -> None:
        self.last_loss = float(total)
        self.loss += self.last_loss * n
        self.kd += float(kd) * n
        self.ce += float(ce) * n
        self.n += n

    def add_parts(self, parts: Dict[str, torch.Tensor], n: int) -> None:
        for name, value in parts.items():
            self.parts[name] = self.parts.get(name, 0.0) + float(value) * n


class ExtraTerm(Protocol):
    """A loss beside the task's objective, computed per training batch
    (``tempdistill.core.features.FeatureTerms``). It watches the student's training forward
    pass (``watching_student`` yields what it saw) and, for a whole epoch, the teacher passes
    the task makes (``watching_teacher``: what it needs of the teacher is then taken from them),
    then ``loss`` gives what to add to the objective and its named parts for the per-epoch
    record; ``parameters`` are trained by the run's optimiser beside the student's."""

    def parameters(self) -> Iterator[torch.nn.Parameter]: ...

    def watching_student(self) -> ContextManager[Any]: ...

    def watching_teacher(self) -> ContextManager[Any]: ...

    def loss(self, seen: Any, batch: Batch) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]: ...


def adam(student: Student, schedule: Schedule, config: DistillConfig,
         extra: Iterable[torch.nn.Parameter] = ()) -> torch.optim.Optimizer:
    """The run's optimizer: Adam over the student's parameters, a learned schedule's and an
    extra term's (feature adapters)."""
    params = list(student.parameters()) + list(schedule.parameters()) + list(extra)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


class Distiller:
    """Trains ``student`` on ``task``'s teacher under ``schedule`` for ``config.epochs``
    epochs, handing every epoch to ``callbacks`` in order; ``extra``: a loss term added to the
    objective on every training batch (its parameters join the optimiser made here, not a
    given ``optimizer``)."""

    def __init__(
        self,
        student: Student,
        task: TrainingTask,
        schedule: Schedule,
        config: DistillConfig,
        seed: int,
        callbacks: Sequence[Callback] = (),
        optimizer: Optional[torch.optim.Optimizer] = None,
        extra: Optional[ExtraTerm] = None,
    ) -> None:
        self.student = student
        self.task = task
        self.schedule = schedule
        self.config = config
        self.callbacks = list(callbacks)
        self.extra = extra
        self.stop_reason: Optional[str] = None
        self.stopped_early = False
        self.generator = torch.Generator().manual_seed(seed)
        student.fit_to_teacher(task.fitting_logits(), task.fitting_inputs())
        extra_parameters = extra.parameters() if extra is not None else ()
        self.optimizer = optimizer if optimizer is not None else adam(student, schedule, config, extra_parameters)
        self.initial_lrs = [group["lr"] for group in self.optimizer.param_groups]
        self.signals: Dict[str, float] = {}
        self.last_base_temperature: Temperature = 1.0
        self.step = 0
        self.history: List[Dict[str, float]] = []

    def request_stop(self, reason: str) -> None:
        """End training after the epoch in flight (called by a callback)."""
        self.stop_reason = self.stop_reason or reason

    def train_epoch(self, epoch: int) -> EpochSums:
        sums = EpochSums()
        alpha = self.schedule.alpha(epoch, self.config.alpha)
        self.student.train()
        with self.extra.watching_teacher() if self.extra is not None else nullcontext():
            for batch in self.task.train_batches(epoch, self.config.batch_size, self.generator,
                                                 teacher=self.reads_teacher(alpha)):
                self._train_step(batch, epoch, alpha, sums)
        return sums

    def reads_teacher(self, alpha: float) -> bool:
        """Whether an epoch at this ``alpha`` reads the teacher's logits of its batches: for the
        KD term (alpha > 0), a feature term, or a schedule that sets T from them."""
        return alpha > 0 or self.extra is not None or self.schedule.varies_within_batch

    def _train_step(self, batch: Batch, epoch: int, alpha: float, sums: EpochSums) -> None:
        """One optimisation step on ``batch``, added to the epoch's ``sums``."""
        base = self.schedule(self.step, epoch, self.signals)
        temperature = self.batch_temperature(base, batch.teacher_logits, batch.x)
        self.last_base_temperature = detached(base)
        self.student.set_temperature(temperature)
        watching = self.extra.watching_student() if self.extra is not None else nullcontext()
        with watching as seen:
            out = self.student(batch.x)
        total, kd, ce = self.task.objective(self.student, out, batch, temperature, alpha, self.config.loss)
        if self.extra is not None:
            added, parts = self.extra.loss(seen, batch)
            total = total + added
            sums.add_parts({name: value.detach() for name, value in parts.items()}, batch.x.shape[0])
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        sums.add(total.detach(), kd.detach(), ce.detach(), batch.x.shape[0])
        sums.temperatures.append(temperature_value(temperature))
        for name, value in self.student.step_record().items():
            sums.step_series.setdefault(name, []).append(value)
        self.signals["loss"] = sums.last_loss
        self.step += 1

    def batch_temperature(self, base: Temperature, teacher_logits: Optional[torch.Tensor], x: torch.Tensor) -> Temperature:
        """The T for one batch: the schedule's T, made per-sample where the schedule says so."""
        if not self.schedule.needs_student_logits:
            return self.schedule.for_batch(base, teacher_logits)
        mode = self.student.training
        self.student.eval()
        with torch.no_grad():
            self.student.set_temperature(1.0)
            student_logits = torch.cat([self.student(x[i : i + 512]).tempered for i in range(0, x.shape[0], 512)])
        self.student.train(mode)
        return self.schedule.per_sample(teacher_logits, student_logits)

    @torch.no_grad()
    def evaluate(self) -> Dict[str, float]:
        """Validation measures: the task's score (and what the student measured) at the
        evaluation T, then the information in its soft labels at the current training T.

        The "T = 1" side of the information record is the student's real output at the
        evaluation temperature (1 unless configured), not a rescaled tempered output: for a
        spiking student those differ, because saturation depends on the threshold.
        """
        validation = self.task.evaluation_batch()
        x, teacher_logits = validation.x, validation.teacher_logits
        self.student.eval()
        self.student.set_temperature(self.config.eval_temperature)
        at_eval = collect_outputs(self.student, x)
        measures: Dict[str, float] = dict(at_eval.measured)
        measures.update(self.task.score(self.student, at_eval, validation))
        temperature = detached(self.batch_temperature(self.last_base_temperature, teacher_logits, x))
        tempered = self._tempered_outputs(x, temperature)
        measures.update(self.task.soft_label_measures(self.student, tempered, at_eval.logits, validation, temperature))
        if isinstance(temperature, torch.Tensor) and temperature.numel() > 1:
            measures["effective_temperature_std"] = float(temperature.float().std())
        measures["effective_temperature_mean"] = temperature_value(temperature)
        self.student.train()
        return measures

    def _tempered_outputs(self, x: torch.Tensor, temperature: Temperature, batch_size: int = 512) -> torch.Tensor:
        """Student outputs at T, batch by batch; a per-sample T (n, 1) is sliced with the inputs."""
        per_sample = isinstance(temperature, torch.Tensor) and temperature.dim() == 2 and temperature.shape[0] == x.shape[0]
        tempered = []
        for start in range(0, x.shape[0], batch_size):
            rows = slice(start, start + batch_size)
            self.student.set_temperature(temperature[rows] if per_sample else temperature)
            tempered.append(self.student(x[rows]).tempered)
        return torch.cat(tempered)

    def set_epoch_lr(self, epoch: int) -> None:
        """``distill.lr_schedule: cosine``: every parameter group's rate for ``epoch``, its
        initial rate times (1 + cos(pi * epoch / epochs)) / 2 (the full rate in the first
        epoch, near 0 in the last); ``constant`` leaves the optimiser's rates alone."""
        if self.config.lr_schedule != "cosine":
            return
        factor = 0.5 * (1.0 + math.cos(math.pi * epoch / self.config.epochs))
        for group, initial in zip(self.optimizer.param_groups, self.initial_lrs):
            group["lr"] = initial * factor

    def run(self) -> Dict[str, float]:
        """Train for every configured epoch, or until a callback asks to stop; returns the last
        epoch's metrics (``stopped_early`` says which)."""
        started = time.perf_counter()
        metrics: Dict[str, float] = {}
        for callback in self.callbacks:
            callback.on_train_begin(self)
        for epoch in range(self.config.epochs):
            first_step = self.step
            self.set_epoch_lr(epoch)
            gathered = self.task.begin_epoch(epoch, self.student, self.config.eval_temperature)
            sums = self.train_epoch(epoch)
            flags, alarms = self.student.activity_check()
            metrics = {
                "epoch": float(epoch),
                "loss": sums.loss / sums.n,
                "kd_loss": sums.kd / sums.n,
                "ce_loss": sums.ce / sums.n,
                **{name: value / sums.n for name, value in sums.parts.items()},
                "alpha": self.schedule.alpha(epoch, self.config.alpha),
                "temperature": float(np.mean(sums.temperatures)),
            }
            metrics.update(gathered)
            metrics.update(flags)
            metrics.update(self.evaluate())
            metrics["wall_seconds"] = time.perf_counter() - started
            self.signals.update({k: v for k, v in metrics.items() if k == "kl" or k.startswith("kl.")})
            self.history.append(metrics)
            steps = {
                "step": np.arange(first_step, self.step, dtype=np.float64),
                "temperature": np.asarray(sums.temperatures),
                **{name: np.asarray(values) for name, values in sums.step_series.items()},
            }
            end = EpochEnd(epoch, metrics, steps, flags, alarms)
            for callback in self.callbacks:
                callback.on_epoch_end(self, end)
            if self.stop_reason is not None and epoch < self.config.epochs - 1:
                self.stopped_early = True
                break
        for callback in self.callbacks:
            callback.on_train_end(self)
        return metrics
