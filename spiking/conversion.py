"""ANN→SNN conversion: a trained ReLU network run as integrate-and-fire neurons.

The baseline every distillation-into-SNN paper measures itself against (Rueckauer et al. 2017,
"Conversion of continuous-valued deep networks to efficient event-driven networks"). A ReLU
unit's activation is read as a firing rate: an IF neuron driven by the same weighted input,
reset by subtraction, fires at a rate proportional to the activation, up to one spike per step.
So each layer is rescaled (data-based normalisation) to keep its activations within one spike
per step: with λ_l the ``percentile``-th percentile of layer l's activations on training data,
W_l ← W_l · λ_{l-1} / λ_l and b_l ← b_l / λ_l (λ_0 = 1: the input is a constant current). The
output layer integrates without firing, and its accumulated potential is the prediction.
The approximation improves with the number of steps; that trade-off (accuracy against steps
and spikes) is what the baseline shows.

A network is a sequence of layers: synaptic ones (``Dense``, ``Conv``), each followed by IF
neurons except the last, and between them the operations that are linear and so act on
spikes unchanged (``AvgPool``, ``Flatten``): the average of spikes is the rate of the average,
and rescaling commutes with both. Max pooling has no such reading and is not converted.
``spiking.conversion_modules`` reads such a sequence from torch modules.

Pure torch: nothing here knows of tempdistill's students, records or configs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import List, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from spiking.fanout import fan_out, ones_conv2d, ones_linear, sum_pool2d

PERCENTILE = 99.9
MAX_STEPS = 10_000  # the most steps a conversion is run for (``simulate``'s loop)


@dataclass(frozen=True)
class Dense:
    """A fully connected layer: weight (out, in), bias (out,); input (B, in)."""

    weight: torch.Tensor
    bias: torch.Tensor

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.weight.T + self.bias

    def ones(self, h: torch.Tensor) -> torch.Tensor:
        return ones_linear(h, self.weight.shape[0])

    def macs(self, h: torch.Tensor) -> int:
        """Multiply-accumulates per sample on an analog input ``h``."""
        return int(self.weight.numel())


@dataclass(frozen=True)
class Conv:
    """A 2-D convolution: weight (out, in, kh, kw), bias (out,); input (B, in, H, W)."""

    weight: torch.Tensor
    bias: torch.Tensor
    stride: Tuple[int, int] = (1, 1)
    padding: Tuple[int, int] = (0, 0)

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        return F.conv2d(h, self.weight, self.bias, self.stride, self.padding)

    def ones(self, h: torch.Tensor) -> torch.Tensor:
        return ones_conv2d(h, self.weight.shape, self.stride, self.padding)

    def macs(self, h: torch.Tensor) -> int:
        positions = self(h[:1]).shape[-2:]
        return int(self.weight.numel() * positions[0] * positions[1])


@dataclass(frozen=True)
class AvgPool:
    """Average pooling without padding (linear: applied to spikes as to rates)."""

    kernel: Tuple[int, int]
    stride: Tuple[int, int]

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(h, self.kernel, self.stride)

    def ones(self, h: torch.Tensor) -> torch.Tensor:
        return sum_pool2d(h, self.kernel, self.stride)


@dataclass(frozen=True)
class Flatten:
    """(B, C, H, W) → (B, C·H·W), channel-major as ``torch.nn.Flatten``."""

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        return h.flatten(1)

    def ones(self, h: torch.Tensor) -> torch.Tensor:
        return h.flatten(1)


Synapse = Union[Dense, Conv]
Layer = Union[Dense, Conv, AvgPool, Flatten]
IFLayer = Dense  # the name of a fully connected layer before convolutions were converted


def is_synapse(layer: Layer) -> bool:
    return isinstance(layer, (Dense, Conv))


@dataclass(frozen=True)
class Stage:
    """The linear operations applied to the previous layer's spikes, then one synaptic layer."""

    passive: Tuple[Layer, ...]
    synapse: Synapse

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        for layer in self.passive:
            h = layer(h)
        return self.synapse(h)

    def ones(self, h: torch.Tensor) -> torch.Tensor:
        for layer in self.passive:
            h = layer.ones(h)
        return self.synapse.ones(h)


def stages(layers: Sequence[Layer]) -> List[Stage]:
    """Group a layer sequence into stages; IF neurons follow every stage but the last."""
    grouped: List[Stage] = []
    passive: List[Layer] = []
    for layer in layers:
        if is_synapse(layer):
            grouped.append(Stage(tuple(passive), layer))
            passive = []
        else:
            passive.append(layer)
    if not grouped:
        raise ValueError("layers: no Linear or Conv2d layer to convert")
    if passive:
        raise ValueError(f"layers: {type(passive[0]).__name__} after the output layer; the output layer must be last")
    return grouped


# torch.quantile's limit on its input; above it a strided subsample of the values is taken.
QUANTILE_LIMIT = 2_000_000
# Rows per chunk when a whole split passes through a layer: at once, a conv layer over 51,000
# Fashion-MNIST images (its activations and its convolution's workspace) took 24 GB.
CHUNK_ROWS = 2048


