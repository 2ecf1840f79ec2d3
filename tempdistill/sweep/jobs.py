"""What every executor shares: a sweep's outcome, its teachers made ready once before the runs
start, and a failure as one line."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

from tempdistill.config import (
    config_from_mapping,
)
from tempdistill.runner import plan_run
from tempdistill.sweep.plan import Job


@dataclass
class SweepOutcome:
    """What a sweep left: run files (complete or interrupted), failures, and whether it was stopped."""

    paths: List[Path] = field(default_factory=list)
    failures: List[Tuple[Job, str]] = field(default_factory=list)
    interrupted: bool = False
    not_started: int = 0
    reason: str = ""
    kept: List[Path] = field(default_factory=list)       # complete runs found from an earlier launch
    resumed: Dict[str, int] = field(default_factory=dict)
    planned: int = 0

    def describe(self) -> str:
        lines = []
        if self.interrupted:
            lines.append(f"sweep {self.reason or 'interrupted'}: {self.not_started} queued runs not started; "
                         "runs in progress recorded their completed epochs as 'interrupted'")
        if self.failures:
            lines.append(f"{len(self.failures)} runs failed:")
            lines += [f"  {job.name} seed {job.seed}: {error}" for job, error in self.failures]
        return "\n".join(lines)


def prepare_teachers(jobs: Sequence[Job], log: Callable[[str], None]) -> List[Path]:
    """Make each distinct teacher ready once, here, so parallel workers only read the cache;
    returns the cache files (an executor on several machines ships them)."""
    from tempdistill.tasks import get_task_class

    seen = set()
    files: List[Path] = []
    for job in jobs:
        config = config_from_mapping(job.mapping)
        key = (config.task, config.teacher.model_dump_json(), config.data.model_dump_json(), config.seed)
        if key not in seen:
            seen.add(key)
            plan = plan_run(config)
            cached = get_task_class(config.task).prepare_teacher(config, plan.teacher_backend, plan.teacher_options, log)
            if cached is not None:
                files.append(cached)
    return files


def one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
