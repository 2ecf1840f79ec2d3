"""A spiking conv student as a NIR graph, the same for both spiking backends.

The chain, per conv stage: ``nir.Conv2d`` (``input_shape`` set) → ``nir.IF``/``nir.LIF`` of
shape (C, H, W) → ``nir.AvgPool2d`` (2×2); then ``nir.Flatten`` and the head's
``nir.Affine`` → ``nir.IF``/``nir.LIF`` pairs. Thresholds are those applied now (the exporter
sets the evaluation temperature first); the reset rule and steps go into each neuron node's
metadata, as for the MLP exports (``spiking.nir_graph``). The graph's input is one step of the
encoded input, an image (C, H, W); the readout stays outside the graph.

Max pooling has no NIR node (nir 1.0): such a student is refused with a ``ValueError`` that
names ``student.pool``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import nir

from spiking.nir_graph import (affine_node, avg_pool_node, chain_graph, conv_node, flatten_node, neuron_node,
                               synapse_gain)


def _numpy(tensor: Any):
    return tensor.detach().cpu().numpy()


def conv_student_graph(student: Any, metadata: Dict[str, str]) -> nir.NIRGraph:
    """``student`` (a ``SpikingStudentMixin`` with ``arch: conv``) as a NIR chain graph."""
    conv, options = student.conv, student.options
    if conv.pool != "avg":
        raise ValueError(f"student.pool: {conv.pool!r} has no NIR node (NIR has average and sum pooling); "
                         "allowed for NIR export: 'avg' (use --format pt)")
    beta = float(options.beta)
    gain = synapse_gain(beta)
    nodes: List[Tuple[str, nir.NIRNode]] = []
    channels, height, width = conv.image_shape
    for i, (layer, trace, shape) in enumerate(zip(conv.convs, conv.thresholds, conv.maps)):
        nodes.append((f"conv{i}", conv_node(_numpy(layer.weight), _numpy(layer.bias), (height, width),
                                            layer.padding[0], gain)))
        nodes.append((f"conv{i}_neurons", neuron_node(_numpy(trace.theta()).reshape(shape), beta)))
        nodes.append((f"pool{i}", avg_pool_node(2)))
        channels, height, width = shape[0], shape[1] // 2, shape[2] // 2
    nodes.append(("flatten", flatten_node((channels, height, width))))
    names = [f"hidden{i}" for i in range(len(student.linears) - 1)] + ["output_layer"]
    for name, linear, trace in zip(names, student.linears, student.thresholds):
        nodes.append((name, affine_node(_numpy(linear.weight), _numpy(linear.bias), gain)))
        nodes.append((f"{name}_neurons", neuron_node(_numpy(trace.theta()), beta)))
    return chain_graph(conv.image_shape, nodes, int(student.widths[-1]), metadata)
