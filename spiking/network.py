"""The spiking student's behaviour, shared by every spiking backend.

A backend supplies only its library's neuron layer (``NeuronFactory``); everything else that
makes a spiking student a tempered-distillation student lives here, once: input encoding,
the time loop, threshold plasticity (how T arrives), the readout, spike statistics, energy
and trace capture. ``SpikingStudentMixin`` is meant to be listed *before* the project's
``Student`` base class, so that its methods override the dense defaults while
``super().set_temperature`` still runs the base class's validation, and ``forward`` wraps
its result with the host's ``output(tempered, measured)``. This module imports neither
``tempdistill`` nor ``backends``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Protocol, Tuple

import numpy as np
import torch
from torch import nn

from spiking.conv import SpikingConvStages
from spiking.encoders import encode, is_spiking
from spiking.energy import spiking_energy_nj
from spiking.functional import network_sequence, synaptic_current
from spiking.options import SpikingOptions
from spiking.output_fit import FIT_SAMPLES, fit_output_layer
from spiking.readout import readout
from spiking.surrogate import SpikeFn, make_spike_fn
from spiking.theta0 import auto_theta0
from spiking.threshold import ThresholdTrace

# θ0 of the output layer before ``fit_to_teacher`` picks one (DESIGN's working value).
PLACEHOLDER_THETA0 = 20.0


class NeuronLayer(Protocol):
    """One library neuron layer, stepped by the shared time loop."""

    def use_threshold(self, theta: torch.Tensor) -> None:
        """Thresholds (N,) for the following steps."""

    def step(self, current: torch.Tensor, state: Any) -> Tuple[torch.Tensor, torch.Tensor, Any]:
        """(spikes, membrane after reset, new state) for one step; ``state`` is None at t = 0."""


NeuronFactory = Callable[[int, SpikingOptions, SpikeFn], nn.Module]

# A layer whose neurons fired on at least this fraction of all steps is called saturated.
SATURATED_RATE = 0.99


class EpochActivity:
    """Spike totals per layer over one epoch's training passes (for silent/saturated alarms)."""

    def __init__(self, n_layers: int) -> None:
        self.spikes: List[Any] = [0.0] * n_layers  # tensors once added: no device sync per step
        self.neurons = [0] * n_layers
        self.samples = 0

    def add(self, counts: List[torch.Tensor], batch: int) -> None:
        for i, count in enumerate(counts):
            self.spikes[i] = self.spikes[i] + count.sum()
            self.neurons[i] = int(count.shape[-1])
        self.samples += batch

    def rate(self, layer: int, steps: int) -> float:
        """Spikes per neuron per step, averaged over the epoch's samples."""
        return float(self.spikes[layer]) / max(self.samples * self.neurons[layer] * steps, 1)


class DeferredMeasures(Mapping[str, torch.Tensor]):
    """A pass's measures, computed when first read: evaluation reads them, training never
    does, and on a small student they are a fifth of a training step's operations."""

    def __init__(self, compute: Callable[[], Dict[str, torch.Tensor]]) -> None:
        self._compute: Optional[Callable[[], Dict[str, torch.Tensor]]] = compute
        self._values: Dict[str, torch.Tensor] = {}

    def _loaded(self) -> Dict[str, torch.Tensor]:
        if self._compute is not None:
            self._values, self._compute = self._compute(), None
        return self._values

    def __getitem__(self, key: str) -> torch.Tensor:
        return self._loaded()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())


@dataclass
class Simulation:
    """What one pass through the time loop produced (detached unless noted)."""

    logits: torch.Tensor
    counts: List[torch.Tensor] = field(default_factory=list)          # per layer, (B, N)
    input_events: Optional[torch.Tensor] = None                       # (B,) for spiking encoders
    input_synops: Optional[torch.Tensor] = None                       # (B,) where fan-out varies (conv)
    head_input: Optional[torch.Tensor] = None                         # (B, F) conv features' rates
    spikes: List[List[torch.Tensor]] = field(default_factory=list)    # per layer, per step (B, N)
    membranes: List[List[torch.Tensor]] = field(default_factory=list)


