"""Commonly stated claims about temperature in distillation, judged from run files.

Each claim (``CLAIMS``, C1–C11) carries the claim in one sentence, the runs it needs (blocks of
settings × arms: a setting is a dataset or environment with one student, an arm a temperature
schedule or student option; ``claims.yaml`` defines both by these names) and an evaluation that
turns the runs into a ``Finding``: the design, and the claim's parts *setting by setting*, each
with its effect, 95% interval, p-value, Holm-adjusted p-value, power and verdict. How a part
becomes a verdict (the rules, Holm over the study, power) is ``tempdistill.studies.verdicts``.
Nothing here trains or plans; ``tempdistill.studies.claims_experiment`` does.

Where the numbers come from. Every choice (the best of several schedules, the best fixed T, an
epoch target) is made on validation figures; an effect is measured on test figures
(``statistics.score_of``: the test figure of the weights each run selected), except where the
claim is itself about what happens on validation during training: epochs to a validation target
(C3, C11) and the information in soft labels on validation rows (C1, C8). The reference "fixed T"
is ``best_constant``: per setting, the constant T best on validation in the tuning stage, which
``claims_plan`` resolves to a constant arm (every arm gets the same lr × alpha tuning there).
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from tempdistill.analysis.inference import (
    ALPHA,
    TARGET_POWER,
    Estimate,
    holm,
    std_ratio_test,
    t_power,
    t_test,
)
from tempdistill.record.run import Run
from tempdistill.studies.verdicts import (
    MINIMAL_EFFECT,
    Claim,
    Finding,
    Part,
    RunIndex,
    best_on_validation,
    effect_text,
    epochs_to_target,
    finding,
    format_number,
    judge,
    last,
    mean_over_seeds,
    p_text,
    paired,
    speedup,
    test_score,
    untestable,
    validation_score,
    validation_series,
)
from tempdistill.sweep.summary import target_near

# ---------------------------------------------------------------------------------------------
# The claims

CLASSIFICATION = ("digits-dense", "digits-snntorch", "mnist1d-dense", "mnist1d-snntorch")
SPIKING = ("digits-snntorch", "mnist1d-snntorch")
# one per teacher: the soft labels do not depend on the student. digits-smoothed-dense's teacher is
# trained with label smoothing 0.2, so its soft labels carry C1's premised entropy (about 0.9 nats)
TEACHERS = ("digits-dense", "mnist1d-dense", "digits-smoothed-dense")
FIXED = "best_constant"  # an alias the plan resolves per setting: the constant T best on validation
CONSTANTS = ("T1", "T2", "T4", "T5", "T8")
DYNAMIC = ("linear", "cosine", "exponential", "two_phase", "adaptive", "ctkd")
GROUPED = ("grouped_a", "grouped_b")
DISCRETE_POLICY = ("acrobot-dense", "lunarlander-dense")  # CartPole's return sits at its ceiling (500): no room for C11
CONTINUOUS_POLICY = ("pendulum-dense",)

# Arms that cannot be tested faithfully in some settings: (settings, why). The plan does not run
# them there, and each claim that needs them says why in its notes.
NOT_TESTABLE_IN: Dict[str, Tuple[Tuple[str, ...], str]] = {
    "ctkd": (SPIKING, "a spiking student applies T through its thresholds without gradient, so CTKD's temperature "
                      "would learn from the teacher's side alone: CTKD is tested on the dense students only"),
}


def _difference_parts(index: RunIndex, label: str, settings: Sequence[str], reference: str,
                      treatment: Callable[[str], Optional[str]], style: str = "accuracy") -> List[Part]:
    """Per setting with runs of both arms, treatment − reference in test score, paired by seed;
    ``treatment(setting)`` names the arm (it may be chosen on validation per setting)."""
    parts = []
    for s in settings:
        arm = treatment(s)
        if arm is not None and index.arm(s, reference) and index.arm(s, arm):
            pairs = paired(index, s, [reference, arm], test_score)
            parts.append(Part(label, s, t_test(pairs[:, 1] - pairs[:, 0]), style))
    return parts


def _level_test(values: np.ndarray, quoted: Tuple[float, float]) -> Estimate:
    """The t-interval of a level's mean, with p the t-test against the nearest end of the quoted
    range (1 when the mean lies inside it)."""
    inside = t_test(values)
    if not math.isfinite(inside.estimate) or quoted[0] <= inside.estimate <= quoted[1]:
        return Estimate(inside.estimate, inside.low, inside.high, 1.0 if inside.has_interval else math.nan,
                    inside.n, inside.sd)
    edge = quoted[0] if inside.estimate < quoted[0] else quoted[1]
    return t_test(values, null=edge)


def _by_setting(parts: List[Part]) -> List[Part]:
    """The parts grouped by setting (in order of first appearance), each setting's in the given order."""
    order = list(dict.fromkeys(p.setting for p in parts))
    return sorted(parts, key=lambda p: order.index(p.setting))


