"""Spiking students run by Norse.

Norse 1.1 has no cell with exactly our semantics: ``IAFCell`` only resets to a value,
``LIFBoxCell`` always leaks through a ``dt·τ⁻¹`` term and its 'super' surrogate ignores
``alpha``, and no ``method`` accepts a callable. The closest real option, used here, is to
subclass the Norse cells and give them our activation (Norse's documented extension point,
``SNNCell.activation``): ``ThetaIAF(IAFCell)`` for β = 1 and ``ThetaLIFBox(LIFBoxCell)`` for
β < 1 with τ⁻¹ = (1 − β)/dt, both computing v = β·v + I, s = H(v − θ) with the shared
``spiking`` surrogate on (v − θ)/θ, and a detached reset (subtract θ, or to zero). Norse's
own ``SequentialState``/cell call path runs them, and ``norse.torch.to_nir`` exports them as
``nir.IF``/``nir.LIF``. With identical weights the spikes equal the snnTorch backend's.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable, Dict, Literal, NamedTuple, Optional, Tuple

import nir
import numpy as np
import torch
from torch import nn

with warnings.catch_warnings():
    # Norse 1.1 compiles helpers with torch.jit.script at import, which torch now deprecates.
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    from norse.torch import IAFCell, IAFParameters, LIFBoxCell, LIFBoxParameters, SequentialState
    from norse.torch.functional.iaf import IAFFeedForwardState
    from norse.torch.functional.lif_box import LIFBoxFeedForwardState
    from norse.torch.functional.reset import reset_subtract

from backends.spiking_base import SpikingBackend, write_conv_nir
from spiking.functional import neuron_step
from spiking.network import SpikingStudentMixin
from spiking.encoders import encode
from spiking.nir_graph import NIR_DT, metadata_text, normalise_graph
from spiking.readout import readout
from spiking.options import DEFAULT_SLOPE, SpikingOptions
from spiking.surrogate import SpikeFn, make_spike_fn
from tempdistill.config import Strict
from tempdistill.core.student import Student


class NorseOptions(SpikingOptions, Strict):
    backend: Literal["norse"] = "norse"


def theta_step(
    x: torch.Tensor, state: NamedTuple, p: NamedTuple, dt: float, *, spike_fn: SpikeFn, beta: Any, zero_reset: bool
) -> Tuple[torch.Tensor, NamedTuple]:
    """A Norse feed-forward activation running the project's one neuron equation
    (``spiking.functional.neuron_step``) on Norse's state and parameter tuples."""
    z, v = neuron_step(state.v, x, p.v_th, beta, spike_fn, zero_reset)
    return z, state._replace(v=v)


class ThetaIAF(IAFCell):
    """Non-leaky integrate-and-fire (β = 1); exported as ``nir.IF``."""

    def __init__(self, size: int, reset: str, spike_fn: SpikeFn) -> None:
        super().__init__(IAFParameters(v_th=torch.ones(size), v_reset=torch.zeros(size)), dt=NIR_DT)
        self.activation = functools.partial(theta_step, spike_fn=spike_fn, beta=None, zero_reset=reset == "zero")

    def initial_state(self, input_tensor: torch.Tensor) -> IAFFeedForwardState:
        return IAFFeedForwardState(v=torch.zeros_like(input_tensor))

    def use_threshold(self, theta: torch.Tensor) -> None:
        self.p = self.p._replace(v_th=theta)

    def step(self, current: torch.Tensor, state: Any) -> Tuple[torch.Tensor, torch.Tensor, Any]:
        z, state = self.forward(current, state)  # without a module call's hooks, as snnTorch's
        return z, state.v, state


