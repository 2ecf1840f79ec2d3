"""The claims file (``claims.yaml``): what it may hold, checked whole before anything is planned.

``claims.yaml`` holds run configs (``bases``), the settings built from them (a base and
overrides: a dataset or environment with one student, and optionally its own evaluation seeds),
the arms (overrides that make a run one arm of a comparison: a schedule, a student option),
aliases (``best_constant``: the arm best on validation among some constant ones), the tuning
stage and what ``--quick`` shrinks. The claims (``tempdistill.studies.claims``) name the
settings and arms they are judged from.

``load_spec`` refuses a name the file uses without defining it, and one it defines that no claim
uses, so a slip in the file fails at once, not as a missing arm hours into the study.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from pydantic import Field

from tempdistill.config import ConfigError, Strict, read_yaml, resolve_paths, validate_section
from tempdistill.studies.claims import claims_by_id


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
