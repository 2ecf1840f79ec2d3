"""Reading a trained torch ReLU network as the layer sequence ``spiking.conversion`` converts.

Accepted, in order (nested ``nn.Sequential`` read through): ``Conv2d`` (groups 1, no
dilation) optionally followed by ``BatchNorm2d``, ``Linear``, ``ReLU`` directly after every
synaptic layer (or its batch norm) but the last, ``AvgPool2d`` without padding, ``Flatten``,
and ``Dropout``/``Identity`` (nothing at inference). Batch norm is folded into the
convolution before it: at inference it is the affine map y = γ·(x − μ)/√(σ² + ε) + β per
channel, so W ← W·γ/√(σ² + ε) and b ← (b − μ)·γ/√(σ² + ε) + β give the same activations with
one layer fewer to convert. Anything else is refused with a ``ValueError`` naming it; max
pooling in particular, which has no rate reading (the max of rates is not a rate of spikes).

Pure torch.
"""

from __future__ import annotations

from typing import Iterator, List

import torch
from torch import nn

from spiking.conversion import AvgPool, Conv, Dense, Flatten, Layer, is_synapse


def _leaves(module: nn.Module) -> Iterator[nn.Module]:
    if isinstance(module, nn.Sequential):
        for child in module:
            yield from _leaves(child)
    else:
        yield module


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def fold_batch_norm(conv: Conv, norm: nn.BatchNorm2d) -> Conv:
    """The convolution that computes ``norm(conv(x))`` at inference (running statistics)."""
    scale = norm.weight.detach() / torch.sqrt(norm.running_var + norm.eps)
    weight = conv.weight * scale[:, None, None, None]
    bias = (conv.bias - norm.running_mean) * scale + norm.bias.detach()
    return Conv(weight, bias, conv.stride, conv.padding)


def _conv(module: nn.Conv2d, where: str) -> Conv:
    if module.groups != 1 or _pair(module.dilation) != (1, 1) or isinstance(module.padding, str) \
            or module.padding_mode != "zeros":
        raise ValueError(f"{where}: only plain convolutions convert (groups 1, dilation 1, zero padding given "
                         "as numbers)")
    bias = module.bias.detach() if module.bias is not None else torch.zeros(module.out_channels)
    return Conv(module.weight.detach(), bias, _pair(module.stride), _pair(module.padding))


def layers_of(module: nn.Module) -> List[Layer]:
    """The layer sequence of a ReLU network (``module`` or the ``nn.Sequential`` it nests),
    batch norm folded; ``ValueError`` naming the first module that cannot be converted."""
    layers: List[Layer] = []
    relu_due = False  # a synaptic layer was read and its ReLU not yet
    for index, leaf in enumerate(_leaves(module)):
        where = f"layer {index} ({type(leaf).__name__})"
        if isinstance(leaf, (nn.Dropout, nn.Identity)):
            continue
        if isinstance(leaf, nn.ReLU):
            if not relu_due:
                raise ValueError(f"{where}: a ReLU must follow a Linear or Conv2d layer directly")
            relu_due = False
            continue
        if isinstance(leaf, nn.BatchNorm2d):
            if not (relu_due and layers and isinstance(layers[-1], Conv)):
                raise ValueError(f"{where}: batch norm is folded into the Conv2d directly before it; there is none")
            layers[-1] = fold_batch_norm(layers[-1], leaf)
            continue
        if relu_due:
            raise ValueError(f"{where}: every Linear or Conv2d layer but the last must be followed by a ReLU "
                             "(IF neurons stand for ReLUs; no other activation converts)")
        if isinstance(leaf, nn.MaxPool2d):
            raise ValueError(f"{where}: max pooling does not convert (a max of rates is no spike rate); "
                             "use average pooling")
        if isinstance(leaf, nn.AvgPool2d):
            if _pair(leaf.padding) != (0, 0) or leaf.ceil_mode or leaf.divisor_override is not None:
                raise ValueError(f"{where}: only average pooling without padding, ceil_mode or divisor converts")
            kernel = _pair(leaf.kernel_size)
            layers.append(AvgPool(kernel, _pair(leaf.stride) if leaf.stride else kernel))
        elif isinstance(leaf, nn.Flatten):
            if leaf.start_dim != 1 or leaf.end_dim != -1:
                raise ValueError(f"{where}: only Flatten(1, -1) converts")
            layers.append(Flatten())
        elif isinstance(leaf, nn.Conv2d):
            layers.append(_conv(leaf, where))
            relu_due = True
        elif isinstance(leaf, nn.Linear):
            layers.append(Dense(leaf.weight.detach(), leaf.bias.detach() if leaf.bias is not None
                                else torch.zeros(leaf.out_features)))
            relu_due = True
        else:
            raise ValueError(f"{where}: not a layer conversion knows (Conv2d, BatchNorm2d, ReLU, AvgPool2d, "
                             "Flatten, Linear)")
    if not any(is_synapse(layer) for layer in layers):
        raise ValueError("module: no Linear or Conv2d layer to convert")
    if not relu_due:
        raise ValueError("module: the output layer must be a Linear or Conv2d without a ReLU after it "
                         "(its potential is the prediction)")
    return layers