class SpikingStudentMixin(nn.Module):
    """Linear layers + library neurons run for ``steps`` steps; output thresholds carry T."""

    def __init__(
        self, options: SpikingOptions, input_dim: int, num_classes: int, make_neurons: NeuronFactory, kind: str,
        input_shape: Optional[Tuple[int, ...]] = None,
    ) -> None:
        super().__init__()
        self.options = options
        self.kind = kind
        spike_fn = make_spike_fn(options.surrogate, options.surrogate_slope())
        # arch conv: the conv stages feed the head a flattened map instead of the input vector.
        self.conv: Optional[SpikingConvStages] = None
        conv_names: List[str] = []
        if options.arch == "conv":
            head_width = options.hidden[0] if options.hidden else num_classes
            self.conv = SpikingConvStages(options, input_shape, make_neurons, spike_fn, head_width)
            input_dim = self.conv.flat_dim
            conv_names = [f"conv{i}" for i in range(len(self.conv.maps))]
        self.widths = [input_dim, *options.hidden, num_classes]
        self.layer_names = conv_names + [f"hidden{i}" for i in range(len(options.hidden))] + ["output"]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(self.widths[:-1], self.widths[1:]))
        self.neurons = nn.ModuleList(make_neurons(n, options, spike_fn) for n in self.widths[1:])
        theta0 = PLACEHOLDER_THETA0 if options.theta0 == "auto" else float(options.theta0)
        bases = [options.hidden_threshold] * len(options.hidden) + [theta0]
        self.thresholds = nn.ModuleList(
            ThresholdTrace(n, base, options.threshold_tau) for n, base in zip(self.widths[1:], bases)
        )
        self.required_range = 0.0  # the output logits a task needs reached (require_logit_range)
        self._last_counts: Optional[List[torch.Tensor]] = None  # homeostasis reads rates of training passes only
        self._epoch_activity = EpochActivity(len(self.layer_names))

    def all_thresholds(self) -> List[ThresholdTrace]:
        """Every layer's thresholds in ``layer_names`` order (conv stages first)."""
        convs = list(self.conv.thresholds) if self.conv is not None else []
        return convs + list(self.thresholds)

    def feature_layers(self) -> Dict[str, nn.Module]:
        """Modules whose forward output is a layer's feature, for forward hooks: ``conv{i}`` the
        stage's firing rate over the steps (B, C, H, W), differentiable. Called only while hooked.
        Hidden layers of the head have none: the fused engine keeps their counts without a
        gradient."""
        if self.conv is None:
            return {}
        return {f"conv{i}": tap for i, tap in enumerate(self.conv.taps)}

    # --- temperature -------------------------------------------------------------------
    def _layer_temperatures(self, temperature: Any) -> List[Any]:
        hidden_t = 1.0
        if self.options.temperature_on_hidden:
            hidden_t = float(torch.as_tensor(temperature, dtype=torch.float32).mean())
        return [hidden_t] * (len(self.layer_names) - 1) + [temperature]

    def set_temperature(self, temperature: Any) -> None:
        """Train mode: one plasticity step toward θ0·T. Eval mode: θ = θ0·T, trace untouched."""
        super().set_temperature(temperature)  # the base class validates and remembers T
        temperature = self.temperature
        if isinstance(temperature, torch.Tensor):
            temperature = temperature.detach().float().cpu()
        homeo = self.options.homeostasis
        for i, (trace, t) in enumerate(zip(self.all_thresholds(), self._layer_temperatures(temperature))):
            if not self.training:
                trace.set_direct(t)
                continue
            rate = None
            if homeo is not None and self._last_counts is not None:
                rate = self._last_counts[i].mean(dim=0) / self.options.steps
            trace.plasticity_step(
                t, rate, homeo.target_rate if homeo else 0.0, homeo.strength if homeo else 0.0
            )

    def effective_temperature(self) -> torch.Tensor:
        """θ/θ0 of the output neurons as applied in the forward passes, (K,)."""
        return self.thresholds[-1].effective_temperature().detach()

    def require_logit_range(self, bound: float) -> None:
        """The count readout lies in [0, θ0]: with ``theta0: auto``, θ0 will be at least ``bound``."""
        self.required_range = float(bound)

    def fit_to_teacher(self, teacher_logits: torch.Tensor, inputs: Optional[torch.Tensor] = None) -> None:
        """With ``theta0: auto``, size θ0 to the teacher's logit spread (``spiking.theta0``), and
        to at least the range a task requires (``require_logit_range``); with ``output_fit:
        teacher`` and the teacher's inputs, start the output current at the teacher's scale
        (``spiking.output_fit``); a conv student's stages are first balanced on those inputs
        (``conv_init: balance``, ``SpikingConvStages.balance``)."""
        if self.options.theta0 == "auto":
            self.thresholds[-1].rescale_base(max(auto_theta0(teacher_logits), self.required_range))
        rows = None
        if inputs is not None:
            rows = torch.randperm(inputs.shape[0], generator=torch.Generator().manual_seed(0))[:FIT_SAMPLES]
            rows = rows.to(inputs.device)
        if self.conv is not None and self.options.conv_init == "balance" and rows is not None:
            o = self.options
            beta = None if o.beta == 1.0 else torch.tensor(o.beta, dtype=inputs.dtype, device=inputs.device)
            self._balance_conv_student(inputs[rows].flatten(1), beta)
        if self.options.output_fit == "teacher" and rows is not None:
            with torch.no_grad():
                sim = self._simulate(inputs[rows])
            if len(self.options.hidden) > 0:
                presynaptic = sim.counts[-2] / self.options.steps
            else:  # the output layer reads the inputs, or the conv stages' pooled spikes
                presynaptic = sim.head_input if sim.head_input is not None else inputs[rows]
            theta0 = float(self.thresholds[-1].theta0.mean())
            fit_output_layer(self.linears[-1], presynaptic, teacher_logits[rows], theta0)

    @torch.no_grad()
    def _balance_conv_student(self, x: torch.Tensor, beta: Optional[torch.Tensor]) -> None:
        """``conv_init: balance``: the conv stages (``SpikingConvStages.balance``), then each hidden
        layer of the head the same way on the pooled spikes it reads, so that no layer between
        the image and the output starts silent (the output layer is ``output_fit``'s)."""
        from spiking.conv import BALANCE_PERCENTILE, balance_layer

        o = self.options
        assert self.conv is not None
        zero_reset = o.reset == "zero"
        self.conv.balance(x, o.steps, beta, o.surrogate, o.surrogate_slope(), zero_reset)
        signal, _ = self.conv.fused(x, None, o.steps, beta, o.surrogate, o.surrogate_slope(), zero_reset)
        for linear, trace in zip(list(self.linears)[:-1], list(self.thresholds)[:-1]):
            current = linear(signal)
            gain = balance_layer(linear, current, trace.theta(), BALANCE_PERCENTILE)
            signal, _, _ = network_sequence(current * gain, [], [], [trace.theta()], beta, o.surrogate,
                                            o.surrogate_slope(), zero_reset)

    # --- simulation ----------------------------------------------------------------------
    def _simulate(self, x: torch.Tensor, record: bool = False) -> Simulation:
        """One pass through the time loop. The fused engine runs it unless traces are recorded:
        recording keeps every step's membrane, which is what the per-step loop has anyway.
        Images (B, C, H, W) are read flattened, as the pipeline holds them."""
        if x.dim() > 2:
            x = x.flatten(1)
        if self.options.engine == "fused" and not record:
            return self._simulate_fused(x)
        return self._simulate_loop(x, record)

    def _simulate_fused(self, x: torch.Tensor) -> Simulation:
        """Every layer and step in ``spiking.functional.network_sequence``; the first layer's
        input currents for all steps come from one matrix product (W·x once when held)."""
        o = self.options
        steps = o.steps
        inputs = encode(x, steps, o.encoder)
        direct = not is_spiking(o.encoder)
        beta = None if o.beta == 1.0 else torch.tensor(o.beta, dtype=x.dtype, device=x.device)
        slope = o.surrogate_slope()
        conv_counts: List[torch.Tensor] = []
        features = None
        if self.conv is not None:  # the head reads the conv stages' pooled spikes, step by step
            features, conv_counts = self.conv.fused(x, None if direct else inputs, steps, beta, o.surrogate, slope,
                                                    o.reset == "zero")
            first, held = self.linears[0](features), False
        else:
            first, held = self.linears[0](x if direct else inputs), direct  # direct: W·x once, held
        rest = list(self.linears)[1:]
        spikes, membrane, counts = network_sequence(
            first, [linear.weight for linear in rest], [linear.bias for linear in rest],
            [trace.theta() for trace in self.thresholds], beta, o.surrogate, slope, o.reset == "zero",
            steps if held else None,
        )
        counts.append(spikes.sum(dim=0))
        out = self.thresholds[-1]
        logits = readout(counts[-1], membrane, out.theta(), out.theta0, steps, o.readout)
        sim = Simulation(logits=logits, counts=conv_counts + [c.detach() for c in counts])
        if features is not None:
            sim.head_input = features.detach().mean(dim=0)
        self._count_input_events(sim, None if direct else inputs)
        return sim

    def _count_input_events(self, sim: Simulation, inputs: Optional[torch.Tensor]) -> None:
        """A spiking encoder's input events per sample, and for a conv student the synaptic
        operations they cause (each pixel's fan-out into the first convolution differs)."""
        if inputs is None:
            return
        events = inputs.detach().sum(dim=0)
        sim.input_events = events.sum(dim=1)
        if self.conv is not None:
            sim.input_synops = events @ self.conv.input_fan_out.to(events.dtype)

    def _simulate_loop(self, x: torch.Tensor, record: bool = False) -> Simulation:
        """The reference path: step by step through the library's own neuron modules."""
        steps = self.options.steps
        inputs = encode(x, steps, self.options.encoder)
        direct = not is_spiking(self.options.encoder)
        conv = self.conv
        # Constant input: the first layer's current (W·x, or the first convolution) once.
        if conv is not None:
            conv.use_thresholds()
            conv_held = conv.first_current(x) if direct else None
            first_current = None
        else:
            first_current = self.linears[0](x) if direct else None
        for neuron, trace in zip(self.neurons, self.thresholds):
            neuron.use_threshold(trace.theta())
        n_conv = len(conv.maps) if conv is not None else 0
        n_head = len(self.neurons)
        n_layers = n_conv + n_head
        states: List[Any] = [None] * n_layers
        output_count: Any = 0.0
        # Only the output count is differentiated (the readout); the hidden counts are
        # statistics, accumulated in place (no graph, no per-pass block to allocate).
        sizes = [c * h * w for c, h, w in conv.maps] if conv is not None else []
        hidden_counts = [torch.zeros(x.shape[0], n, dtype=x.dtype, device=x.device) for n in sizes + self.widths[1:-1]]
        spikes: List[List[torch.Tensor]] = [[] for _ in range(n_layers)]
        membranes: List[List[torch.Tensor]] = [[] for _ in range(n_layers)]
        tapped = [i for i in range(n_conv) if conv is not None and conv.taps[i].listened()]
        tap_spikes: Dict[int, List[torch.Tensor]] = {i: [] for i in tapped}
        features: Any = 0.0
        membrane = x
        layers = list(zip(self.linears, self.neurons))
        for t in range(steps):
            signal = None if direct else inputs[t]
            if conv is not None:
                signal, stage_outputs = conv.step(signal, conv_held, states)
                for i, (stage_spikes, stage_membrane) in enumerate(stage_outputs):
                    hidden_counts[i].add_(stage_spikes.detach())
                    if i in tap_spikes:
                        tap_spikes[i].append(stage_spikes)
                    if record:
                        spikes[i].append(stage_spikes.detach())
                        membranes[i].append(stage_membrane.detach())
                features = features + signal.detach()
            for j, (linear, neuron) in enumerate(layers):
                i = n_conv + j
                if j == 0:
                    current = first_current if first_current is not None else linear(signal)
                else:
                    current = synaptic_current(signal, linear.weight, linear.bias)
                signal, membrane, states[i] = neuron.step(current, states[i])
                if i < n_layers - 1:
                    hidden_counts[i].add_(signal.detach())
                if record:
                    spikes[i].append(signal.detach())
                    membranes[i].append(membrane.detach())
            output_count = output_count + signal
        for i, stage_spikes in tap_spikes.items():
            assert conv is not None
            conv.taps[i](torch.stack(stage_spikes).mean(dim=0).view(x.shape[0], *conv.maps[i]))
        out = self.thresholds[-1]
        logits = readout(output_count, membrane, out.theta(), out.theta0, steps, self.options.readout)
        counts = hidden_counts + [output_count.detach()]
        sim = Simulation(logits=logits, counts=counts, spikes=spikes if record else [],
                         membranes=membranes)
        if conv is not None:
            sim.head_input = features / steps
        self._count_input_events(sim, None if direct else inputs)
        return sim

    def forward(self, x: torch.Tensor) -> Any:
        """One simulation: the host ``Student``'s output object (its ``output`` method) holding
        the tempered readout, its T = 1 form and what this batch measured.

        A training pass is also remembered for the threshold plasticity's homeostatic term
        (read by the next train-mode ``set_temperature``) and for the epoch's activity alarms.
        """
        sim = self._simulate(x)
        if self.training:
            self._last_counts = sim.counts  # not the whole pass: its graph can go now
            self._epoch_activity.add(sim.counts, x.shape[0])
        return self.output(sim.logits, DeferredMeasures(lambda: self._measure(sim)))

    def activity_check(self) -> Tuple[Dict[str, float], List[Tuple[str, str]]]:
        """Silent or saturated layers over this epoch's training passes, with what to change."""
        activity, self._epoch_activity = self._epoch_activity, EpochActivity(len(self.layer_names))
        if activity.samples == 0:
            return {}, []
        flags: Dict[str, float] = {}
        alarms: List[Tuple[str, str]] = []
        for i, (name, trace) in enumerate(zip(self.layer_names, self.all_thresholds())):
            rate = activity.rate(i, self.options.steps)
            silent, saturated = rate == 0.0, rate >= SATURATED_RATE
            flags[f"silent.{name}"], flags[f"saturated.{name}"] = float(silent), float(saturated)
            theta = float(trace.applied.mean())
            where = f"{name} layer ({'output thresholds θ0·T' if name == 'output' else 'thresholds'} ≈ {theta:.3g})"
            knob = "student.theta0" if name == "output" else "student.hidden_threshold"
            if silent:
                alarms.append((f"silent.{name}", f"{where} fired no spike in a whole epoch: its input current never "
                               f"reaches threshold; lower {knob}, lower the temperature, or scale the inputs up "
                               f"(data.normalize){self._silent_output_note() if name == 'output' else ''}"))
            elif saturated:
                alarms.append((f"saturated.{name}", f"{where} fired at every step in a whole epoch (rate {rate:.2f}): "
                               f"its readout cannot rank classes; raise {knob} or scale the inputs down"))
        return flags, alarms

    def _silent_output_note(self) -> str:
        """What a silent output layer means for the readout in use."""
        if self.options.readout == "count_membrane":
            return ("; the count_membrane readout still follows the teacher through the residual membrane, "
                    "but no output spike carries it")
        return ("; if the targets are negative (mse on log-probabilities), a count readout cannot follow them: "
                "use distill.loss kl or student.readout count_membrane")

    # --- what was measured -----------------------------------------------------------------
    def _measure(self, sim: Simulation) -> Dict[str, torch.Tensor]:
        """Per-sample spike counts, rates, synaptic operations and energy of one batch.

        Synaptic operations are spikes × fan-out: a dense layer's neuron reaches every neuron of
        the next layer; a conv neuron the (channel, position) targets that read it through its
        pooling (``SpikingConvStages.fan_outs``, exact per neuron). MACs: the first layer's
        multiply-accumulates of analog (direct) input, W·x or the first convolution."""
        steps = self.options.steps
        out: Dict[str, torch.Tensor] = {}
        total = torch.zeros(())
        synops = torch.zeros(())
        fan_outs: List[Any] = self.conv.fan_outs() if self.conv is not None else []
        fan_outs = fan_outs + self.widths[2:] + [0]
        for name, count, fan_out in zip(self.layer_names, sim.counts, fan_outs):
            per_sample = count.sum(dim=1).mean()
            # '.' not '/': HDF5 would read 'spikes_per_sample/x' as a group beside the total.
            out[f"spikes_per_sample.{name}"] = per_sample
            out[f"rate.{name}"] = count.mean() / steps
            total = total + per_sample
            if isinstance(fan_out, torch.Tensor):
                synops = synops + (count @ fan_out.to(count.dtype)).mean()
            else:
                synops = synops + per_sample * fan_out
        macs = torch.zeros(())
        if sim.input_synops is not None:
            synops = synops + sim.input_synops.mean()
        elif sim.input_events is not None:
            synops = synops + sim.input_events.mean() * self.widths[1]
        elif self.conv is not None:
            macs = torch.tensor(float(self.conv.first_macs))
        else:
            macs = torch.tensor(float(self.widths[0] * self.widths[1]))
        out["spikes_per_sample"] = total
        out["synops_per_sample"] = synops
        out["macs_per_sample"] = macs
        out["energy_nj_per_sample"] = spiking_energy_nj(synops, macs)
        return out

    def step_record(self) -> Dict[str, float]:
        """The output layer's plastic threshold (mean over neurons) after this step's update."""
        return {"output_threshold_trace": float(self.thresholds[-1].trace.mean())}

    @torch.no_grad()
    def capture_traces(self, x: torch.Tensor) -> Dict[str, np.ndarray]:
        """Per layer: spikes (S, T, N) uint8, membrane (S, T, N) float32, threshold (N,) float32;
        a conv layer's N is C·H·W of its map, whose (C, H, W) is ``<layer>/shape``."""
        sim = self._simulate(x, record=True)
        traces: Dict[str, np.ndarray] = {}
        if self.conv is not None:
            for name, shape in zip(self.layer_names, self.conv.maps):
                traces[f"{name}/shape"] = np.asarray(shape, dtype=np.int64)
        for name, spk, mem, trace in zip(self.layer_names, sim.spikes, sim.membranes, self.all_thresholds()):
            traces[f"{name}/spikes"] = torch.stack(spk, dim=1).cpu().numpy().astype(np.uint8)
            traces[f"{name}/membrane"] = torch.stack(mem, dim=1).cpu().numpy().astype(np.float32)
            traces[f"{name}/threshold"] = trace.applied.cpu().numpy().astype(np.float32)
            traces[f"{name}/threshold_trace"] = trace.trace.cpu().numpy().astype(np.float32)
        return traces

    def _theta0_source(self) -> str:
        if self.options.theta0 != "auto":
            return "config"
        if self.required_range > 0.0:
            return f"auto (teacher logit spread, at least the task's required range {self.required_range:.4g})"
        return "auto (teacher logit spread)"

    def describe(self) -> Dict[str, Any]:
        o = self.options
        return {
            "kind": "spiking",
            "library": self.kind,
            "widths": list(self.widths),
            "steps": o.steps,
            "beta": o.beta,
            "neuron": "integrate-and-fire" if o.beta == 1.0 else "leaky integrate-and-fire",
            "reset": o.reset,
            "surrogate": f"{o.surrogate}(slope={o.surrogate_slope()}) on (v-θ)/θ",
            "encoder": o.encoder,
            "readout": o.readout,
            "engine": o.engine,
            "output_fit": o.output_fit,
            "theta0": float(self.thresholds[-1].theta0.mean()),
            "theta0_source": self._theta0_source(),
            "hidden_threshold": o.hidden_threshold,
            "threshold_tau_steps": o.threshold_tau,
            "temperature_on_hidden": o.temperature_on_hidden,
            "homeostasis": o.homeostasis.model_dump() if o.homeostasis else None,
            **({"arch": "conv", "channels": list(o.channels), "kernel": o.kernel, "pool": o.pool,
                "input_shape": list(self.conv.image_shape)} if self.conv is not None else {}),
        }
