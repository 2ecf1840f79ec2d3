"""The claims experiment: ``claims.yaml`` → one sweep of runs → a Markdown report.

``claims.yaml`` holds run configs (``bases``), the settings built from them (a base and
overrides: a dataset or environment with one student), the arms (overrides that make a run one
arm of a comparison: a schedule, a student option), the seeds, and what ``--quick`` shrinks. The
claims (``tempdistill.studies.claims``) name the settings and arms they are judged from; each needed
(setting, arm) becomes sweep jobs (``sweep.plan_sweep``, one per seed), and all of them run as
one sweep (``sweep.run_sweep``) in one directory. So the experiment resumes like a sweep (a
second launch keeps every complete run), runs on Ray like one, and every run is an ordinary
run file that ``tempdistill show``/``compare`` read.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from pydantic import Field

from tempdistill.studies.claims import (
    Claim,
    Finding,
    RunIndex,
    claims_by_id,
    effect_text,
    evaluate,
    p_text,
    power_text,
    schedule_comparison,
)
from tempdistill.config import ConfigError, Strict, config_from_mapping, read_yaml, resolve_paths, set_path, validate_section
from tempdistill.record.run import Run
from tempdistill.sweep.jobs import SweepOutcome
from tempdistill.sweep.launch import EXECUTORS, run_sweep
from tempdistill.sweep.plan import Job, plan_sweep


class SettingSpec(Strict):
    """A setting: a base run config and overrides (dotted keys) applied to it."""

    base: str
    set: Dict[str, Any] = Field(default_factory=dict)


class QuickSpec(Strict):
    """What ``--quick`` runs: fewer seeds, some settings, and overrides per base (epochs, sizes)."""

    seeds: List[int] = Field(min_length=2)
    settings: List[str] = Field(min_length=1)
    set: Dict[str, Dict[str, Any]] = Field(default_factory=dict)


class ClaimsSpec(Strict):
    name: str = Field("claims", pattern=r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")
    seeds: List[int] = Field(min_length=2)  # an interval needs at least two seeds
    bases: Dict[str, Dict[str, Any]]
    settings: Dict[str, SettingSpec]
    arms: Dict[str, Dict[str, Any]]
    quick: Optional[QuickSpec] = None


def load_spec(path: str | Path) -> ClaimsSpec:
    """Read and check a claims file; relative paths in each base are relative to the file."""
    raw = read_yaml(path)
    spec = validate_section(ClaimsSpec, raw, "")
    here = Path(path).resolve().parent
    for base in spec.bases.values():
        resolve_paths(base, here)
    _check_names(spec)
    return spec


def _check_names(spec: ClaimsSpec) -> None:
    """Every name the file uses is defined, and everything it defines is used by some claim."""
    for name, setting in spec.settings.items():
        if setting.base not in spec.bases:
            raise ConfigError(f"settings.{name}.base: {setting.base!r} is not in bases; defined: {', '.join(spec.bases)}")
    used_settings = {s for claim in claims_by_id() for s in claim.settings()}
    used_arms = {a for claim in claims_by_id() for a in claim.arms()}
    for name in spec.settings:
        if name not in used_settings:
            raise ConfigError(f"settings.{name}: no claim uses it; the claims use: {', '.join(sorted(used_settings))}")
    for name in spec.arms:
        if name not in used_arms:
            raise ConfigError(f"arms.{name}: no claim uses it; the claims use: {', '.join(sorted(used_arms))}")
    if len(set(spec.seeds)) < 2:
        raise ConfigError(f"seeds: need at least two different seeds for an interval, got {spec.seeds}")
    if spec.quick is not None:
        for name in spec.quick.settings:
            if name not in spec.settings:
                raise ConfigError(f"quick.settings: {name!r} is not in settings; defined: {', '.join(spec.settings)}")
        for name in spec.quick.set:
            if name not in spec.bases:
                raise ConfigError(f"quick.set.{name}: not in bases; defined: {', '.join(spec.bases)}")


def parse_only(text: Optional[str]) -> Optional[List[str]]:
    """'C1,C7' -> ['C1', 'C7']; None -> every claim."""
    if text is None:
        return None
    try:
        return [c.id for c in claims_by_id(text.split(","))]
    except ValueError as exc:
        raise ConfigError(f"--only: {exc}") from None


@dataclass
class ClaimsPlan:
    """The jobs of a claims experiment and where each run belongs."""

    claims: List[Claim]
    jobs: List[Job]
    cells: Dict[str, Tuple[str, str]]       # run name -> (setting, arm)
    labels: Dict[str, str]                  # setting -> "digits, snnTorch [64] student, 40 epochs"
    seeds: List[int]
    quick: bool
    left_out: Dict[str, List[str]] = field(default_factory=dict)  # claim -> settings not in this plan


DATASETS = {"digits": "digits", "mnist1d": "MNIST-1D", "npz": "npz data"}
BACKENDS = {"dense": "dense", "snntorch": "snnTorch", "norse": "Norse"}


def setting_label(mapping: Dict[str, Any]) -> str:
    """A setting in words, from a validated run config."""
    config = config_from_mapping(mapping)
    where = config.env.id if config.env is not None else DATASETS.get(config.data.name, config.data.name)
    student = f"{BACKENDS.get(config.student.backend, config.student.backend)} {config.student.hidden}"
    return f"{where}, {student} student, {config.distill.epochs} epochs"


def plan_claims(spec: ClaimsSpec, claims: Sequence[Claim], quick: bool = False) -> ClaimsPlan:
    """Every (setting, arm, seed) the claims need, as validated sweep jobs; errors name the
    setting and arm before anything runs."""
    if quick and spec.quick is None:
        raise ConfigError("quick: --quick needs a 'quick' section in the claims file (seeds, settings, set)")
    seeds = spec.quick.seeds if quick else spec.seeds
    allowed = set(spec.quick.settings) if quick else set(spec.settings)
    needed: Dict[str, List[str]] = {}
    left_out: Dict[str, List[str]] = {}
    for claim in claims:
        for settings, arms in claim.needs:
            for setting in settings:
                if setting not in spec.settings or setting not in allowed:
                    left_out.setdefault(claim.id, []).append(setting)
                    continue
                for arm in arms:
                    if arm not in spec.arms:
                        raise ConfigError(f"arms: {arm!r} is missing ({claim.id} needs it); defined: {', '.join(spec.arms)}")
                    if arm not in needed.setdefault(setting, []):
                        needed[setting].append(arm)
    jobs: List[Job] = []
    cells: Dict[str, Tuple[str, str]] = {}
    labels: Dict[str, str] = {}
    for setting in spec.settings:  # the file's order: put the costly settings first to share the cores well
        for arm in needed.get(setting, []):
            raw = _setting_mapping(spec, setting, quick)
            raw["sweep"] = {"seeds": seeds, "variants": {arm: spec.arms[arm]}}
            try:
                planned = plan_sweep(raw, {}, None)
            except ConfigError as exc:
                raise ConfigError(f"settings.{setting} with arms.{arm}: {exc}") from None
            jobs.extend(planned)
            cells.update({job.name: (setting, arm) for job in planned})
            labels.setdefault(setting, setting_label(planned[0].mapping))
    return ClaimsPlan(list(claims), jobs, cells, labels, list(seeds), quick, left_out)


def _setting_mapping(spec: ClaimsSpec, setting: str, quick: bool) -> Dict[str, Any]:
    """The run config of a setting: its base, its overrides, then (with --quick) the base's quick ones."""
    section = spec.settings[setting]
    raw = copy.deepcopy(spec.bases[section.base])
    changes = dict(section.set)
    if quick and spec.quick is not None:
        changes.update(spec.quick.set.get(section.base, {}))
    for key, value in changes.items():
        set_path(raw, key, copy.deepcopy(value))
    raw["name"] = f"{spec.name}-{setting}"
    return raw


