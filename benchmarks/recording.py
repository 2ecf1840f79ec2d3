"""What committing one epoch to a run's record costs, early and late in a long run.

Two records, each run for ``--epochs`` epochs: metrics only (25 per-epoch metrics, two per-step
series of 20 steps, a per-class T group of 10) and metrics + traces (the same, plus every epoch
the traces of a small spiking student: 2 layers x 8 probe samples x 25 steps x 64 neurons, uint8
spikes and float32 membranes; the membranes are random, the worst case for compression). Each is
recorded twice in this process: by the recorder that copied the whole file for every commit
(reimplemented here as the baseline) and by ``tempdistill.record.run_file.RunRecorder`` (a journal
record per commit, folded into the file by ``finish``). Printed: the median commit time over the
first and over the last ``--window`` epochs and their ratio; what ``read_run`` of the unfinished
run and ``finish`` cost at the end; the finished file's size; and what one epoch's traces cost
to compress with gzip 4 (what the record uses), gzip 1 and lzf. A benchmark, not a test.

    .venv/bin/python benchmarks/recording.py [--epochs 300] [--window 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import h5py
import numpy as np

from tempdistill.record.run_file import RunRecorder, environment, read_run

CONFIG = '{"name": "bench", "distill": {"epochs": 300}}'
Arrays = Dict[str, np.ndarray]


def epoch_data(epoch: int, rng: np.random.Generator, traces: bool) -> tuple:
    metrics = {f"metric_{k}": float(rng.random()) for k in range(25)}
    steps = {"step": np.arange(20 * epoch, 20 * epoch + 20, dtype=np.float64), "temperature": np.full(20, 4.0)}
    groups = {"temperature": {f"class{c}": 4.0 - 0.01 * c for c in range(10)}}
    probe: Optional[Arrays] = None
    if traces:
        probe = {}
        for layer in ("hidden0", "output"):
            probe[f"{layer}.spikes"] = (rng.random((8, 25, 64)) > 0.8).astype(np.uint8)
            probe[f"{layer}.membrane"] = rng.standard_normal((8, 25, 64)).astype(np.float32)
    return metrics, steps, probe, groups


class CopyingRecorder:
    """The recorder before the journal: each commit copies the file, appends to the copy and
    renames it over the file (so it costs a copy of everything recorded so far)."""

    def __init__(self, path: Path) -> None:
        self.path, self.epochs, self.steps = path, 0, 0
        with h5py.File(path, "w") as f:
            f.attrs["status"] = "running"
            f.create_dataset("config", data=CONFIG, dtype=h5py.string_dtype())
            env = f.create_group("env")
            for key, value in environment().items():
                env.attrs[key] = value
            for group in ("metrics", "steps", "eval"):
                f.create_group(group)

    def append_epoch(self, metrics: Dict[str, float], steps: Arrays, traces: Optional[Arrays],
                     groups: Dict[str, Dict[str, float]]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.writing")
        shutil.copyfile(self.path, tmp)
        with h5py.File(tmp, "a") as f:
            for name, value in metrics.items():
                _append(f["metrics"], name, value, self.epochs)
            for name, values in steps.items():
                _append(f["steps"], name, values, self.steps)
            if traces:
                group = f.require_group("traces").require_group(str(self.epochs))
                for name, array in traces.items():
                    group.create_dataset(name, data=array, chunks=True, compression="gzip", compression_opts=4)
            for group_name, named in groups.items():
                for name, value in named.items():
                    _append(f.require_group(group_name), name, value, self.epochs)
            f.attrs["epochs_completed"] = self.epochs + 1
        os.replace(tmp, self.path)
        self.epochs += 1
        self.steps += max(len(v) for v in steps.values())

    def finish(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.writing")
        shutil.copyfile(self.path, tmp)
        with h5py.File(tmp, "a") as f:
            f.attrs["status"] = "complete"
        os.replace(tmp, self.path)


def _append(group: h5py.Group, name: str, values, fill_to: int) -> None:
    values = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if name not in group:
        group.create_dataset(name, shape=(0,), maxshape=(None,), dtype=np.float64, chunks=(256,))
    data = group[name]
    start = data.shape[0]
    pad = max(fill_to - start, 0)
    data.resize((start + pad + values.shape[0],))
    if pad:
        data[start : start + pad] = np.nan
    data[start + pad :] = values


def record(make: Callable[[Path], object], directory: Path, epochs: int, traces: bool) -> Dict[str, object]:
    """Commit times (s) of every epoch, then read_run and finish times and the final size."""
    path = directory / "run.h5"
    recorder = make(path)
    rng = np.random.default_rng(0)
    times: List[float] = []
    for epoch in range(epochs):
        metrics, steps, probe, groups = epoch_data(epoch, rng, traces)
        started = time.perf_counter()
        recorder.append_epoch(metrics, steps=steps, traces=probe, groups=groups)
        times.append(time.perf_counter() - started)
    started = time.perf_counter()
    read_run(path)
    read = time.perf_counter() - started
    started = time.perf_counter()
    recorder.finish()
    finish = time.perf_counter() - started
    return {"times": times, "read": read, "finish": finish, "size": path.stat().st_size}


def compression_table(directory: Path, rounds: int = 20) -> List[tuple]:
    """Time and size of one epoch's traces written to an HDF5 file under each compression."""
    probe = epoch_data(0, np.random.default_rng(1), traces=True)[2]
    raw = sum(a.nbytes for a in probe.values())
    rows = []
    for label, options in (("none", {}), ("gzip 4 (used)", {"compression": "gzip", "compression_opts": 4}),
                           ("gzip 1", {"compression": "gzip", "compression_opts": 1}), ("lzf", {"compression": "lzf"})):
        times = []
        path = directory / "traces.h5"
        for _ in range(rounds):
            started = time.perf_counter()
            with h5py.File(path, "w") as f:
                for name, array in probe.items():
                    f.create_dataset(name, data=array, chunks=True if options else None, **options)
            times.append(time.perf_counter() - started)
        rows.append((label, 1000 * float(np.median(times)), path.stat().st_size, raw))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--window", type=int, default=10)
    args = parser.parse_args()
    w = args.window
    print(f"{args.epochs} epochs; commit = median ms over epochs 1-{w} and {args.epochs - w + 1}-{args.epochs}")
    print(f"{'record':<18}{'recorder':<10}{'commit@1':>10}{'commit@end':>12}{'end/1':>7}"
          f"{'read_run':>10}{'finish':>9}{'file MB':>9}")
    recorders = {"copy": CopyingRecorder, "journal": lambda path: RunRecorder(path, CONFIG)}
    for traces in (False, True):
        for name, make in recorders.items():
            with tempfile.TemporaryDirectory() as tmp:
                result = record(make, Path(tmp), args.epochs, traces)
            times = result["times"]
            first, last = 1000 * np.median(times[:w]), 1000 * np.median(times[-w:])
            print(f"{'metrics + traces' if traces else 'metrics':<18}{name:<10}{first:>10.3f}{last:>12.3f}"
                  f"{last / first:>7.2f}{1000 * result['read']:>10.1f}{1000 * result['finish']:>9.1f}"
                  f"{result['size'] / 1e6:>9.2f}")
    print("\none epoch's traces (2 layers x 8 x 25 x 64, uint8 spikes + float32 membranes) into an HDF5 file")
    print(f"{'compression':<16}{'ms':>8}{'bytes':>10}{'of raw':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for label, ms, size, raw in compression_table(Path(tmp)):
            print(f"{label:<16}{ms:>8.2f}{size:>10}{size / raw:>8.2f}")


if __name__ == "__main__":
    main()