def _chosen(index: RunIndex, arms: Sequence[str], notes: List[str], what: str) -> Callable[[str], Optional[str]]:
    """Per setting, the arm among ``arms`` best on validation; what was chosen goes to ``notes``."""
    choices: Dict[str, Optional[str]] = {}

    def choose(setting: str) -> Optional[str]:
        if setting not in choices:
            choices[setting] = best_on_validation(index, setting, arms)
            if choices[setting] is not None:
                notes.append(f"{what} chosen on validation in {setting}: {choices[setting]}")
        return choices[setting]
    return choose


def schedule_comparison(index: RunIndex) -> List[str]:
    """Markdown: every schedule against the best constant T (per setting, the constant T best on
    validation in the tuning stage), per classification setting, as paired test-accuracy
    differences over seeds with their 95% t-interval, the paired t-test's p Holm-adjusted over the
    table's rows (a family of its own, apart from the claims'), and the power to detect a
    difference of 0.01. A schedule "beats it" or is "worse" when the adjusted p < 0.05; "no clear
    difference" when not and the power was ≥ 0.8; "cannot tell" when not and the power was lower.
    Every arm's lr, alpha and range were chosen on validation (nothing here on test data)."""
    rows = []
    for setting in CLASSIFICATION:
        if not index.arm(setting, FIXED):
            continue
        rows.append((setting, None, None))
        for arm in DYNAMIC + GROUPED:
            if index.arm(setting, arm):
                pairs = paired(index, setting, [FIXED, arm], test_score)
                rows.append((setting, arm, t_test(pairs[:, 1] - pairs[:, 0])))
    tests = [t for _, _, t in rows if t is not None]
    adjusted = iter(holm([t.p for t in tests]))
    lines = [f"| setting | schedule | seeds | test accuracy | Δ vs best constant T [95% interval] | p (Holm, {len(tests)} rows) "
             f"| power for ±{MINIMAL_EFFECT['accuracy']} | against the best constant T |",
             "|---|---|---|---|---|---|---|---|"]
    for setting, arm, test in rows:
        if test is None:
            lines.append(f"| {setting} | best constant T | {len(index.arm(setting, FIXED))} | "
                         f"{mean_over_seeds(index, setting, FIXED, test_score):.4f} | | | | |")
            continue
        p = next(adjusted)
        power = t_power(MINIMAL_EFFECT["accuracy"], test.sd, test.n)
        if not test.has_interval:
            said = "cannot tell (fewer than 2 paired seeds)"
        elif p < ALPHA:
            said = "beats it" if test.estimate > 0 else "worse"
        elif math.isfinite(power) and power >= TARGET_POWER:
            said = "no clear difference"
        else:
            said = "cannot tell (power below 0.8)"
        lines.append(f"| {setting} | {arm} | {test.n} | {mean_over_seeds(index, setting, arm, test_score):.4f} | "
                     f"{effect_text(test, 'accuracy')} | {p_text(p)} | "
                     f"{'—' if not math.isfinite(power) else f'{power:.2f}'} | {said} |")
    return lines if len(lines) > 2 else []


C1_ENTROPY = (0.5, 1.2)      # nats at T = 1, the claim's premise
# A teacher is "far more confident" than the claim's when the upper end of the 95% interval of
# its entropy at T = 1 is below this share of the claim's lowest entropy.
PREMISE_SHARE = 0.5


