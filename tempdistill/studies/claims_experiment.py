"""The claims experiment: ``claims.yaml`` → a tuning sweep, then an evaluation sweep → a report.

``run_claims`` (``tempdistill claims``) ties the pieces together: the file (``claims_spec``), each
stage's jobs and the choice on validation between them (``claims_plan``), the claims and their
verdicts (``claims``, ``verdicts``), the report (``claims_report``). Both stages are sweeps
(``sweep.plan_sweep``/``run_sweep``) into the same ``--out``, so a second launch keeps every
complete run of either stage, the evaluation stage is planned only once the tuning runs are
complete, and every run is an ordinary run file that ``tempdistill show``/``compare`` read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from tempdistill.config import ConfigError
from tempdistill.record.run_file import run_identity
from tempdistill.studies.claims import claims_by_id, evaluate, schedule_comparison
from tempdistill.studies.claims_plan import (
    ClaimsPlan,
    choose,
    index_runs,
    plan_claims,
    plan_ranges,
    plan_tuning,
    read_runs,
)
from tempdistill.studies.claims_report import ReportFacts, record_launch, render_report, tuning_table
from tempdistill.studies.claims_spec import load_spec, parse_only
from tempdistill.studies.verdicts import Finding
from tempdistill.sweep.jobs import SweepOutcome
from tempdistill.sweep.launch import EXECUTORS, run_sweep
from tempdistill.sweep.ledger import landing
from tempdistill.sweep.plan import Job


@dataclass
class ClaimsOutcome:
    findings: List[Finding]
    report: Optional[Path]
    sweep: SweepOutcome
    tuning: Optional[SweepOutcome] = None


def default_out(quick: bool) -> str:
    return "runs/claims-quick" if quick else "runs/claims"


def default_report(config: str | Path, out: str | Path, quick: bool) -> Path:
    """CLAIMS.md beside the claims file; a quick run's report stays with its runs."""
    return Path(out) / "CLAIMS.md" if quick else Path(config).parent / "CLAIMS.md"


def command_line(config: str, out: Optional[str], workers: int, executor: str, only: Optional[str], quick: bool,
                 report: Optional[str], ledger: Optional[str] = None) -> str:
    """The command as a user would type it again (the paths as they were given)."""
    parts = ["tempdistill claims", str(config)]
    parts += [f"--out {out}"] if out else []
    parts += [f"--jobs {workers}"] if workers != 1 else []
    parts += [f"--executor {executor}"] if executor != "local" else []
    parts += [f"--only {only}"] if only else []
    parts += ["--quick"] if quick else []
    parts += [f"--report {report}"] if report else []
    parts += [f"--ledger {ledger}"] if ledger else []
    return " ".join(parts)


def _seeds_text(plan: ClaimsPlan) -> str:
    groups: Dict[Tuple[int, ...], List[str]] = {}
    for setting, seeds in plan.seeds.items():
        groups.setdefault(tuple(seeds), []).append(setting)
    def span(seeds: Tuple[int, ...]) -> str:
        contiguous = list(seeds) == list(range(seeds[0], seeds[0] + len(seeds)))
        return f"{seeds[0]}–{seeds[-1]}" if contiguous and len(seeds) > 2 else ", ".join(map(str, seeds))
    if len(groups) == 1:
        return f"evaluation seeds {span(next(iter(groups)))}"
    return "evaluation seeds " + "; ".join(f"{span(seeds)} ({', '.join(names)})" for seeds, names in groups.items())


