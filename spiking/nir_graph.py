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

from typing import Any, Dict

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
