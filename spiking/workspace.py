"""Reusable (steps, batch, neurons) blocks for the fused engine's per-step state.

The fused engine keeps every step's membrane and spikes for its backward pass: two blocks of
52 MB per layer at 100 steps × 128 samples × 1024 neurons. Fresh blocks on every pass are
fresh pages, and on Linux each first write to one is a page fault: measured on 2 cores, a
forward pass took 53 ms on warm memory and 100–200 ms on fresh blocks (huge pages or not,
depending on what the C allocator handed back). So a pass borrows its blocks here and the
backward pass returns them, and the next pass writes into memory that is already mapped.

Every step of a block starts on a 64-byte boundary, as a freshly allocated tensor does: the
BLAS takes another path for an unaligned operand and rounds differently (measured: 2.4e-7 on
a (6, 9) product), and the fused engine's per-step spikes feed products that must equal the
reference engine's bit for bit.

A block is lent to one pass at a time: a pass whose graph is dropped without a backward
simply never returns its blocks, and the garbage collector frees them. Only a bounded number
of blocks is kept per shape, and only for the most recent shapes.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import List, Tuple

import torch

# Steps start at multiples of this many bytes.
ALIGN_BYTES = 64
# Blocks kept per (shape, dtype, device), and how many such keys are remembered.
# A conv student's pass lends about ten shapes (per stage: membranes, pooled spikes, one
# step's scratch; the head's blocks); fewer kept would evict some every pass.
BLOCKS_PER_SHAPE = 8
SHAPES_KEPT = 16

_Key = Tuple[Tuple[int, ...], torch.dtype, torch.device]


class BlockPool:
    """Free blocks by shape; ``take`` lends one (uninitialised), ``give`` returns it."""

    def __init__(self) -> None:
        self._free: "OrderedDict[_Key, List[torch.Tensor]]" = OrderedDict()
        self._lock = threading.Lock()

    def take(self, shape: Tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        key = (tuple(shape), like.dtype, like.device)
        with self._lock:
            free = self._free.get(key)
            if free:
                self._free.move_to_end(key)
                return free.pop()
        return _aligned_block(shape, like)

    def give(self, blocks: List[torch.Tensor]) -> None:
        with self._lock:
            for block in blocks:
                key = (tuple(block.shape), block.dtype, block.device)
                free = self._free.setdefault(key, [])
                self._free.move_to_end(key)
                if len(free) < BLOCKS_PER_SHAPE:
                    free.append(block)
            while len(self._free) > SHAPES_KEPT:
                self._free.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._free.clear()


BLOCKS = BlockPool()


def _aligned_block(shape: Tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """An uninitialised (T, ...) tensor whose every step [t] is contiguous and 64-byte aligned."""
    steps, per_step = shape[0], math.prod(shape[1:])
    align = max(ALIGN_BYTES // like.element_size(), 1)
    stride = -(-per_step // align) * align
    storage = torch.empty(steps * stride + align, dtype=like.dtype, device=like.device)
    skip = (-storage.data_ptr() // like.element_size()) % align if like.device.type == "cpu" else 0
    return storage[skip:skip + steps * stride].view(steps, stride)[:, :per_step].view(shape)
