"""Convolutional stages of a student, the geometry they need, and what they cost.

A conv student (``student: {arch: conv, channels: [16, 32], kernel: 3, pool: avg}``) reads
each sample as an image (C, H, W). Per entry of ``channels`` a stage is a 2-D convolution
(``padding = kernel // 2``, so H and W are kept), the layer's activation (a ReLU for a dense
student, the project's one neuron equation on every (c, h, w) neuron for a spiking one), then
2×2 pooling (average or max), which halves H and W (rounding down). The last stage's map is
flattened into the MLP head. Tensors in the pipeline stay flat, (B, C·H·W); a network that
reads images views them as (B, C, H, W) itself.

This module holds what dense and spiking conv students share: the geometry (checked once,
with one line naming the field when an image is too small), MACs of a convolution, the exact
fan-out of a spiking conv neuron through its pooling into the next layer (for synaptic
operations), and the feature taps (``RateTap``) a feature-distillation loss hooks into.
It knows nothing of ``tempdistill``: errors are ``ValueError`` whose text starts with the
field; the backends turn them into ``ConfigError``.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from spiking.fanout import fan_out, ones_conv2d, ones_linear, sum_pool2d
from spiking.spike_pooling import Shape, pool2d, pooled

POOLS = ("avg", "max")
# ``conv_init: balance``: the percentile of a stage's positive input current set to its threshold.
BALANCE_PERCENTILE = 99.0


def stage_maps(input_shape: Optional[Sequence[int]], channels: Sequence[int], kernel: int) -> List[Shape]:
    """Each stage's activation map (C, H, W) before its pooling, for an image ``input_shape``.

    Raises ``ValueError`` ("<field>: ...") for flat data, an even kernel, or an image that the
    stages' 2×2 poolings would shrink to nothing."""
    if input_shape is None or len(input_shape) != 3:
        got = "flat data" if input_shape is None else f"samples of shape {tuple(input_shape)}"
        raise ValueError(f"student.arch: 'conv' needs images (C, H, W), got {got}; use data.layout: image "
                         "(or student.arch: mlp)")
    if not channels or any(int(c) < 1 for c in channels):
        raise ValueError(f"student.channels: expected a list of positive channel counts, got {list(channels)}")
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"student.kernel: expected an odd integer >= 1 (padding kernel//2 keeps H and W), got {kernel}")
    _, h, w = (int(d) for d in input_shape)
    maps: List[Shape] = []
    for i, c in enumerate(channels):
        if h // 2 < 1 or w // 2 < 1:
            fix = f"use at most {i} entries or larger images" if i else "the images are too small for one stage"
            c0, h0, w0 = (int(d) for d in input_shape)
            if w0 <= 4 < c0:  # (n, H, W, C) read as (n, C, H, W): the channels became the width
                fix += f"; the samples look channel-last (H, W, C) = ({c0}, {h0}, {w0}): store X as (n, C, H, W)"
            raise ValueError(f"student.channels: {len(channels)} stages of 2×2 pooling shrink a "
                             f"{input_shape[1]}×{input_shape[2]} image to nothing at stage {i} ({h}×{w} "
                             f"pooled); {fix}")
        maps.append((int(c), h, w))
        h, w = h // 2, w // 2
    return maps


def flat_features(maps: Sequence[Shape]) -> int:
    """Width of the head's input: the last stage's pooled map, flattened."""
    c, h, w = pooled(maps[-1])
    return c * h * w


def conv_macs(c_in: int, shape: Shape, kernel: int) -> int:
    """Multiply-accumulates of one convolution producing ``shape`` = (Cout, Hout, Wout):
    Cout·Cin·k²·Hout·Wout (padding positions counted as MACs, as is customary)."""
    c_out, h, w = shape
    return c_out * c_in * kernel * kernel * h * w


def pool_layer(kind: str) -> nn.Module:
    return nn.AvgPool2d(2) if kind == "avg" else nn.MaxPool2d(2)


