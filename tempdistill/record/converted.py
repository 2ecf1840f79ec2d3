"""The integrate-and-fire network of a converted run (``tempdistill convert``), read from its
file, run for predictions and written as NIR.

From format version 5 a converted run keeps its balanced network in ``/student``: the
synapses' arrays and, in the ``describe`` attribute, ``kind: converted``, the step count and
the layer list (``spiking.conversion_graph``). Files of earlier versions recorded figures only;
their network is made again by converting the source run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

import nir
import torch

from spiking.conversion import MAX_STEPS, Layer, simulate
from spiking.conversion_graph import converted_graph, layers_of_graph, network_from_arrays
from tempdistill.config import ConfigError
from tempdistill.record.checks import fail, quoted

KIND = "converted"  # ``describe["kind"]`` of a converted network, in its run file and its exports


def is_conversion(run: Any) -> bool:
    """Whether a run (``Run``) was written by ``tempdistill convert``."""
    return (run.config.get("conversion") or {}).get("source") is not None


def is_converted_description(describe: Dict[str, Any]) -> bool:
    return describe.get("kind") == KIND


def converted_network(run: Any) -> Tuple[List[Layer], Dict[str, Any]]:
    """The run's balanced layers and its ``describe`` (steps, neuron, reset, layer list)."""
    source = run.config["conversion"]["source"]
    if not run.student_arrays or "describe" not in run.student_attrs:
        raise ConfigError(f"RUN: {run.path} is a conversion of {source} written before converted runs kept their "
                          "network (format version 5); run tempdistill convert on that run again to export it")
    describe = json.loads(run.student_attrs["describe"])
    steps_of(describe, run.path, "/student describe")
    try:
        layers = network_from_arrays(describe.get("layers"), run.student_arrays)
    except ValueError as exc:
        raise fail(run.path, "/student", str(exc)) from None
    return layers, describe


def steps_of(describe: Dict[str, Any], path: str | Path, where: str) -> int:
    """The recorded step count, checked: it sizes the simulation."""
    steps = describe.get("steps")
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= MAX_STEPS:
        raise fail(path, f"{where} steps", f"expected an integer from 1 to {MAX_STEPS}, got {quoted(steps)}")
    return steps


def converted_forward(layers: Sequence[Layer], input_shape: Sequence[int], steps: int
                      ) -> Callable[[torch.Tensor], torch.Tensor]:
    """Rows (B, F) of normalised inputs -> the output layer's accumulated potential (B, K),
    the simulation ``convert`` scored (its argmax, ties broken fairly, is the prediction)."""
    shape = tuple(int(d) for d in input_shape)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return simulate(layers, x.reshape(x.shape[0], *shape), steps)[0]

    return forward


def write_converted_nir(layers: Sequence[Layer], facts: Dict[str, Any], out: Path) -> Path:
    """The network as a NIR chain (``spiking.conversion_graph``) with ``facts`` as the graph's
    ``tempdistill`` metadata, as every export of this project carries them."""
    neurons = {"reset": "subtract", "steps": str(facts["describe"]["steps"])}
    graph = converted_graph(layers, facts["input_shape"], neurons)
    graph.metadata = {"tempdistill": json.dumps(facts)}
    nir.write(out, graph)
    return out


def graph_forward(path: Path, graph: nir.NIRGraph, facts: Dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A converted network's NIR file as a forward, read back through ``layers_of_graph`` and
    checked against the recorded input shape and number of classes."""
    steps = steps_of(facts["describe"], path, "metadata describe")
    try:
        layers, input_shape = layers_of_graph(graph)
        forward = converted_forward(layers, input_shape, steps)
        out = forward(torch.zeros(1, facts["input_dim"]))
    except (ValueError, RuntimeError) as exc:  # a node out of place, shapes that do not chain
        raise fail(path, "graph", f"not a converted network this version runs ({quoted(str(exc), 120)})") from None
    if tuple(out.shape) != (1, facts["num_classes"]):
        raise fail(path, "graph", f"gives {tuple(out.shape)[1:]} outputs per row, expected ({facts['num_classes']},)")
    return forward