def run_claims(config: str, out: Optional[str] = None, workers: int = 1, executor: str = "local",
               report: Optional[str] = None, only: Optional[str] = None, quick: bool = False,
               log: Callable[[str], None] = print, ray_options: Optional[Dict[str, Any]] = None,
               ledger: Optional[str] = None) -> ClaimsOutcome:
    """Run the tuning stage, choose each arm's settings on validation, run the evaluation stage,
    judge the claims and write the report; a stopped launch writes no report (the same command
    resumes either stage). With a ``ledger`` folder (``sweep.ledger``) the runs it holds are
    restored into ``out`` before each stage, each stage's new complete runs are added to it as
    a part even when the launch is stopped, and the launches are listed there: a study longer
    than one sitting lands piece by piece and resumes on another machine."""
    if workers < 1:
        raise ConfigError(f"--jobs: must be >= 1, got {workers}")
    if executor not in EXECUTORS:
        raise ConfigError(f"--executor: got {executor!r}; allowed: {', '.join(EXECUTORS)}")
    started = time.perf_counter()
    claims = claims_by_id(parse_only(only))
    spec = load_spec(config)
    tuning = plan_tuning(spec, claims, quick)
    plan_claims(spec, claims, quick)  # the evaluation stage's configs, checked before anything runs
    out_dir = Path(out or default_out(quick))
    launches_dir = Path(ledger) if ledger else out_dir

    def stage(jobs: List[Job]) -> SweepOutcome:
        """One sweep into ``out_dir``, between the ledger's restore and its new part."""
        with landing(ledger, out_dir, [(job.name, job.seed) for job in jobs], log, "claims"):
            return run_sweep(jobs, str(out_dir), workers, executor, log=log, ray_options=ray_options)

    log(f"claims: tuning stage, {len(tuning.jobs)} runs for {', '.join(c.id for c in claims)} into {out_dir}")
    tuned = stage(tuning.jobs)
    if not tuned.interrupted:
        ranges = plan_ranges(spec, tuning, choose(spec, tuning, read_runs(tuned.paths, tuning.cells)), quick)
        log(f"claims: tuning stage, the schedules' ranges: {len(ranges)} runs")
        if ranges:
            searched = stage(ranges)
            tuned = SweepOutcome(paths=tuned.paths + searched.paths, failures=tuned.failures + searched.failures,
                                 interrupted=searched.interrupted, not_started=searched.not_started,
                                 reason=searched.reason, kept=tuned.kept + searched.kept)
    if tuned.interrupted:
        record_launch(launches_dir, time.perf_counter() - started, len(tuned.paths) - len(tuned.kept), len(tuned.kept))
        return ClaimsOutcome([], None, tuned, tuned)
    chosen = choose(spec, tuning, read_runs(tuned.paths, tuning.cells))
    plan = plan_claims(spec, claims, quick, chosen)
    log(f"claims: evaluation stage, {len(plan.jobs)} runs")
    outcome = stage(plan.jobs)
    ran = len(outcome.paths) - len(outcome.kept) + len(tuned.paths) - len(tuned.kept)
    kept = len(outcome.kept) + len(tuned.kept)
    if outcome.interrupted:
        record_launch(launches_dir, time.perf_counter() - started, ran, kept)
        return ClaimsOutcome([], None, outcome, tuned)
    index = index_runs(outcome.paths, plan)
    findings = evaluate(claims, index)
    launches = record_launch(launches_dir, time.perf_counter() - started, ran, kept)
    for f in findings:
        missing = plan.left_out.get(f.claim.id)
        if missing:
            why = "left out by --quick" if quick else "not defined in the claims file"
            f.notes.append(f"settings {why}: {', '.join(missing)}")
        f.notes.extend(plan.untestable.get(f.claim.id, []))
        lost = [f"{s} {a}" for s, a in plan.unchosen if a in f.claim.arms()]
        if lost:
            f.notes.append(f"no complete tuning run, so not evaluated: {', '.join(lost)}")
    complete = sum(len(runs) for cell, runs in index.runs.items() if cell not in plan.aliases)
    complete += sum(1 for p in tuned.paths if run_identity(p) and run_identity(p)[0] == "complete")
    train = sum(float(r.series.get("wall_seconds", [0.0])[-1]) for cell, runs in index.runs.items()
                if cell not in plan.aliases for r in runs.values() if len(r.series.get("wall_seconds", [])))
    failures = [f"{job.name} seed {job.seed}: {error}" for job, error in tuned.failures + outcome.failures]
    facts = ReportFacts(command_line(config, out, workers, executor, only, quick, report, ledger), str(out_dir),
                        _seeds_text(plan) + f"; tuning seeds {', '.join(map(str, tuning.seeds))}", quick, launches,
                        len(tuning.jobs) + len(plan.jobs), complete, failures, workers, executor, train)
    path = Path(report) if report else default_report(config, out_dir, quick)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(findings, facts, schedule_comparison(index), tuning_table(spec, tuning, chosen, plan)),
                    encoding="utf-8")
    return ClaimsOutcome(findings, path, outcome, tuned)
