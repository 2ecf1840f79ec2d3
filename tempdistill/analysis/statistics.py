"""Statistics a reviewer accepts: groups of runs that differ only by seed, t-intervals,
and paired differences over matching seeds with a verdict that needs the interval to say so.

A comparison of runs is read as an experiment: the config keys that take more than one value
across the runs (the seed aside) are its factors; runs with equal factor values are one group,
replicated over seeds. For a factor with two levels, runs that agree on every other factor and
on the seed are pairs, and the paired difference (second level − first) removes what the seed
shares between them (initialisation, data order, rollouts). A difference is called "helped" or
"hurt" only when its 95% t-interval (mean ± t_{n−1}·s/√n, ``inference.t_test``) excludes 0;
otherwise "no clear difference". The percentile bootstrap used before covered the true mean only
about 84% of the time at 5 seeds (``tests/test_inference.py``); the t-interval keeps its 95%
for normal seed-to-seed noise. The number of seeds is printed beside every interval.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from tempdistill.analysis.inference import LEVEL, t_test
from tempdistill.record.run import Run

# Config keys that never define a factor: the seed replicates, the rest says where files went
# (a converted run's ``conversion.source`` is the file of the seed's own dense run).
NOT_FACTORS = ("seed", "name", "record.", "sweep.", "conversion.source")

# The widest "where" a difference table prints: past it a reader loses the row.
WHERE_WIDTH = 48


def mean_interval(values: Sequence[float], level: float = LEVEL) -> Tuple[float, float]:
    """The t-interval of the mean over seeds; (nan, nan) for fewer than 2 values."""
    estimate = t_test(values, level=level)
    return estimate.low, estimate.high


def verdict(interval: Tuple[float, float], higher_is_better: bool = True) -> str:
    """'helped' / 'hurt' when the interval of a difference excludes 0, else 'no clear difference'."""
    low, high = interval
    if math.isnan(low):
        return "cannot tell (fewer than 2 paired seeds)"
    if low > 0:
        return "helped" if higher_is_better else "hurt"
    if high < 0:
        return "hurt" if higher_is_better else "helped"
    return "no clear difference"


@dataclass
class Summary:
    """Mean, sample standard deviation and t-interval of one measure over seeds."""

    n: int
    mean: float
    std: float
    interval: Tuple[float, float]

    @classmethod
    def of(cls, values: Sequence[Optional[float]]) -> "Summary":
        array = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
        if array.size == 0:
            return cls(0, math.nan, math.nan, (math.nan, math.nan))
        std = float(array.std(ddof=1)) if array.size > 1 else math.nan
        return cls(int(array.size), float(array.mean()), std, mean_interval(array))

    def text(self, digits: int) -> str:
        if self.n == 0:
            return "-"
        if self.n < 2:
            return f"{self.mean:.{digits}f} (1 seed)"
        low, high = self.interval
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def flatten(tree: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """Nested config -> {'a.b.c': value}; lists and empty sections stay whole values."""
    flat: Dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _is_factor_key(key: str) -> bool:
    return key not in NOT_FACTORS and not key.startswith(tuple(p for p in NOT_FACTORS if p.endswith(".")))


def replicate_key(config: Mapping[str, Any]) -> str:
    """Which replicate a run is: a hash of its config's factor keys and its seed. Two files
    with one key (a file given twice, a copy, the same config rerun into another folder) are
    one seed, not two: counted twice they would narrow every interval for nothing."""
    kept = {k: v for k, v in flatten(config).items() if k == "seed" or _is_factor_key(k)}
    return hashlib.sha256(_key(kept).encode()).hexdigest()[:16]


def factors(configs: Sequence[Mapping[str, Any]]) -> List[Tuple[str, ...]]:
    """The experiment's factors: config keys that take more than one value across the runs
    (seed excluded), keys that always change together joined into one factor (switching a
    schedule changes its name and its parameters at once)."""
    flats = [flatten(c) for c in configs]
    keys = sorted({k for flat in flats for k in flat})
    joined: Dict[Tuple[int, ...], List[str]] = {}
    for key in keys:
        if not _is_factor_key(key):
            continue
        values = [_key(flat.get(key)) for flat in flats]
        if len(set(values)) < 2:
            continue
        first_seen: Dict[str, int] = {}
        partition = tuple(first_seen.setdefault(v, len(first_seen)) for v in values)
        joined.setdefault(partition, []).append(key)
    return [tuple(group) for group in joined.values()]


def level_of(config: Mapping[str, Any], keys: Sequence[str]) -> Tuple[str, ...]:
    """The values a run's config gives the keys (JSON text, comparable and sortable)."""
    flat = flatten(config)
    return tuple(_key(flat.get(k)) for k in keys)