class ThetaLIFBox(LIFBoxCell):
    """Leaky integrate-and-fire (β < 1) with τ⁻¹ = (1 − β)/dt; exported as ``nir.LIF``."""

    def __init__(self, size: int, beta: float, reset: str, spike_fn: SpikeFn) -> None:
        p = LIFBoxParameters(
            tau_mem_inv=torch.full((size,), (1.0 - beta) / NIR_DT),
            v_leak=torch.zeros(size),
            v_th=torch.ones(size),
            v_reset=torch.zeros(size),
        )
        super().__init__(p, dt=NIR_DT)
        self.register_buffer("beta", torch.full((size,), float(beta)))
        self.reset = reset
        self.spike_fn = spike_fn

    def initial_state(self, input_tensor: torch.Tensor) -> LIFBoxFeedForwardState:
        return LIFBoxFeedForwardState(v=torch.zeros_like(input_tensor))

    def use_threshold(self, theta: torch.Tensor) -> None:
        self.p = self.p._replace(v_th=theta)
        # Bind the current β buffer (it follows .to(device)); same arithmetic as snnTorch's.
        self.activation = functools.partial(
            theta_step, spike_fn=self.spike_fn, beta=self.beta, zero_reset=self.reset == "zero"
        )

    def step(self, current: torch.Tensor, state: Any) -> Tuple[torch.Tensor, torch.Tensor, Any]:
        z, state = self.forward(current, state)  # without a module call's hooks, as snnTorch's
        return z, state.v, state


def make_neurons(size: int, options: SpikingOptions, spike_fn: SpikeFn) -> nn.Module:
    """IAF when β = 1 (no leak to approximate), LIFBox otherwise."""
    if options.beta == 1.0:
        return ThetaIAF(size, options.reset, spike_fn)
    return ThetaLIFBox(size, options.beta, options.reset, spike_fn)


class NorseStudent(SpikingStudentMixin, Student):
    """Tempered-logit student whose temperature is carried by Norse firing thresholds."""

    def __init__(self, options: NorseOptions, input_dim: int, num_classes: int,
                 input_shape: Optional[Tuple[int, ...]] = None) -> None:
        super().__init__(options, input_dim, num_classes, make_neurons, input_shape=input_shape, kind="norse")


def export_network(student: NorseStudent) -> SequentialState:
    """The student as one Norse ``SequentialState`` at its current thresholds (for ``to_nir``)."""
    layers: list[nn.Module] = []
    for linear, neuron, trace in zip(student.linears, student.neurons, student.thresholds):
        neuron.use_threshold(trace.theta().detach())
        layers += [linear, neuron]
    return SequentialState(*layers)


def _fix_norse_tau(graph: nir.NIRGraph, dt: float) -> None:
    """Norse 1.1 exports τ = dt/τ⁻¹ instead of 1/τ⁻¹; restore τ (β = 1 − dt/τ)."""
    for node in graph.nodes.values():
        if isinstance(node, nir.LIF):
            tau = np.asarray(node.tau, dtype=np.float64) / dt
            node.tau = tau.astype(np.float32)
            node.r = (tau / dt).astype(np.float32)  # R such that v gains exactly I per step