def conv_fan_out(shape: Shape, next_channels: int, kernel: int) -> torch.Tensor:
    """Per neuron of a map (C·H·W,), how many (output channel, position) targets of the next
    convolution read it through the 2×2 pooling (``spiking.fanout``: exact, borders and dropped
    odd rows included)."""
    weight = (next_channels, shape[0], kernel, kernel)
    padding = (kernel // 2, kernel // 2)
    return fan_out(lambda h: ones_conv2d(sum_pool2d(h, (2, 2), (2, 2)), weight, (1, 1), padding), shape).reshape(-1)


def flatten_fan_out(shape: Shape, width: int) -> torch.Tensor:
    """Per neuron of the last map: ``width`` targets (the head's first layer) through the
    pooling and flatten, 0 for rows/columns the pooling drops."""
    return fan_out(lambda h: ones_linear(sum_pool2d(h, (2, 2), (2, 2)), width), shape).reshape(-1)


def input_fan_out(input_shape: Sequence[int], channels: int, kernel: int) -> torch.Tensor:
    """Per input pixel (C·H·W,), the first convolution's targets that read it (spiking encoders'
    input events are synaptic operations through this fan-out)."""
    weight = (channels, int(input_shape[0]), kernel, kernel)
    return fan_out(lambda h: ones_conv2d(h, weight, (1, 1), (kernel // 2, kernel // 2)), input_shape).reshape(-1)


class RateTap(nn.Identity):
    """A feature tap: an identity module called with a layer's feature, only when something
    listens (``if tap._forward_hooks``), so it costs nothing otherwise.

    Feature distillation registers a forward hook on it (``feature_layers()[name]``) and reads
    the hook's output: for a spiking layer its firing rate over the steps (B, C, H, W),
    differentiable."""

    def listened(self) -> bool:
        return bool(self._forward_hooks)


@torch.no_grad()
def balance_layer(layer: nn.Module, current: torch.Tensor, theta: torch.Tensor, percentile: float) -> float:
    """Scale ``layer``'s weight and bias so that the ``percentile``-th percentile of the positive
    ``current`` it drives reaches the mean threshold ``theta`` (data-based normalisation, once,
    before training); returns the gain."""
    from spiking.conversion import percentile_of

    gain = float(theta.mean()) / percentile_of(current, percentile)
    layer.weight.mul_(gain)
    layer.bias.mul_(gain)
    return gain


class SpikingConvStages(nn.Module):
    """The conv stages of a spiking student: per stage Conv2d → the project's neuron on every
    (c, h, w) neuron (the backend's library neurons over the flattened map, (B, C·H·W)) → 2×2
    pooling of the spikes. Hidden-layer thresholds (``hidden_threshold``, one ``ThresholdTrace``
    per neuron), so temperature reaches them exactly as it reaches hidden layers.

    Two ways through time, with identical spikes (see ``fused``): ``step`` (the reference,
    one step of every stage through the library's neuron modules) and ``fused`` (every stage in
    one time loop without per-step autograd graphs, ``spiking.conv_sequence``).
    """

    def __init__(self, options: Any, input_shape: Sequence[int], make_neurons: Callable[..., nn.Module],
                 spike_fn: Callable, head_width: int) -> None:
        from spiking.threshold import ThresholdTrace

        super().__init__()
        self.image_shape: Shape = tuple(int(d) for d in input_shape)  # type: ignore[assignment]
        self.maps = stage_maps(self.image_shape, list(options.channels), options.kernel)
        self.pool, self.kernel = options.pool, options.kernel
        ins = [self.image_shape[0]] + [c for c, _, _ in self.maps[:-1]]
        self.convs = nn.ModuleList(nn.Conv2d(a, c, options.kernel, padding=options.kernel // 2)
                                   for a, (c, _, _) in zip(ins, self.maps))
        sizes = [c * h * w for c, h, w in self.maps]
        self.neurons = nn.ModuleList(make_neurons(n, options, spike_fn) for n in sizes)
        self.thresholds = nn.ModuleList(ThresholdTrace(n, options.hidden_threshold, options.threshold_tau) for n in sizes)
        self.taps = nn.ModuleList(RateTap() for _ in self.maps)
        self.flat_dim = flat_features(self.maps)
        self.first_macs = conv_macs(ins[0], self.maps[0], options.kernel)
        # Per-neuron fan-outs (synaptic operations per spike), constants of the architecture;
        # not state: left out of the state dict, following the module to its device.
        fans = [conv_fan_out(m, nxt[0], options.kernel) for m, nxt in zip(self.maps[:-1], self.maps[1:])]
        fans.append(flatten_fan_out(self.maps[-1], head_width))
        for i, fan in enumerate(fans):
            self.register_buffer(f"fan_out{i}", fan.float(), persistent=False)
        self.register_buffer("input_fan_out", input_fan_out(self.image_shape, self.maps[0][0], options.kernel).float(),
                             persistent=False)

    def fan_outs(self) -> List[torch.Tensor]:
        return [getattr(self, f"fan_out{i}") for i in range(len(self.maps))]

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """Flat samples (B, C·H·W) viewed as images (B, C, H, W)."""
        return x.reshape(x.shape[0], *self.image_shape)

    def first_current(self, x: torch.Tensor) -> torch.Tensor:
        """The first convolution of analog input (direct encoding), (B, N0): computed once,
        held for every step."""
        return self.convs[0](self.images(x)).flatten(1)

    def use_thresholds(self) -> None:
        for neuron, trace in zip(self.neurons, self.thresholds):
            neuron.use_threshold(trace.theta())

    def step(self, encoded: Optional[torch.Tensor], held: Optional[torch.Tensor], states: List[Any]
             ) -> Tuple[torch.Tensor, List[Tuple[torch.Tensor, torch.Tensor]]]:
        """One time step of every stage through the library neurons: the pooled spikes of the
        last stage flattened (B, F), and each stage's (spikes, membrane) (B, N). ``held``: the
        first stage's current under direct encoding, else ``encoded`` is this step's input."""
        signal = encoded
        outputs = []
        for i, (conv, neuron, shape) in enumerate(zip(self.convs, self.neurons, self.maps)):
            current = held if i == 0 and held is not None else conv(self.images(signal) if i == 0 else signal).flatten(1)
            spikes, membrane, states[i] = neuron.step(current, states[i])
            outputs.append((spikes, membrane))
            signal = pool2d(spikes.view(spikes.shape[0], *shape), self.pool)
        return signal.flatten(1), outputs

    @torch.no_grad()
    def balance(self, x: torch.Tensor, steps: int, beta: Optional[torch.Tensor], surrogate: str, slope: float,
                zero_reset: bool, percentile: float = BALANCE_PERCENTILE) -> List[float]:
        """Scale each stage's convolution (weights and bias) so that the ``percentile``-th
        percentile of its positive input current on ``x`` equals the stage's threshold; returns
        the gains.

        Why: with PyTorch's initialisation a stage driven by pooled spikes (values in quarters)
        gets currents far below a threshold of 1 and stays silent, so no gradient reaches the
        convolutions below it (measured: a [4, 8] student on 8×8 digits kept ``conv1`` silent
        through its run). The rule is data-based normalisation (Rueckauer et al. 2017, as
        ``spiking.conversion`` uses for ANN→SNN), applied once at initialisation. The first
        stage is balanced on its held current (direct encoding; for a rate encoder, on the
        analog image, the mean of its encoded input)."""
        from spiking.functional import network_sequence

        batch = x.shape[0]
        gains: List[float] = []
        signal: Optional[torch.Tensor] = None
        for i, (conv, trace, shape) in enumerate(zip(self.convs, self.thresholds, self.maps)):
            current = self.first_current(x) if i == 0 else conv(signal).flatten(1)
            gain = balance_layer(conv, current, trace.theta(), percentile)
            current = current * gain
            held = i == 0
            spikes, _, _ = network_sequence(current if held else current.reshape(steps, batch, -1), [], [],
                                            [trace.theta()], beta, surrogate, slope, zero_reset, steps if held else None)
            signal = pool2d(spikes.reshape(steps * batch, *shape), self.pool)
            gains.append(gain)
        return gains

    def fused(self, x: torch.Tensor, encoded: Optional[torch.Tensor], steps: int, beta: Optional[torch.Tensor],
              surrogate: str, slope: float, zero_reset: bool) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """All steps of all stages in one time loop (``spiking.conv_sequence``): the head's
        input, the last stage's pooled spikes (T, B, F), and each stage's spike counts (B, N)
        (detached).

        The first stage's current is computed here, under autograd: under direct encoding one
        convolution of the images, held; of spiking input one convolution over T·B images (on
        the CPU this was checked on, equal to T per-step convolutions bit for bit). Every stage
        above it convolves each step's pooled spikes as the reference ``step`` does, so the
        spikes are the reference's (``tests/test_conv_students.py``). A listened ``RateTap``
        gets its stage's counts / steps, differentiable.
        """
        from spiking.conv_sequence import conv_sequence

        batch = x.shape[0]
        held = encoded is None
        if held:
            first = self.first_current(x)
        else:
            first = self.convs[0](encoded.reshape(steps * batch, *self.image_shape)).reshape(steps, batch, -1)
        tapped = [tap.listened() for tap in self.taps]
        above = list(self.convs)[1:]
        features, counts = conv_sequence(first, [c.weight for c in above], [c.bias for c in above],
                                         [trace.theta() for trace in self.thresholds], self.maps, self.pool,
                                         self.kernel // 2, beta, surrogate, slope, zero_reset,
                                         steps if held else None, tapped)
        for tap, listened, count, shape in zip(self.taps, tapped, counts, self.maps):
            if listened:
                tap((count / steps).view(batch, *shape))
        return features, [count.detach() for count in counts]
