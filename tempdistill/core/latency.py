"""A student's software latency, measured so that two runs of one student agree.

One timed pass over whatever validation set a task has is noise: a policy's few thousand
states and a classifier's few hundred rows share one forward's fixed overhead differently, and
one pass on a shared machine catches whatever else ran then (two identical dense students read
0.00045 and 0.045 ms/sample). So the same batch size is timed for every run (validation rows
repeated to fill it when there are fewer), after warm-up passes, on one torch thread, and the
median of the repeats is kept. It says how fast this software runs on this machine, nothing
about neuromorphic hardware, where a spiking student's cost is its synaptic operations.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Any, Dict, Iterator, Optional

import torch

from tempdistill.core.student import Student, logits_of

BATCH = 256      # samples per timed pass, for every run and task
WARMUP = 3       # untimed passes first: allocation, lazy initialisation, caches
REPEATS = 15     # timed passes; their median is the figure
THREADS = 1      # torch intra-op threads while timing: one, whatever the machine has


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch intra-op threads, the previous number restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fixed_batch(x: torch.Tensor, size: int = BATCH) -> torch.Tensor:
    """The first ``size`` rows of ``x``, its rows repeated in order when it has fewer."""
    if x.shape[0] >= size:
        return x[:size]
    return x.repeat((size + x.shape[0] - 1) // x.shape[0], *([1] * (x.dim() - 1)))[:size]


def inference_latency_ms(model: torch.nn.Module, x: torch.Tensor, temperature: Optional[float] = None,
                         batch: int = BATCH, warmup: int = WARMUP, repeats: int = REPEATS) -> float:
    """Median wall-clock milliseconds per sample of one forward pass over a fixed batch of
    ``batch`` rows of ``x`` (eval mode, no gradients, ``THREADS`` torch threads).

    :param model: the student or teacher; a ``Student`` is set to ``temperature`` first.
    :param x: inputs on the model's device (validation data: latency never sees test rows).
    """
    was_training = model.training
    model.eval()
    if temperature is not None and isinstance(model, Student):
        model.set_temperature(temperature)
    inputs = fixed_batch(x, batch)
    synchronize = torch.cuda.synchronize if inputs.is_cuda else (lambda: None)
    times = []
    with torch.no_grad(), torch_threads(THREADS):
        for i in range(warmup + repeats):
            synchronize()
            started = time.perf_counter()
            logits_of(model(inputs))
            synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - started)
    model.train(was_training)
    return 1000.0 * statistics.median(times) / inputs.shape[0]


def latency_conditions() -> Dict[str, Any]:
    """What the latency figures of a run were measured under, recorded beside them."""
    return {"latency_batch": BATCH, "latency_repeats": REPEATS, "latency_threads": THREADS}
