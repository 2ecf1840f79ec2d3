"""Dense PyTorch networks: the teacher, and the baseline student every spiking run is read against.

A student is an MLP (``arch: mlp``) or, for image data, a small CNN (``arch: conv``: per entry
of ``channels`` Conv2d → optional BatchNorm2d → ReLU → 2×2 pooling, then the ``hidden`` MLP;
``spiking.conv`` holds the geometry shared with the spiking conv student)."""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Mapping, Optional, Sequence, Tuple, Union

import torch
from pydantic import Field, model_validator
from torch import nn

from backends.cnn import SmallVGG, pooled_size
from spiking.conv import conv_macs, flat_features, pool_layer, stage_maps
from spiking.energy import dense_energy_nj, dense_macs
from spiking.options import SpikingOptions
from tempdistill.config import ConfigError, Strict, refuse_foreign_keys, validate_section
from tempdistill.core.student import Student, StudentOutput
from tempdistill.temperature import tempered_logits


class DenseOptions(Strict):
    backend: Literal["dense"] = "dense"
    hidden: List[int] = Field(default_factory=lambda: [64])
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    activation: Literal["relu", "tanh", "gelu"] = "relu"
    # conv1d (teachers): three strided 1-D convolutions over the features read as one signal,
    # then the ``hidden`` MLP; for data whose features are time steps (MNIST-1D)
    # conv (students): 2-D convolutions over images (data.layout: image), one
    # stage per entry of ``channels`` (a list), then the ``hidden`` MLP
    # cnn (teachers): the small VGG of ``backends.cnn`` over images, two 3×3 convolutions with
    # batch norm per entry of ``channels`` (default [32, 64, 128]), then the ``hidden`` MLP
    arch: Literal["mlp", "conv1d", "conv", "cnn"] = "mlp"
    channels: Union[int, List[int]] = 32  # conv1d: one count; conv/cnn: one per stage
    kernel: int = Field(3, ge=1)
    pool: Literal["avg", "max"] = "avg"
    batch_norm: bool = False

    @model_validator(mode="after")
    def _channels_for_arch(self) -> "DenseOptions":
        if self.arch in ("conv", "cnn"):
            if "channels" not in self.model_fields_set:
                self.channels = [16, 32] if self.arch == "conv" else [32, 64, 128]
            elif isinstance(self.channels, int):
                self.channels = [self.channels]
            if any(c < 1 for c in self.channels):
                raise ValueError("channels: every entry must be an integer >= 1")
        elif isinstance(self.channels, list) or self.channels < 1:
            raise ValueError(f"channels: arch {self.arch!r} takes one integer >= 1, got {self.channels}")
        return self


_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def mlp(input_dim: int, hidden: List[int], output_dim: int, activation: str, dropout: float) -> nn.Sequential:
    layers: List[nn.Module] = []
    width = input_dim
    for h in hidden:
        layers += [nn.Linear(width, h), _ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, output_dim))
    return nn.Sequential(*layers)


class Conv1dNet(nn.Module):
    """Features (B, F) read as a one-channel signal: 3 convolutions (kernel 5, stride 2) and an MLP.

    After the MNIST-1D paper's CNN (Greydanus 2020), whose translation-equivariant filters are
    what separates it from an MLP on that data (published: CNN 94%, MLP 68%)."""

    def __init__(self, input_dim: int, options: DenseOptions, output_dim: int) -> None:
        super().__init__()
        act = _ACTIVATIONS[options.activation]
        c = options.channels
        self.features = nn.Sequential(
            nn.Conv1d(1, c, 5, stride=2, padding=2), act(),
            nn.Conv1d(c, c, 5, stride=2, padding=2), act(),
            nn.Conv1d(c, c, 5, stride=2, padding=2), act(),
            nn.Flatten(),
        )
        length = input_dim
        for _ in range(3):
            length = (length + 1) // 2  # each stride-2 convolution halves the signal, rounding up
        self.head = mlp(c * length, options.hidden, output_dim, options.activation, options.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.unsqueeze(1)))


