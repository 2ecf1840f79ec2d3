"""The local executor: the jobs in this process, or in a pool of worker processes that stop
together when the sweep is asked to stop."""
from __future__ import annotations

import os
import signal
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from tempdistill.config import (
    config_from_mapping,
)
from tempdistill.core.interrupt import Interrupted, StopRequest, stop_on_signals
from tempdistill.runner import execute
from tempdistill.sweep.jobs import SweepOutcome, one_line, prepare_teachers
from tempdistill.sweep.plan import Job

_WORKER_STOP: Optional[StopRequest] = None


def _worker_init(event: Any) -> None:
    """Sweep workers read the sweep's stop event; a signal to a worker only asks it to stop."""
    global _WORKER_STOP
    _WORKER_STOP = StopRequest(event)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: _WORKER_STOP.request("interrupted"))


def _run_job(job: Job, out: str, threads: int) -> Optional[str]:
    """One job in a worker process, with its share of the CPU threads; None if never started."""
    import torch

    torch.set_num_threads(threads)
    stop = _WORKER_STOP or StopRequest()
    try:
        with stop_on_signals(stop, always_defer=True):
            return str(execute(config_from_mapping(job.mapping), out, stop=stop, overrides=job.overrides))
    except Interrupted as exc:
        return str(exc.path) if exc.path else None


def run_in_process(jobs: Sequence[Job], out: str, stop: StopRequest, outcome: SweepOutcome, log: Callable[[str], None]) -> None:
    for i, job in enumerate(jobs, 1):
        if stop.requested():
            return
        try:
            path = execute(config_from_mapping(job.mapping), out, stop=stop, overrides=job.overrides)
        except Interrupted as exc:
            if exc.path:
                outcome.paths.append(Path(exc.path))
            return
        except Exception as exc:  # one run's failure is reported, not fatal to the sweep
            outcome.failures.append((job, one_line(exc)))
            log(f"[{i}/{len(jobs)}] {job.name} seed {job.seed}: failed: {one_line(exc)}")
            continue
        outcome.paths.append(Path(path))
        log(f"[{i}/{len(jobs)}] {job.name} seed {job.seed}: {path}")


def run_in_pool(
    jobs: Sequence[Job], out: str, workers: int, stop: StopRequest, outcome: SweepOutcome, log: Callable[[str], None]
) -> None:
    import multiprocessing

    prepare_teachers(jobs, log)
    threads = max(1, (os.cpu_count() or 1) // max(workers, 1))
    context = multiprocessing.get_context("spawn")
    event = context.Event()
    stop.attach(event)  # from here a signal reaches the workers through the event at once
    results: Dict[int, Path] = {}
    try:
        with stop.deferring(), ProcessPoolExecutor(
            workers, mp_context=context, initializer=_worker_init, initargs=(event,)
        ) as pool:
            pending: Dict[Future, Tuple[int, Job]] = {
                pool.submit(_run_job, job, out, threads): (i, job) for i, job in enumerate(jobs, 1)
            }
            while pending:
                done, _ = wait(list(pending), timeout=0.2, return_when=FIRST_COMPLETED)
                if stop.requested():
                    for future in pending:
                        future.cancel()  # queued runs; those already handed to a worker see the event
                for future in done:
                    i, job = pending.pop(future)
                    if future.cancelled():
                        continue
                    try:
                        path = future.result()
                    except Exception as exc:
                        outcome.failures.append((job, one_line(exc)))
                        log(f"[{i}/{len(jobs)}] {job.name} seed {job.seed}: failed: {one_line(exc)}")
                        continue
                    if path is not None:
                        results[i] = Path(path)
                        log(f"[{i}/{len(jobs)}] {job.name} seed {job.seed}: {path}")
                pending = {f: v for f, v in pending.items() if not f.cancelled()}
    finally:
        outcome.paths.extend(results[i] for i in sorted(results))