def _c1_premise(claim: Claim, index: RunIndex, setting: str) -> str:
    """C1's sizes (300–500% more entropy at T = 5) presume soft labels of 0.5–1.2 nats at T = 1."""
    entropy = paired(index, setting, ["T1"], last("teacher_entropy"))
    level = t_test(entropy[:, 0]) if entropy.size else Estimate.missing()
    if level.has_interval and level.high < PREMISE_SHARE * C1_ENTROPY[0]:
        return (f"the teacher's soft labels carry {format_number(level.estimate, 'nats')} "
                f"[{format_number(level.low, 'nats')}, {format_number(level.high, 'nats')}] at T = 1, far more "
                f"confident than the {C1_ENTROPY[0]}–{C1_ENTROPY[1]} nats the claim starts from (the interval's upper "
                f"end is below {PREMISE_SHARE:.0%} of {C1_ENTROPY[0]} nats)")
    return ""


def _c1(claim: Claim, index: RunIndex) -> Finding:
    settings = index.present(TEACHERS, ("T1", "T5"))
    parts, notes = [], []
    for s in settings:
        entropy = paired(index, s, ["T1", "T5"], last("teacher_entropy"))
        level = _level_test(entropy[:, 0], C1_ENTROPY)
        parts.append(Part("teacher entropy at T = 1", s, level, "nats", side=None, quoted=C1_ENTROPY))
        with np.errstate(divide="ignore", invalid="ignore"):
            growth = entropy[:, 1] / entropy[:, 0] - 1.0
        parts.append(Part("growth from T = 1 to T = 5", s, t_test(growth), "percent", quoted=(3.0, 5.0)))
        if entropy.size and math.isfinite(level.estimate) and level.estimate > 0:
            ceiling = math.log(10) / level.estimate - 1.0
            notes.append(f"{s}: 10 classes cap the entropy at ln 10 = 2.303 nats, so from "
                         f"{level.estimate:.3f} nats the growth can be at most {100 * ceiling:.0f}%")
    if not parts:
        return untestable(claim, "no teacher setting has runs at T = 1 and T = 5")
    return finding(claim, index, settings, "teacher soft labels on validation rows, constant T = 1 vs T = 5",
                   parts, notes)


def _c2(claim: Claim, index: RunIndex) -> Finding:
    notes: List[str] = []
    settings = [s for s in CLASSIFICATION if index.arm(s, FIXED)]
    parts = _difference_parts(index, "Δ test accuracy, best dynamic schedule (on validation) − best constant T",
                              settings, FIXED, _chosen(index, DYNAMIC, notes, "dynamic schedule"))
    notes.append("the quoted +42% 'distillation efficiency' names no measure that can be recomputed, so only the "
                 "direction is tested (powered for +0.01 accuracy)")
    return finding(claim, index, [p.setting for p in parts], f"the dynamic schedule ({', '.join(DYNAMIC)}) best on "
                   "validation vs best constant T, test accuracy", parts, notes)


def _c3(claim: Claim, index: RunIndex) -> Finding:
    strata, notes, parts = {}, [], []
    for s in index.present(CLASSIFICATION, (FIXED, "adaptive")):
        target = target_near(mean_over_seeds(index, s, FIXED, validation_score))
        epochs = paired(index, s, [FIXED, "adaptive"], epochs_to_target(target))
        if epochs.size == 0:
            continue
        strata[s] = epochs
        total = max(len(validation_series(r)) for r in index.arm(s, FIXED).values())
        never = int((epochs >= total + 1).sum())
        notes.append(f"{s}: target {target:.4f}; mean epochs to it: best constant T {epochs[:, 0].mean():.1f}, adaptive "
                     f"{epochs[:, 1].mean():.1f}" + (f" ({never} runs never reached it, counted as {total + 1})" if never else ""))
        parts.append(Part("epochs saved by adaptive T (share of the best constant T's, per seed)", s,
                          t_test(speedup(epochs)), "percent", quoted=(0.10, 0.20)))
    if not parts:
        return untestable(claim, "no setting has runs of both arms")
    notes.append("'about 15%' is read as 10% to 20%; the target is 95% of the best constant T's mean final "
                 "validation accuracy")
    return finding(claim, index, list(strata), "KL-driven adaptive T vs best constant T, epochs to a validation target",
                   parts, notes)


