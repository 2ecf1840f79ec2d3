"""Resuming a sweep: the manifest of every planned run, matched with the run files already in
the folder, so a crashed or stopped sweep of thousands of runs loses only the runs in flight."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from tempdistill.config import (
    ConfigError,
)
from tempdistill.record.run_file import consolidate, run_identity
from tempdistill.sweep.plan import Job, job_digest, legacy_job_digest

MANIFEST = "manifest.json"


SUPERSEDED = "superseded"


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
    planned = {(job.name, job.seed): job_digest(job) for job in jobs}
    previous = read_manifest(out)
    legacy = {(job.name, job.seed): legacy_job_digest(job) for job in jobs}
    changed = [key for key, digest in planned.items() if key in previous and previous[key] not in (digest, legacy[key])]
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
    _write_manifest(out, {**previous, **planned})
    return ResumePlan(todo, kept, counts)


def read_manifest(out: str | Path) -> Dict[Tuple[str, int], str]:
    """The digest of every run the sweep directory ``out`` planned, by (name, seed); empty
    when there is no manifest yet."""
    manifest_path = Path(out) / MANIFEST
    if not manifest_path.is_file():
        return {}
    try:
        entries = json.loads(manifest_path.read_text())["runs"]
        return {(str(e["name"]), int(e["seed"])): str(e["digest"]) for e in entries}
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"--out: {manifest_path} is not a sweep manifest; use another --out") from None


def merge_manifest(out: str | Path, digests: Dict[Tuple[str, int], str]) -> None:
    """Add runs to ``out``'s manifest (``sweep.ledger``'s restored runs); one the manifest
    already plans with another digest is an error, as a launch with another config is."""
    previous = read_manifest(out)
    changed = [key for key, digest in digests.items() if key in previous and previous[key] != digest]
    if changed:
        name, seed = changed[0]
        raise ConfigError(f"--out: {out} holds a sweep whose run {name!r} (seed {seed}) had another config than "
                          f"the ledger's ({len(changed)} such runs); use another --out")
    _write_manifest(Path(out), {**previous, **digests})


def _write_manifest(out: Path, digests: Dict[Tuple[str, int], str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"format": 1, "runs": [{"name": n, "seed": s, "digest": d} for (n, s), d in digests.items()]}
    tmp = out / f".{MANIFEST}.{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / MANIFEST)
