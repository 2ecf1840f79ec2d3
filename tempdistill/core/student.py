"""The interface every backend implements: what a student and a backend must offer.

The distiller talks only to these types. A student's forward returns a ``StudentOutput``:
its logits *at its current temperature* (a dense student divides its logits by T, a spiking
one raises its firing thresholds; either way the distiller trains on the same tempered
distribution), the same outputs at T = 1, and what the pass measured. Nothing is read back
from the student afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Protocol, Tuple, Union, runtime_checkable

import torch
from torch import nn

from tempdistill.temperature import Temperature, centre_tempered, check_temperature


@dataclass
class StudentOutput:
    """What one forward pass of a student gives.

    ``tempered`` (B, K): logits at the temperature the pass applied. ``logits`` (B, K): the
    same outputs at T = 1, i.e. ``tempered`` × the applied T (per neuron or per sample where
    T is; for a spiking student the applied T is θ/θ0, which lags a scheduled T while the
    thresholds relax). Where the applied T varies by class, ``tempered`` is taken on centred
    outputs, (logits − mean_k logits) / T_k (``tempdistill.temperature.centre_tempered``), so
    its softmax is the shift-invariant tempered distribution the teacher's side uses too. ``measured``: per-sample means over the batch of what the pass counted
    (spikes, rates, synaptic ops, MACs, energy estimate), scalars; empty where nothing is.
    """

    tempered: torch.Tensor
    logits: torch.Tensor
    measured: Mapping[str, Any] = field(default_factory=dict)  # scalar tensors, or floats once averaged


def logits_of(output: Union[StudentOutput, torch.Tensor]) -> torch.Tensor:
    """The tensor a network's call gave: a student's tempered logits, a plain network's logits."""
    return output.tempered if isinstance(output, StudentOutput) else output


class Student(nn.Module):
    """Base class of students: a module from inputs (B, F) to a ``StudentOutput``."""

    def __init__(self) -> None:
        super().__init__()
        self._temperature: Temperature = 1.0

    @property
    def temperature(self) -> Temperature:
        return self._temperature

    def set_temperature(self, temperature: Temperature) -> None:
        """Set T for the next forward passes (scalar, or a tensor per output neuron/group).

        The distiller calls this once per optimisation step in train mode, and in eval mode
        before evaluating. A spiking student treats a train-mode call as one step of its
        threshold plasticity (thresholds relax toward θ0·T) and an eval-mode call as a direct
        setting that leaves the plasticity state untouched.
        """
        self._temperature = check_temperature(temperature)

    def fit_to_teacher(self, teacher_logits: torch.Tensor, inputs: Optional[torch.Tensor] = None) -> None:
        """Called once before training with the teacher's logits on the training split (and,
        where the task has them, the inputs those logits answer, row for row).

        Lets a student pick scale-dependent constants (a spiking student's θ0 bounds the
        sharpest distribution it can express) from the teacher instead of from hand tuning.
        """

    def require_logit_range(self, bound: float) -> None:
        """Called before ``fit_to_teacher`` by a task whose student must be able to output logits
        up to ``bound`` whatever the teacher's logits look like (a continuous action head: the
        push-pull mean that reaches the action box's bounds). A dense student's logits are
        unbounded: nothing to do.
        """

    def effective_temperature(self) -> Temperature:
        """The T that forward passes apply now.

        Equal to the set T for a dense student; a spiking student's thresholds relax toward
        θ0·T with memory, so its effective T (θ/θ0) may lag the scheduled one.
        """
        return self._temperature

    def output(self, tempered: torch.Tensor, measured: Mapping[str, torch.Tensor] | None = None) -> StudentOutput:
        """Wrap a pass's tempered logits with their T = 1 form and its measurements (any
        mapping: a spiking student's are computed only if read)."""
        temperature = self.effective_temperature()
        if isinstance(temperature, torch.Tensor):
            temperature = temperature.to(tempered.device, tempered.dtype)
        return StudentOutput(centre_tempered(tempered, temperature), tempered * temperature,
                             measured if measured is not None else {})

    def enable_log_std(self, dims: int) -> None:
        """Give the student a learned, state-independent log σ per action dimension (``log_std``).

        A continuous-action policy is a Gaussian: the network gives its mean, and its spread is
        one learned vector beside the network (as in SB3's PPO), saved with the weights.
        """
        self.log_std = nn.Parameter(torch.zeros(dims))

    def step_record(self) -> Dict[str, float]:
        """Scalars worth a point per optimisation step (a spiking student's threshold trace)."""
        return {}

    def activity_check(self) -> Tuple[Dict[str, float], List[Tuple[str, str]]]:
        """Called once per epoch: flags for the epoch's training passes, and alarms to raise.

        Returns ``({flag: 0.0 or 1.0}, [(flag, message), ...])``. A spiking student flags a
        layer that fired no spike (``silent.<layer>``) or fired at every step
        (``saturated.<layer>``) throughout the epoch; the message says what to change. A
        dense student has nothing to flag. Resets the student's epoch tally.
        """
        return {}, []

    def capture_traces(self, x: torch.Tensor) -> Dict[str, Any]:
        """Per-time-step internals (spikes, membranes, thresholds) for probe inputs; none for dense."""
        return {}

    def describe(self) -> Dict[str, Any]:
        """Plain facts recorded with the run (architecture, neuron constants)."""
        return {}


@runtime_checkable
class Backend(Protocol):
    """Builds networks of one kind (dense, snntorch, norse) from their config sections.

    A backend may also offer ``network_size(options, input_dim, num_outputs, input_shape=None)``
    returning a ``tempdistill.core.memory.NetworkSize``, so that a run too big for the machine is
    refused before it is built; without it the network is sized as fully connected layers of its
    widths. And ``check_input_shape(options, input_shape)``, raising ConfigError for data its
    network cannot read (a conv student on flat data), asked by the runner before any student
    is built.

    ``input_shape`` is one sample's shape, (C, H, W) for image data; None where the data is flat
    (policy observations) or unknown. Tensors stay flat, (B, prod(input_shape)); a network that
    reads images views them itself.
    """

    name: str

    def validate(self, options: Mapping[str, Any], path: str) -> Any:
        """Check the backend's own keys of a config section; raise ConfigError naming them."""

    def build_student(self, options: Any, input_dim: int, num_classes: int,
                      input_shape: Optional[Tuple[int, ...]] = None) -> Student:
        """A fresh, untrained student."""

    def build_teacher(self, options: Any, input_dim: int, num_classes: int,
                      input_shape: Optional[Tuple[int, ...]] = None) -> nn.Module:
        """A fresh teacher network mapping inputs to raw logits."""
