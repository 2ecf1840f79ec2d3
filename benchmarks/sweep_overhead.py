"""What a sweep pays for running on Ray instead of the local process pool.

Runs the same sweep twice in this process, into fresh temporary directories: 12 runs (seeds
0-11 of experiments/digits.yaml with a snnTorch student, about 20 s each on 2 cores) with the
local executor, then with ``--executor ray`` on a local Ray started by the sweep, both with the
same number of workers. Prints each wall time, their ratio, and Ray's fixed start-up and
shut-down cost measured on its own. The teacher is trained (or found in the cache) once before
either timing. A benchmark, not a test: the figures depend on the machine.

    .venv/bin/python benchmarks/sweep_overhead.py [--runs 12] [--jobs 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tempdistill.config import read_yaml
from tempdistill.sweep.jobs import prepare_teachers
from tempdistill.sweep.launch import run_sweep
from tempdistill.sweep.plan import plan_sweep

CONFIG = Path(__file__).resolve().parents[1] / "experiments" / "digits.yaml"


def timed_sweep(jobs, workers: int, executor: str) -> float:
    with tempfile.TemporaryDirectory(prefix="tempdistill-bench-") as out:
        started = time.perf_counter()
        outcome = run_sweep(jobs, out, workers, executor, log=lambda _: None)
        seconds = time.perf_counter() - started
        if outcome.failures or len(outcome.paths) != len(jobs):
            raise SystemExit(f"{executor}: {len(outcome.failures)} runs failed: {outcome.failures[:1]}")
    return seconds


def ray_fixed_cost(workers: int) -> float:
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray.shutdown()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    jobs = plan_sweep(read_yaml(CONFIG), {}, list(range(args.runs)), ["student.backend=snntorch", "record.traces.every=0"])
    prepare_teachers(jobs, print)
    local = timed_sweep(jobs, args.jobs, "local")
    ray = timed_sweep(jobs, args.jobs, "ray")
    fixed = ray_fixed_cost(args.jobs)
    print(f"{args.runs} runs, {args.jobs} workers")
    print(f"local process pool: {local:7.1f} s  ({local / args.runs * args.jobs:.1f} s per run per worker)")
    print(f"Ray Tune:           {ray:7.1f} s  ({ray / local:.2f}x local)")
    print(f"Ray start-up and shut-down alone: {fixed:.1f} s")


if __name__ == "__main__":
    main()
