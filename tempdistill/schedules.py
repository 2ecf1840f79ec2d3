"""Temperature schedules: objects that say what T the next optimisation step uses.

A schedule sees (step, epoch) and the totals, plus optional signals from the loop (the
measured teacher-student KL, losses), so KL-driven or learned temperatures fit the same
call. Schedules are found by name in a registry; each validates its own parameters.
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Iterable, Mapping, Optional, Type

import torch
from pydantic import Field

from tempdistill.config import ConfigError, Strict, TemperatureConfig, validate_section
from tempdistill.temperature import Temperature


class Schedule:
    """Base class. Subclasses set ``name`` and ``Params`` and implement ``temperature``."""

    name: ClassVar[str]
    Params: ClassVar[Type[Strict]]

    def __init__(self, params: Strict, total_epochs: int, steps_per_epoch: int) -> None:
        self.params = params
        self.total_epochs = total_epochs
        self.steps_per_epoch = steps_per_epoch

    @property
    def total_steps(self) -> int:
        return self.total_epochs * self.steps_per_epoch

    def temperature(self, step: int, epoch: int, signals: Optional[Mapping[str, float]] = None) -> Temperature:
        raise NotImplementedError

    def __call__(self, step: int, epoch: int, signals: Optional[Mapping[str, float]] = None) -> Temperature:
        return self.temperature(step, epoch, signals)

    def alpha(self, epoch: int, default: float) -> float:
        """The KD weight for this epoch; schedules with phases override it."""
        return default

    def parameters(self) -> Iterable[torch.nn.Parameter]:
        """Trainable parameters (learned temperatures); none for fixed schedules."""
        return ()


class ConstantParams(Strict):
    schedule: str = "constant"
    value: float = Field(4.0, gt=0.0, allow_inf_nan=False)


class Constant(Schedule):
    """The same T at every step: the reference every other schedule is compared with."""

    name = "constant"
    Params = ConstantParams

    def temperature(self, step: int, epoch: int, signals: Optional[Mapping[str, float]] = None) -> Temperature:
        return self.params.value


_REGISTRY: Dict[str, Type[Schedule]] = {}


def register_schedule(cls: Type[Schedule]) -> Type[Schedule]:
    _REGISTRY[cls.name] = cls
    return cls


for _cls in (Constant,):
    register_schedule(_cls)


def known_schedules() -> list[str]:
    return sorted(_REGISTRY)


def build_schedule(section: TemperatureConfig, total_epochs: int, steps_per_epoch: int) -> Schedule:
    """The schedule a ``distill.temperature`` section names, with validated parameters."""
    name = section.schedule
    if name not in _REGISTRY:
        raise ConfigError(
            f"distill.temperature.schedule: unknown schedule {name!r}; known: {', '.join(known_schedules())}"
        )
    cls = _REGISTRY[name]
    raw: Dict[str, Any] = section.model_dump()
    params = validate_section(cls.Params, raw, "distill.temperature")
    return cls(params, total_epochs, steps_per_epoch)
