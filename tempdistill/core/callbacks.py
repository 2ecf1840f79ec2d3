"""What happens around the training loop's epochs, as callbacks at its hook points.

The loop (``tempdistill.core.distiller.Distiller``) trains and measures; everything a run does
with an epoch's measures is a callback: choosing the best-validation weights, committing the
epoch to the record with its trace probes, warning about silent or saturated layers, showing
progress, stopping when asked. A user's own callback (``tempdistill.distill(...,
callbacks=[...])``: a logger, an early stop) sits at the same hook points and sees the same
``EpochEnd`` as the built-in ones.

Hook order within an epoch is the order of the callback list; ``runner.execute`` puts the
built-in ones first (best weights, record, alarms), then the caller's, then the stop request,
so a user's callback sees an epoch that is already recorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Protocol

import numpy as np
import torch

from tempdistill.config import DistillConfig
from tempdistill.core.interrupt import StopRequest
from tempdistill.schedules import Schedule
from tempdistill.core.student import Student
from tempdistill.core.task import TrainingTask
from tempdistill.temperature import Temperature


class Loop(Protocol):
    """What a callback may read of the running loop (``tempdistill.core.distiller.Distiller``)."""

    student: Student
    task: TrainingTask
    schedule: Schedule
    config: DistillConfig
    history: List[Dict[str, float]]  # every finished epoch's metrics
    last_base_temperature: Temperature

    def request_stop(self, reason: str) -> None:
        """End training after the epoch in flight."""


@dataclass
class EpochEnd:
    """One finished epoch as the callbacks see it.

    :param epoch: 0-based.
    :param metrics: the epoch's per-epoch measures (``/metrics/<name>``: loss, temperature,
        validation score, information measures, spikes, ...).
    :param steps: per-step series of the epoch (``/steps/<name>``): step, temperature, ...
    :param flags: the student's activity flags (``silent.<layer>``, ``saturated.<layer>``: 0/1).
    :param alarms: ``(flag, message)`` for each flag raised this epoch.
    """

    epoch: int
    metrics: Dict[str, float]
    steps: Dict[str, np.ndarray] = field(default_factory=dict)
    flags: Dict[str, float] = field(default_factory=dict)
    alarms: List[tuple] = field(default_factory=list)


class Callback:
    """A hook into the training loop; override the methods you need.

    ``loop`` is the running loop (``Loop``): ``loop.student``, ``loop.task``, ``loop.history``
    (every epoch's metrics so far); call ``loop.request_stop(reason)`` to end training after
    this epoch (the run is then recorded as ``interrupted`` with that reason, its student
    saved).
    """

    def on_train_begin(self, loop: Loop) -> None:
        """Before the first epoch."""

    def on_epoch_end(self, loop: Loop, end: EpochEnd) -> None:
        """After each epoch's training and validation."""

    def on_train_end(self, loop: Loop) -> None:
        """After the last epoch (or the one a stop was requested in)."""


class EpochFunction(Callback):
    """A plain ``function(epoch, metrics)`` as a callback (progress bars, quick loggers)."""

    def __init__(self, function: Callable[[int, Dict[str, float]], None]) -> None:
        self.function = function

    def on_epoch_end(self, loop: Loop, end: EpochEnd) -> None:
        self.function(end.epoch, end.metrics)


class BestEpoch(Callback):
    """The weights of the epoch with the highest validation score so far: every parameter and
    buffer (a spiking student's threshold traces are state), copied when the score improves.
    Ties keep the earlier epoch; a NaN score never wins over a number."""

    def __init__(self, measure: str) -> None:
        self.measure = measure
        self.epoch: Optional[int] = None
        self.score = math.nan
        self.state: Dict[str, torch.Tensor] = {}
        self.restored = False  # whether a student now holds these weights

    def on_epoch_end(self, loop: Loop, end: EpochEnd) -> None:
        self.offer(end.epoch, end.metrics, loop.student)

    def offer(self, epoch: int, metrics: Dict[str, float], student: Student) -> bool:
        """Keep ``student``'s weights if ``metrics[measure]`` beats the best so far; says whether."""
        score = float(metrics[self.measure])
        better = self.epoch is None or (math.isnan(self.score) and not math.isnan(score)) or score > self.score
        if better:
            self.epoch, self.score = epoch, score
            self.state = {name: t.detach().clone() for name, t in student.state_dict().items()}
        return better

    def restore(self, student: Student) -> None:
        """Load the kept weights into ``student``."""
        student.load_state_dict(self.state)
        self.restored = True


class ActivityAlarms(Callback):
    """Warn once per activity flag, and once when it clears (a silent start that recovers still
    cost epochs); the per-epoch flags stay in the record, the messages in its ``warnings``."""

    def __init__(self, warn: Callable[[str], None]) -> None:
        self.warn = warn  # shows a message and (in a run) adds it to the record's warnings
        self.alarmed: Dict[str, Optional[int]] = {}  # flag -> epoch it was raised (None: cleared)

    def on_epoch_end(self, loop: Loop, end: EpochEnd) -> None:
        messages = []
        for flag, message in end.alarms:
            if flag not in self.alarmed:
                self.alarmed[flag] = end.epoch
                messages.append(f"warning: epoch {end.epoch + 1}: {message}")
        for flag, since in list(self.alarmed.items()):
            if since is not None and end.flags.get(flag) == 0.0:
                self.alarmed[flag] = None
                layer = flag.split(".", 1)[-1]
                messages.append(f"note: epoch {end.epoch + 1}: {layer} layer no longer {flag.split('.')[0]} "
                                f"(it was from epoch {since + 1})")
        for text in messages:
            self.warn(text)


class StopOnRequest(Callback):
    """End training after the epoch in which a stop was requested (Ctrl-C, SIGTERM, a sweep
    being shut down: ``tempdistill.core.interrupt``)."""

    def __init__(self, stop: StopRequest) -> None:
        self.stop = stop

    def on_epoch_end(self, loop: Loop, end: EpochEnd) -> None:
        if self.stop.requested():
            loop.request_stop(self.stop.reason)