def _c4(claim: Claim, index: RunIndex) -> Finding:
    strata = {s: paired(index, s, [FIXED, "cosine"], test_score) for s in index.present(CLASSIFICATION, (FIXED, "cosine"))}
    parts = []
    for s, pairs in strata.items():
        spread = pairs.std(axis=0) if pairs.shape[0] > 1 else np.zeros(2)
        correlation = float(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1]) if pairs.shape[0] > 2 and spread.all() \
            else math.nan
        parts.append(Part("seed-to-seed std of test accuracy, cosine / best constant T", s, std_ratio_test(pairs),
                          "ratio", side=-1, null=1.0, quoted=(0.73, 0.86), ratio=True, correlation=correlation))
    if not parts:
        return untestable(claim, "no setting has runs of both arms")
    notes = ["'27% lower' is read as a std ratio of 0.73 (27% lower std) to 0.86 (27% lower variance); tested per "
             "setting with the Pitman–Morgan test of equal variances over paired seeds, whose power at a true ratio of "
             "0.86 is low unless there are very many seeds"]
    return finding(claim, index, list(strata), "cosine curriculum high→1 vs best constant T, spread of test accuracy "
                   "over seeds", parts, notes)


def _single_arm_claim(arm: str, design: str, label: str) -> Callable[[Claim, RunIndex], Finding]:
    def evaluate(claim: Claim, index: RunIndex) -> Finding:
        parts = _difference_parts(index, label, CLASSIFICATION, FIXED, lambda s: arm)
        return finding(claim, index, [p.setting for p in parts], design, parts)
    return evaluate


def _c6(claim: Claim, index: RunIndex) -> Finding:
    first = _difference_parts(index, "linear − best constant T", CLASSIFICATION, FIXED, lambda s: "linear")
    second = _difference_parts(index, "adaptive − linear", CLASSIFICATION, "linear", lambda s: "adaptive")
    parts = _by_setting(first + second)
    return finding(claim, index, list(dict.fromkeys(p.setting for p in parts)),
                   "best constant T, linear high→1 and KL-driven adaptive T, Δ test accuracy", parts)


def _c7(claim: Claim, index: RunIndex) -> Finding:
    high = _difference_parts(index, "two-phase − one phase at T = 8", CLASSIFICATION, "T8", lambda s: "step")
    low = _difference_parts(index, "two-phase − one phase at T = 1", CLASSIFICATION, "T1", lambda s: "step")
    parts = _by_setting(high + low)
    settings = list(dict.fromkeys(p.setting for p in parts))
    notes = ["the two-phase arm (schedule step) distils at T = 8 for the first half of the epochs, then at T = 1, "
             "with one alpha throughout; each one-phase arm runs one of its two temperatures throughout; every arm's "
             "lr and alpha are its own, chosen on validation in the tuning stage"]
    return finding(claim, index, settings, "two-phase 8 → 1 vs each of its phases alone, Δ test accuracy",
                   parts, notes)


GOLDEN_RATIO = 1.5


def _mi_ratio(run: Run) -> Optional[float]:
    teacher, student = last("teacher_mi")(run), last("student_mi")(run)
    if teacher is None or student is None or student <= 0:
        return None
    return teacher / student


def _c8(claim: Claim, index: RunIndex) -> Finding:
    """Ratio I(teacher soft labels; y) / I(student outputs; y), both at the run's T on validation
    rows, at the constant T best on validation. Reproduced needs, in every setting, (a) the
    ratio's interval at the best T to overlap 1.5 ± 10% and (b) the T whose mean ratio is nearest
    1.5 to be that best T. Whether *some* ratio predicts the best T is tested leaving one setting
    out (a note, not a verdict): the mean ratio at the best T of the other settings picks a T in
    the held-out one."""
    settings = [s for s in CLASSIFICATION if sum(bool(index.arm(s, a)) for a in CONSTANTS) >= 2]
    parts, notes, best, ratios = [], [], {}, {}
    for s in settings:
        arms = [a for a in CONSTANTS if index.arm(s, a)]
        best[s] = best_on_validation(index, s, arms)
        ratios[s] = {a: mean_over_seeds(index, s, a, _mi_ratio) for a in arms}
        values = paired(index, s, [best[s]], _mi_ratio)
        parts.append(Part(f"MI ratio at the best T ({best[s]})", s, _level_test(values[:, 0], (1.35, 1.65)), "ratio",
                          side=None, quoted=(1.35, 1.65)))
        notes.append(f"{s}: ratio by T " + ", ".join(f"{a} {r:.2f}" for a, r in ratios[s].items()))
    if not parts:
        return untestable(claim, "no classification setting has runs of two constant temperatures")
    nearest = {s: min(ratios[s], key=lambda a: abs(ratios[s][a] - GOLDEN_RATIO)) for s in settings}
    hits = [s for s in settings if nearest[s] == best[s]]
    for part in parts:
        if nearest[part.setting] != best[part.setting]:
            part.condition = f"the T whose ratio is nearest 1.5 is {nearest[part.setting]}, not the best T"
    notes.append(f"the T whose ratio is nearest 1.5 is the best T in {len(hits)} of {len(settings)} settings")
    if len(settings) > 1:
        predicted = 0
        for s in settings:
            others = [ratios[o][best[o]] for o in settings if o != s]
            pooled = float(np.mean(others))
            predicted += min(ratios[s], key=lambda a: abs(ratios[s][a] - pooled)) == best[s]
        notes.append(f"leaving one setting out, the mean ratio at the best T of the others picks the best T in "
                     f"{predicted} of {len(settings)} (chance: 1 in {len(CONSTANTS)})")
    return finding(claim, index, settings, f"constant T ∈ {{{', '.join(a[1:] for a in CONSTANTS)}}}, mutual "
                   "information of soft labels with the label on validation rows, best T on validation", parts, notes)


