"""How a claim's measured parts become verdicts: the rules, and the run measures they read.

Every claim in ``tempdistill.studies.claims`` is measured into ``Part``s (one effect in one
setting) and judged here, by one set of rules, so that a rule reads the same for every claim and
changes in one place. ``RunIndex`` and the run measures (test score, validation series, epochs to
a target) are what the claims measure with; ``Claim`` and ``Finding`` are what passes between a
claim and its judgement.

Rules, version 2 (``tempdistill.analysis.inference`` has the statistics):

- **Per setting, never pooled.** Every part is measured in one setting (a dataset or
  environment with one student: dense or spiking, with its readout where the run config names
  one), and a claim gets a verdict per setting. Nothing is averaged over settings, so a dense
  and a spiking student never share a verdict.
- **Intervals and tests.** A seed fixes the split, the teacher and the student's initialisation,
  so the arms of a seed are paired. An effect that is a mean of per-seed values (a paired
  difference of test scores; a per-seed share of epochs saved, 1 − epochs(treated)/epochs(
  reference); a per-seed growth of entropy; a per-seed level) gets the t-interval (mean ±
  t_{n−1, 0.975}·s/√n) and the two-sided paired t-test against the null (0 for a difference).
  A ratio of seed-to-seed standard deviations (C4) gets the Pitman–Morgan test of ratio 1 and
  the interval that inverts it. A level (C1's entropy, C8's ratio: a claimed range, no side) is
  tested against the quoted range: p is the t-test against the nearest end of the range, 1 when
  the mean lies inside it.
- **Holm.** The family is every part of the study with a p-value (every claim evaluated in one
  ``evaluate`` call, parts whose premise fails or whose runs are missing left out); p-values are
  Holm-adjusted over it. *Significant* means a Holm-adjusted p below 0.05. The verdict rule reads
  the adjusted p and the side of the estimate (for a t-test, the 95% interval excludes the null
  exactly when the unadjusted p < 0.05; Holm's adjusted p is the stricter statement); printed
  intervals are the unadjusted 95% ones, beside the adjusted p.
- **Power.** Each part has the power of its test at the seeds it has, to detect the claimed
  size — the end of the quoted range nearest the null (the smallest effect the claim's own
  number allows), or where nothing is quoted the claim's minimal effect (``Claim.minimal``,
  by number style: 0.01 accuracy, 10 return, 10% of epochs, 0.1 nats, 0.15 in a ratio) — taken
  to be the true effect, with the measured seed-to-seed SD of the per-seed values (noncentral
  t; for C4 Fisher's z of the Pitman–Morgan correlation, with the measured correlation of the
  arms), and the seeds that 80% power would need.

Verdicts, for one part in one setting (side: the claimed side of the null; quoted: a claimed
size, a range):

- **reproduced**: significant, on the claimed side, and where a size is quoted the 95%
  interval overlaps the quoted range. A level: not significantly outside the quoted range, its
  interval overlaps it, and the power to detect a departure of the minimal effect is ≥ 0.8.
- **opposite** — the same rule for the claim mirrored through the null: significant on the
  other side and, where a size is quoted, the interval overlaps the quoted range reflected
  through the null (d ↦ −d for a difference, r ↦ 1/r for a ratio). So "adaptive T saves
  10–20% of the epochs" is opposite when it costs 10–20% more; costing 186% more is significant
  the other way, but of another size than claimed, and the note says so — just as saving 186%
  would not reproduce the claim.
- **not reproduced**: significant but of another size than claimed (either side); a level
  significantly outside its range; or not significant although the test had power ≥ 0.8 to
  detect the claimed size.
- **not testable here**: not significant and power < 0.8 at these seeds (the note gives the
  power and the seeds 80% would need): the seeds could not have told. Also when the runs are
  missing (``--quick``, failures) or the tool cannot measure what the claim names. A significant
  result keeps its verdict whatever the power.
- **not applicable to these teachers**: the claim's premise does not hold in the setting
  (``Claim.premise``; C1: its sizes presume soft labels of 0.5–1.2 nats at T = 1, and a
  teacher whose upper 95% bound is under half of that is far more confident than the claim's).
  Such parts are left out of the Holm family.
- A further condition a claim sets (C8: the T whose ratio is nearest 1.5 must be the best T)
  turns a reproduced part into not reproduced when it fails.

A claim's verdict in one setting, from its parts there: not applicable if any part is;
reproduced if every part is; opposite if every part is; not reproduced if any part is not
reproduced or opposite (the parts are a conjunction); not testable here otherwise. Across
settings the verdicts are listed, not combined (``Finding.verdict`` is the common verdict when
every setting agrees, else "differs by setting").
"""


