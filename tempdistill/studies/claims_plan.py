"""The claims experiment's two stages as sweep jobs, and the choice on validation between them.

Two stages, one command, one directory. *Tuning*: every needed (setting, arm) runs over the
tuning grid (lr × alpha) with the tuning seeds, an arm with a schedule range at its own value
of it; then each such arm runs its range's other values at the grid point chosen so far
(coordinate-wise, so a range of 3 adds 2 points instead of tripling the grid). Each arm gets
the point whose mean validation score over the tuning seeds is best
(``verdicts.validation_score``), and each alias resolves, per setting, to the candidate arm best
on validation at its chosen point. *Evaluation*: every needed (setting, arm) runs at its chosen
point over the evaluation seeds, which differ from the tuning seeds.

Planning stands apart from running so that a stage's size, and any (setting, arm) that makes no
valid run config, are known before anything runs (``claims.yaml`` quotes the sizes these
functions give).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from tempdistill.config import ConfigError, config_from_mapping, set_path
from tempdistill.record.run import Run
from tempdistill.record.run_file import run_identity
from tempdistill.studies.claims import NOT_TESTABLE_IN
from tempdistill.studies.claims_spec import ClaimsSpec
from tempdistill.studies.verdicts import Claim, RunIndex, validation_score
from tempdistill.sweep.plan import Job, plan_sweep

DATASETS = {"digits": "digits", "mnist1d": "MNIST-1D", "npz": "npz data"}
BACKENDS = {"dense": "dense", "snntorch": "snnTorch", "norse": "Norse"}


def setting_label(mapping: Dict[str, Any]) -> str:
    """A setting in words, from a validated run config."""
    config = config_from_mapping(mapping)
    where = config.env.id if config.env is not None else DATASETS.get(config.data.name, config.data.name)
    student = f"{BACKENDS.get(config.student.backend, config.student.backend)} {config.student.hidden}"
    smoothing = config.teacher.label_smoothing
    teacher = f", teacher trained with label smoothing {smoothing:g}" if smoothing else ""
    return f"{where}, {student} student, {config.distill.epochs} epochs{teacher}"


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
