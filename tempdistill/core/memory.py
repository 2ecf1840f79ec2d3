"""Memory a run's networks need, estimated before they are built, against what the machine has.

A width or a batch the machine cannot hold used to surface as a 25.6 GB allocation traceback
from inside PyTorch, after the data was loaded and the teacher trained. Here the need is
estimated from the config alone and refused as one line that names the field and the figure.

The estimate is a floor, not a forecast: it counts float32 parameters (×4 while training: the
weights, their gradients and Adam's two moments) and the activations one training batch keeps
for its backward pass, and nothing else (no allocator slack, no data, no library overhead). So
a refused run could not have run; a run that passes may still fail, and then the failure is
turned into one line too (``allocation_failure``).

The run's peak is the larger of two phases: the teacher training alone, then the teacher held
for its logits while the student trains. How big a network is belongs to its backend: a
backend may offer ``network_size(options, input_dim, num_outputs) -> NetworkSize``; otherwise
the network is read as fully connected layers of ``[input_dim, *hidden, num_outputs]``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

from tempdistill.config import ConfigError

FLOAT_BYTES = 4
TRAINING_COPIES = 4  # weights, gradients, Adam's first and second moments


@dataclass(frozen=True)
class NetworkSize:
    """How big a network is: its parameters, and the floats a training pass keeps per sample
    for the backward pass (a spiking network's grow with its time steps)."""

    parameters: int
    activations_per_sample: int
    activations_over: str = ""  # what else the activations scale with, e.g. "over 25 steps"


@dataclass(frozen=True)
class Part:
    """Bytes one part of a phase needs, and the config field that sizes it."""

    field: str
    what: str
    bytes: int


def fully_connected_size(widths: Sequence[int]) -> NetworkSize:
    """Linear layers between consecutive ``widths``; a pass keeps each layer's pre-activation
    and activation."""
    parameters = sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:]))
    return NetworkSize(parameters, 2 * sum(widths[1:]))


def network_size(backend: Any, options: Any, input_dim: int, num_outputs: int,
                 input_shape: Optional[Tuple[int, ...]] = None) -> NetworkSize:
    """The backend's own estimate where it has one, else fully connected layers of its widths.
    ``input_shape`` (one sample's, when known) is passed on only when given, so a backend's
    ``network_size`` written before image data keeps working."""
    own = getattr(backend, "network_size", None)
    if own is not None:
        if input_shape is not None:
            return own(options, input_dim, num_outputs, input_shape)
        return own(options, input_dim, num_outputs)
    return fully_connected_size([input_dim, *getattr(options, "hidden", []), num_outputs])


def available_bytes(device: str = "cpu") -> Optional[int]:
    """Memory free for a new allocation now: the GPU's free memory for ``cuda``, else the
    kernel's MemAvailable (free plus reclaimable cache), else free physical pages; None where
    the platform says nothing."""
    if device == "cuda":
        import torch

        return int(torch.cuda.mem_get_info()[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def training_parts(size: NetworkSize, role: str, batch_field: str, batch_size: int) -> List[Part]:
    """A network being trained: its parameters with their optimiser state, and one batch's activations."""
    return [
        Part(f"{role}.hidden", f"{role} parameters, gradients and Adam state",
             size.parameters * FLOAT_BYTES * TRAINING_COPIES),
        Part(batch_field, f"{role} activations of a batch of {batch_size} {size.activations_over}".rstrip(),
             size.activations_per_sample * batch_size * FLOAT_BYTES),
    ]


def held_parts(size: NetworkSize, role: str) -> List[Part]:
    """A network only run forward (a teacher giving logits): its parameters."""
    return [Part(f"{role}.hidden", f"{role} parameters", size.parameters * FLOAT_BYTES)]


def gigabytes(count: float) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e8 else f"{count / 1e6:.1f} MB"


def check_fits(phases: Sequence[Sequence[Part]], available: Optional[int], device: str = "cpu") -> None:
    """Refuse, naming the field of the largest part of the largest phase, a run whose peak
    need exceeds ``available`` bytes (nothing is checked where that is unknown)."""
    if available is None or not phases:
        return
    peak = max(phases, key=lambda parts: sum(p.bytes for p in parts))
    need = sum(p.bytes for p in peak)
    if need <= available:
        return
    largest = max(peak, key=lambda p: p.bytes)
    detail = ", ".join(f"{p.what} {gigabytes(p.bytes)}" for p in peak if p.bytes)
    raise ConfigError(f"{largest.field}: the run needs at least {gigabytes(need)} of memory ({detail}) but "
                      f"{gigabytes(available)} is available on this machine's {device}; reduce {largest.field}")


ALLOCATION_MARKERS = ("not enough memory", "DefaultCPUAllocator", "out of memory", "can't allocate memory",
                      "failed to allocate")
_TRIED = re.compile(r"tried to allocate ([0-9.]+) ?(bytes|[KMGT]i?B)", re.IGNORECASE)


def allocation_failure(exc: BaseException) -> Optional[str]:
    """One line for an exception that is a failed allocation (MemoryError, PyTorch's CPU or
    CUDA allocator), else None: a run too big for the machine is the user's sizes, not a bug."""
    if not (isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and
                                              any(m in str(exc) for m in ALLOCATION_MARKERS))):
        return None
    tried = _TRIED.search(str(exc))
    if tried is None:
        what = ""
    elif tried.group(2).lower() == "bytes":
        what = f": tried to allocate {gigabytes(float(tried.group(1)))}"
    else:
        what = f": tried to allocate {tried.group(1)} {tried.group(2)}"
    return f"out of memory{what}; choose smaller widths, batch sizes, steps or episodes"
