"""Planning a sweep: the grid, variants and seeds of a config as jobs, each an ordinary run
named by what it varies (never by its seed)."""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from tempdistill.config import (
    ConfigError,
    SweepConfig,
    config_from_mapping,
    parse_override,
    set_path,
    validate_section,
)
from tempdistill.runner import plan_run


@dataclass(frozen=True)
class Job:
    name: str
    seed: int
    mapping: Dict[str, Any]
    overrides: List[str] = field(default_factory=list)  # what this job varies, recorded with its run


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
                # copies: a variant's dict (distill.temperature: {...}) must not be shared by the
                # jobs, or a grid key inside it (distill.temperature.start) would set it for all
                for key, value in (variant_overrides or {}).items():
                    set_path(mapping, key, copy.deepcopy(value))
                for key, value in zip(keys, values):
                    set_path(mapping, key, copy.deepcopy(value))
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


# Where a run runs is not what it is: a sweep begun on a CPU may be finished on a GPU.
PLACE_KEYS = ("device",)


def job_digest(job: Job) -> str:
    """What makes a planned run the same run on a second launch: its whole config but where it
    runs (``PLACE_KEYS``)."""
    return _digest({key: value for key, value in job.mapping.items() if key not in PLACE_KEYS})


def legacy_job_digest(job: Job) -> str:
    """The digest manifests written before ``PLACE_KEYS`` hold: of the whole config."""
    return _digest(job.mapping)


def _digest(mapping: Dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(mapping, sort_keys=True).encode()).hexdigest()[:16]