from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from tempdistill.analysis.inference import (
    ALPHA,
    TARGET_POWER,
    Estimate,
    holm,
    seeds_for_power,
    std_ratio_power,
    t_power,
)
from tempdistill.analysis.statistics import score_of, score_spec
from tempdistill.record.run import Run
from tempdistill.sweep.summary import epochs_to_value

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
OPPOSITE = "opposite"
NOT_TESTABLE = "not testable here"
NOT_APPLICABLE = "not applicable to these teachers"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, OPPOSITE, NOT_TESTABLE, NOT_APPLICABLE)
MIXED = "differs by setting"

# The minimal effect a part is powered for when the claim quotes no size, by number style.
MINIMAL_EFFECT = {"accuracy": 0.01, "return": 10.0, "percent": 0.10, "nats": 0.1, "ratio": 0.15}


# ---------------------------------------------------------------------------------------------
# Effects, tests and verdicts


def speedup(x: np.ndarray) -> np.ndarray:
    """Per seed, 1 − epochs(second)/epochs(first): the share of epochs the second arm saves
    (0.15: 15% faster). ``x``: (seeds, 2)."""
    x = np.asarray(x, dtype=float)
    return 1.0 - x[:, 1] / x[:, 0]


def log_std_ratio(x: np.ndarray) -> float:
    """log(sample std of the second column / that of the first), over seeds."""
    x = np.asarray(x, dtype=float)
    return float(np.log(x[:, 1].std(ddof=1) / x[:, 0].std(ddof=1)))


@dataclass
class Part:
    """One measured part of a claim in one setting and what the claim says about it (module
    docstring). ``test`` holds the estimate, interval, raw p and seeds; ``judge`` fills
    ``adjusted_p``, ``power``, ``seeds_needed`` and ``verdict``."""

    label: str
    setting: str
    test: Estimate
    style: str                                   # how its numbers print: see ``format_number``
    side: Optional[int] = 1                      # +1 above the null, -1 below, None: a level
    null: float = 0.0
    quoted: Optional[Tuple[float, float]] = None
    untestable: str = ""                         # why it cannot be judged, when it cannot
    not_applicable: str = ""                     # the premise that fails, when it does
    condition: str = ""                          # a further condition of the claim that failed
    ratio: bool = False                          # a ratio of stds (Pitman–Morgan): mirrored by 1/r
    correlation: float = math.nan                # std-ratio parts: the arms' correlation over seeds
    adjusted_p: float = math.nan
    power: float = math.nan
    seeds_needed: Optional[int] = None
    size: float = math.nan                       # the effect the power is computed for
    verdict: str = ""

    @property
    def effect(self) -> Estimate:
        return self.test

    @property
    def in_family(self) -> bool:
        """Whether the part's p-value enters the Holm family."""
        return not self.untestable and not self.not_applicable and math.isfinite(self.test.p)


def mirrored(part: Part) -> Optional[Tuple[float, float]]:
    """The quoted range reflected through the null: (2·null − b, 2·null − a) for a difference,
    (null²/b, null²/a) for a ratio; None when nothing is quoted."""
    if part.quoted is None:
        return None
    a, b = part.quoted
    if part.ratio:
        return part.null ** 2 / b, part.null ** 2 / a
    return 2 * part.null - b, 2 * part.null - a


def _overlaps(low: float, high: float, quoted: Optional[Tuple[float, float]]) -> bool:
    return quoted is None or (low <= quoted[1] and high >= quoted[0])


