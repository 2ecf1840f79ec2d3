"""How many synaptic targets each neuron of a layer reaches: its fan-out.

Synaptic operations count one accumulate per target a spike reaches, so a spike costs its
neuron's fan-out. For a fully connected layer that is the next layer's width; for a
convolutional neuron it depends on where it sits (a border neuron feeds fewer positions of a
padded convolution, a row dropped by pooling feeds none) and on the pooling between it and
the next layer. Rather than derive that per architecture, it is measured once: with every
weight one and every pooling a sum, the next operation ``read`` is linear with unit paths, so
∂Σ read(x)/∂x_i is exactly the number of (output channel, position) targets x_i reaches.

Pure torch.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F


def fan_out(read: Callable[[torch.Tensor], torch.Tensor], shape: Sequence[int]) -> torch.Tensor:
    """Targets per neuron, shape ``shape`` (float64, whole numbers), of the linear map ``read``
    (batch first) with weights one and pooling as sums (``ones_conv2d``, ``ones_linear``,
    ``sum_pool2d``)."""
    x = torch.zeros(1, *shape, dtype=torch.float64, requires_grad=True)
    with torch.enable_grad():
        read(x).sum().backward()
    return x.grad[0]


def ones_linear(h: torch.Tensor, out_features: int) -> torch.Tensor:
    """A fully connected layer of ``out_features`` with weights one: h (B, F) → (B, out)."""
    return h.flatten(1).sum(dim=1, keepdim=True).expand(-1, out_features)


def ones_conv2d(h: torch.Tensor, weight_shape: Sequence[int], stride: Sequence[int],
                padding: Sequence[int]) -> torch.Tensor:
    """A convolution of ``weight_shape`` (out, in, kh, kw) with weights one: (B, C, H, W) in."""
    return F.conv2d(h, torch.ones(*weight_shape, dtype=h.dtype), None, tuple(stride), tuple(padding))


def sum_pool2d(h: torch.Tensor, kernel: Sequence[int], stride: Sequence[int]) -> torch.Tensor:
    """Pooling that adds its window (average pooling without the division)."""
    return F.avg_pool2d(h, tuple(kernel), tuple(stride), divisor_override=1)
