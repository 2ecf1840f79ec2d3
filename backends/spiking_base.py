"""What the two spiking backends share as backends: options validation, construction, no teacher.

Each library's module supplies only its options model, its student class and its exporter.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, Optional, Tuple, Type

from torch import nn

from backends.dense import DenseOptions
from tempdistill.config import ConfigError, Strict, refuse_foreign_keys, validate_section
from tempdistill.core.memory import NetworkSize, fully_connected_size
from tempdistill.core.student import Student


class SpikingBackend:
    name: ClassVar[str]
    Options: ClassVar[Type[Strict]]
    StudentClass: ClassVar[Type[Student]]

    def validate(self, options: Mapping[str, Any], path: str) -> Any:
        refuse_foreign_keys(options, self.Options, DenseOptions.model_fields, path, "the dense backend")
        return validate_section(self.Options, options, path)

    def network_size(self, options: Any, input_dim: int, num_classes: int) -> NetworkSize:
        """A training pass keeps, per time step, each layer's input current, membrane and
        spikes (steps × batch × widths), and the encoded input: memory grows with the steps."""
        widths = [input_dim, *options.hidden, num_classes]
        per_step = input_dim + 3 * sum(widths[1:])
        return NetworkSize(fully_connected_size(widths).parameters, options.steps * per_step,
                           f"over {options.steps} steps (student.steps)")

    def build_student(self, options: Any, input_dim: int, num_classes: int,
                      input_shape: Optional[Tuple[int, ...]] = None) -> Student:
        return self.StudentClass(options, input_dim, num_classes, input_shape)

    def build_teacher(self, options: Any, input_dim: int, num_classes: int,
                      input_shape: Optional[Tuple[int, ...]] = None) -> nn.Module:
        raise ConfigError(f"teacher.backend: spiking teachers are not supported ({self.name!r} is a student backend); use 'dense'")