def conv_features(options: DenseOptions, input_shape: Sequence[int]) -> Tuple[nn.Sequential, int, int]:
    """The convolutional stages of ``arch: conv`` (ending in Flatten), the flattened width they
    give, and their MACs per sample (Cout·Cin·k²·Hout·Wout per convolution)."""
    maps = checked_maps(options, input_shape)
    layers: List[nn.Module] = []
    c_in, macs = int(input_shape[0]), 0
    for c, h, w in maps:
        layers.append(nn.Conv2d(c_in, c, options.kernel, padding=options.kernel // 2))
        if options.batch_norm:
            layers.append(nn.BatchNorm2d(c))
        layers += [_ACTIVATIONS[options.activation](), pool_layer(options.pool)]
        macs += conv_macs(c_in, (c, h, w), options.kernel)
        c_in = c
    layers.append(nn.Flatten())
    return nn.Sequential(*layers), flat_features(maps), macs


def checked_maps(options: Any, input_shape: Optional[Sequence[int]]) -> List[Tuple[int, int, int]]:
    """``spiking.conv.stage_maps`` for a conv student's options, its refusals as ConfigError."""
    try:
        return stage_maps(input_shape, list(options.channels), options.kernel)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


class DenseStudent(Student):
    """An MLP (or a CNN with ``arch: conv``) whose logits are divided by the current temperature.

    ``features`` (conv only) and ``net`` (the MLP head) are named so that a conversion routine
    can walk them; inputs arrive flat (B, C·H·W) or as images (B, C, H, W)."""

    def __init__(self, options: DenseOptions, input_dim: int, num_classes: int,
                 input_shape: Optional[Tuple[int, ...]] = None) -> None:
        super().__init__()
        self.options = options
        self.features: Optional[nn.Sequential] = None
        conv_ops = 0
        if options.arch == "conv":
            self.features, input_dim, conv_ops = conv_features(options, input_shape)
            self.image_shape = tuple(int(d) for d in input_shape or ())
        self.net = mlp(input_dim, options.hidden, num_classes, options.activation, options.dropout)
        self.macs = conv_ops + dense_macs([input_dim, *options.hidden, num_classes])
        self._measured: Optional[Dict[str, torch.Tensor]] = None

    def feature_layers(self) -> Dict[str, nn.Module]:
        """Modules whose forward output is a layer's feature, for forward hooks: ``conv{i}`` the
        stage's post-activation map (B, C, H, W) before pooling, ``hidden{i}`` a hidden layer's
        post-activation (B, width). The activation modules themselves: no cost unless hooked."""
        taps: Dict[str, nn.Module] = {}
        if self.features is not None:
            acts = [m for m in self.features if isinstance(m, tuple(_ACTIVATIONS.values()))]
            taps.update({f"conv{i}": m for i, m in enumerate(acts)})
        acts = [m for m in self.net if isinstance(m, tuple(_ACTIVATIONS.values()))]
        taps.update({f"hidden{i}": m for i, m in enumerate(acts)})
        return taps

    def forward(self, x: torch.Tensor) -> StudentOutput:
        # The T = 1 logits are the network's own output: no round trip through tempered × T,
        # which for a dense student would only add rounding and two operations per step.
        if self.features is not None:
            x = self.features(x.reshape(x.shape[0], *self.image_shape))
        elif x.dim() > 2:
            x = x.flatten(1)  # images (B, C, H, W) read as the flat vector an MLP takes
        logits = self.net(x)
        # logits / T; centred first where T varies by class (tempdistill.temperature).
        return StudentOutput(tempered_logits(logits, self.temperature, check=False), logits, self.measured)

    @property
    def measured(self) -> Dict[str, torch.Tensor]:
        """Multiply-accumulates per sample and their energy estimate (45 nm, 4.6 pJ/MAC);
        constants of the architecture, built once."""
        if self._measured is None:
            macs = torch.tensor(float(self.macs))
            self._measured = {"macs_per_sample": macs, "energy_nj_per_sample": dense_energy_nj(macs)}
        return self._measured

    def describe(self) -> dict:
        o = self.options
        facts = {"kind": "dense", "hidden": list(o.hidden), "activation": o.activation}
        if o.arch == "conv":
            facts.update(arch="conv", channels=list(o.channels), kernel=o.kernel, pool=o.pool, batch_norm=o.batch_norm)
        return facts


class DenseBackend:
    name = "dense"

    def validate(self, options: Mapping[str, Any], path: str) -> DenseOptions:
        refuse_foreign_keys(options, DenseOptions, SpikingOptions.model_fields, path, "spiking backends (snntorch, norse)")
        validated = validate_section(DenseOptions, options, path)
        if path == "student" and validated.arch in ("conv1d", "cnn"):
            raise ConfigError(f"student.arch: {validated.arch!r} is for teachers; a dense student is an MLP or, on "
                              "images, a CNN (allowed: 'mlp', 'conv')")
        if path == "teacher" and validated.arch == "conv":
            raise ConfigError("teacher.arch: 'conv' is for students here; allowed for teachers: 'mlp', 'conv1d', 'cnn'")
        return validated

    def check_input_shape(self, options: DenseOptions, input_shape: Optional[Tuple[int, ...]]) -> None:
        """Refuse, before anything is built, a conv network for data it cannot read."""
        if options.arch == "conv":
            checked_maps(options, input_shape)

    def build_student(self, options: DenseOptions, input_dim: int, num_classes: int,
                      input_shape: Optional[Tuple[int, ...]] = None) -> DenseStudent:
        return DenseStudent(options, input_dim, num_classes, input_shape)

    def build_teacher(self, options: DenseOptions, input_dim: int, num_classes: int,
                      input_shape: Optional[Tuple[int, ...]] = None) -> nn.Module:
        if options.arch == "conv1d":
            return Conv1dNet(input_dim, options, num_classes)
        if options.arch == "cnn":
            if input_shape is None or len(input_shape) != 3:
                raise ConfigError("teacher.arch: 'cnn' reads images (C, H, W); set data.layout: image (digits, "
                                  "fashion_mnist, or a .npz whose X is (n, C, H, W))")
            if min(pooled_size(input_shape, len(options.channels))) < 1:
                raise ConfigError(f"teacher.channels: {len(options.channels)} stages of 2x2 pooling need images of at "
                                  f"least {2 ** len(options.channels)}x{2 ** len(options.channels)} pixels; the data's "
                                  f"are {input_shape[1]}x{input_shape[2]}: use fewer entries")
            return SmallVGG(input_shape, list(options.channels), options.hidden, num_classes, options.dropout)
        return mlp(input_dim, options.hidden, num_classes, options.activation, options.dropout)