def index_runs(paths: Sequence[Path], plan: ClaimsPlan) -> RunIndex:
    """The plan's complete runs by (setting, arm) and seed; files of other plans are passed over."""
    runs: Dict[Tuple[str, str], Dict[int, Run]] = {}
    for path in paths:
        run = Run.read(path)
        cell = plan.cells.get(str(run.config.get("name")))
        seed = run.config.get("seed")
        if run.status == "complete" and cell is not None and seed in plan.seeds:
            runs.setdefault(cell, {})[int(seed)] = run
    return RunIndex(runs, dict(plan.labels))


# ---------------------------------------------------------------------------------------------
# Running time across launches

LAUNCHES = "claims-launches.json"


def record_launch(out: Path, seconds: float, ran: int, kept: int) -> List[Dict[str, Any]]:
    """Append this launch's wall time to the directory's list; returns every launch so far."""
    path = out / LAUNCHES
    try:
        launches = json.loads(path.read_text()) if path.is_file() else []
    except ValueError:
        launches = []
    launches.append({"ended": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                     "seconds": round(seconds, 1), "ran": ran, "kept": kept})
    tmp = path.with_name(f".{LAUNCHES}.{os.getpid()}")
    tmp.write_text(json.dumps(launches, indent=1))
    os.replace(tmp, path)
    return launches


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


