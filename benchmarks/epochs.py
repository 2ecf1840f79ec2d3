"""Whole epochs of the demo's students: the distiller against a hand-written PyTorch loop, and
what recording an epoch costs.

- Dense: ``Distiller.train_epoch`` against a hand-written epoch over the same network (a copy of
  the student's weights), the same minibatch order (same seeded generator), the same Adam and
  the same distillation loss written inline.
- Recording: each demo student (experiments/digits.yaml; dense, snnTorch, Norse) runs epochs
  with the recorder off, recording metrics, and recording metrics + spike traces every epoch.
  The cost of recording is timed where it is paid (trace capture and the epoch's commit) and
  set against the median epoch without a recorder; a 300-epoch run with traces every epoch
  shows whether the commit time grows with the file.

    .venv/bin/python benchmarks/epochs.py [--quick]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from bench_common import interleaved_medians, markdown_table
from tempdistill.config import RunConfig, load_config
from tempdistill.core.callbacks import EpochFunction
from tempdistill.record.recording import RecordEpochs
from tempdistill.core.distiller import Distiller
from tempdistill.record.run_file import RunRecorder
from tempdistill.runner import plan_run
from tempdistill.tasks import get_task_class
from tempdistill.core.training import iterate_minibatches

CONFIG = Path(__file__).resolve().parents[1] / "experiments" / "digits.yaml"


def demo_config(backend: str, epochs: int, traces_every: int) -> RunConfig:
    return load_config(CONFIG, [f"student.backend={backend}", f"distill.epochs={epochs}",
                                f"record.traces.every={traces_every}"])


def build_distiller(config: RunConfig, recorder: Optional[RunRecorder]) -> Distiller:
    """The objects ``runner.execute`` builds, without its run file (so the recorder is ours)."""
    plan = plan_run(config)
    task, _ = get_task_class(config.task).build(config, plan.teacher_backend, plan.teacher_options, lambda _: None)
    torch.manual_seed(config.seed)
    student = plan.student_backend.build_student(plan.student_options, task.input_dim, task.num_outputs)
    task.prepare_student(student)
    schedule = task.build_schedule(config)
    callbacks = [RecordEpochs(recorder, config.record.traces)] if recorder is not None else []
    return Distiller(student, task, schedule, config.distill, config.seed, callbacks)


# --- dense epoch vs hand-written loop ------------------------------------------------------------

def dense_against_hand_written(repeats: int) -> Tuple[str, float]:
    """The table, and the distiller's epoch time as a multiple of the hand-written one."""
    config = demo_config("dense", 1000, 0)
    distiller = build_distiller(config, None)
    task = distiller.task
    temperature, alpha = config.distill.temperature.value, config.distill.alpha
    net = copy.deepcopy(distiller.student.net)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.distill.lr)
    generator = torch.Generator().manual_seed(config.seed)
    x, y, teacher = task.split.x_train, task.split.y_train, task.teacher_train_logits

    def hand_written_epoch() -> None:
        net.train()
        for index in iterate_minibatches(x.shape[0], config.distill.batch_size, generator):
            logits = net(x[index])
            kd = F.kl_div(F.log_softmax(logits / temperature, -1), F.softmax(teacher[index] / temperature, -1),
                          reduction="batchmean") * temperature**2
            total = alpha * kd + (1 - alpha) * F.cross_entropy(logits, y[index])
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()

    epoch = iter(range(10**6))
    ms = interleaved_medians({"hand-written loop": hand_written_epoch,
                              "Distiller.train_epoch": lambda: distiller.train_epoch(next(epoch))}, repeats, warmup=3)
    base = ms["hand-written loop"]
    rows = [[name, value, value / base] for name, value in ms.items()]
    steps = task.steps_per_epoch(config.distill.batch_size)
    text = markdown_table([f"dense [64] student, one training epoch ({steps} steps of 64)", "ms/epoch", "× hand-written"], rows)
    return text, ms["Distiller.train_epoch"] / base


# --- recording --------------------------------------------------------------------------------

