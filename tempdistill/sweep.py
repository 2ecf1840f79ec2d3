"""Sweeps: the same config over a grid of values, named variants and seeds, then a summary.

Each combination is an ordinary run (one HDF5 file); the summary is computed from the files,
grouped by run name (which encodes the variant and grid values as ``key=value``, never the
seed), as mean ± std over seeds of held-out accuracy, final teacher-student KL and the number
of epochs the student needed to reach 95% of its final accuracy.

One failing run never stops the others: its error is listed at the end. SIGINT/SIGTERM stops
the sweep: queued runs are dropped, running ones end their current epoch and record
themselves as ``interrupted``, and the summary covers what completed.

A sweep is resumable: the directory holds ``manifest.json`` (every planned run's name, seed
and config digest), and launching the same command again keeps the runs whose file is
``complete`` and runs the others again (``resume_plan``), so a crashed or stopped sweep of
thousands of runs loses only the runs in flight.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import os
import re
import signal
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from tempdistill.config import (
    ConfigError,
    SweepConfig,
    config_from_mapping,
    parse_override,
    set_path,
    validate_section,
)
from tempdistill.interrupt import Interrupted, StopRequest, stop_on_signals
from tempdistill.record import consolidate, read_run, run_identity
from tempdistill.statistics import score_of, score_spec
from tempdistill.runner import execute, plan_run
from tempdistill.text import table

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class Job:
    name: str
    seed: int
    mapping: Dict[str, Any]
    overrides: List[str] = field(default_factory=list)  # what this job varies, recorded with its run


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


def parse_seeds(text: str) -> List[int]:
    """'0-4' -> [0..4]; '0,2,5' -> [0, 2, 5]."""
    try:
        if "-" in text.strip("-"):
            low, high = text.split("-", 1)
            seeds = list(range(int(low), int(high) + 1))
        else:
            seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--seeds: expected a range like 0-4 or a list like 0,1,2, got {text!r}") from None
    if not seeds:
        raise ConfigError(f"--seeds: no seeds in {text!r}")
    return seeds


def split_top_level(text: str) -> List[str]:
    """Split on commas outside brackets/braces, so values may be YAML lists or mappings."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def parse_grid(items: Sequence[str]) -> Dict[str, List[Any]]:
    """--grid KEY=V1,V2 items -> {key: [values]}, values typed as YAML."""
    grid: Dict[str, List[Any]] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--grid {item!r}: no values; expected KEY=V1,V2, e.g. distill.alpha=0,0.9")
        key, _ = parse_override(item.split("=", 1)[0] + "=x")
        values = [parse_override(f"{key}={v}")[1] for v in split_top_level(item.split("=", 1)[1])]
        if not values:
            raise ConfigError(f"--grid {item!r}: no values; expected KEY=V1,V2")
        grid[key] = values
    return grid


def _label(value: Any) -> str:
    """A short, distinct name part for a grid value; a section is named by all its items."""
    if isinstance(value, dict):
        items = [_label(str(value["schedule"]))] if "schedule" in value else []  # 'pkg.mod:Class' too
        items += [f"{k}{_label(v)}" for k, v in sorted(value.items()) if k != "schedule"]
        return "_".join(items)
    if isinstance(value, list):
        return "x".join(_label(v) for v in value)
    return re.sub(r"[^A-Za-z0-9._+-]", "_", str(value))


