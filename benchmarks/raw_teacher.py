"""A user's own teacher code, as ``benchmarks/own_teacher.py`` hands it to tempdistill.

``RawInputTeacher`` wraps a network trained on normalised inputs so that it reads the features
as the user has them: the normalisation is inside it, ``(x - offset) / scale``. ``make`` is the
factory ``teacher.factory: "raw_teacher:make"`` names (importing this module runs it, by design).
"""

from __future__ import annotations

from typing import List

import torch
from torch import nn


class RawInputTeacher(nn.Module):
    """An MLP (Linear/ReLU layers, keys ``net.<i>.*``) behind its own input scaling."""

    def __init__(self, features: int, hidden: List[int], classes: int, offset: float = 0.0, scale: float = 1.0) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        width = features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, classes))
        self.net = nn.Sequential(*layers)
        self.register_buffer("offset", torch.tensor(float(offset)))
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.offset) / self.scale)


def make(features: int = 64, hidden: List[int] = [128, 128], classes: int = 10) -> RawInputTeacher:  # noqa: B006
    """The factory: an untrained ``RawInputTeacher``; its weights and scaling come from the state dict."""
    return RawInputTeacher(features, list(hidden), classes)