def claimed_size(part: Part, minimal: float) -> float:
    """The effect the part's power is computed for, as a distance from the null on the tested
    scale: the end of the quoted range nearest the null; a level, or a part without quoted
    size: ``minimal``. For a std ratio: the ratio itself (the nearest quoted end)."""
    if part.side is None or part.quoted is None:
        return minimal if not part.ratio or part.side is None else part.null * (1 + part.side * minimal)
    a, b = part.quoted
    return min((a, b), key=lambda q: abs(q - part.null)) if part.ratio else min(abs(a - part.null), abs(b - part.null))


def part_power(part: Part, minimal: float, n: Optional[int] = None) -> float:
    """The power of the part's test at ``n`` seeds (default: the seeds it has) for its claimed size."""
    n = part.test.n if n is None else n
    size = claimed_size(part, minimal)
    if part.ratio and part.side is not None:
        return std_ratio_power(size / part.null, part.correlation, n)
    return t_power(size, part.test.sd, n)


def part_verdict(part: Part) -> str:
    """The module docstring's rule for one part, from its adjusted p (its raw p when no
    adjustment was made) and its power."""
    if part.not_applicable:
        return NOT_APPLICABLE
    p = part.adjusted_p if math.isfinite(part.adjusted_p) else part.test.p
    if part.untestable or not part.test.has_interval or not math.isfinite(p):
        return NOT_TESTABLE
    low, high = part.test.low, part.test.high
    significant = p < ALPHA
    powered = math.isfinite(part.power) and part.power >= TARGET_POWER
    if part.side is None:
        if significant or not _overlaps(low, high, part.quoted):
            return NOT_REPRODUCED
        if not powered:
            return NOT_TESTABLE
        return NOT_REPRODUCED if part.condition else REPRODUCED
    if not significant:
        return NOT_REPRODUCED if powered else NOT_TESTABLE
    direction = 1 if part.test.estimate > part.null else -1
    if direction == part.side:
        verdict = REPRODUCED if _overlaps(low, high, part.quoted) else NOT_REPRODUCED
        return NOT_REPRODUCED if verdict == REPRODUCED and part.condition else verdict
    return OPPOSITE if _overlaps(low, high, mirrored(part)) else NOT_REPRODUCED


def combine(verdicts: Sequence[str]) -> str:
    """A claim's verdict in one setting from its parts there (module docstring)."""
    if not verdicts:
        return NOT_TESTABLE
    if NOT_APPLICABLE in verdicts:
        return NOT_APPLICABLE
    if all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    if all(v == OPPOSITE for v in verdicts):
        return OPPOSITE
    if NOT_REPRODUCED in verdicts or OPPOSITE in verdicts:
        return NOT_REPRODUCED
    return NOT_TESTABLE


def format_number(value: float, style: str) -> str:
    """A number the way its part is read: a difference of accuracy or return (signed), a share
    (percent), entropy (nats), a ratio, or epochs."""
    if not math.isfinite(value):
        return "n/a"
    if style == "accuracy":
        return f"{value:+.4f}"
    if style == "return":
        return f"{value:+.1f}"
    if style == "percent":
        return f"{100 * value:+.0f}%"
    if style == "nats":
        return f"{value:.3f} nats"
    if style == "ratio":
        return f"{value:.2f}" if abs(value) < 100 else f"{value:.3g}"
    raise ValueError(f"unknown number style {style!r}")


def effect_text(effect: Estimate, style: str) -> str:
    """'+0.0040 [−0.0010, +0.0090]'; one seed: no interval."""
    if effect.n == 0:
        return "no runs"
    if not effect.has_interval:
        return f"{format_number(effect.estimate, style)} (no interval: {effect.n} seed{'s' if effect.n > 1 else ''})"
    return f"{format_number(effect.estimate, style)} [{format_number(effect.low, style)}, " \
           f"{format_number(effect.high, style)}]"


def p_text(p: float) -> str:
    if not math.isfinite(p):
        return "—"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}" if p < 0.01 else f"{p:.3f}"


