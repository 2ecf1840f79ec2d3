"""The claims experiment: ``claims.yaml`` → a tuning sweep, then an evaluation sweep → a report.

``claims.yaml`` holds run configs (``bases``), the settings built from them (a base and
overrides: a dataset or environment with one student, and optionally its own evaluation seeds),
the arms (overrides that make a run one arm of a comparison: a schedule, a student option),
aliases (``best_constant``: the arm best on validation among some constant ones), the tuning
stage and what ``--quick`` shrinks. The claims (``tempdistill.studies.claims``) name the
settings and arms they are judged from.

Two stages, one command, one directory. *Tuning*: every needed (setting, arm) runs over the
tuning grid (lr × alpha) with the tuning seeds, an arm with a schedule range at its own value
of it; then each such arm runs its range's other values at the grid point chosen so far
(coordinate-wise, so a range of 3 adds 2 points instead of tripling the grid). Each arm gets
the point whose mean validation score over the tuning seeds is best
(``claims.validation_score``), and each alias resolves, per setting, to the candidate arm best
on validation at its chosen point. *Evaluation*: every needed (setting, arm) runs at its chosen
point over the evaluation seeds, which differ from the tuning seeds. Both stages are sweeps
(``sweep.plan_sweep``/``run_sweep``) into the same ``--out``, so a second launch keeps every
complete run of either stage, the evaluation stage is planned only once the tuning runs are
complete, and every run is an ordinary run file that ``tempdistill show``/``compare`` read.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
import math
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from pydantic import Field

from tempdistill.studies.claims import (
    NOT_TESTABLE_IN,
    Claim,
    Finding,
    RunIndex,
    claims_by_id,
    effect_text,
    evaluate,
    p_text,
    power_text,
    range_text,
    schedule_comparison,
    validation_score,
)
from tempdistill.config import ConfigError, Strict, config_from_mapping, read_yaml, resolve_paths, set_path, validate_section
from tempdistill.record.run import Run
from tempdistill.record.run_file import run_identity
from tempdistill.sweep.jobs import SweepOutcome
from tempdistill.sweep.launch import EXECUTORS, run_sweep
from tempdistill.sweep.plan import Job, plan_sweep


class SettingSpec(Strict):
    """A setting: a base run config, overrides (dotted keys) applied to it, and its evaluation
    seeds when they are not the file's."""

    base: str
    set: Dict[str, Any] = Field(default_factory=dict)
    seeds: Optional[List[int]] = Field(None, min_length=2)


class TuningSpec(Strict):
    """The tuning stage: its seeds (and a base's own, where its runs cost more), the grid every
    arm gets (dotted keys → values), a grid per base or per setting where one differs (the
    setting's replacing the base's, the base's the common one), and per arm the extra keys that
    set its schedule's range. A range is searched
    after the grid, at the arm's chosen grid point (coordinate-wise: grid + range − 1 points,
    not grid × range)."""

    seeds: List[int] = Field(min_length=1)
    seeds_by_base: Dict[str, List[int]] = Field(default_factory=dict)
    grid: Dict[str, List[Any]] = Field(default_factory=dict)
    grid_by_base: Dict[str, Dict[str, List[Any]]] = Field(default_factory=dict)
    grid_by_setting: Dict[str, Dict[str, List[Any]]] = Field(default_factory=dict)
    ranges: Dict[str, Dict[str, List[Any]]] = Field(default_factory=dict)

    def seeds_for(self, base: str) -> List[int]:
        return list(self.seeds_by_base.get(base, self.seeds))


class QuickSpec(Strict):
    """What ``--quick`` runs: fewer seeds, some settings, overrides per base (epochs, sizes) and
    its own (tiny) tuning stage."""

    seeds: List[int] = Field(min_length=2)
    settings: List[str] = Field(min_length=1)
    set: Dict[str, Dict[str, Any]] = Field(default_factory=dict)
    tuning: Optional[TuningSpec] = None


