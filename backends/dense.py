"""Dense PyTorch MLPs: the teacher, and the baseline student every spiking run is read against."""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Mapping, Optional

import torch
from pydantic import Field
from torch import nn

from spiking.energy import dense_energy_nj, dense_macs
from spiking.options import SpikingOptions
from tempdistill.config import ConfigError, Strict, refuse_foreign_keys, validate_section
from tempdistill.core.student import Student, StudentOutput


class DenseOptions(Strict):
    backend: Literal["dense"] = "dense"
    hidden: List[int] = Field(default_factory=lambda: [64])
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    activation: Literal["relu", "tanh", "gelu"] = "relu"
    # conv1d (teachers): three strided 1-D convolutions over the features read as one signal,
    # then the ``hidden`` MLP; for data whose features are time steps (MNIST-1D)
    arch: Literal["mlp", "conv1d"] = "mlp"
    channels: int = Field(32, ge=1)


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


class DenseStudent(Student):
    """An MLP whose logits are divided by the current temperature."""

    def __init__(self, options: DenseOptions, input_dim: int, num_classes: int) -> None:
        super().__init__()
        self.options = options
        self.net = mlp(input_dim, options.hidden, num_classes, options.activation, options.dropout)
        self.macs = dense_macs([input_dim, *options.hidden, num_classes])
        self._measured: Optional[Dict[str, torch.Tensor]] = None

    def forward(self, x: torch.Tensor) -> StudentOutput:
        # The T = 1 logits are the network's own output: no round trip through tempered × T,
        # which for a dense student would only add rounding and two operations per step.
        logits = self.net(x)
        temperature = self.temperature
        if isinstance(temperature, torch.Tensor):
            temperature = temperature.to(logits.device, logits.dtype)
        return StudentOutput(logits / temperature, logits, self.measured)

    @property
    def measured(self) -> Dict[str, torch.Tensor]:
        """Multiply-accumulates per sample and their energy estimate (45 nm, 4.6 pJ/MAC);
        constants of the architecture, built once."""
        if self._measured is None:
            macs = torch.tensor(float(self.macs))
            self._measured = {"macs_per_sample": macs, "energy_nj_per_sample": dense_energy_nj(macs)}
        return self._measured

    def describe(self) -> dict:
        return {"kind": "dense", "hidden": list(self.options.hidden), "activation": self.options.activation}


class DenseBackend:
    name = "dense"

    def validate(self, options: Mapping[str, Any], path: str) -> DenseOptions:
        refuse_foreign_keys(options, DenseOptions, SpikingOptions.model_fields, path, "spiking backends (snntorch, norse)")
        validated = validate_section(DenseOptions, options, path)
        if path == "student" and validated.arch != "mlp":
            raise ConfigError(f"student.arch: {validated.arch!r} is for teachers; a dense student is an MLP "
                              "(allowed: 'mlp'), the baseline a spiking student of the same widths is read against")
        return validated

    def build_student(self, options: DenseOptions, input_dim: int, num_classes: int) -> DenseStudent:
        return DenseStudent(options, input_dim, num_classes)

    def build_teacher(self, options: DenseOptions, input_dim: int, num_classes: int) -> nn.Module:
        if options.arch == "conv1d":
            return Conv1dNet(input_dim, options, num_classes)
        return mlp(input_dim, options.hidden, num_classes, options.activation, options.dropout)
