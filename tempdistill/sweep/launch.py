"""Running a planned sweep with the executor asked for (``local`` or ``ray``), resuming what
an earlier launch left."""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence

from tempdistill.config import (
    ConfigError,
)
from tempdistill.core.interrupt import StopRequest, stop_on_signals
from tempdistill.sweep.jobs import SweepOutcome
from tempdistill.sweep.local import run_in_pool, run_in_process
from tempdistill.sweep.plan import Job
from tempdistill.sweep.resume import resume_plan

EXECUTORS = ("local", "ray")


def run_sweep(
    jobs: Sequence[Job], out: str, workers: int = 1, executor: str = "local", log: Callable[[str], None] = print,
    ray_options: Optional[Dict[str, Any]] = None,
) -> SweepOutcome:
    """Run every job (in ``workers`` processes); returns the run files in job order and what
    failed. SIGINT/SIGTERM stop the sweep as the module docstring says."""
    if executor not in EXECUTORS:
        raise ConfigError(f"--executor: got {executor!r}; allowed: {', '.join(EXECUTORS)}")
    plan = resume_plan(jobs, out)
    if plan.counts["complete"] or any(plan.counts[k] for k in ("running", "failed", "interrupted")):
        log(plan.describe())
    planned = len(jobs)
    jobs = plan.todo
    stop = StopRequest()
    outcome = SweepOutcome(kept=list(plan.kept), resumed=dict(plan.counts))
    with stop_on_signals(stop):
        try:
            if executor == "ray":
                from tempdistill.sweep.ray_tune import run_on_ray

                run_on_ray(jobs, out, workers, stop, outcome, log, **(ray_options or {}))
            elif workers <= 1:
                run_in_process(jobs, out, stop, outcome, log)
            else:
                run_in_pool(jobs, out, workers, stop, outcome, log)
        except KeyboardInterrupt:
            stop.request("interrupted")  # a signal while teachers were prepared: nothing ran
    if stop.requested():
        outcome.interrupted, outcome.reason = True, stop.reason
        outcome.not_started = len(jobs) - len(outcome.paths) - len(outcome.failures)
    outcome.paths = outcome.kept + outcome.paths  # the summary covers the whole plan
    outcome.planned = planned
    return outcome