class ClaimsSpec(Strict):
    name: str = Field("claims", pattern=r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")
    seeds: List[int] = Field(min_length=2)  # an interval needs at least two seeds
    bases: Dict[str, Dict[str, Any]]
    settings: Dict[str, SettingSpec]
    arms: Dict[str, Dict[str, Any]]
    aliases: Dict[str, List[str]] = Field(default_factory=dict)  # name -> candidate arms (best on validation)
    tuning: TuningSpec
    quick: Optional[QuickSpec] = None

    def seeds_of(self, setting: str, quick: bool = False) -> List[int]:
        if quick and self.quick is not None:
            return list(self.quick.seeds)
        own = self.settings[setting].seeds
        return list(own if own is not None else self.seeds)

    def tuning_of(self, quick: bool = False) -> TuningSpec:
        if quick and self.quick is not None and self.quick.tuning is not None:
            return self.quick.tuning
        return self.tuning


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
    for alias, candidates in spec.aliases.items():
        if alias in spec.arms:
            raise ConfigError(f"aliases.{alias}: also an arm; an alias names one of its candidate arms")
        for arm in candidates:
            if arm not in spec.arms:
                raise ConfigError(f"aliases.{alias}: {arm!r} is not in arms; defined: {', '.join(spec.arms)}")
        if alias in used_arms:
            used_arms |= set(candidates)
    for name in spec.settings:
        if name not in used_settings:
            raise ConfigError(f"settings.{name}: no claim uses it; the claims use: {', '.join(sorted(used_settings))}")
    for name in spec.arms:
        if name not in used_arms:
            raise ConfigError(f"arms.{name}: no claim uses it; the claims use: {', '.join(sorted(used_arms))}")
    if len(set(spec.seeds)) < 2:
        raise ConfigError(f"seeds: need at least two different seeds for an interval, got {spec.seeds}")
    for tuning, where in ((spec.tuning, "tuning"), (spec.quick.tuning if spec.quick else None, "quick.tuning")):
        if tuning is None:
            continue
        evaluation = set(spec.seeds) | {x for st in spec.settings.values() for x in (st.seeds or [])}
        evaluation |= set(spec.quick.seeds) if spec.quick else set()
        for field_name, seeds in [("seeds", tuning.seeds)] + [(f"seeds_by_base.{b}", v) for b, v in tuning.seeds_by_base.items()]:
            shared = sorted(set(seeds) & evaluation)
            if shared:
                raise ConfigError(f"{where}.{field_name}: {shared} are also evaluation seeds; tuning seeds must differ")
            if not seeds:
                raise ConfigError(f"{where}.{field_name}: needs at least one seed")
        for section in ("grid_by_base", "seeds_by_base"):
            for name in getattr(tuning, section):
                if name not in spec.bases:
                    raise ConfigError(f"{where}.{section}.{name}: not in bases; defined: {', '.join(spec.bases)}")
        for name in tuning.grid_by_setting:
            if name not in spec.settings:
                raise ConfigError(f"{where}.grid_by_setting.{name}: not in settings; defined: {', '.join(spec.settings)}")
        for name in tuning.ranges:
            if name not in spec.arms:
                raise ConfigError(f"{where}.ranges.{name}: not in arms; defined: {', '.join(spec.arms)}")
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


DATASETS = {"digits": "digits", "mnist1d": "MNIST-1D", "npz": "npz data"}
BACKENDS = {"dense": "dense", "snntorch": "snnTorch", "norse": "Norse"}


def setting_label(mapping: Dict[str, Any]) -> str:
    """A setting in words, from a validated run config."""
    config = config_from_mapping(mapping)
    where = config.env.id if config.env is not None else DATASETS.get(config.data.name, config.data.name)
    student = f"{BACKENDS.get(config.student.backend, config.student.backend)} {config.student.hidden}"
    return f"{where}, {student} student, {config.distill.epochs} epochs"


def _setting_mapping(spec: ClaimsSpec, setting: str, quick: bool, stage: str = "") -> Dict[str, Any]:
    """The run config of a setting: its base, its overrides, then (with --quick) the base's quick ones."""
    section = spec.settings[setting]
    raw = copy.deepcopy(spec.bases[section.base])
    changes = dict(section.set)
    if quick and spec.quick is not None:
        changes.update(spec.quick.set.get(section.base, {}))
    for key, value in changes.items():
        set_path(raw, key, copy.deepcopy(value))
    raw["name"] = f"{spec.name}-{stage}-{setting}" if stage else f"{spec.name}-{setting}"
    return raw


Point = Tuple[Tuple[str, Any], ...]  # a grid point: (dotted key, value) pairs in the grid's order


def _needs(spec: ClaimsSpec, claims: Sequence[Claim], quick: bool
           ) -> Tuple[Dict[str, List[str]], Dict[str, List[str]], Dict[str, List[str]]]:
    """The arms (and aliases) each setting needs, in the file's setting order; the settings each
    claim lost to --quick or to the file; and, per claim, the (setting, arm) pairs left out
    because the arm cannot be tested there (``claims.NOT_TESTABLE_IN``), with why."""
    if quick and spec.quick is None:
        raise ConfigError("quick: --quick needs a 'quick' section in the claims file (seeds, settings, set)")
    allowed = set(spec.quick.settings) if quick else set(spec.settings)
    needed: Dict[str, List[str]] = {}
    left_out: Dict[str, List[str]] = {}
    untestable: Dict[str, List[str]] = {}
    for claim in claims:
        for settings, arms in claim.needs:
            for setting in settings:
                if setting not in spec.settings or setting not in allowed:
                    if setting not in left_out.get(claim.id, []):
                        left_out.setdefault(claim.id, []).append(setting)
                    continue
                for arm in arms:
                    if arm not in spec.arms and arm not in spec.aliases:
                        raise ConfigError(f"arms: {arm!r} is missing ({claim.id} needs it); defined: {', '.join(spec.arms)}")
                    where, why = NOT_TESTABLE_IN.get(arm, ((), ""))
                    if setting in where:
                        note = f"{arm} is not run in {setting}: {why}"
                        if note not in untestable.get(claim.id, []):
                            untestable.setdefault(claim.id, []).append(note)
                        continue
                    if arm not in needed.setdefault(setting, []):
                        needed[setting].append(arm)
    ordered = {s: needed[s] for s in spec.settings if s in needed}  # the file's order: costly settings first
    return ordered, left_out, untestable


def _arms_to_tune(spec: ClaimsSpec, arms: Sequence[str]) -> List[str]:
    """The arms, each alias replaced by its candidates."""
    out: List[str] = []
    for arm in arms:
        for a in spec.aliases.get(arm, [arm]):
            if a not in out:
                out.append(a)
    return out


def _get_path(mapping: Dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        mapping = mapping[part]
    return mapping


@dataclass
class TuningPlan:
    """The tuning stage: every needed (setting, arm) at every point of its lr × alpha grid (an
    arm with a range at its own range value) over its base's tuning seeds; ``plan_ranges`` adds
    the rest of each range once the grid's runs have chosen their point."""

    jobs: List[Job]
    cells: Dict[str, Tuple[str, str, Point]]   # run name -> (setting, arm, grid point)
    seeds: List[int]                           # every tuning seed (a base may use some of them)
    grids: Dict[Tuple[str, str], Dict[str, List[Any]]]  # (setting, arm) -> its grid, range included
    ranges: Dict[Tuple[str, str], Dict[str, List[Any]]] = field(default_factory=dict)  # (setting, arm) -> its range
    seeds_of: Dict[str, List[int]] = field(default_factory=dict)   # setting -> its tuning seeds

    def size(self, setting: str, arm: str) -> int:
        """Points a (setting, arm) is tuned over: its grid, then its range's other values."""
        grid = self.grids[(setting, arm)]
        span = self.ranges.get((setting, arm), {})
        points = int(np.prod([len(v) for k, v in grid.items() if k not in span])) if grid else 1
        return points + (int(np.prod([len(v) for v in span.values()])) - 1 if span else 0)


def tuning_grid(spec: ClaimsSpec, setting: str, arm: str, quick: bool = False) -> Dict[str, List[Any]]:
    """The grid one (setting, arm) is tuned over: its setting's (else base's) lr × alpha grid and
    the arm's range."""
    tuning = spec.tuning_of(quick)
    base = spec.settings[setting].base
    grid = dict(tuning.grid_by_setting.get(setting, tuning.grid_by_base.get(base, tuning.grid)))
    grid.update(tuning.ranges.get(arm, {}))
    return grid


def _plan_cell(spec: ClaimsSpec, setting: str, arm: str, quick: bool, grid: Dict[str, List[Any]],
               seeds: Sequence[int]) -> List[Job]:
    raw = _setting_mapping(spec, setting, quick, "tune")
    raw["sweep"] = {"seeds": list(seeds), "variants": {arm: spec.arms[arm]}, "grid": grid}
    try:
        return plan_sweep(raw, {}, None)
    except ConfigError as exc:
        raise ConfigError(f"tuning: settings.{setting} with arms.{arm}: {exc}") from None


def _own_value(spec: ClaimsSpec, setting: str, arm: str, quick: bool, key: str) -> Any:
    """An arm's own value of a range key (what its first tuning runs hold while lr × alpha is searched)."""
    job = _plan_cell(spec, setting, arm, quick, {}, [0])[0]
    try:
        return _get_path(job.mapping, key)
    except (KeyError, TypeError):
        raise ConfigError(f"tuning.ranges.{arm}: {key} is not set by arms.{arm} or its setting {setting}") from None


def plan_tuning(spec: ClaimsSpec, claims: Sequence[Claim], quick: bool = False) -> TuningPlan:
    """The grid part of the tuning stage: every (setting, arm, grid point, tuning seed) the claims
    need, an arm with a range at its own value of it, as validated sweep jobs."""
    needed, _, _ = _needs(spec, claims, quick)
    tuning = spec.tuning_of(quick)
    plan = TuningPlan([], {}, [], {})
    for setting, arms in needed.items():
        seeds = tuning.seeds_for(spec.settings[setting].base)
        plan.seeds_of[setting] = seeds
        for arm in _arms_to_tune(spec, arms):
            grid = tuning_grid(spec, setting, arm, quick)
            span = dict(tuning.ranges.get(arm, {}))
            first = {k: ([_own_value(spec, setting, arm, quick, k)] if k in span else v) for k, v in grid.items()}
            planned = _plan_cell(spec, setting, arm, quick, first, seeds)
            plan.jobs.extend(planned)
            plan.grids[(setting, arm)] = grid
            if span:
                plan.ranges[(setting, arm)] = span
            for job in planned:
                plan.cells[job.name] = (setting, arm, tuple((k, _get_path(job.mapping, k)) for k in grid))
    plan.seeds = sorted({s for seeds in plan.seeds_of.values() for s in seeds})
    return plan


def plan_ranges(spec: ClaimsSpec, plan: TuningPlan, chosen: "Chosen", quick: bool = False) -> List[Job]:
    """The range part of the tuning stage: each ranged arm's other range values at the grid
    point its first runs chose (added to ``plan.cells``); an arm with no complete run yet gets none."""
    jobs: List[Job] = []
    for (setting, arm), span in plan.ranges.items():
        choice = chosen.choices.get((setting, arm))
        if choice is None:
            continue
        fixed = {k: [v] for k, v in choice.values.items() if k not in span}
        planned = _plan_cell(spec, setting, arm, quick, {**fixed, **span}, plan.seeds_of[setting])
        grid = plan.grids[(setting, arm)]
        new = [job for job in planned if job.name not in plan.cells]   # the chosen point itself has run
        for job in new:
            plan.cells[job.name] = (setting, arm, tuple((k, _get_path(job.mapping, k)) for k in grid))
        jobs.extend(new)
    plan.jobs.extend(jobs)
    return jobs


@dataclass
class Choice:
    """What the tuning stage chose for one (setting, arm): the grid point best on validation."""

    values: Dict[str, Any]     # dotted key -> value
    score: float               # its mean validation score over the tuning seeds
    seeds: int                 # complete tuning runs at that point
    points: int                # grid points with complete runs (of the grid's size)
    size: int = 0


@dataclass
class Chosen:
    """The tuning stage's outcome: a choice per (setting, arm), and each alias's arm per setting."""

    choices: Dict[Tuple[str, str], Choice] = field(default_factory=dict)
    aliases: Dict[Tuple[str, str], str] = field(default_factory=dict)   # (setting, alias) -> arm


def choose(spec: ClaimsSpec, plan: TuningPlan, runs: Iterable[Run]) -> Chosen:
    """Per (setting, arm), the grid point with the best mean validation score over its complete
    tuning runs (points with every tuning seed first; ties: the first in grid order); per setting,
    each alias as the candidate whose chosen point scores best (ties: the first listed)."""
    scores: Dict[Tuple[str, str, Point], List[float]] = {}
    order = {cell: i for i, cell in enumerate(dict.fromkeys(plan.cells.values()))}
    for run in runs:
        cell = plan.cells.get(str(run.config.get("name")))
        if cell is None or run.status != "complete" or run.config.get("seed") not in plan.seeds_of.get(cell[0], plan.seeds):
            continue
        score = validation_score(run)
        if score is not None and math.isfinite(score):
            scores.setdefault(cell, []).append(score)
    chosen = Chosen()
    for (setting, arm), grid in plan.grids.items():
        points = [(cell, values) for cell, values in scores.items() if cell[:2] == (setting, arm)]
        if not points:
            continue
        most = max(len(values) for _, values in points)
        best = max((float(np.mean(v)), -order[c], c) for c, v in points if len(v) == most)
        cell = best[2]
        chosen.choices[(setting, arm)] = Choice(dict(cell[2]), best[0], most, len(points), plan.size(setting, arm))
    for setting in {s for s, _ in plan.grids}:
        for alias, candidates in spec.aliases.items():
            scored = [(chosen.choices[(setting, a)].score, -i, a) for i, a in enumerate(candidates)
                      if (setting, a) in chosen.choices]
            if scored and all((setting, a) in plan.grids for a in candidates):
                chosen.aliases[(setting, alias)] = max(scored)[2]
    return chosen


@dataclass
class ClaimsPlan:
    """The evaluation stage's jobs and where each run belongs."""

    claims: List[Claim]
    jobs: List[Job]
    cells: Dict[str, Tuple[str, str]]       # run name -> (setting, arm)
    labels: Dict[str, str]                  # setting -> "digits, snnTorch [64] student, 40 epochs"
    seeds: Dict[str, List[int]]             # setting -> its evaluation seeds
    quick: bool
    left_out: Dict[str, List[str]] = field(default_factory=dict)  # claim -> settings not in this plan
    aliases: Dict[Tuple[str, str], str] = field(default_factory=dict)  # (setting, alias) -> arm
    untestable: Dict[str, List[str]] = field(default_factory=dict)  # claim -> arms not run where, and why
    unchosen: List[Tuple[str, str]] = field(default_factory=list)    # (setting, arm) with no complete tuning run

    @property
    def all_seeds(self) -> List[int]:
        return sorted({seed for seeds in self.seeds.values() for seed in seeds})


def plan_claims(spec: ClaimsSpec, claims: Sequence[Claim], quick: bool = False,
                chosen: Optional[Chosen] = None) -> ClaimsPlan:
    """The evaluation stage: every (setting, arm) the claims need at the point the tuning stage
    chose for it, over the setting's evaluation seeds, as validated sweep jobs. Without
    ``chosen`` (a preview: what the plan's size will be) every arm runs at its own settings and
    an alias at its first candidate. Errors name the setting and arm before anything runs."""
    needed, left_out, untestable = _needs(spec, claims, quick)
    jobs: List[Job] = []
    cells: Dict[str, Tuple[str, str]] = {}
    labels: Dict[str, str] = {}
    seeds: Dict[str, List[int]] = {}
    aliases: Dict[Tuple[str, str], str] = {}
    unchosen: List[Tuple[str, str]] = []
    for setting, arms in needed.items():
        resolved: List[str] = []
        for arm in arms:
            if arm in spec.aliases:
                target = spec.aliases[arm][0] if chosen is None else chosen.aliases.get((setting, arm))
                if target is None:
                    unchosen.append((setting, arm))
                    continue
                aliases[(setting, arm)] = target
                arm = target
            if arm not in resolved:
                resolved.append(arm)
        seeds[setting] = spec.seeds_of(setting, quick)
        for arm in resolved:
            choice = chosen.choices.get((setting, arm)) if chosen is not None else None
            if chosen is not None and choice is None:
                unchosen.append((setting, arm))
                continue
            raw = _setting_mapping(spec, setting, quick)
            grid = {key: [value] for key, value in (choice.values if choice else {}).items()}
            raw["sweep"] = {"seeds": seeds[setting], "variants": {arm: spec.arms[arm]}, "grid": grid}
            try:
                planned = plan_sweep(raw, {}, None)
            except ConfigError as exc:
                raise ConfigError(f"settings.{setting} with arms.{arm}: {exc}") from None
            jobs.extend(planned)
            cells.update({job.name: (setting, arm) for job in planned})
            labels.setdefault(setting, setting_label(planned[0].mapping))
    return ClaimsPlan(list(claims), jobs, cells, labels, seeds, quick, left_out, aliases, untestable, unchosen)


def index_runs(paths: Sequence[Path], plan: ClaimsPlan) -> RunIndex:
    """The plan's complete runs by (setting, arm) and seed, each alias under its own name too;
    files of other plans (and of the tuning stage) are passed over."""
    runs: Dict[Tuple[str, str], Dict[int, Run]] = {}
    for path in paths:
        cell = plan.cells.get(_run_name(path))
        if cell is None:
            continue
        run = Run.read(path)
        seed = run.config.get("seed")
        if run.status == "complete" and seed in plan.seeds.get(cell[0], []):
            runs.setdefault(cell, {})[int(seed)] = run
    for (setting, alias), arm in plan.aliases.items():
        if (setting, arm) in runs:
            runs[(setting, alias)] = runs[(setting, arm)]
    return RunIndex(runs, dict(plan.labels))


def _run_name(path: Path) -> Optional[str]:
    identity = run_identity(path)
    return None if identity is None else str(identity[1].get("name"))


def read_runs(paths: Sequence[Path], names: Any) -> List[Run]:
    """The run files among ``paths`` whose run name is in ``names``, read."""
    return [Run.read(path) for path in paths if _run_name(path) in names]


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
information in soft labels on validation rows (C1, C8). Every arm had the same tuning budget: its
lr and alpha (and, for some schedules, their range) were chosen on validation over tuning seeds
that are not evaluation seeds (the table below). The reference "best constant T" is, per
setting, the constant T best on validation in that stage."""


CHANGES = """\
## What changed since version 1, and why

A methodological review found that several version-1 verdicts measured the setup rather than
temperature. Version 2 changes:

- **The spiking readout.** Version 1's snnTorch students read out spike counts, whose best
  achievable KL against the tempered teacher grows with T (0.037 nats at T = 8, 25 steps, for the
  digits teacher; `tempdistill floor`), so "higher T" was partly "coarser readout". Spiking
  students now read out `count_membrane` (count + residual membrane), whose floor is 0 at every T.
- **Per-class temperatures** are applied to centred logits: with a non-negative readout the
  uncentred loss pushed a spiking student's currents apart by c·T_k per class and biased its
  argmax (C9's spiking losses). Evaluation ties are broken without a class bias.
- **Operating points.** MNIST-1D students train at a budget chosen on validation ([256, 256],
  200 epochs, cosine lr), where distillation measurably helps the dense student; version 1's
  student gained nothing from any teacher there.
- **Equal tuning.** Every arm gets its lr and alpha on validation from one grid (per setting),
  then its schedule's range from a small grid at that point (coordinate-wise, to keep the study
  within about 12 hours on 2 cores); the reference is the best constant T on validation, not
  T = 4 fixed in advance. The MNIST-1D settings are tuned on one seed (their runs cost minutes),
  the others on two; the same for every arm.
- **Faithful arms.** CTKD as published (range, initialisation, λ curriculum; dense students only:
  a spiking student takes no gradient through T); a two-phase arm with alpha held (C7); C10 at a
  step change of T, not a slow cosine; C11 on Acrobot, LunarLander and Pendulum, whose returns
  are not at a ceiling (CartPole's is).
- **Statistics.** t-intervals over paired seeds (the percentile bootstrap covered 84% at 5 seeds),
  Holm's correction over every part, the power for the claimed size, verdicts per setting (dense
  and spiking never pooled), "not testable here" for underpowered parts, "not applicable" where a
  claim's premise fails (C1's entropy; a label-smoothed teacher tests C1 where it holds), and
  10–20 seeds instead of 5."""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


@dataclass
class ReportFacts:
    """What the report states about how it was made."""

    command: str
    out: str
    seeds: str
    quick: bool
    launches: List[Dict[str, Any]]
    planned: int
    complete: int
    failures: List[str]
    workers: int
    executor: str
    train_seconds: float


def render_report(findings: Sequence[Finding], facts: ReportFacts, schedules: Sequence[str] = (),
                  tuned: Sequence[str] = ()) -> str:
    """CLAIMS.md: how it was made, one row per claim, every schedule against the best constant
    T, what each arm got in the tuning stage, then each claim's notes and parts."""
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
        f"Runs: {facts.complete} of {facts.planned} planned are complete ({facts.seeds}), "
        f"in `{facts.out}` (one HDF5 file per run; `tempdistill compare {facts.out}` reads them)."
        + (f" {len(facts.failures)} failed: " + "; ".join(facts.failures[:5]) if facts.failures else ""),
        "",
        RULES,
        "",
        CHANGES,
        "",
        "## Verdicts",
        "",
        "| claim | the claim | setting that tests it | verdict, setting by setting |",
        "|---|---|---|---|",
    ]
    for f in findings:
        lines.append(f"| {f.claim.id} | {_cell(f.claim.text)} | {_cell(f.setting)} | **{_cell(f.verdict_text)}** |")
    if schedules:
        lines += ["", "## Every schedule against the best constant T", "",
                  "Paired over seeds, test accuracy of the weights each run selected, with the 95% t-interval of the "
                  "difference; p from the paired t-test, Holm-adjusted over this table's rows. A schedule beats the "
                  "best constant T (or is worse) only if the adjusted p < 0.05; \"cannot tell\" when it is not and "
                  "the power to detect ±0.01 was below 0.8.", "", *schedules]
    if tuned:
        lines += ["", "## What each arm got in the tuning stage", "", *tuned]
    lines += ["", "## Notes and effects by setting", ""]
    for f in findings:
        lines += [f"### {f.claim.id}: {f.verdict}", ""]
        lines += [f"- {note.rstrip('.')}." for note in f.notes] or ["(no note)"]
        lines.append("")
        if f.parts:
            lines += ["| setting | part | seeds | effect [95% interval] | claimed | p | Holm p | power (seeds for 80%) "
                      "| verdict |", "|---|---|---|---|---|---|---|---|---|"]
            for part in f.parts:
                claimed = "—" if part.quoted is None else range_text(part.quoted, part.style)
                lines.append(f"| {_cell(f.where.get(part.setting, part.setting))} | {_cell(part.label)} | {part.test.n} | "
                             f"{_cell(effect_text(part.test, part.style))} | {_cell(claimed)} | {p_text(part.test.p)} | "
                             f"{p_text(part.adjusted_p)} | {power_text(part)} | {part.verdict} |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------
# The command


def _value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def tuning_table(spec: ClaimsSpec, tuning: TuningPlan, chosen: Chosen, plan: ClaimsPlan) -> List[str]:
    """Markdown: per (setting, arm) the grid point chosen on validation, its score and the grid;
    then what each alias resolved to."""
    by_seeds: Dict[Tuple[int, ...], List[str]] = {}
    for setting, seeds in tuning.seeds_of.items():
        by_seeds.setdefault(tuple(seeds), []).append(setting)
    seeds_text = "; ".join(f"{', '.join(map(str, seeds))}" + (f" ({', '.join(names)})" if len(by_seeds) > 1 else "")
                           for seeds, names in by_seeds.items())
    lines = [f"Tuning seeds {seeds_text}. Each (setting, arm) ran every point of its lr × alpha grid (an arm with a "
             "range at its own value of it), then, at the point chosen there, the other values of its range "
             "(coordinate-wise: grid + range − 1 points); it got the point with the best mean validation score "
             "over its tuning seeds.", "",
             "| setting | arm | chosen on validation | validation score | points (complete / grid) | grid |",
             "|---|---|---|---|---|---|"]
    for (setting, arm), grid in tuning.grids.items():
        choice = chosen.choices.get((setting, arm))
        grid_text = "; ".join(f"{k.rsplit('.', 1)[-1]} ∈ {{{', '.join(_value_text(v) for v in vs)}}}" for k, vs in grid.items())
        if choice is None:
            lines.append(f"| {setting} | {arm} | no complete tuning run | | | {_cell(grid_text)} |")
            continue
        values = ", ".join(f"{k.rsplit('.', 1)[-1]} = {_value_text(v)}" for k, v in choice.values.items()) or "its own"
        score = f"{choice.score:.4f}" if abs(choice.score) < 10 else f"{choice.score:.1f}"
        lines.append(f"| {setting} | {arm} | {_cell(values)} | {score} ({choice.seeds} seed{'s' if choice.seeds > 1 else ''}) | "
                     f"{choice.points} / {choice.size} | {_cell(grid_text)} |")
    if plan.aliases:
        lines += ["", "| setting | alias | resolved to (best on validation among) |", "|---|---|---|"]
        for (setting, alias), arm in plan.aliases.items():
            lines.append(f"| {setting} | {alias} | **{arm}** ({', '.join(spec.aliases[alias])}) |")
    return lines


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
               log: Callable[[str], None] = print, ray_options: Optional[Dict[str, Any]] = None) -> ClaimsOutcome:
    """Run the tuning stage, choose each arm's settings on validation, run the evaluation stage,
    judge the claims and write the report; a stopped launch writes no report (the same command
    resumes either stage)."""
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
    log(f"claims: tuning stage, {len(tuning.jobs)} runs for {', '.join(c.id for c in claims)} into {out_dir}")
    tuned = run_sweep(tuning.jobs, str(out_dir), workers, executor, log=log, ray_options=ray_options)
    if not tuned.interrupted:
        ranges = plan_ranges(spec, tuning, choose(spec, tuning, read_runs(tuned.paths, tuning.cells)), quick)
        log(f"claims: tuning stage, the schedules' ranges: {len(ranges)} runs")
        if ranges:
            searched = run_sweep(ranges, str(out_dir), workers, executor, log=log, ray_options=ray_options)
            tuned = SweepOutcome(paths=tuned.paths + searched.paths, failures=tuned.failures + searched.failures,
                                 interrupted=searched.interrupted, not_started=searched.not_started,
                                 reason=searched.reason, kept=tuned.kept + searched.kept)
    if tuned.interrupted:
        record_launch(out_dir, time.perf_counter() - started, len(tuned.paths) - len(tuned.kept), len(tuned.kept))
        return ClaimsOutcome([], None, tuned, tuned)
    chosen = choose(spec, tuning, read_runs(tuned.paths, tuning.cells))
    plan = plan_claims(spec, claims, quick, chosen)
    log(f"claims: evaluation stage, {len(plan.jobs)} runs")
    outcome = run_sweep(plan.jobs, str(out_dir), workers, executor, log=log, ray_options=ray_options)
    ran = len(outcome.paths) - len(outcome.kept) + len(tuned.paths) - len(tuned.kept)
    kept = len(outcome.kept) + len(tuned.kept)
    if outcome.interrupted:
        record_launch(out_dir, time.perf_counter() - started, ran, kept)
        return ClaimsOutcome([], None, outcome, tuned)
    index = index_runs(outcome.paths, plan)
    findings = evaluate(claims, index)
    launches = record_launch(out_dir, time.perf_counter() - started, ran, kept)
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
    facts = ReportFacts(command_line(config, out, workers, executor, only, quick, report), str(out_dir),
                        _seeds_text(plan) + f"; tuning seeds {', '.join(map(str, tuning.seeds))}", quick, launches,
                        len(tuning.jobs) + len(plan.jobs), complete, failures, workers, executor, train)
    path = Path(report) if report else default_report(config, out_dir, quick)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(findings, facts, schedule_comparison(index), tuning_table(spec, tuning, chosen, plan)),
                    encoding="utf-8")
    return ClaimsOutcome(findings, path, outcome, tuned)