def _key_labels(keys: Sequence[str]) -> Dict[str, str]:
    """Each grid key by its last part (``distill.alpha`` -> ``alpha``) unless two would clash."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (short if last.count(short) == 1 else k) for k, short in zip(keys, last)}


def plan_sweep(
    raw: Dict[str, Any], grid: Dict[str, List[Any]], seeds: Optional[List[int]], overrides: Sequence[str] = ()
) -> List[Job]:
    """Every (variant, grid point, seed) as a validated job; errors before anything runs."""
    section = validate_section(SweepConfig, raw.get("sweep") or {}, "sweep").model_dump()
    base = {k: v for k, v in raw.items() if k != "sweep"}
    for text in overrides:
        key, value = parse_override(text)
        set_path(base, key, value)
    full_grid = {**(section.get("grid") or {}), **grid}
    variants = section.get("variants") or {"": {}}
    seeds = seeds or section.get("seeds") or [base.get("seed", 0)]
    name = base.get("name", "sweep")
    jobs: List[Job] = []
    keys = list(full_grid)
    key_labels = _key_labels(keys)
    for variant, variant_overrides in variants.items():
        for values in itertools.product(*(full_grid[k] for k in keys)):
            parts = [_label(variant)] if variant else []
            parts += [f"{key_labels[k]}={_label(v)}" for k, v in zip(keys, values)]
            for seed in seeds:
                mapping = copy.deepcopy(base)
                for key, value in (variant_overrides or {}).items():
                    set_path(mapping, key, value)
                for key, value in zip(keys, values):
                    set_path(mapping, key, value)
                mapping["seed"] = seed
                mapping["name"] = "-".join([name, *parts])
                plan_run(config_from_mapping(mapping))  # validate all of it now, before the first run
                overrides = [f"{k}={_label(v)}" for k, v in zip(keys, values)]
                jobs.append(Job(mapping["name"], seed, mapping, ([f"variant={variant}"] if variant else []) + overrides))
    seen: Dict[Tuple[str, int], int] = {}
    for job in jobs:
        key = (job.name, job.seed)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            raise ConfigError(f"sweep: two runs would both be named {job.name!r} (seed {job.seed}); make the variants differ")
    return jobs


MANIFEST = "manifest.json"
SUPERSEDED = "superseded"


def job_digest(job: Job) -> str:
    """What makes a planned run the same run on a second launch: its whole config."""
    return hashlib.sha256(json.dumps(job.mapping, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class ResumePlan:
    """What a launch into an existing sweep directory does with each planned run."""

    todo: List[Job]
    kept: List[Path]                               # complete runs of this plan, not run again
    counts: Dict[str, int]                         # complete / running / failed / interrupted / missing

    def describe(self) -> str:
        found = ", ".join(f"{n} {what}" for what, n in self.counts.items() if n)
        return f"sweep: resuming ({found}); {len(self.todo)} to run"


def resume_plan(jobs: Sequence[Job], out: str | Path) -> ResumePlan:
    """Match the planned jobs with the run files already in ``out`` (by name and seed) and with
    its manifest. Complete runs are kept; a job whose file is running (a killed sweep), failed,
    interrupted or missing runs again, and its unfinished files move to ``superseded/``. A
    job the manifest planned with another config is an error: the directory holds another
    sweep. The manifest is written (merged) before anything runs."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} exists and is not a directory")
    manifest_path = out / MANIFEST
    planned = {(job.name, job.seed): job_digest(job) for job in jobs}
    previous: Dict[Tuple[str, int], str] = {}
    if manifest_path.is_file():
        try:
            entries = json.loads(manifest_path.read_text())["runs"]
            previous = {(e["name"], int(e["seed"])): e["digest"] for e in entries}
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"--out: {manifest_path} is not a sweep manifest; use another --out") from None
    changed = [key for key, digest in planned.items() if key in previous and previous[key] != digest]
    if changed:
        name, seed = changed[0]
        raise ConfigError(f"--out: {out} holds a sweep whose run {name!r} (seed {seed}) had another config "
                          f"({len(changed)} such runs); resume with the same command, or use another --out")
    files: Dict[Tuple[str, int], List[Tuple[str, Path]]] = {}
    for path in sorted(out.glob("*.h5")) if out.is_dir() else []:
        identity = run_identity(path)
        if identity is not None:
            status, config = identity
            files.setdefault((str(config.get("name")), int(config.get("seed", -1))), []).append((status, path))
    counts = {"complete": 0, "running": 0, "failed": 0, "interrupted": 0, "missing": 0}
    todo: List[Job] = []
    kept: List[Path] = []
    for job in jobs:
        found = files.get((job.name, job.seed), [])
        complete = [path for status, path in found if status == "complete"]
        if complete:
            counts["complete"] += 1
            kept.append(complete[-1])
            continue
        todo.append(job)
        if not found:
            counts["missing"] += 1
            continue
        for status, path in found:
            counts[status if status in counts else "failed"] += 1
            (out / SUPERSEDED).mkdir(parents=True, exist_ok=True)
            consolidate(path)  # a killed run's epochs are in its journal: they move with the file
            os.replace(path, out / SUPERSEDED / path.name)
    out.mkdir(parents=True, exist_ok=True)
    merged = {**previous, **planned}
    manifest = {"format": 1, "runs": [{"name": n, "seed": s, "digest": d} for (n, s), d in merged.items()]}
    tmp = manifest_path.with_name(f".{MANIFEST}.{os.getpid()}")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, manifest_path)
    return ResumePlan(todo, kept, counts)


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
                from tempdistill.ray_executor import run_on_ray

                run_on_ray(jobs, out, workers, stop, outcome, log, **(ray_options or {}))
            elif workers <= 1:
                _run_in_process(jobs, out, stop, outcome, log)
            else:
                _run_in_pool(jobs, out, workers, stop, outcome, log)
        except KeyboardInterrupt:
            stop.request("interrupted")  # a signal while teachers were prepared: nothing ran
    if stop.requested():
        outcome.interrupted, outcome.reason = True, stop.reason
        outcome.not_started = len(jobs) - len(outcome.paths) - len(outcome.failures)
    outcome.paths = outcome.kept + outcome.paths  # the summary covers the whole plan
    outcome.planned = planned
    return outcome


def _run_in_process(jobs: Sequence[Job], out: str, stop: StopRequest, outcome: SweepOutcome, log: Callable[[str], None]) -> None:
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