# ---------------------------------------------------------------------------------------------
# The report


RULES = """\
Verdict rules, version 2 (`tempdistill/studies/claims.py`, module docstring). Every part of a claim is
judged **per setting** (dataset × student: dense or spiking, with the readout where the config names
one); nothing is pooled over settings. An effect that is a mean of per-seed values (paired differences,
per-seed shares of epochs saved, per-seed levels) has the 95% t-interval and the paired t-test; a
ratio of seed-to-seed standard deviations (C4) the Pitman–Morgan test and its inverted interval.
p-values are Holm-adjusted over every part of the study; *significant* means Holm-adjusted p < 0.05.
Power: of each part's test at its seeds, for the claimed size (the quoted end nearest no effect, else a
minimal effect: 0.01 accuracy, 10 return, 10% of epochs, 0.1 nats, 0.15 in a ratio), with the
measured seed-to-seed SD.
*reproduced* — significant on the claimed side and, where a size is quoted, the interval overlaps it
(a claimed level: not significantly outside its range, the interval overlapping it, power ≥ 0.8).
*opposite* — the mirrored claim is reproduced: significant on the other side and, where a size is
quoted, the interval overlaps the quoted range reflected through no effect.
*not reproduced* — significant but of another size; a level significantly outside its range; or not
significant with power ≥ 0.8.
*not testable here* — not significant with power < 0.8 (the note gives the power and the seeds 80%
would need), or the runs are missing. A significant result keeps its verdict whatever the power.
*not applicable to these teachers* — the claim's premise does not hold in the setting (C1).
A claim's verdict in a setting: reproduced (opposite) if every part is; not reproduced if any part is
not reproduced or opposite; otherwise not testable.
Every choice (the best of several schedules or temperatures, an epoch target) is made on
validation; effects are test figures, except epochs to a validation target (C3, C11) and the
information in soft labels on validation rows (C1, C8). The fixed T is T = 4, set before any run."""


def effect_text_range(quoted: Tuple[float, float], style: str) -> str:
    from tempdistill.studies.claims import format_number

    return f"{format_number(quoted[0], style)} to {format_number(quoted[1], style)}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


@dataclass
class ReportFacts:
    """What the report states about how it was made."""

    command: str
    out: str
    seeds: List[int]
    quick: bool
    launches: List[Dict[str, Any]]
    planned: int
    complete: int
    failures: List[str]
    workers: int
    executor: str
    train_seconds: float


