"""What the two spiking backends share as backends: options validation, construction, no teacher.

Each library's module supplies only its options model, its student class and its exporter.
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Mapping, Optional, Tuple, Type

from torch import nn

from backends.dense import DenseOptions, checked_maps
from spiking.conv import flat_features
from tempdistill.config import ConfigError, Strict, refuse_foreign_keys, validate_section
from tempdistill.core.memory import NetworkSize, fully_connected_size
from tempdistill.core.student import Student


def write_conv_nir(student: Any, path: str, metadata: Optional[Dict[str, str]] = None) -> Any:
    """A spiking conv student as NIR (``spiking.nir_conv``, the same for every spiking backend:
    neither library's exporter writes the whole chain), written to ``path``."""
    import nir

    from spiking.nir_conv import conv_student_graph

    try:
        graph = conv_student_graph(student, {"reset": student.options.reset, "steps": str(student.options.steps)})
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    graph.metadata = {**(graph.metadata or {}), **(metadata or {})}
    nir.write(path, graph)
    return graph


class SpikingBackend:
    name: ClassVar[str]
    Options: ClassVar[Type[Strict]]
    StudentClass: ClassVar[Type[Student]]

    def validate(self, options: Mapping[str, Any], path: str) -> Any:
        refuse_foreign_keys(options, self.Options, DenseOptions.model_fields, path, "the dense backend")
        return validate_section(self.Options, options, path)

    def network_size(self, options: Any, input_dim: int, num_classes: int,
                     input_shape: Optional[Tuple[int, ...]] = None) -> NetworkSize:
        """A training pass keeps, per time step, each layer's input current, membrane and
        spikes (steps × batch × widths), and the encoded input: memory grows with the steps.
        A conv student's stages hold C·H·W neurons each, and their pooled spikes; before the
        images' shape is known (planning) only its head is sized, a floor."""
        head_input, conv_per_step, conv_parameters = input_dim, 0, 0
        if getattr(options, "arch", "mlp") == "conv" and input_shape is not None and len(input_shape) == 3:
            maps = checked_maps(options, input_shape)
            c_in = int(input_shape[0])
            for c, h, w in maps:
                conv_parameters += c * (c_in * options.kernel ** 2 + 1)
                conv_per_step += 3 * c * h * w + c * (h // 2) * (w // 2)
                c_in = c
            head_input = flat_features(maps)
        widths = [head_input, *options.hidden, num_classes]
        per_step = input_dim + conv_per_step + 3 * sum(widths[1:])
        return NetworkSize(fully_connected_size(widths).parameters + conv_parameters, options.steps * per_step,
                           f"over {options.steps} steps (student.steps)")

    def check_input_shape(self, options: Any, input_shape: Optional[Tuple[int, ...]]) -> None:
        """Refuse, before anything is built, a conv student for data it cannot read."""
        if options.arch == "conv":
            checked_maps(options, input_shape)

    def build_student(self, options: Any, input_dim: int, num_classes: int,
                      input_shape: Optional[Tuple[int, ...]] = None) -> Student:
        if options.arch == "conv":
            checked_maps(options, input_shape)  # one line naming the field, not a ValueError
        return self.StudentClass(options, input_dim, num_classes, input_shape)

    def build_teacher(self, options: Any, input_dim: int, num_classes: int,
                      input_shape: Optional[Tuple[int, ...]] = None) -> nn.Module:
        raise ConfigError(f"teacher.backend: spiking teachers are not supported ({self.name!r} is a student backend); use 'dense'")