def _c9(claim: Claim, index: RunIndex) -> Finding:
    notes: List[str] = []
    parts = _difference_parts(index, "Δ test accuracy, per-class-group T (on validation) − one shared best constant T",
                              CLASSIFICATION, FIXED, _chosen(index, GROUPED, notes, "grouping"))
    notes.append("the groups were fixed before any run (claims.yaml), not fitted to these data; per-head "
                 "temperatures (task: multitask) are not part of this experiment")
    return finding(claim, index, [p.setting for p in parts], "one T per class group (two a-priori groupings, the "
                   "better on validation) vs the best constant T", parts, notes)


def _c10(claim: Claim, index: RunIndex) -> Finding:
    parts = _difference_parts(index, "Δ test accuracy, threshold τ = 10 − τ = 1 steps", SPIKING, "step_tau1",
                              lambda s: "step")
    if not parts:
        return untestable(claim, "no setting has runs of both arms")
    notes = ["both arms run the step schedule (T high for the first half of the epochs, then 1, one alpha "
             "throughout) and differ only in the output thresholds' time constant; each arm's lr and alpha are "
             "its own, chosen on validation in the tuning stage."]
    return finding(claim, index, [p.setting for p in parts], "spiking students after a step change of T (high → 1 at "
                   "half time): output thresholds relaxing toward θ0·T with τ = 10 steps vs jumping (τ = 1)", parts,
                   notes)


def _policy_range_parts(index: RunIndex, label: str, settings: Sequence[str], inside: Sequence[str], outside: str,
                        notes: List[str]) -> List[Part]:
    """The in-range T best on validation − the out-of-range T, in test return."""
    return _difference_parts(index, label, settings, outside, _chosen(index, inside, notes, "in-range T"), style="return")


def _c11(claim: Claim, index: RunIndex) -> Finding:
    notes: List[str] = []
    for s in DISCRETE_POLICY + CONTINUOUS_POLICY:
        arms = ("T1", "T3", "T6") if s in DISCRETE_POLICY else ("T1", "T2", "T3")
        if any(index.arm(s, a) for a in arms):
            notes.append(f"best T on validation in {s}: {best_on_validation(index, s, arms)}")
    parts = _policy_range_parts(index, "discrete: T ∈ [3, 6] − T = 1, test return", DISCRETE_POLICY,
                                ("T3", "T6"), "T1", notes)
    parts += _policy_range_parts(index, "continuous: T ∈ [1.5, 3] − T = 1, test return", CONTINUOUS_POLICY,
                                 ("T2", "T3"), "T1", notes)
    for s in index.present(CONTINUOUS_POLICY, ("T1", "exponential_3_1")):
        target = target_near(mean_over_seeds(index, s, "T1", validation_score))
        epochs = paired(index, s, ["T1", "exponential_3_1"], epochs_to_target(target))
        notes.append(f"{s}: validation-return target {target:.1f}")
        parts.append(Part("continuous: epochs saved by exponential decay 3→1 vs T = 1 (per seed)", s,
                          t_test(speedup(epochs)) if epochs.size else Estimate.missing(), "percent"))
    if not parts:
        return untestable(claim, "no policy setting has runs of the arms it needs")
    parts = _by_setting(parts)
    settings = [s for s in DISCRETE_POLICY + CONTINUOUS_POLICY if any(k[0] == s for k in index.runs)]
    notes.append("each epoch collects the same number of environment steps, so epochs to a validation return "
                 "measure sample efficiency")
    return finding(claim, index, settings, "policy distillation: Acrobot-v1 and LunarLander-v3 (discrete) at T ∈ {1, 3, 6}; Pendulum-v1 "
                   "(continuous) at T ∈ {1, 2, 3} and an exponential decay 3→1", parts, notes)