def render_report(findings: Sequence[Finding], facts: ReportFacts, schedules: Sequence[str] = ()) -> str:
    """CLAIMS.md: how it was made, one row per claim, every schedule against a fixed T, then
    each claim's notes and parts."""
    total = sum(launch["seconds"] for launch in facts.launches)
    cores = os.cpu_count() or 1
    lines = ["# Claims about temperature in distillation, tested", ""]
    if facts.quick:
        lines += ["**Quick mode** (`--quick`): few seeds, few epochs, small networks. A smoke test of the "
                  "machinery, not evidence about any claim.", ""]
    lines += [
        f"Written by `{facts.command}`.",
        "",
        f"Running time: {minutes(total)} in all, over {len(facts.launches)} launch(es) "
        f"(the last {minutes(facts.launches[-1]['seconds'])}), on a machine with {cores} CPU cores, "
        f"{facts.workers} run(s) at a time ({facts.executor} executor); the runs' own training time "
        f"(teachers excluded) sums to {minutes(facts.train_seconds)}. A stopped launch resumes with the same "
        "command: complete runs are kept.",
        "",
        f"Runs: {facts.complete} of {facts.planned} planned are complete (seeds {', '.join(map(str, facts.seeds))}), "
        f"in `{facts.out}` (one HDF5 file per run; `tempdistill compare {facts.out}` reads them)."
        + (f" {len(facts.failures)} failed: " + "; ".join(facts.failures[:5]) if facts.failures else ""),
        "",
        RULES,
        "",
        "| claim | the claim | setting that tests it | verdict, setting by setting |",
        "|---|---|---|---|",
    ]
    for f in findings:
        lines.append(f"| {f.claim.id} | {_cell(f.claim.text)} | {_cell(f.setting)} | **{_cell(f.verdict_text)}** |")
    if schedules:
        lines += ["", "## Every schedule against a fixed T = 4", "",
                  "Paired over seeds, test accuracy of the final weights, with the 95% t-interval of the difference; "
                  "p from the paired t-test, Holm-adjusted over this table's rows. A schedule beats the fixed T (or "
                  "is worse) only if the adjusted p < 0.05; \"cannot tell\" when it is not and the power to detect "
                  "±0.01 was below 0.8.", "", *schedules]
    lines += ["", "## Notes and effects by setting", ""]
    for f in findings:
        lines += [f"### {f.claim.id}: {f.verdict}", ""]
        lines += [f"- {note.rstrip('.')}." for note in f.notes] or ["(no note)"]
        lines.append("")
        if f.parts:
            lines += ["| setting | part | seeds | effect [95% interval] | claimed | p | Holm p | power (seeds for 80%) "
                      "| verdict |", "|---|---|---|---|---|---|---|---|---|"]
            for part in f.parts:
                claimed = "—" if part.quoted is None else \
                    f"{effect_text_range(part.quoted, part.style)}"
                lines.append(f"| {_cell(f.where.get(part.setting, part.setting))} | {_cell(part.label)} | {part.test.n} | "
                             f"{_cell(effect_text(part.test, part.style))} | {_cell(claimed)} | {p_text(part.test.p)} | "
                             f"{p_text(part.adjusted_p)} | {power_text(part)} | {part.verdict} |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------
# The command


@dataclass
class ClaimsOutcome:
    findings: List[Finding]
    report: Optional[Path]
    sweep: SweepOutcome


def default_out(quick: bool) -> str:
    return "runs/claims-quick" if quick else "runs/claims"


def default_report(config: str | Path, out: str | Path, quick: bool) -> Path:
    """CLAIMS.md beside the claims file; a quick run's report stays with its runs."""
    return Path(out) / "CLAIMS.md" if quick else Path(config).parent / "CLAIMS.md"


def command_line(config: str, out: Optional[str], workers: int, executor: str, only: Optional[str], quick: bool,
                 report: Optional[str]) -> str:
    """The command as a user would type it again (the paths as they were given)."""
    parts = ["tempdistill claims", str(config)]
    parts += [f"--out {out}"] if out else []
    parts += [f"--jobs {workers}"] if workers != 1 else []
    parts += [f"--executor {executor}"] if executor != "local" else []
    parts += [f"--only {only}"] if only else []
    parts += ["--quick"] if quick else []
    parts += [f"--report {report}"] if report else []
    return " ".join(parts)


def run_claims(config: str, out: Optional[str] = None, workers: int = 1, executor: str = "local",
               report: Optional[str] = None, only: Optional[str] = None, quick: bool = False,
               log: Callable[[str], None] = print, ray_options: Optional[Dict[str, Any]] = None) -> ClaimsOutcome:
    """Plan the runs the claims need, run the ones not yet complete, judge the claims and write
    the report (not when the sweep was stopped: the same command resumes it)."""
    if workers < 1:
        raise ConfigError(f"--jobs: must be >= 1, got {workers}")
    if executor not in EXECUTORS:
        raise ConfigError(f"--executor: got {executor!r}; allowed: {', '.join(EXECUTORS)}")
    started = time.perf_counter()
    claims = claims_by_id(parse_only(only))
    spec = load_spec(config)
    plan = plan_claims(spec, claims, quick)
    out_dir = Path(out or default_out(quick))
    log(f"claims: {len(plan.jobs)} runs for {', '.join(c.id for c in claims)} into {out_dir}")
    outcome = run_sweep(plan.jobs, str(out_dir), workers, executor, log=log, ray_options=ray_options)
    ran, kept = len(outcome.paths) - len(outcome.kept), len(outcome.kept)
    if outcome.interrupted:
        record_launch(out_dir, time.perf_counter() - started, ran, kept)
        return ClaimsOutcome([], None, outcome)
    index = index_runs(outcome.paths, plan)
    findings = evaluate(claims, index)
    launches = record_launch(out_dir, time.perf_counter() - started, ran, kept)
    for f in findings:
        missing = plan.left_out.get(f.claim.id)
        if missing:
            why = "left out by --quick" if quick else "not defined in the claims file"
            f.notes.append(f"settings {why}: {', '.join(missing)}")
    complete = sum(len(runs) for runs in index.runs.values())
    train = sum(float(r.series.get("wall_seconds", [0.0])[-1]) for runs in index.runs.values() for r in runs.values()
                if len(r.series.get("wall_seconds", [])))
    facts = ReportFacts(command_line(config, out, workers, executor, only, quick, report), str(out_dir), plan.seeds,
                        quick, launches, len(plan.jobs), complete,
                        [f"{job.name} seed {job.seed}: {error}" for job, error in outcome.failures],
                        workers, executor, train)
    path = Path(report) if report else default_report(config, out_dir, quick)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(findings, facts, schedule_comparison(index)), encoding="utf-8")
    return ClaimsOutcome(findings, path, outcome)

