"""Library-independent repairs of exported NIR graphs (pure ``nir``/numpy).

Both exporters need the same normalisation before a graph is portable:
* a non-leaky neuron (β = 1) comes out of snnTorch as LIF with τ = r = ∞: it is an IF node;
* Norse's importer ignores a LIF's ``r``; r·(W·x + b) ≡ (r·W)·x + r·b, so r is folded into
  the Affine that feeds the neuron and set to 1 (the dynamics are unchanged under NIR
  semantics);
* NIR LIF/IF only know reset-to-``v_reset``: our subtract reset is recorded in each neuron
  node's ``metadata`` (``reset``), which a reader re-applies.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple

import nir
import numpy as np

# One time step in seconds, the convention of both exports (snnTorch hard-codes 1e-4):
# a neuron with leak β has τ = NIR_DT/(1 − β).
NIR_DT = 1e-4


def normalise_graph(graph: nir.NIRGraph, metadata: Dict[str, str]) -> nir.NIRGraph:
    """Apply the repairs above in place; returns the graph."""
    for key, node in list(graph.nodes.items()):
        if isinstance(node, nir.LIF):
            if not np.all(np.isfinite(np.asarray(node.tau))):
                threshold = np.asarray(node.v_threshold, dtype=np.float32)
                node = graph.nodes[key] = nir.IF(
                    r=np.ones_like(threshold), v_threshold=threshold, v_reset=np.zeros_like(threshold)
                )
            else:
                _fold_r(graph, key, np.asarray(node.r, dtype=np.float32))
                node.r = np.ones_like(np.asarray(node.r, dtype=np.float32))
        if isinstance(node, (nir.LIF, nir.IF)):
            node.metadata = {**(node.metadata or {}), **metadata}
    return graph


def _fold_r(graph: nir.NIRGraph, key: str, r: np.ndarray) -> None:
    for src, dst in graph.edges:
        if dst == key and isinstance(graph.nodes[src], nir.Affine):
            affine = graph.nodes[src]
            affine.weight = np.asarray(affine.weight, dtype=np.float32) * r[:, None]
            affine.bias = np.asarray(affine.bias, dtype=np.float32) * r


def metadata_text(value: Any) -> str:
    """A NIR metadata value as text: files store strings as bytes or 0-d arrays."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return metadata_text(value.item())
    return str(value)


# --- feed-forward graphs built directly (conv students) -------------------------------------
# Neither library's exporter writes a conv student whole: Norse 1.1's ``to_nir`` has no mapping
# for average pooling or flatten, snnTorch's leaves ``Conv2d.input_shape`` unset. A conv student's
# graph is a chain, so it is written here from its weights, with the conventions above: r = 1,
# and for β < 1 the gain 1/(1 − β) = τ/dt in the synapse before the neuron.


def synapse_gain(beta: float) -> float:
    """The factor a synapse carries into a neuron of leak ``beta`` under NIR semantics (r = 1)."""
    return 1.0 if beta == 1.0 else 1.0 / (1.0 - beta)


def conv_node(weight: np.ndarray, bias: np.ndarray, image: Sequence[int], padding: int, gain: float = 1.0) -> nir.Conv2d:
    """A stride-1 convolution reading (C_in, H, W) maps, ``image`` = (H, W)."""
    return nir.Conv2d(input_shape=tuple(int(d) for d in image), weight=np.asarray(weight, np.float32) * gain,
                      stride=1, padding=int(padding), dilation=1, groups=1, bias=np.asarray(bias, np.float32) * gain)


def affine_node(weight: np.ndarray, bias: np.ndarray, gain: float = 1.0) -> nir.Affine:
    return nir.Affine(weight=np.asarray(weight, np.float32) * gain, bias=np.asarray(bias, np.float32) * gain)


def neuron_node(theta: np.ndarray, beta: float) -> nir.NIRNode:
    """IF (β = 1) or LIF (τ = NIR_DT/(1 − β), r = 1) neurons of ``theta``'s shape ((C, H, W) or (N,))."""
    theta = np.asarray(theta, dtype=np.float32)
    zeros = np.zeros_like(theta)
    if beta == 1.0:
        return nir.IF(r=np.ones_like(theta), v_threshold=theta, v_reset=zeros)
    return nir.LIF(tau=np.full_like(theta, NIR_DT / (1.0 - beta)), r=np.ones_like(theta), v_leak=zeros,
                   v_threshold=theta, v_reset=zeros)


def avg_pool_node(size: int = 2) -> nir.AvgPool2d:
    return nir.AvgPool2d(kernel_size=np.array([size, size]), stride=np.array([size, size]), padding=np.array([0, 0]))


def flatten_node(shape: Sequence[int]) -> nir.Flatten:
    """(C, H, W) → (C·H·W,); NIR's dimensions leave the batch out."""
    return nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)


def chain_graph(input_shape: Sequence[int], nodes: Sequence[Tuple[str, nir.NIRNode]], outputs: int,
                metadata: Dict[str, str]) -> nir.NIRGraph:
    """input → nodes in order → output, neuron nodes carrying ``metadata`` (the reset rule)."""
    named = [("input", nir.Input(input_type=np.array(input_shape))), *nodes,
             ("output", nir.Output(output_type=np.array([outputs])))]
    for _, node in nodes:
        if isinstance(node, (nir.LIF, nir.IF)):
            node.metadata = {**(node.metadata or {}), **metadata}
    edges = [(a, b) for (a, _), (b, _) in zip(named[:-1], named[1:])]
    return nir.NIRGraph(nodes=dict(named), edges=edges)