CLAIMS: Tuple[Claim, ...] = (
    Claim("C1", "A trained classifier's soft labels carry 0.5–1.2 nats of entropy at T = 1, and 300–500% more at T = 5.",
          ((TEACHERS, ("T1", "T5")),), _c1, premise=_c1_premise),
    Claim("C2", "Adjusting T dynamically during distillation improves the student over a fixed T (up to +42% "
                "'distillation efficiency' is quoted).", ((CLASSIFICATION, (FIXED,) + DYNAMIC),), _c2),
    Claim("C3", "A KL-driven adaptive T trains about 15% faster (epochs to a target accuracy).",
          ((CLASSIFICATION, (FIXED, "adaptive")),), _c3),
    Claim("C4", "A cosine high→low T curriculum makes convergence more stable: the seed-to-seed variance of the final "
                "accuracy is lower (by 27%, it is quoted).", ((CLASSIFICATION, (FIXED, "cosine")),), _c4),
    Claim("C5", "An adversarially learned T (CTKD-style) beats a fixed T.", ((CLASSIFICATION, (FIXED, "ctkd")),),
          _single_arm_claim("ctkd", "CTKD's global learned T as published (gradient reversal, λ curriculum) vs best "
                            "constant T, test accuracy", "Δ test accuracy, ctkd − best constant T")),
    Claim("C6", "Gains are ordered: fixed T < linear curriculum < adaptive T.",
          ((CLASSIFICATION, (FIXED, "linear", "adaptive")),), _c6),
    Claim("C7", "High-T distillation followed by low-T fine-tuning (two phases) beats one phase.",
          ((CLASSIFICATION, ("T8", "T1", "step")),), _c7),
    Claim("C8", "Transfer is most efficient when the mutual information carried by the teacher's outputs is about 1.5× "
                "the student's (a 'golden ratio' that predicts the best T).", ((CLASSIFICATION, CONSTANTS),), _c8),
    Claim("C9", "Independent temperatures per output group (or per task head) beat one shared T.",
          ((CLASSIFICATION, (FIXED,) + GROUPED),), _c9),
    Claim("C10", "In a spiking student, a threshold with memory (plasticity time constant > 1 step) beats one that "
                 "jumps to θ0·T at once.", ((SPIKING, ("step", "step_tau1")),), _c10),
    Claim("C11", "In policy distillation, discrete-action policies distil best at T = 3–6 and continuous ones at "
                 "T = 1.5–3, and an exponential T decay improves sample efficiency on continuous control.",
          ((DISCRETE_POLICY, ("T1", "T3", "T6")), (CONTINUOUS_POLICY, ("T1", "T2", "T3", "exponential_3_1"))), _c11),
)

CLAIM_IDS = tuple(c.id for c in CLAIMS)


def claims_by_id(ids: Optional[Sequence[str]] = None) -> List[Claim]:
    """The registry's claims, all or the named ones in registry order; an unknown id raises
    ValueError naming the allowed ones."""
    if ids is None:
        return list(CLAIMS)
    wanted = [i.strip().upper() for i in ids if i.strip()]
    unknown = [i for i in wanted if i not in CLAIM_IDS]
    if unknown or not wanted:
        raise ValueError(f"unknown claim {unknown[0] if unknown else '(none given)'!r}; allowed: {', '.join(CLAIM_IDS)}")
    return [c for c in CLAIMS if c.id in wanted]


def evaluate(claims: Sequence[Claim], index: RunIndex) -> List[Finding]:
    """Every claim judged from the runs, in order; the claims evaluated together are one Holm
    family (the rules in ``tempdistill.studies.verdicts``)."""
    return judge([claim.evaluate(claim, index) for claim in claims])
