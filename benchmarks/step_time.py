"""Speed of one distillation step per student backend, and what recording costs.

Prints milliseconds per optimisation step (forward, loss, backward, Adam) for the dense,
snnTorch and Norse students on digits batches, each as a ratio to the dense student timed in
the same process, and the time to commit one epoch to the HDF5 record against one epoch of
training. A benchmark, not a test: numbers depend on the machine; ratios are what to compare.

    .venv/bin/python benchmarks/step_time.py [--steps 50] [--threads 1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Dict

import numpy as np
import torch

from backends import get_backend
from tempdistill.config import DataConfig
from tempdistill.data import load_split
from tempdistill.losses import distillation_objective
from tempdistill.record import RunRecorder


def time_steps(backend_name: str, options: Dict, steps: int, split, teacher_logits: torch.Tensor) -> float:
    """Median ms per training step over ``steps`` steps after 5 warm-up steps."""
    backend = get_backend(backend_name)
    torch.manual_seed(0)
    student = backend.build_student(backend.validate(options, "student"), split.input_dim, split.num_classes)
    student.fit_to_teacher(teacher_logits)
    student.train()
    optimizer = torch.optim.Adam(student.parameters(), lr=0.002)
    generator = torch.Generator().manual_seed(0)
    times = []
    for i in range(steps + 5):
        index = torch.randint(0, split.x_train.shape[0], (64,), generator=generator)
        started = time.perf_counter()
        student.set_temperature(4.0)
        out = student(split.x_train[index])
        total, _, _ = distillation_objective(
            torch.log_softmax(out.tempered, -1), out.logits, teacher_logits[index], 4.0, split.y_train[index], 0.9,
        )
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        if i >= 5:
            times.append(time.perf_counter() - started)
    return 1000 * float(np.median(times))


def time_record_commit(epochs: int = 20) -> float:
    """Median ms to commit one epoch's metrics and steps to a run file."""
    with tempfile.TemporaryDirectory() as tmp:
        recorder = RunRecorder(Path(tmp) / "bench.h5", '{"name": "bench"}')
        times = []
        for epoch in range(epochs):
            metrics = {f"metric_{k}": float(k * epoch) for k in range(25)}
            started = time.perf_counter()
            recorder.append_epoch(metrics, steps={"temperature": np.full(20, 4.0)})
            times.append(time.perf_counter() - started)
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    split = load_split(DataConfig(), seed=0)
    teacher_logits = torch.randn(split.x_train.shape[0], split.num_classes) * 8.0
    students = {
        "dense [64]": ("dense", {"backend": "dense", "hidden": [64]}),
        "snntorch [64], 25 steps": ("snntorch", {"backend": "snntorch", "hidden": [64], "steps": 25}),
        "norse [64], 25 steps": ("norse", {"backend": "norse", "hidden": [64], "steps": 25}),
    }
    # Interleaved rounds, best median kept: the first pass through each library pays one-off costs.
    results = {label: float("inf") for label in students}
    for _ in range(args.rounds):
        for label, (name, options) in students.items():
            results[label] = min(results[label], time_steps(name, options, args.steps, split, teacher_logits))
    baseline = results["dense [64]"]
    print(f"torch threads: {args.threads}; batch 64; best of {args.rounds} interleaved rounds of the median of {args.steps} steps")
    print(f"{'student':<26}{'ms/step':>10}{'x dense':>10}")
    for label, ms in results.items():
        print(f"{label:<26}{ms:>10.2f}{ms / baseline:>10.1f}")
    steps_per_epoch = -(-split.x_train.shape[0] // 64)
    commit = time_record_commit()
    for label, ms in results.items():
        print(f"HDF5 commit per epoch vs one epoch of {label}: {commit:.2f} ms / {ms * steps_per_epoch:.1f} ms "
              f"= {100 * commit / (ms * steps_per_epoch):.1f}%")


if __name__ == "__main__":
    main()
