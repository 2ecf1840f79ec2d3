"""Dense PyTorch MLPs: the teacher, and the baseline student every spiking run is read against."""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Mapping

import torch
from pydantic import Field
from torch import nn

from spiking.energy import dense_energy_nj, dense_macs
from tempdistill.config import Strict, validate_section
from tempdistill.student import Student, StudentOutput


class DenseOptions(Strict):
    backend: Literal["dense"] = "dense"
    hidden: List[int] = Field(default_factory=lambda: [64])
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    activation: Literal["relu", "tanh", "gelu"] = "relu"


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


class DenseStudent(Student):
    """An MLP whose logits are divided by the current temperature."""

    def __init__(self, options: DenseOptions, input_dim: int, num_classes: int) -> None:
        super().__init__()
        self.options = options
        self.net = mlp(input_dim, options.hidden, num_classes, options.activation, options.dropout)
        self.macs = dense_macs([input_dim, *options.hidden, num_classes])

    def forward(self, x: torch.Tensor) -> StudentOutput:
        logits = self.net(x)
        temperature = self.temperature
        if isinstance(temperature, torch.Tensor):
            temperature = temperature.to(logits.device, logits.dtype)
        return self.output(logits / temperature, self.measured)

    @property
    def measured(self) -> Dict[str, torch.Tensor]:
        """Multiply-accumulates per sample and their energy estimate (45 nm, 4.6 pJ/MAC)."""
        macs = torch.tensor(float(self.macs))
        return {"macs_per_sample": macs, "energy_nj_per_sample": dense_energy_nj(macs)}

    def describe(self) -> dict:
        return {"kind": "dense", "hidden": list(self.options.hidden), "activation": self.options.activation}


class DenseBackend:
    name = "dense"

    def validate(self, options: Mapping[str, Any], path: str) -> DenseOptions:
        return validate_section(DenseOptions, options, path)

    def build_student(self, options: DenseOptions, input_dim: int, num_classes: int) -> DenseStudent:
        return DenseStudent(options, input_dim, num_classes)

    def build_teacher(self, options: DenseOptions, input_dim: int, num_classes: int) -> nn.Module:
        return mlp(input_dim, options.hidden, num_classes, options.activation, options.dropout)
