"""Spiking students run by snnTorch.

The neuron is ``ThetaLeaky``, a subclass of ``snn.Leaky`` (so snnTorch's NIR exporter knows
it) whose ``forward`` is replaced: snnTorch 1.0's stock reset is decided from the previous
step's membrane (with ``reset_delay=True`` it subtracts θ after the decay, which NIR and Norse
cannot express; with ``reset_delay=False`` a neuron can stay stuck above θ). The override
calls the project's one neuron equation, ``spiking.functional.neuron_step``: v = β·v + I,
s = H(v − θ) through the shared surrogate on (v − θ)/θ, then an immediate, detached reset
(subtract θ, or to zero). β and θ stay snnTorch's own per-neuron
buffers. Everything temperature-related (threshold plasticity, readout, statistics) is the
shared code in ``spiking/``; this module only adapts the library.
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, Literal, Optional, Tuple

import nir
import numpy as np
import snntorch as snn
import torch
from torch import nn

from backends.spiking_base import SpikingBackend, write_conv_nir
from spiking.functional import neuron_step
from spiking.network import SpikingStudentMixin
from spiking.nir_graph import normalise_graph
from spiking.options import SpikingOptions
from spiking.surrogate import SpikeFn
from tempdistill.config import Strict
from tempdistill.core.student import Student


class SnnTorchOptions(SpikingOptions, Strict):
    backend: Literal["snntorch"] = "snntorch"


class ThetaLeaky(snn.Leaky):
    """snn.Leaky with an immediate reset and the shared normalised surrogate."""

    def __init__(
        self, size: int, beta: float, reset: str, spike_fn: SpikeFn, init_hidden: bool = False, output: bool = False
    ) -> None:
        super().__init__(
            beta=torch.full((size,), float(beta)),
            threshold=torch.ones(size),
            reset_mechanism=reset,
            init_hidden=init_hidden,
            output=output,
        )
        self.spike_fn = spike_fn
        self.zero_reset = reset == "zero"
        self.non_leaky = float(beta) == 1.0  # skip β·v: same numbers, two ops fewer per step

    def use_threshold(self, theta: torch.Tensor) -> None:
        self.threshold = theta

    def _integrate(self, input_: torch.Tensor, mem: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        if mem is None or mem.shape != input_.shape:
            mem = torch.zeros_like(input_)
        beta = None if self.non_leaky else self.beta.clamp(0, 1)
        return neuron_step(mem, input_, self.threshold, beta, self.spike_fn, self.zero_reset)

    def forward(self, input_: torch.Tensor, mem: Optional[torch.Tensor] = None):  # type: ignore[override]
        """snnTorch's calling conventions: ``(spk, mem) = f(I, mem)``, or hidden state if init_hidden."""
        if self.init_hidden:
            spk, self.mem = self._integrate(input_, self.mem)
            return (spk, self.mem) if self.output else spk
        return self._integrate(input_, mem)

    def step(self, current: torch.Tensor, state: Any) -> Tuple[torch.Tensor, torch.Tensor, Any]:
        # Straight to the update: the shared time loop calls this 2·steps times per pass, and a
        # module call's hook machinery would cost more than the neuron's arithmetic at small sizes.
        spk, mem = self._integrate(current, state)
        return spk, mem, mem


def make_neurons(size: int, options: SpikingOptions, spike_fn: SpikeFn) -> ThetaLeaky:
    """One snnTorch layer of ``size`` neurons (β = 1 is integrate-and-fire)."""
    return ThetaLeaky(size, options.beta, options.reset, spike_fn)


class SnnTorchStudent(SpikingStudentMixin, Student):
    """Tempered-logit student whose temperature is carried by snnTorch firing thresholds."""

    def __init__(self, options: SnnTorchOptions, input_dim: int, num_classes: int,
                 input_shape: Optional[Tuple[int, ...]] = None) -> None:
        super().__init__(options, input_dim, num_classes, make_neurons, input_shape=input_shape, kind="snntorch")


def export_network(student: SnnTorchStudent) -> nn.Sequential:
    """A one-step-per-call copy of the student for snnTorch's exporter (current thresholds)."""
    o = student.options
    layers: list[nn.Module] = []
    last = len(student.neurons) - 1
    for i, (linear, neuron, trace) in enumerate(zip(student.linears, student.neurons, student.thresholds)):
        copy = ThetaLeaky(trace.applied.numel(), o.beta, o.reset, neuron.spike_fn, init_hidden=True, output=i == last)
        copy.threshold = trace.applied.detach().clone().cpu()
        layers += [linear, copy]
    return nn.Sequential(*layers)


class SnnTorchBackend(SpikingBackend):
    name = "snntorch"
    Options = SnnTorchOptions
    StudentClass = SnnTorchStudent

    def export_nir(self, student: SnnTorchStudent, path: str, metadata: Optional[Dict[str, str]] = None) -> nir.NIRGraph:
        """Write the student (at its currently applied thresholds) as a NIR graph.

        The exported graph's input is the encoder's output per time step (the analog features
        for ``direct``); the readout is outside the graph: count output spikes over
        ``steps`` steps and multiply by θ0/steps.
        """
        if student.conv is not None:
            return write_conv_nir(student, path, metadata)
        from snntorch.export_nir import export_to_nir

        net = export_network(student).cpu()
        sample = torch.zeros(1, student.widths[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            with np.errstate(divide="ignore", invalid="ignore"):
                graph = export_to_nir(net, sample, ignore_dims=[0])
        normalise_graph(graph, {"reset": student.options.reset, "steps": str(student.options.steps)})
        graph.metadata = {**(graph.metadata or {}), **(metadata or {})}
        nir.write(path, graph)
        return graph