def _run_in_pool(
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


def target_near(value: float, fraction: float = 0.95) -> float:
    """A score at ``fraction`` of ``value``: 95% of an accuracy, and for a negative return
    (Acrobot's −80) no more than 5% worse than it."""
    return value - (1.0 - fraction) * abs(value)


def epochs_to_fraction(accuracy: np.ndarray, fraction: float = 0.95) -> float:
    """1-based epoch at which accuracy first reaches ``fraction`` of its final value."""
    if accuracy.size == 0:
        return math.nan
    return epochs_to_value(accuracy, target_near(float(accuracy[-1]), fraction))


def epochs_to_value(series: np.ndarray, target: float) -> float:
    """1-based epoch at which a per-epoch score first reaches ``target``; NaN if it never does."""
    reached = np.nonzero(np.asarray(series, dtype=float) >= target)[0]
    return float(reached[0] + 1) if reached.size else math.nan


def _mean_std(values: List[float]) -> Tuple[float, float]:
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else 0.0


def summarize(paths: Sequence[Path], target: Optional[float] = None) -> List[Dict[str, Any]]:
    """One row per run name: mean ± std over seeds of the score (accuracy or return), final
    KL, epochs to 95% of the final score, and with a ``target`` (``sweep.target``) the epochs
    each run needed to first reach that validation score."""
    groups: Dict[str, List[Dict[str, Any]]] = {}
    for path in paths:
        run = read_run(path)
        if run["status"] != "complete":
            continue
        groups.setdefault(run["config"]["name"], []).append(run)
    rows = []
    for name, runs in groups.items():
        label, _, series = score_spec(runs[0])  # accuracy, return, or a multitask's retained
        acc = _mean_std([score_of(r)[1] for r in runs])  # test figure of the weights each run selected
        kl = _mean_std([float(r["metrics"]["kl"][-1]) for r in runs])
        kl_t1 = _mean_std([float(r["metrics"].get("kl_t1", [math.nan])[-1]) for r in runs])
        to95 = _mean_std([epochs_to_fraction(np.asarray(r["metrics"].get(series, []) if series else []))
                          for r in runs])
        reached = [epochs_to_value(np.asarray(r["metrics"].get(series, []) if series else []), target)
                   for r in runs] if target is not None else []
        rows.append({
            "name": name,
            "backend": runs[0]["config"]["student"]["backend"],
            "schedule": runs[0]["config"]["distill"]["temperature"]["schedule"],
            "seeds": len(runs),
            "accuracy": acc,  # the task's score (statistics.SCORES); named for the classifier
            "score_name": label,
            "final_kl": kl,
            "final_kl_t1": kl_t1,
            "epochs_to_95": to95,
            "target": target,
            "epochs_to_target": reached,
        })
    return rows


def summary_table(rows: Sequence[Dict[str, Any]]) -> str:
    """The sweep summary as a text table, mean ± std over seeds."""
    def pm(row: Dict[str, Any], key: str, digits: int) -> str:
        mean, std = row[key]
        # One seed has no spread: a '± 0' would claim a precision nobody measured.
        return f"{mean:.{digits}f}" if row["seeds"] < 2 else f"{mean:.{digits}f} ± {std:.{digits}f}"

    def to_target(row: Dict[str, Any]) -> str:
        values = np.asarray(row["epochs_to_target"], dtype=float)
        reached = values[~np.isnan(values)]
        never = f" ({values.size - reached.size} of {values.size} never)" if reached.size < values.size else ""
        if reached.size == 0:
            return "never"
        spread = f" ± {reached.std(ddof=1):.1f}" if reached.size > 1 else ""
        return f"{reached.mean():.1f}{spread}{never}"

    target = rows[0].get("target") if rows else None
    headers = ["run", "backend", "schedule", "seeds", rows[0].get("score_name", "accuracy") if rows else "accuracy",
               "final KL at T", "final KL at T=1", "epochs to 95%"]
    if target is not None:
        headers.append(f"epochs to val {target:g}")
    return table(
        headers,
        [[r["name"], r["backend"], r["schedule"], r["seeds"],
          pm(r, "accuracy", 1 if r.get("score_name") == "return" else 4), pm(r, "final_kl", 4),
          pm(r, "final_kl_t1", 4), pm(r, "epochs_to_95", 1)] + ([to_target(r)] if target is not None else [])
         for r in rows],
    )


def difference_text(paths: Sequence[Path]) -> str:
    """The sweep's paired differences over seeds with their verdicts (``tempdistill.statistics``):
    "helped"/"hurt" only where the 95% bootstrap interval excludes 0."""
    from tempdistill.statistics import difference_table

    runs = [run for run in (read_run(p) for p in paths) if run["status"] == "complete" and run["eval"]]
    if len(runs) < 2:
        return ""
    header, rows = difference_table(runs)
    if not rows:
        return ""
    undecided = sum(row[-1] != "helped" and row[-1] != "hurt" for row in rows)
    note = (f"{undecided} of {len(rows)} differences are not resolved by these seeds (run more with --seeds)"
            if undecided else "")
    return "paired differences over matching seeds (a verdict needs the 95% interval to exclude 0):\n" + \
        table(header, rows) + ("\n" + note if note else "")
