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

from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from spiking.fanout import fan_out, ones_conv2d, ones_linear, sum_pool2d

Shape = Tuple[int, int, int]
POOLS = ("avg", "max")


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
            raise ValueError(f"student.channels: {len(channels)} stages of 2×2 pooling shrink a "
                             f"{input_shape[1]}×{input_shape[2]} image to nothing at stage {i} ({h}×{w} "
                             f"pooled); use at most {i} entries or larger images")
        maps.append((int(c), h, w))
        h, w = h // 2, w // 2
    return maps


def pooled(shape: Shape) -> Shape:
    """A map's shape after 2×2 pooling (odd rows/columns are dropped, as ``nn.AvgPool2d(2)``)."""
    c, h, w = shape
    return c, h // 2, w // 2


def flat_features(maps: Sequence[Shape]) -> int:
    """Width of the head's input: the last stage's pooled map, flattened."""
    c, h, w = pooled(maps[-1])
    return c * h * w


def conv_macs(c_in: int, shape: Shape, kernel: int) -> int:
    """Multiply-accumulates of one convolution producing ``shape`` = (Cout, Hout, Wout):
    Cout·Cin·k²·Hout·Wout (padding positions counted as MACs, as is customary)."""
    c_out, h, w = shape
    return c_out * c_in * kernel * kernel * h * w


def pool2d(x: torch.Tensor, kind: str) -> torch.Tensor:
    """2×2 pooling of (N, C, H, W) maps; of spikes it is exact in any float type (a mean of 4
    zeros and ones, or their maximum)."""
    return F.avg_pool2d(x, 2) if kind == "avg" else F.max_pool2d(x, 2)


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
