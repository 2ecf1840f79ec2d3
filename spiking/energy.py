"""Energy estimates in the common 45 nm CMOS convention (Horowitz, ISSCC 2014).

A 32-bit float multiply-accumulate costs ≈ 4.6 pJ (3.7 pJ mult + 0.9 pJ add); a spiking
synapse triggered by a binary event only accumulates, ≈ 0.9 pJ. Memory access is ignored,
as in most SNN-vs-ANN comparisons; these are order-of-magnitude estimates, not measurements.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence, Union

if TYPE_CHECKING:
    import torch

Number = Union[float, "torch.Tensor"]  # a count, or a 0-d tensor of per-sample averages

E_AC_PJ = 0.9   # one accumulate (synaptic operation on a spike)
E_MAC_PJ = 4.6  # one multiply-accumulate (dense layer, or an analog input into a spiking net)


def spiking_energy_nj(synops: Number, macs: Number = 0.0) -> Number:
    """Accumulates for spike-driven synaptic events plus MACs for analog (direct) input, in nJ."""
    return (synops * E_AC_PJ + macs * E_MAC_PJ) * 1e-3


def dense_macs(widths: Sequence[int]) -> int:
    """MACs of one forward pass of an MLP with layer widths [in, h1, ..., out]."""
    return int(sum(a * b for a, b in zip(widths[:-1], widths[1:])))


def dense_energy_nj(macs: Number) -> Number:
    """Energy of ``macs`` multiply-accumulates (one dense forward pass), in nJ."""
    return macs * E_MAC_PJ * 1e-3