def power_text(part: Part) -> str:
    """'0.40 (10 seeds for 80%)'."""
    if not math.isfinite(part.power):
        return "—"
    need = "over 100000" if part.seeds_needed is None else str(part.seeds_needed)
    return f"{part.power:.2f} ({need} seeds for 80%)"


# ---------------------------------------------------------------------------------------------
# The runs, indexed by setting and arm


@dataclass
class RunIndex:
    """The complete runs of a claims experiment by (setting, arm) and seed, with a short
    description of each setting ("digits, snnTorch [64] student")."""

    runs: Dict[Tuple[str, str], Dict[int, Run]]
    labels: Dict[str, str] = field(default_factory=dict)

    def arm(self, setting: str, arm: str) -> Dict[int, Run]:
        return self.runs.get((setting, arm), {})

    def present(self, settings: Sequence[str], arms: Sequence[str]) -> List[str]:
        """The settings (in the given order) that have runs of every one of ``arms``."""
        return [s for s in settings if all(self.arm(s, a) for a in arms)]

    def label(self, setting: str) -> str:
        return self.labels.get(setting, setting)

    def _student(self, setting: str) -> Dict:
        for (name, _), runs in self.runs.items():
            if name == setting:
                for run in runs.values():
                    student = run.config.get("student")
                    if isinstance(student, dict):
                        return student
        return {}

    def kind(self, setting: str) -> str:
        """'dense' or 'spiking', from the runs' ``student.backend`` (the setting's name when no
        run says: "...-dense" is dense)."""
        backend = self._student(setting).get("backend")
        if backend is None:
            return "dense" if setting.endswith("-dense") else "spiking"
        return "dense" if backend == "dense" else "spiking"

    def readout(self, setting: str) -> Optional[str]:
        """The spiking student's ``student.readout`` where the run config names one."""
        value = self._student(setting).get("readout")
        return None if value is None else str(value)

    def where(self, setting: str) -> str:
        """'digits-snntorch (spiking, readout count)': the setting, its student kind and readout."""
        readout = self.readout(setting)
        return f"{setting} ({self.kind(setting)}" + (f", readout {readout})" if readout else ")")


def test_score(run: Run) -> Optional[float]:
    """The run's score on test: accuracy or return of the weights it selected on validation."""
    return score_of(run)[1]


def validation_series(run: Run) -> np.ndarray:
    """The run's per-epoch validation score (accuracy, or return over validation episodes)."""
    series = score_spec(run)[2]
    return np.asarray(run.series.get(series, []) if series else [], dtype=float)


def validation_score(run: Run) -> Optional[float]:
    """The validation score of the weights the run selected: its last epoch's, or its best with
    ``distill.select: best_val``."""
    series = validation_series(run)
    if series.size == 0:
        return None
    return float(series.max() if run.eval.get("select") == "best_val" else series[-1])


def last(metric: str) -> Callable[[Run], Optional[float]]:
    """A run's last recorded value of a per-epoch metric (measured on validation)."""
    def measure(run: Run) -> Optional[float]:
        series = run.series.get(metric)
        return float(series[-1]) if series is not None and len(series) else None
    return measure


def paired(index: RunIndex, setting: str, arms: Sequence[str], measure: Callable[[Run], Optional[float]]) -> np.ndarray:
    """(seeds, arms): ``measure`` of each arm's run, for the seeds where every arm has a finite
    value, in seed order."""
    by_arm = [index.arm(setting, a) for a in arms]
    seeds = sorted(set.intersection(*(set(r) for r in by_arm))) if by_arm else []
    rows = []
    for seed in seeds:
        row = [measure(runs[seed]) for runs in by_arm]
        if all(v is not None and math.isfinite(v) for v in row):
            rows.append(row)
    return np.asarray(rows, dtype=float).reshape(len(rows), len(arms))


def mean_over_seeds(index: RunIndex, setting: str, arm: str, measure: Callable[[Run], Optional[float]]) -> float:
    values = [measure(r) for r in index.arm(setting, arm).values()]
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else math.nan