def percentile_of(values: torch.Tensor, percentile: float) -> float:
    """The ``percentile``-th percentile of the positive values (ReLU outputs); 1 if none fire."""
    return percentile_of_chunks([values], percentile)


def percentile_of_chunks(chunks: Sequence[torch.Tensor], percentile: float) -> float:
    """``percentile_of`` the chunks' values in order, without joining them: above
    ``QUANTILE_LIMIT`` positive values the same strided subsample is taken, chunk by chunk."""
    masks = [chunk.detach() > 0 for chunk in chunks]
    total = sum(int(mask.sum()) for mask in masks)
    if total == 0:
        return 1.0
    stride = total // QUANTILE_LIMIT + 1 if total > QUANTILE_LIMIT else 1
    picked, seen = [], 0
    for chunk, mask in zip(chunks, masks):
        positive = chunk.detach()[mask].float()
        picked.append(positive[(-seen) % stride::stride])  # global positions that are multiples of stride
        seen += positive.numel()
    return float(torch.quantile(torch.cat(picked), percentile / 100.0))


@torch.no_grad()
def balance_layers(layers: Sequence[Layer], x: torch.Tensor, percentile: float = PERCENTILE) -> List[Layer]:
    """Rescale a ReLU network (ReLU after every synaptic layer but the last) so each hidden
    layer's activations on ``x`` (training rows, shaped as the first layer reads them) stay
    within one spike per step at their percentile. Pooling and flattening pass through. The
    rows pass in chunks of ``CHUNK_ROWS``: only one layer's activations are held at a time."""
    last = max(i for i, layer in enumerate(layers) if is_synapse(layer))
    balanced: List[Layer] = []
    previous = 1.0
    h = list(x.split(CHUNK_ROWS))
    for index, layer in enumerate(layers):
        if not is_synapse(layer):
            balanced.append(layer)
            h = [layer(chunk) for chunk in h]
            continue
        if index == last:  # integrates without firing: no scale of its own
            balanced.append(replace(layer, weight=layer.weight * previous, bias=layer.bias))
            h = []
            continue
        h = [torch.relu(layer(chunk)) for chunk in h]
        scale = percentile_of_chunks(h, percentile)
        balanced.append(replace(layer, weight=layer.weight * previous / scale, bias=layer.bias / scale))
        previous = scale
    return balanced


def balance(weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor], x: torch.Tensor,
            percentile: float = PERCENTILE) -> List[Layer]:
    """``balance_layers`` for a ReLU MLP given as ``weights[l]`` (out, in) and ``biases[l]``."""
    return balance_layers([Dense(w, b) for w, b in zip(weights, biases)], x, percentile)


def input_macs(layers: Sequence[Layer], x: torch.Tensor) -> int:
    """Multiply-accumulates per sample of the first synaptic layer on the analog input ``x``
    (the constant input current, computed once per sample)."""
    first = stages(layers)[0]
    h = x[:1]
    for layer in first.passive:
        h = layer(h)
    return first.synapse.macs(h)


@torch.no_grad()
def simulate(layers: Sequence[Layer], x: torch.Tensor, steps: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the converted network for ``steps`` steps on inputs ``x`` (a constant current).

    Returns the output layer's accumulated potential (n, K) (argmax: the prediction), the
    spikes of each hidden layer per sample (n, layers - 1), and the synaptic operations per
    sample (n,): each spike triggers one accumulate per target it reaches (``spiking.fanout``,
    measured once per layer).
    """
    if steps < 1:
        raise ValueError(f"steps: must be >= 1, got {steps}")
    network = stages(layers)
    parts = [_simulate_rows(network, rows, steps) for rows in x.split(CHUNK_ROWS)]
    return tuple(torch.cat(part) for part in zip(*parts))  # type: ignore[return-value]


def _simulate_rows(network: Sequence[Stage], x: torch.Tensor, steps: int
                   ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``simulate`` for one chunk of rows (each row's simulation is its own)."""
    hidden = len(network) - 1
    drive = network[0](x)  # constant input current
    potentials = [torch.zeros(0)] * hidden
    fan_outs: List[torch.Tensor] = []
    spikes = torch.zeros(x.shape[0], hidden)
    synops = torch.zeros(x.shape[0])
    output = None
    for _ in range(steps):
        signal = None
        for index in range(hidden):
            current = drive if index == 0 else network[index](signal)
            if len(fan_outs) == index:  # first step: state and fan-out, once per layer
                potentials[index] = torch.zeros_like(current)
                fan_outs.append(fan_out(network[index + 1].ones, current.shape[1:]).to(current.dtype))
            potentials[index] += current
            fired = (potentials[index] >= 1.0).float()
            potentials[index] -= fired  # reset by subtraction keeps the residue: rate ∝ activation
            spikes[:, index] += fired.flatten(1).sum(dim=1)
            synops += (fired * fan_outs[index]).flatten(1).sum(dim=1)
            signal = fired
        current = drive if signal is None else network[-1](signal)
        output = torch.zeros_like(current) if output is None else output
        output += current
    return output, spikes, synops
