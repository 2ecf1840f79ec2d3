"""Sweeps: the same config over a grid of values, named variants and seeds, then a summary.

Each combination is an ordinary run (one HDF5 file); the summary is computed from the files,
grouped by run name (which encodes the variant and grid values, never the seed), as
mean ± std over seeds of held-out accuracy, final teacher-student KL and the number of epochs
the student needed to reach 95% of its final accuracy.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
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
from tempdistill.record import read_run
from tempdistill.runner import execute, plan_run
from tempdistill.report import table

EXECUTORS = ("local",)


@dataclass(frozen=True)
class Job:
    name: str
    seed: int
    mapping: Dict[str, Any]


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
        key, _ = parse_override(item.split("=", 1)[0] + "=x") if "=" in item else parse_override(item)
        values = [parse_override(f"{key}={v}")[1] for v in split_top_level(item.split("=", 1)[1])]
        if not values:
            raise ConfigError(f"--grid {item!r}: no values; expected KEY=V1,V2")
        grid[key] = values
    return grid


def _label(value: Any) -> str:
    """A short, distinct name part for a grid value; a section is named by all its items."""
    if isinstance(value, dict):
        items = [str(value["schedule"])] if "schedule" in value else []
        items += [f"{k}{_label(v)}" for k, v in sorted(value.items()) if k != "schedule"]
        return "_".join(items)
    if isinstance(value, list):
        return "x".join(_label(v) for v in value)
    return str(value).replace(" ", "")


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
    for variant, variant_overrides in variants.items():
        for values in itertools.product(*(full_grid[k] for k in keys)):
            parts = [variant] if variant else []
            parts += [_label(v) for v in values]
            for seed in seeds:
                mapping = copy.deepcopy(base)
                for key, value in (variant_overrides or {}).items():
                    set_path(mapping, key, value)
                for key, value in zip(keys, values):
                    set_path(mapping, key, value)
                mapping["seed"] = seed
                mapping["name"] = "-".join([name, *parts])
                plan_run(config_from_mapping(mapping))  # validate all of it now, before the first run
                jobs.append(Job(mapping["name"], seed, mapping))
    seen: Dict[Tuple[str, int], int] = {}
    for job in jobs:
        key = (job.name, job.seed)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            raise ConfigError(f"sweep: two runs would both be named {job.name!r} (seed {job.seed}); make the variants differ")
    return jobs


def _run_job(job: Job, out: str, threads: int) -> str:
    """One job in a worker process, with its share of the CPU threads."""
    import torch

    torch.set_num_threads(threads)
    return str(execute(config_from_mapping(job.mapping), out))


def _prepare_teachers(jobs: Sequence[Job], log: Callable[[str], None]) -> None:
    """Train each distinct teacher once, here, so parallel workers only read the cache."""
    from tempdistill.runner import prepare_teacher

    seen = set()
    for job in jobs:
        config = config_from_mapping(job.mapping)
        key = (config.teacher.model_dump_json(), config.data.model_dump_json(), config.seed)
        if key not in seen:
            seen.add(key)
            prepare_teacher(config, log=log)


def run_sweep(
    jobs: Sequence[Job], out: str, workers: int = 1, executor: str = "local", log: Callable[[str], None] = print
) -> List[Path]:
    """Run every job (in ``workers`` processes); returns the run files in job order."""
    if executor not in EXECUTORS:
        raise ConfigError(f"--executor: got {executor!r}; allowed: {', '.join(EXECUTORS)} (ray is not implemented yet)")
    threads = max(1, (os.cpu_count() or 1) // max(workers, 1))
    paths: List[Path] = []
    if workers <= 1:
        for i, job in enumerate(jobs, 1):
            paths.append(Path(execute(config_from_mapping(job.mapping), out)))
            log(f"[{i}/{len(jobs)}] {job.name} seed {job.seed}: {paths[-1]}")
        return paths
    import multiprocessing

    _prepare_teachers(jobs, log)

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_run_job, job, out, threads) for job in jobs]
        for i, (job, future) in enumerate(zip(jobs, futures), 1):
            paths.append(Path(future.result()))
            log(f"[{i}/{len(jobs)}] {job.name} seed {job.seed}: {paths[-1]}")
    return paths


def epochs_to_fraction(accuracy: np.ndarray, fraction: float = 0.95) -> float:
    """1-based epoch at which accuracy first reaches ``fraction`` of its final value."""
    if accuracy.size == 0:
        return math.nan
    reached = np.nonzero(accuracy >= fraction * accuracy[-1])[0]
    return float(reached[0] + 1)


def _mean_std(values: List[float]) -> Tuple[float, float]:
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else 0.0


def summarize(paths: Sequence[Path]) -> List[Dict[str, Any]]:
    """One row per run name: mean ± std over seeds of accuracy, final KL, epochs to 95%."""
    groups: Dict[str, List[Dict[str, Any]]] = {}
    for path in paths:
        run = read_run(path)
        if run["status"] != "complete":
            continue
        groups.setdefault(run["config"]["name"], []).append(run)
    rows = []
    for name, runs in groups.items():
        acc = _mean_std([r["eval"]["student_accuracy"] for r in runs])
        kl = _mean_std([float(r["metrics"]["kl"][-1]) for r in runs])
        kl_t1 = _mean_std([float(r["metrics"].get("kl_t1", [math.nan])[-1]) for r in runs])
        to95 = _mean_std([epochs_to_fraction(np.asarray(r["metrics"]["val_accuracy"])) for r in runs])
        rows.append({
            "name": name,
            "backend": runs[0]["config"]["student"]["backend"],
            "schedule": runs[0]["config"]["distill"]["temperature"]["schedule"],
            "seeds": len(runs),
            "accuracy": acc,
            "final_kl": kl,
            "final_kl_t1": kl_t1,
            "epochs_to_95": to95,
        })
    return rows


def summary_table(rows: Sequence[Dict[str, Any]]) -> str:
    """The sweep summary as a text table, mean ± std over seeds."""
    def pm(pair: Tuple[float, float], digits: int) -> str:
        return f"{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}"

    return table(
        ["run", "backend", "schedule", "seeds", "accuracy", "final KL at T", "final KL at T=1", "epochs to 95%"],
        [[r["name"], r["backend"], r["schedule"], r["seeds"], pm(r["accuracy"], 4), pm(r["final_kl"], 4),
          pm(r["final_kl_t1"], 4), pm(r["epochs_to_95"], 1)] for r in rows],
    )


def verdicts(rows: Sequence[Dict[str, Any]], reference: str = "constant") -> str:
    """Per backend, each schedule's accuracy against the reference schedule, in plain words.

    A difference smaller than the larger of the two seed standard deviations is reported as
    'no clear difference': three seeds cannot resolve it.
    """
    lines = []
    by_backend: Dict[str, List[Dict[str, Any]]] = {}
    for row in rows:
        by_backend.setdefault(row["backend"], []).append(row)
    for backend, group in by_backend.items():
        refs = [r for r in group if r["schedule"] == reference]
        if len(refs) != 1 or len(group) < 2:
            continue  # nothing to compare, or several reference runs (the sweep varies something else)
        ref = refs[0]
        better = []
        for row in group:
            if row is ref:
                continue
            delta = row["accuracy"][0] - ref["accuracy"][0]
            noise = max(row["accuracy"][1], ref["accuracy"][1])
            if delta > noise:
                better.append(f"{row['schedule']} (+{delta:.4f})")
            word = "better" if delta > noise else ("worse" if -delta > noise else "no clear difference")
            lines.append(f"{backend}: {row['schedule']:<12} vs {reference}: {delta:+.4f} ({word}; seed std {noise:.4f})")
        if not better:
            lines.append(f"{backend}: no schedule beat {reference} by more than the seed-to-seed spread.")
    return "\n".join(lines)
