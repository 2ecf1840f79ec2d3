"""A converted network (``spiking.conversion``) kept and carried: as named arrays with a layer
list (how a run file stores it), and as a NIR graph (how it leaves for other tools and
neuromorphic hardware), each read back into the same layers.

The NIR chain: for each synaptic layer, the linear layers before it (``nir.AvgPool2d``,
``nir.Flatten``), the synapse (``nir.Conv2d`` with its input size, or ``nir.Affine``), then
``nir.IF`` neurons of the synapse's output shape with threshold 1 and r = 1, as every export of
this project writes IF neurons (one step adds the current); the last synapse feeds ``nir.I``,
the integrator that accumulates the output potential without firing, whose argmax is the
prediction. Reset by subtraction is written in each IF node's metadata (NIR knows only reset to
a value). The input is a constant current, the same (C, H, W) or (F,) sample at every step.

Norse 1.1's NIR importer has no mapping for ``nir.I``; ``layers_of_graph`` reads the chain back
and ``simulate`` runs it, so the file reproduces the converted run's predictions exactly.
Reading a graph or arrays runs nothing from them: a node of any other kind, or out of order,
raises ``ValueError`` naming it.

Pure torch, numpy and ``nir``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import nir
import numpy as np
import torch

from spiking.conversion import AvgPool, Conv, Dense, Flatten, Layer, is_synapse, stages
from spiking.nir_graph import flatten_node, metadata_text

KINDS = ("dense", "conv", "avg_pool", "flatten")


def network_arrays(layers: Sequence[Layer]) -> Tuple[List[Dict[str, Any]], Dict[str, np.ndarray]]:
    """The layer list (one JSON-able dict per layer) and the synapses' arrays, named
    ``'<index>/weight'`` and ``'<index>/bias'``."""
    spec: List[Dict[str, Any]] = []
    arrays: Dict[str, np.ndarray] = {}
    for index, layer in enumerate(layers):
        if isinstance(layer, Dense):
            spec.append({"kind": "dense"})
        elif isinstance(layer, Conv):
            spec.append({"kind": "conv", "stride": list(layer.stride), "padding": list(layer.padding)})
        elif isinstance(layer, AvgPool):
            spec.append({"kind": "avg_pool", "kernel": list(layer.kernel), "stride": list(layer.stride)})
        else:
            spec.append({"kind": "flatten"})
        if is_synapse(layer):
            arrays[f"{index}/weight"] = layer.weight.detach().cpu().numpy().astype(np.float32)
            arrays[f"{index}/bias"] = layer.bias.detach().cpu().numpy().astype(np.float32)
    return spec, arrays


def network_from_arrays(spec: Any, arrays: Dict[str, Any]) -> List[Layer]:
    """The layers ``network_arrays`` described; ``ValueError`` naming the first entry that is
    not one it writes (a kind, a pair of sizes, a missing or non-numeric array)."""
    if not isinstance(spec, list) or not spec:
        raise ValueError("layers: expected a non-empty list of layers")
    layers: List[Layer] = []
    for index, entry in enumerate(spec):
        where = f"layers[{index}]"
        kind = entry.get("kind") if isinstance(entry, dict) else None
        if kind not in KINDS:
            raise ValueError(f"{where} kind: got {str(kind)[:40]!r}; allowed: {', '.join(KINDS)}")
        if kind == "avg_pool":
            kernel = _two(entry.get("kernel"), f"{where} kernel")
            stride = _two(entry.get("stride"), f"{where} stride")
            if min(kernel + stride) < 1:
                raise ValueError(f"{where}: pooling kernel and stride must be >= 1")
            layers.append(AvgPool(kernel, stride))
            continue
        if kind == "flatten":
            layers.append(Flatten())
            continue
        weight, bias = (_tensor(arrays, f"{index}/{name}") for name in ("weight", "bias"))
        rank = 2 if kind == "dense" else 4
        if weight.ndim != rank or bias.shape != (weight.shape[0],):
            raise ValueError(f"{index}/weight: a {kind} layer needs a weight of rank {rank} and one bias per output, "
                             f"got {tuple(weight.shape)} and {tuple(bias.shape)}")
        if kind == "dense":
            layers.append(Dense(weight, bias))
        else:
            layers.append(Conv(weight, bias, _two(entry.get("stride"), f"{where} stride"),
                               _two(entry.get("padding"), f"{where} padding")))
    stages(layers)  # a synapse last, at least one of them
    return layers


def _tensor(arrays: Dict[str, Any], name: str) -> torch.Tensor:
    """Array ``'<index>/<leaf>'``, named so or nested (``{'<index>': {'<leaf>': ...}}``, as a run file reads back)."""
    index, _, leaf = name.partition("/")
    group = arrays.get(index)
    value = group.get(leaf) if isinstance(group, dict) else arrays.get(name)
    if value is None:
        raise ValueError(f"{name}: missing")
    return _as_tensor(value, name)


def converted_graph(layers: Sequence[Layer], input_shape: Sequence[int], metadata: Dict[str, str]) -> nir.NIRGraph:
    """The converted network as a NIR chain graph (the module docstring), neuron nodes
    carrying ``metadata``; the graph's own metadata is the caller's to add."""
    shape = tuple(int(d) for d in input_shape)
    sample = torch.zeros(1, *shape)
    last = max(i for i, layer in enumerate(layers) if is_synapse(layer))
    nodes: List[Tuple[str, nir.NIRNode]] = []
    for index, layer in enumerate(layers):
        if isinstance(layer, AvgPool):
            node: nir.NIRNode = nir.AvgPool2d(kernel_size=np.array(layer.kernel), stride=np.array(layer.stride),
                                              padding=np.array([0, 0]))
        elif isinstance(layer, Flatten):
            node = flatten_node(sample.shape[1:])
        elif isinstance(layer, Conv):
            node = nir.Conv2d(input_shape=tuple(sample.shape[-2:]), weight=_numpy(layer.weight),
                              stride=layer.stride, padding=layer.padding, dilation=1, groups=1, bias=_numpy(layer.bias))
        else:
            node = nir.Affine(weight=_numpy(layer.weight), bias=_numpy(layer.bias))
        nodes.append((f"layer{index}", node))
        sample = layer(sample)
        if is_synapse(layer):
            ones = np.ones(tuple(sample.shape[1:]), dtype=np.float32)
            nodes.append((f"layer{index}_neurons", nir.I(r=ones) if index == last else
                          nir.IF(r=ones, v_threshold=ones, v_reset=np.zeros_like(ones))))
    named = [("input", nir.Input(input_type=np.array(shape))), *nodes,
             ("output", nir.Output(output_type=np.array([int(sample.shape[-1])])))]
    for _, node in nodes:
        if isinstance(node, nir.IF):
            node.metadata = {**(node.metadata or {}), **metadata}
    return nir.NIRGraph(nodes=dict(named), edges=[(a, b) for (a, _), (b, _) in zip(named[:-1], named[1:])])


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float32)


def layers_of_graph(graph: nir.NIRGraph) -> Tuple[List[Layer], Tuple[int, ...]]:
    """The layers and one sample's input shape of a graph ``converted_graph`` wrote; a graph
    that is not such a chain (another node kind, a neuron that is not an IF at threshold 1
    resetting by subtraction, no integrator at the end) raises ``ValueError`` naming the node."""
    following = {}
    for src, dst in graph.edges:
        if src in following:
            raise ValueError(f"node {src!r}: more than one edge leaves it; a converted network is a chain")
        following[src] = dst
    if "input" not in graph.nodes or not isinstance(graph.nodes["input"], nir.Input):
        raise ValueError("node 'input': missing")
    input_shape = tuple(int(d) for d in np.asarray(next(iter(graph.nodes["input"].input_type.values()))).reshape(-1))
    layers: List[Layer] = []
    name, synapse_due, finished = following.get("input"), None, False
    for _ in range(len(graph.nodes)):
        if name is None or name not in graph.nodes:
            raise ValueError(f"node {name!r}: the chain breaks off before an output")
        node = graph.nodes[name]
        if isinstance(node, nir.Output):
            if not finished:
                raise ValueError("node 'output': reached before an nir.I integrator")
            stages(layers)
            return layers, input_shape
        if finished:
            raise ValueError(f"node {name!r}: after the integrator only the output may follow")
        if synapse_due is not None:  # a synapse was read: its neurons come next
            if isinstance(node, nir.I):
                finished = True
            elif not (isinstance(node, nir.IF) and _is_unit_if(node)):
                raise ValueError(f"node {name!r}: expected IF neurons at threshold 1 (r 1, reset by subtraction) or "
                                 f"an nir.I after a synapse, got {type(node).__name__}")
            synapse_due = None
        elif isinstance(node, nir.Affine):
            layers.append(Dense(_as_tensor(node.weight, f"{name} weight"), _as_tensor(node.bias, f"{name} bias")))
            synapse_due = name
        elif isinstance(node, nir.Conv2d):
            if (int(np.asarray(node.groups)) != 1 or np.any(np.asarray(node.dilation) != 1)
                    or isinstance(node.padding, str)):
                raise ValueError(f"node {name!r}: only plain convolutions (groups 1, dilation 1, padding in numbers)")
            layers.append(Conv(_as_tensor(node.weight, f"{name} weight"), _as_tensor(node.bias, f"{name} bias"),
                               _two(node.stride, f"{name} stride"), _two(node.padding, f"{name} padding")))
            synapse_due = name
        elif isinstance(node, nir.AvgPool2d):
            if np.any(np.asarray(node.padding) != 0):
                raise ValueError(f"node {name!r}: average pooling with padding does not convert")
            layers.append(AvgPool(_two(node.kernel_size, f"{name} kernel"), _two(node.stride, f"{name} stride")))
        elif isinstance(node, nir.Flatten):
            layers.append(Flatten())
        else:
            raise ValueError(f"node {name!r}: {type(node).__name__} is not part of a converted network")
        name = following.get(name)
    raise ValueError("graph: the chain does not reach 'output'")


def _is_unit_if(node: nir.IF) -> bool:
    reset = metadata_text((node.metadata or {}).get("reset", "subtract"))
    return (reset == "subtract" and np.all(np.asarray(node.v_threshold) == 1.0) and np.all(np.asarray(node.r) == 1.0))


def _as_tensor(value: Any, name: str) -> torch.Tensor:
    array = np.asarray(value)
    if array.dtype.kind not in "iuf" or not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: expected finite numbers, got dtype {array.dtype}")
    return torch.as_tensor(array, dtype=torch.float32)


def _two(value: Any, where: str) -> Tuple[int, int]:
    """Sizes from a file (the stored layer list or a NIR node): one or two whole numbers from 0
    to 1024, as (height, width)."""
    array = np.asarray(value if value is not None else []).reshape(-1)
    if array.size == 1:
        array = np.repeat(array, 2)
    if (array.size != 2 or array.dtype.kind not in "iuf" or not np.all(array == np.round(array))
            or np.any(array < 0) or np.any(array > 1024)):
        raise ValueError(f"{where}: expected one or two whole numbers from 0 to 1024, got {str(value)[:40]}")
    return int(array[0]), int(array[1])