def describe_level(keys: Sequence[str], values: Sequence[str]) -> str:
    """'backend=snntorch alpha=0.9' (the last part of each key where unambiguous; unset keys left
    out; a schedule's name before its parameters)."""
    short = [k.split(".")[-1] for k in keys]
    names = short if len(set(short)) == len(short) else list(keys)
    pairs = sorted(zip(names, values), key=lambda pair: pair[0] != "schedule")
    parts = [f"{n}={json.loads(v)}" for n, v in pairs if v != "null"]
    return " ".join(parts) or "all runs"


# The key that names a joined factor's level best (a schedule by its name, a student by its backend).
_NAMING_KEYS = ("schedule", "backend", "name", "id")


def brief_level(found: Sequence[Sequence[str]], keys: Sequence[str], values: Sequence[str],
                width: Optional[int] = None) -> str:
    """A level told by one ``key=value`` per factor ('backend=snntorch alpha=0.9'), cut to
    ``width`` characters. One key is enough: keys that change together are one factor because
    they split the runs alike, so any set one of them tells the factor's levels apart."""
    value_of = dict(zip(keys, values))
    chosen: List[Tuple[str, str]] = []
    for factor in found:
        present = [k for k in factor if k in value_of]
        ranked = sorted(present, key=lambda k: k.split(".")[-1] not in _NAMING_KEYS)
        key = next((k for k in ranked if value_of[k] != "null"), None)
        if key is not None:
            chosen.append((key, value_of[key]))
    text = describe_level([k for k, _ in chosen], [v for _, v in chosen])
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def factor_name(keys: Sequence[str]) -> str:
    """A factor's name: its key, or the section its joined keys share ('distill.temperature')."""
    if len(keys) == 1:
        return keys[0]
    parts = [k.split(".") for k in keys]
    common = []
    for level in zip(*parts):
        if len(set(level)) > 1:
            break
        common.append(level[0])
    return ".".join(common) if common else " ".join(keys)


@dataclass
class Group:
    """Runs whose factors agree: replicates over seeds."""

    label: str
    runs: List[Run]


def group_runs(runs: Sequence[Run]) -> Tuple[List[Tuple[str, ...]], List[Group]]:
    """(factors, groups of runs that differ only by seed), groups in sorted level order."""
    found = factors([r.config for r in runs])
    keys = [k for factor in found for k in factor]
    cells: Dict[Tuple[str, ...], List[Run]] = {}
    for run in runs:
        cells.setdefault(level_of(run.config, keys), []).append(run)
    return found, [Group(brief_level(found, keys, level), members) for level, members in sorted(cells.items())]


@dataclass
class PairedDifference:
    factor: str          # the factor's keys, joined
    first: str           # its two levels, as text
    second: str
    within: str          # the other factors' values the pairs share
    n: int
    mean: float
    interval: Tuple[float, float]
    verdict: str


def paired_differences(runs: Sequence[Run], measure: Callable[[Run], Optional[float]],
                       higher_is_better: bool = True) -> List[PairedDifference]:
    """For every factor: (level − reference) over runs that match on the other factors and on
    the seed. ``measure(run)`` gives a run's final figure (or None). The reference is a
    two-level factor's first level in sorted order (alpha 0.0 before 0.9), or for more levels
    the constant schedule where there is one, else the first level (backend: dense)."""
    configs = [r.config for r in runs]
    found = factors(configs)
    out: List[PairedDifference] = []
    for factor in found:
        levels = sorted({level_of(c, factor) for c in configs})
        # a factor with more levels is read against one reference: the constant schedule where
        # there is one (the baseline of every schedule claim), else the first level
        reference = next((lv for lv in levels if '"constant"' in lv), levels[0])
        others = [k for other in found if other != factor for k in other]
        cells: Dict[Tuple[str, ...], Dict[Tuple[str, ...], Dict[str, float]]] = {}
        for run in runs:
            value = measure(run)
            if value is None or not math.isfinite(value):
                continue
            seed = _key(run.config.get("seed"))
            cells.setdefault(level_of(run.config, others), {}).setdefault(level_of(run.config, factor), {})[seed] = value
        for rest, by_level in sorted(cells.items()):
            first = by_level.get(reference, {})
            for level in levels:
                second = by_level.get(level, {})
                seeds = sorted(set(first) & set(second))
                if level == reference or not seeds:
                    continue
                diffs = [second[s] - first[s] for s in seeds]
                interval = mean_interval(diffs)
                out.append(PairedDifference(factor_name(factor), describe_level(factor, reference),
                                            describe_level(factor, level),
                                            brief_level([f for f in found if f != factor], others, rest, WHERE_WIDTH),
                                            len(seeds),
                                            float(np.mean(diffs)), interval, verdict(interval, higher_is_better)))
    return out