def best_on_validation(index: RunIndex, setting: str, arms: Sequence[str]) -> Optional[str]:
    """The arm with the highest mean validation score over its seeds (ties: the first listed)."""
    scores = [(mean_over_seeds(index, setting, a, validation_score), a) for a in arms if index.arm(setting, a)]
    scores = [(s, a) for s, a in scores if math.isfinite(s)]
    if not scores:
        return None
    best = max(s for s, _ in scores)
    return next(a for s, a in scores if s == best)


def epochs_to_target(target: float) -> Callable[[Run], Optional[float]]:
    """The 1-based epoch at which a run's validation score first reaches ``target``; a run that
    never does counts as one epoch more than it had (censored: it needed at least that)."""
    def measure(run: Run) -> Optional[float]:
        series = validation_series(run)
        if series.size == 0:
            return None
        reached = epochs_to_value(series, target)
        return reached if math.isfinite(reached) else float(series.size + 1)
    return measure


# ---------------------------------------------------------------------------------------------
# Claims and findings

Block = Tuple[Tuple[str, ...], Tuple[str, ...]]  # (settings, arms): every arm in every setting


@dataclass(frozen=True)
class Claim:
    """A claim as the study holds it: its sentence, the runs it needs and how it is measured.
    It lives beside ``Finding`` because judging reads it (its premise, its minimal effects) and
    its evaluation returns a Finding; the claims themselves are in ``tempdistill.studies.claims``."""

    id: str
    text: str                                           # the claim, in one sentence
    needs: Tuple[Block, ...]                            # the runs it is judged from
    evaluate: Callable[["Claim", RunIndex], Finding]
    # Per setting: why the claim's premise does not hold there ("" when it does); its parts
    # there are then "not applicable to these teachers". None: no premise to check.
    premise: Optional[Callable[["Claim", RunIndex, str], str]] = None
    # (number style, minimal effect) pairs replacing ``MINIMAL_EFFECT``'s for this claim's power
    minimal: Tuple[Tuple[str, float], ...] = ()

    def settings(self) -> List[str]:
        return list(dict.fromkeys(s for settings, _ in self.needs for s in settings))

    def arms(self) -> List[str]:
        return list(dict.fromkeys(a for _, arms in self.needs for a in arms))


@dataclass
class Finding:
    """One claim judged: its design, its parts setting by setting, and (after ``judge``) a
    verdict per setting."""

    claim: "Claim"
    setting: str                                 # the design and the settings that took part
    parts: List[Part] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    settings: List[str] = field(default_factory=list)
    where: Dict[str, str] = field(default_factory=dict)   # setting -> "digits-dense (dense)"
    verdicts: Dict[str, str] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """The common verdict of every setting, else "differs by setting" (never a pool)."""
        found = set(self.verdicts.values())
        if not found:
            return NOT_TESTABLE
        return found.pop() if len(found) == 1 else MIXED

    @property
    def verdict_text(self) -> str:
        """'digits-dense (dense): opposite; digits-snntorch (spiking): not testable here'."""
        if len(self.verdicts) <= 1 and self.verdict == NOT_TESTABLE and not self.parts:
            return NOT_TESTABLE
        return "; ".join(f"{self.where.get(s, s)}: {v}" for s, v in self.verdicts.items())

    @property
    def effect(self) -> str:
        return "; ".join(_part_text(p) for p in self.parts) or "no runs"

    @property
    def note(self) -> str:
        return " ".join(line.rstrip(".") + "." for line in self.notes)


def range_text(quoted: Tuple[float, float], style: str) -> str:
    """A claimed range as its part reads it: '0.500 nats to 1.200 nats'."""
    return f"{format_number(quoted[0], style)} to {format_number(quoted[1], style)}"


def _part_text(part: Part) -> str:
    quoted = ""
    if part.quoted is not None:
        quoted = f" (claimed: {range_text(part.quoted, part.style)})"
    return f"{part.setting}: {part.label}: {effect_text(part.test, part.style)}{quoted}"