class TimedRecording:
    """Wraps a distiller's trace capture and its recorder's commit, keeping per-epoch times."""

    def __init__(self, distiller: Distiller) -> None:
        self.capture_ms: Dict[int, float] = {}
        self.commit_ms: List[float] = []
        recording = next(c for c in distiller.callbacks if isinstance(c, RecordEpochs))
        capture = recording.probe_traces

        def timed_capture(loop: Distiller, epoch: int):
            started = time.perf_counter()
            traces = capture(loop, epoch)
            self.capture_ms[epoch] = 1000 * (time.perf_counter() - started)
            return traces

        recording.probe_traces = timed_capture  # type: ignore[method-assign]
        append = recording.recorder.append_epoch

        def timed_append(*args: Any, **kwargs: Any) -> None:
            started = time.perf_counter()
            append(*args, **kwargs)
            self.commit_ms.append(1000 * (time.perf_counter() - started))

        recording.recorder.append_epoch = timed_append  # type: ignore[method-assign]

    def per_epoch(self) -> np.ndarray:
        capture = np.array([self.capture_ms.get(i, 0.0) for i in range(len(self.commit_ms))])
        return capture + np.asarray(self.commit_ms)


def epoch_times(distiller: Distiller) -> List[float]:
    times: List[float] = []
    last = [time.perf_counter()]

    def tick(epoch: int, metrics: Dict[str, float]) -> None:
        now = time.perf_counter()
        times.append(1000 * (now - last[0]))
        last[0] = now

    distiller.callbacks.append(EpochFunction(tick))
    last[0] = time.perf_counter()
    distiller.run()
    return times


def recording_run(backend: str, epochs: int, mode: str, directory: Path) -> Tuple[List[float], Optional[TimedRecording], int]:
    traces_every = 1 if mode == "metrics + traces" else 0
    config = demo_config(backend, epochs, traces_every)
    recorder = None
    if mode != "off":
        recorder = RunRecorder.create(directory, f"{backend}-{mode.replace(' ', '')}", config.to_json())
    distiller = build_distiller(config, recorder)
    timed = TimedRecording(distiller) if recorder is not None else None
    times = epoch_times(distiller)
    if recorder is not None:
        recorder.finish("complete")
    size = recorder.path.stat().st_size if recorder is not None else 0
    return times, timed, size


def recording_tables(epochs: int, long_epochs: int) -> Tuple[str, Dict[str, float]]:
    """The tables, and the worst share of an epoch recording took (per mode) and the largest
    late/early commit ratio."""
    rows = []
    worst: Dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="tempdistill-bench-") as tmp:
        for backend in ("dense", "snntorch", "norse"):
            off, _, _ = recording_run(backend, epochs, "off", Path(tmp))
            epoch_off = float(np.median(off[1:]))
            for mode in ("metrics", "metrics + traces"):
                _, timed, _ = recording_run(backend, epochs, mode, Path(tmp))
                cost = float(np.median(timed.per_epoch()[1:]))
                rows.append([backend, mode, epoch_off, cost, f"{100 * cost / epoch_off:.1f}%"])
                worst[mode] = max(worst.get(mode, 0.0), cost / epoch_off)
        first = markdown_table(["student", "recording", "epoch ms, recorder off", "recording ms per epoch",
                                "recording / epoch"], rows)
        long_rows = []
        for backend, mode in (("dense", "metrics"), ("snntorch", "metrics + traces")):
            _, timed, size = recording_run(backend, long_epochs, mode, Path(tmp))
            commit = np.asarray(timed.commit_ms)
            early, late = float(np.median(commit[1:11])), float(np.median(commit[-10:]))
            long_rows.append([backend, mode, early, late, f"{late / early:.2f}", f"{size / 1e6:.1f}"])
            worst["late / early commit"] = max(worst.get("late / early commit", 0.0), late / early)
    second = markdown_table(["student", "recording", "commit ms, epochs 2-11", f"commit ms, last 10 of {long_epochs}",
                             "late / early", "final file MB"], long_rows)
    return first + "\n\n" + second, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(dense_against_hand_written(10 if args.quick else 30)[0], "\n")
    print(recording_tables(8 if args.quick else 20, 60 if args.quick else 300)[0])


if __name__ == "__main__":
    main()