# A run's score, per task: (name, test figure of the final student in /eval, per-epoch
# validation series in /metrics or None). Higher is better for each.
SCORES = (("accuracy", "student_accuracy", "val_accuracy"), ("return", "student_return_mean", "return_mean"),
          ("retained", "return_retained", None))


def score_spec(run: Run) -> Tuple[str, str, Optional[str]]:
    """Which of ``SCORES`` a run is scored by: the first whose final figure it has."""
    return next((spec for spec in SCORES if spec[1] in run.eval), SCORES[0])


def score_key(run: Run) -> str:
    """The /eval key of a run's score: a test figure of the weights the run selected without
    test data — the final student's, or with ``distill.select: best_val`` the best-validation
    epoch's (``<figure>_best_val``). Files older than format 3 hold the final figure only."""
    _, key, _ = score_spec(run)
    selected = f"{key}_best_val"
    return selected if run.eval.get("select") == "best_val" and selected in run.eval else key


def score_of(run: Run) -> Tuple[str, Optional[float]]:
    """(score name, value) of a run: test accuracy, test return, or a multi-task run's
    smallest return_retained, of the selected weights (``score_key``); (name, None) when the
    run has no final figures."""
    name = score_spec(run)[0]
    key = score_key(run)
    return name, (float(run.eval[key]) if key in run.eval else None)


def score_digits(name: str) -> int:
    """Decimals a score is printed with, its differences too: a return is whole steps of reward
    (one decimal), an accuracy or a retained fraction needs four to show a test row's worth."""
    return 1 if name == "return" else 4


def common_score(runs: Sequence[Run]) -> str:
    """The score all ``runs`` share; a ValueError when they are scored by different measures
    (a difference of accuracy and return means nothing: compare each task on its own)."""
    names = sorted({score_of(r)[0] for r in runs})
    if len(names) != 1:
        raise ValueError(f"runs scored by different measures ({', '.join(names)}): compare each task on its own")
    return names[0]


# Final measures summarised per group besides the score: (column, /eval key, digits).
MEASURES = (("spikes/sample", "spikes_per_sample", 1), ("synops/sample", "synops_per_sample", 0),
            ("energy_nJ(est)", "energy_nj_per_sample", 3))


def group_table(runs: Sequence[Run]) -> Tuple[List[str], List[List[Any]]]:
    """Per group of seeds: the score and the final measures as mean ± std [95% t-interval]."""
    name = common_score(runs)
    digits = score_digits(name)
    _, groups = group_runs(runs)
    header = ["group", "seeds", f"{name} mean ± std [95% CI]"]
    present = [m for m in MEASURES if any(m[1] in r.eval for r in runs)]
    header += [f"{column} mean ± std [95% CI]" for column, _, _ in present]
    rows = []
    for group in groups:
        row: List[Any] = [group.label, len(group.runs), Summary.of([score_of(r)[1] for r in group.runs]).text(digits)]
        row += [Summary.of([r.eval.get(key) for r in group.runs]).text(d) for _, key, d in present]
        rows.append(row)
    return header, rows


def difference_table(runs: Sequence[Run]) -> Tuple[List[str], List[List[Any]]]:
    """Every two-level factor's paired difference of the score, with its verdict."""
    name = common_score(runs)
    digits = score_digits(name)
    header = ["factor", "change", "where", "paired seeds", f"Δ {name} [95% CI]", "verdict"]
    rows = []
    for diff in paired_differences(runs, lambda r: score_of(r)[1]):
        low, high = diff.interval
        interval = f"[{low:+.{digits}f}, {high:+.{digits}f}]" if not math.isnan(low) else "(1 seed)"
        rows.append([diff.factor, f"{diff.first} -> {diff.second}", diff.within, diff.n,
                     f"{diff.mean:+.{digits}f} {interval}", diff.verdict])
    return header, rows