class NorseBackend(SpikingBackend):
    name = "norse"
    Options = NorseOptions
    StudentClass = NorseStudent

    def export_nir(self, student: NorseStudent, path: str, metadata: Optional[Dict[str, str]] = None) -> nir.NIRGraph:
        """Write the student (at its currently applied thresholds) as a NIR graph.

        As for snnTorch: the graph's input is the encoded input per step, and the readout
        (θ0/steps)·count is outside the graph.
        """
        if student.conv is not None:
            return write_conv_nir(student, path, metadata)
        from norse.torch import to_nir

        net = export_network(student).cpu()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            graph = to_nir(net, torch.zeros(student.widths[0]), dt=NIR_DT)
        _fix_norse_tau(graph, NIR_DT)
        normalise_graph(graph, {"reset": student.options.reset, "steps": str(student.options.steps)})
        graph.metadata = {**(graph.metadata or {}), **(metadata or {})}
        nir.write(path, graph)
        return graph


    def nir_forward(self, path: str, describe: Dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
        """A NIR file as ``x (B, F) -> tempered logits (B, K)``: encoder, time loop, readout.

        ``describe`` is the student's ``describe()`` saved with the export: it names the
        encoder, steps, readout and θ0 that are not part of a NIR graph.
        """
        graph = nir.read(path)
        net = load_nir(path, surrogate=describe.get("surrogate", "fast_sigmoid").split("(")[0])
        last = next(src for src, dst in graph.edges if dst == "output")  # the output neurons
        theta = torch.as_tensor(np.asarray(graph.nodes[last].v_threshold, dtype=np.float32))
        theta0 = torch.full_like(theta, float(describe["theta0"]))
        steps, encoder, kind = int(describe["steps"]), describe["encoder"], describe["readout"]
        sample_shape = input_sample_shape(graph)

        def forward(x: torch.Tensor) -> torch.Tensor:
            inputs = encode(x, steps, encoder).reshape(steps, x.shape[0], *sample_shape)
            state, count = None, torch.zeros(x.shape[0], theta.numel())
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for t in range(steps):
                    out, state = net(inputs[t], state)
                    count = count + out
            membrane = state.state[last][0].v
            return readout(count, membrane, theta, theta0, steps, kind)

        return forward


def input_sample_shape(graph: nir.NIRGraph) -> Tuple[int, ...]:
    """One sample's shape as the graph's input node declares it: (F,), or (C, H, W) for a conv
    graph, whose input the runner views as images (inputs are encoded flat)."""
    shape = next(iter(graph.inputs.values())).input_type["input"]
    return tuple(int(d) for d in np.asarray(shape).reshape(-1))


def import_node(node: nir.NIRNode, **options: Any) -> Optional[nn.Module]:
    """Norse's own mapping of a NIR node to a module (``norse.torch.from_nir``'s), with the two
    nodes a conv graph needs that Norse 1.1 does not map right: ``nir.AvgPool2d`` (not mapped
    at all: the node is dropped and the graph cannot run) and ``nir.Flatten`` (mapped with
    NIR's dimensions, which leave out the batch, as torch's, which count it: ``start_dim 0``
    would flatten the batch into the features)."""
    from norse.torch.utils.import_nir import _import_norse_module

    if isinstance(node, nir.AvgPool2d):
        if np.any(np.asarray(node.padding) != 0):
            raise ValueError("nir.AvgPool2d: padding is not supported")
        return nn.AvgPool2d(tuple(int(k) for k in node.kernel_size), tuple(int(s) for s in node.stride))
    if isinstance(node, nir.Flatten):
        start, end = int(node.start_dim), int(node.end_dim)
        return nn.Flatten(start + 1 if start >= 0 else start, end + 1 if end >= 0 else end)
    return _import_norse_module(node, **options)


def load_nir(path: str, reset: str | None = None, surrogate: str = "fast_sigmoid", slope: float | None = None) -> nn.Module:
    """Read a NIR file and build a runnable Norse network as ``norse.torch.from_nir`` does
    (``import_node``: Norse's node mapping, plus average pooling and flatten for conv graphs).

    Norse's importer resets LIF/IF neurons to a value; the reset convention written in each
    neuron node's metadata (or ``reset``) is re-applied: IF cells get our activation, LIF
    cells Norse's ``reset_subtract``. Call as ``out, state = net(x_t, state)`` per step, with
    ``x_t`` shaped as the graph's input node ((B, F), or (B, C, H, W) for a conv graph).
    """
    import nirtorch

    graph = nir.read(path)
    conventions = {k: metadata_text(n.metadata.get("reset", "subtract")) for k, n in graph.nodes.items()
                   if isinstance(n, (nir.IF, nir.LIF)) and n.metadata}
    chosen = reset or next(iter(conventions.values()), "subtract")
    spike_fn = make_spike_fn(surrogate, slope if slope is not None else DEFAULT_SLOPE[surrogate])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        net = nirtorch.load(graph, functools.partial(import_node, ignore_warnings=True, dt=NIR_DT))
    for module in net.modules():
        if isinstance(module, IAFCell):
            module.activation = functools.partial(theta_step, spike_fn=spike_fn, beta=None, zero_reset=chosen == "zero")
        elif isinstance(module, LIFBoxCell) and chosen == "subtract":
            module.p = module.p._replace(reset_method=reset_subtract)
    return net