def finding(claim: "Claim", index: RunIndex, settings: Sequence[str], design: str, parts: List[Part],
            notes: Sequence[str] = ()) -> Finding:
    """A Finding from measured parts (not yet judged: ``judge`` does that over the study); the
    claim's premise is checked here, setting by setting."""
    seeds = sorted({seed for s in settings for (setting, _), runs in index.runs.items() if setting == s for seed in runs})
    where = "; ".join(index.label(s) for s in settings) or "no setting ran"
    setting_text = f"{design} — {where}; seeds {', '.join(map(str, seeds)) or 'none'}"
    lines = list(notes)
    premises: Dict[str, str] = {}
    for part in parts:
        if claim.premise is not None and part.setting not in premises:
            premises[part.setting] = claim.premise(claim, index, part.setting)
        part.not_applicable = premises.get(part.setting, "")
    lines += [f"{s}: the claim's premise does not hold: {why}" for s, why in premises.items() if why]
    if not parts:
        lines.append("not testable: no setting has runs of every arm the claim needs")
    ordered = list(dict.fromkeys([s for s in settings] + [p.setting for p in parts]))
    return Finding(claim, setting_text, parts, lines, ordered, {s: index.where(s) for s in ordered})


def untestable(claim: "Claim", reason: str) -> Finding:
    return Finding(claim, "—", [], [reason])


def judge(findings: Sequence[Finding]) -> List[Finding]:
    """Holm over every part of ``findings`` with a p-value, then each part's power and verdict,
    then each claim's verdict per setting (module docstring). Returns the findings."""
    parts = [p for f in findings for p in f.parts]
    family = [p for p in parts if p.in_family]
    for part, adjusted in zip(family, holm([p.test.p for p in family])):
        part.adjusted_p = adjusted
    for f in findings:
        minimal = dict(MINIMAL_EFFECT, **dict(f.claim.minimal))
        for part in f.parts:
            if part.test.has_interval:
                floor = minimal.get(part.style, math.nan)
                part.size = claimed_size(part, floor)
                part.power = part_power(part, floor)
                part.seeds_needed = seeds_for_power(lambda n, part=part, floor=floor: part_power(part, floor, n))
            part.verdict = part_verdict(part)
            f.notes.extend(_verdict_notes(part, len(family)))
        by_setting: Dict[str, List[str]] = {}
        for part in f.parts:
            by_setting.setdefault(part.setting, []).append(part.verdict)
        f.verdicts = {s: combine(by_setting[s]) for s in f.settings if s in by_setting}
    return list(findings)


def _verdict_notes(part: Part, family: int) -> List[str]:
    """What a reader needs beside a part's verdict: why it cannot be judged, its power when
    that decided, a size other than claimed, a failed condition."""
    head = f"{part.setting}: {part.label}"
    if part.not_applicable:
        return []
    if part.untestable:
        return [f"{head}: not testable: {part.untestable}"]
    if not part.test.has_interval:
        return [f"{head}: not testable: fewer than {3 if part.ratio else 2} paired seeds with a spread"]
    lines = []
    size = format_number(part.size, "ratio" if part.ratio else part.style)
    if part.verdict == NOT_TESTABLE:
        lines.append(f"{head}: not significant (Holm-adjusted p {p_text(part.adjusted_p)} over {family} parts) and "
                     f"the power to detect {size} at {part.test.n} seeds is {power_text(part)}")
    elif part.verdict == NOT_REPRODUCED and part.side is None and part.condition and part_verdict(
            replace(part, condition="")) == REPRODUCED:
        lines.append(f"{head}: within the claimed range, but {part.condition}")
    elif part.verdict == NOT_REPRODUCED and part.side is not None and part.adjusted_p < ALPHA:
        direction = 1 if part.test.estimate > part.null else -1
        if part.condition and direction == part.side and _overlaps(part.test.low, part.test.high, part.quoted):
            lines.append(f"{head}: significant on the claimed side, but {part.condition}")
        else:
            lines.append(f"{head}: significant {'on the claimed side' if direction == part.side else 'the other way'}"
                         f", but of another size than the claim's")
    return lines
