"""The claims experiment: verdict rules on known numbers, claims judged from hand-made runs, the
shipped claims file's plan, and one quick end-to-end run of the command."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np
import pytest
import yaml

from tempdistill.studies.claims import claims_by_id, evaluate
from tempdistill.studies.verdicts import (
    MIXED,
    NOT_APPLICABLE,
    NOT_REPRODUCED,
    NOT_TESTABLE,
    OPPOSITE,
    REPRODUCED,
    VERDICTS,
    Part,
    RunIndex,
    combine,
    log_std_ratio,
    mirrored,
    part_verdict,
    speedup,
)
from tempdistill.analysis.inference import Estimate
from tempdistill.record.run import Run
from tempdistill.studies.claims_plan import _get_path, choose, plan_claims, plan_ranges, plan_tuning
from tempdistill.studies.claims_spec import load_spec
from tempdistill.app.cli import main

REPO_ROOT = Path(__file__).resolve().parents[1]
CLAIMS_FILE = REPO_ROOT / "experiments" / "claims.yaml"


def part(low: float, high: float, p: float = 0.001, power: float = 0.9, **kwargs: Any) -> Part:
    """A part with a given interval, (adjusted) p-value and power."""
    found = Part("effect", "digits-dense", Estimate((low + high) / 2, low, high, p, 5, 0.01), "accuracy", **kwargs)
    found.power = power
    return found


# --- verdict rules ----------------------------------------------------------------------------


def test_each_verdict_is_reached_by_its_rule() -> None:
    assert part_verdict(part(0.01, 0.03)) == REPRODUCED                       # significant, above 0
    assert part_verdict(part(-0.03, -0.01)) == OPPOSITE                       # significant, below 0
    assert part_verdict(part(-0.01, 0.03, p=0.4)) == NOT_REPRODUCED           # not significant, well powered
    assert part_verdict(part(-0.01, 0.03, p=0.4, power=0.3)) == NOT_TESTABLE  # not significant, underpowered
    assert part_verdict(part(0.01, 0.03, power=0.1)) == REPRODUCED            # significance keeps its verdict
    assert part_verdict(part(math.nan, math.nan)) == NOT_TESTABLE             # no interval
    assert part_verdict(part(0.01, 0.03, untestable="no runs")) == NOT_TESTABLE
    assert part_verdict(part(0.01, 0.03, not_applicable="teachers too sharp")) == NOT_APPLICABLE


def test_the_verdict_reads_the_holm_adjusted_p() -> None:
    raw = part(0.01, 0.03, p=0.02)
    assert part_verdict(raw) == REPRODUCED                                   # no adjustment made: the raw p
    raw.adjusted_p = 0.08
    assert part_verdict(raw) == NOT_REPRODUCED                               # adjusted: no longer significant
    raw.power = 0.5
    assert part_verdict(raw) == NOT_TESTABLE


def test_a_quoted_size_is_mirrored_for_opposite() -> None:
    quoted = {"quoted": (0.10, 0.20)}
    assert part_verdict(part(0.12, 0.25, **quoted)) == REPRODUCED
    assert part_verdict(part(0.30, 0.50, **quoted)) == NOT_REPRODUCED        # right side, wrong size
    assert part_verdict(part(0.01, 0.05, **quoted)) == NOT_REPRODUCED
    assert part_verdict(part(-0.25, -0.12, **quoted)) == OPPOSITE             # the mirrored claim holds
    assert part_verdict(part(-0.50, -0.30, **quoted)) == NOT_REPRODUCED       # other side, wrong size: symmetric
    assert part_verdict(part(-0.05, -0.01, **quoted)) == NOT_REPRODUCED
    assert mirrored(part(0, 1, **quoted)) == pytest.approx((-0.20, -0.10))
    assert mirrored(part(0, 1, side=-1, null=1.0, quoted=(0.73, 0.86), ratio=True)) == pytest.approx((1 / 0.86, 1 / 0.73))


def test_a_ratio_claimed_below_one_and_a_level() -> None:
    ratio = {"side": -1, "null": 1.0, "quoted": (0.73, 0.86), "ratio": True}
    assert part_verdict(part(0.6, 0.8, **ratio)) == REPRODUCED
    assert part_verdict(part(0.4, 0.6, **ratio)) == NOT_REPRODUCED
    assert part_verdict(part(1.1, 1.6, **ratio)) == OPPOSITE                  # overlaps [1.16, 1.37]
    assert part_verdict(part(1.8, 2.6, **ratio)) == NOT_REPRODUCED            # other side, beyond the mirrored size
    assert part_verdict(part(0.9, 1.2, p=0.5, power=0.05, **ratio)) == NOT_TESTABLE  # C4 at five seeds
    level = {"side": None, "quoted": (1.2, 1.6)}
    assert part_verdict(part(1.0, 1.3, p=1.0, **level)) == REPRODUCED         # not outside, overlapping, powered
    assert part_verdict(part(1.0, 1.3, p=1.0, power=0.2, **level)) == NOT_TESTABLE
    assert part_verdict(part(1.7, 2.3, p=0.001, **level)) == NOT_REPRODUCED   # significantly above the range


def test_combining_parts_in_one_setting() -> None:
    assert combine([REPRODUCED, REPRODUCED]) == REPRODUCED
    assert combine([OPPOSITE, OPPOSITE]) == OPPOSITE
    assert combine([REPRODUCED, OPPOSITE]) == NOT_REPRODUCED
    assert combine([REPRODUCED, NOT_REPRODUCED]) == NOT_REPRODUCED
    assert combine([REPRODUCED, NOT_TESTABLE]) == NOT_TESTABLE
    assert combine([OPPOSITE, NOT_TESTABLE]) == NOT_REPRODUCED                # one part decides against the claim
    assert combine([NOT_APPLICABLE, REPRODUCED]) == NOT_APPLICABLE
    assert combine([]) == NOT_TESTABLE


# --- statistics of the parts ------------------------------------------------------------------


def test_spread_ratio_and_speedup_statistics() -> None:
    x = np.array([[0.90, 0.95], [0.94, 0.96], [0.86, 0.94], [0.92, 0.95]])
    assert math.exp(log_std_ratio(x)) == pytest.approx(x[:, 1].std(ddof=1) / x[:, 0].std(ddof=1))
    epochs = np.array([[10.0, 8.0], [12.0, 11.0], [8.0, 6.0]])
    assert speedup(epochs) == pytest.approx([0.2, 1 / 12, 0.25])              # per seed


# --- claims judged from hand-made runs --------------------------------------------------------


def fake_run(arm: str, seed: int, test: float, val: Sequence[float], **metrics: float) -> Run:
    series = {"val_accuracy": np.asarray(val, dtype=float)}
    series.update({k: np.asarray([v], dtype=float) for k, v in metrics.items()})
    return Run.from_parts(config={"name": arm, "seed": seed}, series=series, eval={"student_accuracy": test})


def index_of(cells: Dict[tuple, List[Run]]) -> RunIndex:
    return RunIndex({key: {run.config["seed"]: run for run in runs} for key, runs in cells.items()})


def judge(claim_id: str, index: RunIndex):
    return evaluate(claims_by_id([claim_id]), index)[0]


@pytest.mark.parametrize("gain, verdict", [(0.02, REPRODUCED), (-0.02, OPPOSITE), (0.0, NOT_REPRODUCED)])
def test_ctkd_against_the_best_constant_t(gain: float, verdict: str) -> None:
    rng = np.random.default_rng(1)
    cells = {}
    for setting in ("digits-dense", "digits-snntorch"):
        base = 0.9 + 0.01 * rng.standard_normal(5)
        noise = 0.002 * rng.standard_normal(5) if gain else np.zeros(5)
        cells[(setting, "best_constant")] = [fake_run("T4", s, base[s], [0.9]) for s in range(5)]
        cells[(setting, "ctkd")] = [fake_run("ctkd", s, base[s] + gain + noise[s], [0.9]) for s in range(5)]
    found = judge("C5", index_of(cells))
    assert found.verdict == verdict
    assert list(found.verdicts) == ["digits-dense", "digits-snntorch"]       # one verdict per setting, no pool
    assert "[" in found.effect and [p.test.n for p in found.parts] == [5, 5]
    assert all(math.isfinite(p.adjusted_p) and p.adjusted_p >= p.test.p for p in found.parts)


def test_dense_and_spiking_settings_get_their_own_verdicts() -> None:
    rng = np.random.default_rng(3)
    cells = {}
    for setting, gain in (("digits-dense", 0.02), ("digits-snntorch", -0.02)):
        base = 0.9 + 0.01 * rng.standard_normal(5)
        cells[(setting, "best_constant")] = [fake_run("T4", s, base[s], [0.9]) for s in range(5)]
        cells[(setting, "ctkd")] = [fake_run("ctkd", s, base[s] + gain + 0.002 * rng.standard_normal(), [0.9])
                                    for s in range(5)]
    found = judge("C5", index_of(cells))
    assert found.verdicts == {"digits-dense": REPRODUCED, "digits-snntorch": OPPOSITE}
    assert found.verdict == MIXED
    assert found.where["digits-snntorch"] == "digits-snntorch (spiking)"
    assert "digits-dense (dense): reproduced" in found.verdict_text


def test_adaptive_speedup_must_match_the_quoted_size() -> None:
    def series(reach: int) -> List[float]:  # validation accuracy first at 0.95 in epoch ``reach``
        return [0.5] * (reach - 1) + [0.95] * (21 - reach)

    def cells(adaptive_epochs: Sequence[int]) -> RunIndex:
        return index_of({("digits-dense", "best_constant"): [fake_run("T4", s, 0.9, series(e))
                                                             for s, e in enumerate([10, 10, 11, 9, 10])],
                         ("digits-dense", "adaptive"): [fake_run("adaptive", s, 0.9, series(e))
                                                        for s, e in enumerate(adaptive_epochs)]})

    assert judge("C3", cells([8, 9, 9, 8, 8])).verdict == REPRODUCED       # about 15% fewer epochs
    assert judge("C3", cells([3, 3, 4, 3, 3])).verdict == NOT_REPRODUCED   # far faster than claimed
    assert judge("C3", cells([11, 12, 12, 10, 11])).verdict == OPPOSITE       # about 12% more epochs: mirrored size
    slower = judge("C3", cells([13, 14, 13, 12, 13]))                        # 30% more: the other way, another size
    assert slower.verdict == NOT_REPRODUCED and "significant the other way" in slower.note


def test_golden_ratio_is_read_at_the_t_best_on_validation() -> None:
    runs = {}
    for t, ratio, val in (("T1", 3.0, 0.90), ("T2", 1.5, 0.97), ("T4", 1.2, 0.93), ("T5", 1.1, 0.92), ("T8", 1.0, 0.91)):
        runs[("digits-dense", t)] = [fake_run(t, s, 0.9, [val], teacher_mi=ratio * (1 + 0.01 * s), student_mi=1.0)
                                     for s in range(5)]
    found = judge("C8", index_of(runs))
    assert found.verdict == REPRODUCED and "(T2)" in found.effect
    runs[("digits-dense", "T4")] = [fake_run("T4", s, 0.9, [0.99], teacher_mi=1.2, student_mi=1.0) for s in range(5)]
    assert judge("C8", index_of(runs)).verdict == NOT_REPRODUCED           # best T now has ratio 1.2
    # the best T's ratio within 1.5 ± 10%, but another T's nearer 1.5: the claim's condition fails
    runs[("digits-dense", "T4")] = [fake_run("T4", s, 0.9, [0.99], teacher_mi=1.4 * (1 + 0.01 * s), student_mi=1.0)
                                    for s in range(5)]
    found = judge("C8", index_of(runs))
    assert found.verdict == NOT_REPRODUCED and "(T4)" in found.effect
    assert any("within the claimed range, but the T whose ratio is nearest 1.5 is T2" in n for n in found.notes)


def test_c1_is_not_applicable_to_teachers_far_sharper_than_its_premise() -> None:
    def cells(entropy: float) -> RunIndex:
        return index_of({("digits-dense", "T1"): [fake_run("T1", s, 0.9, [0.9], teacher_entropy=entropy * (1 + 0.01 * s))
                                                  for s in range(5)],
                         ("digits-dense", "T5"): [fake_run("T5", s, 0.9, [0.9], teacher_entropy=4 * entropy * (1 + 0.01 * s))
                                                  for s in range(5)]})

    sharp = judge("C1", cells(0.03))
    assert sharp.verdicts == {"digits-dense": NOT_APPLICABLE}
    assert all(p.verdict == NOT_APPLICABLE and not p.in_family for p in sharp.parts)
    assert "premise does not hold" in sharp.note and "0.030 nats" in sharp.note
    fitting = judge("C1", cells(0.8))                                         # 0.8 nats, +300%: the claim holds
    assert fitting.verdicts == {"digits-dense": REPRODUCED}


def test_a_claim_without_its_runs_is_not_testable() -> None:
    found = judge("C10", index_of({}))
    assert found.verdict == NOT_TESTABLE and "no setting" in found.note


# --- the shipped file and the command ---------------------------------------------------------


def test_shipped_claims_file_plans_a_tuning_and_an_evaluation_stage() -> None:
    from tempdistill.studies.claims import NOT_TESTABLE_IN

    spec = load_spec(CLAIMS_FILE)
    tuning = plan_tuning(spec, claims_by_id())
    plan = plan_claims(spec, claims_by_id())  # a preview: aliases at their first candidate, nothing tuned
    assert not plan.left_out
    assert not set(tuning.seeds) & set(plan.all_seeds)                   # tuning seeds are not evaluation seeds
    assert all(len(set(seeds)) >= 10 for seeds in plan.seeds.values())
    # tuning: every (setting, arm) at every point of its lr × alpha grid with its base's tuning
    # seeds, a ranged arm at its own range value first
    for (setting, arm), grid in tuning.grids.items():
        jobs = [j for j in tuning.jobs if tuning.cells[j.name][:2] == (setting, arm)]
        span = tuning.ranges.get((setting, arm), {})
        points = int(np.prod([len(v) for k, v in grid.items() if k not in span]))
        assert len(jobs) == points * len(tuning.seeds_of[setting]) and points >= 3, (setting, arm)
        assert {j.seed for j in jobs} == set(tuning.seeds_of[setting])
        for key in span:
            assert {dict(tuning.cells[j.name][2])[key] for j in jobs} == {_get_path(jobs[0].mapping, key)}
    assert tuning.grids[("digits-dense", "linear")]["distill.temperature.start"] == [4.0, 8.0, 16.0]
    assert tuning.size("digits-dense", "linear") == 6 + 2 and tuning.size("digits-dense", "T1") == 6
    assert tuning.seeds_of["mnist1d-snntorch"] == [100] and tuning.seeds_of["digits-dense"] == [100, 101]
    assert tuning.grids[("mnist1d-snntorch", "T1")]["distill.lr"] == [0.0025, 0.005, 0.01]   # its own grid
    assert tuning.grids[("mnist1d-dense", "T1")]["distill.lr"] == [0.005, 0.01, 0.02]        # its base's
    # best_constant's candidates are tuned wherever a claim compares with it
    for setting in ("digits-dense", "digits-snntorch", "mnist1d-dense", "mnist1d-snntorch"):
        assert {a for s, a in tuning.grids if s == setting} >= set(spec.aliases["best_constant"])
        assert plan.aliases[(setting, "best_constant")] in spec.aliases["best_constant"]
    # evaluation: one run name per (setting, arm), each with the setting's seeds
    names: Dict[tuple, set] = {}
    for job in plan.jobs:
        names.setdefault(plan.cells[job.name], set()).add(job.name)
    assert set(map(len, names.values())) == {1}
    assert len(plan.jobs) == sum(len(plan.seeds[s]) for s, _ in names)
    skipped = NOT_TESTABLE_IN["ctkd"][0]
    for claim in claims_by_id():
        for settings, arms in claim.needs:
            wanted = {(s, plan.aliases.get((s, a), a)) for s in settings for a in arms
                      if s not in NOT_TESTABLE_IN.get(a, ((), ""))[0]}
            assert wanted <= set(names), claim.id
    assert not {(s, "ctkd") for s in skipped} & set(names) and "ctkd is not run" in plan.untestable["C5"][0]
    assert "cartpole-dense" not in spec.settings and "acrobot-dense" in spec.settings
    # a setting is described in words, its teacher's label smoothing included (C1's smoothed teacher)
    assert plan.labels["digits-dense"] == "digits, dense [64] student, 40 epochs"
    assert plan.labels["digits-smoothed-dense"].endswith(", teacher trained with label smoothing 0.2")


def _tuning_run(name: str, seed: int, val: float, status: str = "complete") -> Run:
    return Run.from_parts(config={"name": name, "seed": seed}, series={"val_accuracy": np.asarray([0.5, val])},
                          eval={"student_accuracy": val}, status=status)


# the largest lr of each base's tuning grid (claims.yaml), the best in the fake validation below
BEST_LR = {"digits": 0.004, "mnist1d": 0.02}


def test_each_arm_gets_its_best_point_on_validation_and_best_constant_resolves() -> None:
    spec = load_spec(CLAIMS_FILE)
    claims = claims_by_id(["C5"])                                         # best_constant vs ctkd
    tuning = plan_tuning(spec, claims)
    assert {a for _, a in tuning.grids} == {"T1", "T2", "T4", "T5", "T8", "ctkd"}
    assert {s for s, a in tuning.grids if a == "ctkd"} == {"digits-dense", "mnist1d-dense"}  # no CTKD on spiking students
    tuning.grids = {cell: grid for cell, grid in tuning.grids.items() if cell[0].endswith("-dense")}

    def validation(setting: str, arm: str, values: Dict[str, Any], seed: int) -> float:
        score = 0.80 + (0.05 if values["distill.lr"] in BEST_LR.values() else 0.0) + (0.02 if values["distill.alpha"] == 0.5 else 0.0)
        score += {"T2": 0.03, "T5": 0.01}.get(arm, 0.0) if setting == "digits-dense" else (0.04 if arm == "T8" else 0.0)
        return score + 0.001 * (seed - 100)                              # seeds differ; the mean decides

    runs = [_tuning_run(job.name, job.seed, validation(*tuning.cells[job.name][:2], dict(tuning.cells[job.name][2]), job.seed))
            for job in tuning.jobs]
    # a point better on one failed run does not count; a point with fewer complete runs does not win
    lucky = next(j for j in tuning.jobs if tuning.cells[j.name][:2] == ("digits-dense", "T1")
                 and dict(tuning.cells[j.name][2]) == {"distill.lr": 0.001, "distill.alpha": 0.9})
    runs = [r for r in runs if not (r.config["name"] == lucky.name and r.config["seed"] == 101)]
    runs.append(_tuning_run(lucky.name, 101, 0.99, status="failed"))
    chosen = choose(spec, tuning, runs)
    for (setting, arm), choice in chosen.choices.items():
        assert choice.values == {"distill.lr": BEST_LR[setting.split("-")[0]], "distill.alpha": 0.5}, (setting, arm)
        assert choice.seeds == len(tuning.seeds_of[setting]) and choice.points == choice.size == 6
    assert chosen.choices[("digits-dense", "T2")].score == pytest.approx(0.80 + 0.05 + 0.02 + 0.03 + 0.0005)
    assert chosen.choices[("mnist1d-dense", "T8")].score == pytest.approx(0.80 + 0.05 + 0.02 + 0.04)  # its one seed
    assert chosen.aliases == {("digits-dense", "best_constant"): "T2", ("mnist1d-dense", "best_constant"): "T8"}
    # the evaluation stage runs each arm at its chosen point, with the evaluation seeds
    plan = plan_claims(spec, claims, chosen=chosen)
    assert set(plan.cells.values()) == {("digits-dense", "T2"), ("digits-dense", "ctkd"),
                                        ("mnist1d-dense", "T8"), ("mnist1d-dense", "ctkd")}
    for job in plan.jobs:
        assert job.mapping["distill"]["lr"] == BEST_LR[plan.cells[job.name][0].split("-")[0]]
        assert job.mapping["distill"]["alpha"] == 0.5
        assert job.seed in spec.seeds_of(plan.cells[job.name][0]) and "tune" not in job.name
    ctkd = next(j for j in plan.jobs if plan.cells[j.name] == ("digits-dense", "ctkd"))
    assert ctkd.mapping["distill"]["temperature"]["schedule"] == "ctkd" and "lr=0.004" in ctkd.name
    # CLAIMS.md's tuning table marks a choice at an end of a grid of three or more values
    from tempdistill.studies.claims_report import tuning_table

    table = "\n".join(tuning_table(spec, tuning, chosen, plan))
    assert "lr = 0.004 (highest of its grid), alpha = 0.5 |" in table  # two alphas: no end to speak of
    assert f"{len(chosen.choices)} of {len(chosen.choices)} chosen points sit at an end" in table
    middle = sorted(tuning.grids[("digits-dense", "T2")]["distill.lr"])[1]
    chosen.choices[("digits-dense", "T2")].values["distill.lr"] = middle
    table = "\n".join(tuning_table(spec, tuning, chosen, plan))
    assert f"lr = {middle:g}, alpha = 0.5 |" in table
    assert f"{len(chosen.choices) - 1} of {len(chosen.choices)} chosen points" in table
    # an arm whose tuning runs all failed is not evaluated, and says so
    partial = choose(spec, tuning, [r for r in runs if tuning.cells[r.config["name"]][1] != "ctkd"])
    assert ("digits-dense", "ctkd") in plan_claims(spec, claims, chosen=partial).unchosen


def test_a_range_is_searched_at_the_grid_point_chosen_first() -> None:
    spec = load_spec(CLAIMS_FILE)
    tuning = plan_tuning(spec, claims_by_id(["C6"]))                      # fixed < linear < adaptive
    cell = ("digits-dense", "linear")
    first = [j for j in tuning.jobs if tuning.cells[j.name][:2] == cell]
    assert len(first) == 6 * 2 and all("start=8.0" in j.name for j in first)

    def validation(values: Dict[str, Any]) -> float:                     # best: lr 0.002, alpha 0.9; then start 16
        return (0.9 if (values["distill.lr"], values["distill.alpha"]) == (0.002, 0.9) else 0.8) \
            + {4.0: -0.01, 16.0: 0.02}.get(values.get("distill.temperature.start"), 0.0)

    runs = [_tuning_run(j.name, j.seed, validation(dict(tuning.cells[j.name][2]))) for j in tuning.jobs]
    before = choose(spec, tuning, runs)
    assert before.choices[cell].values == {"distill.lr": 0.002, "distill.alpha": 0.9, "distill.temperature.start": 8.0}
    assert before.choices[cell].points == 6 and before.choices[cell].size == 8
    ranges = plan_ranges(spec, tuning, before)
    mine = [j for j in ranges if tuning.cells[j.name][:2] == cell]
    assert sorted(dict(tuning.cells[j.name][2])["distill.temperature.start"] for j in mine) == [4.0, 4.0, 16.0, 16.0]
    assert all(j.mapping["distill"]["lr"] == 0.002 and j.mapping["distill"]["alpha"] == 0.9 for j in mine)
    assert not [j for j in ranges if tuning.cells[j.name][1] in ("T1", "T2", "T4", "T5", "T8")]  # no range: nothing more
    assert plan_ranges(spec, tuning, before) == []                        # planned once
    runs += [_tuning_run(j.name, j.seed, validation(dict(tuning.cells[j.name][2]))) for j in ranges]
    after = choose(spec, tuning, runs)
    assert after.choices[cell].values["distill.temperature.start"] == 16.0 and after.choices[cell].points == 8


def test_tuning_seeds_must_differ_from_evaluation_seeds(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    raw = yaml.safe_load(CLAIMS_FILE.read_text())
    raw["tuning"]["seeds"] = [3, 100]
    bad = tmp_path / "claims.yaml"
    bad.write_text(yaml.safe_dump(raw))
    assert main(["claims", str(bad), "--quick", "--out", str(tmp_path / "runs")]) == 2
    assert "tuning.seeds: [3] are also evaluation seeds" in capsys.readouterr().err


def test_unknown_claim_is_refused(capsys: pytest.CaptureFixture) -> None:
    assert main(["claims", str(CLAIMS_FILE), "--only", "C1,X99", "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--only: unknown claim 'X99'; allowed: C1, C2, C3, C4, C5, C6, C7, C8, C9, C10, C11" in err


def test_bad_claims_file_names_the_field(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    raw = yaml.safe_load(CLAIMS_FILE.read_text())
    raw["arms"]["T44"] = raw["arms"].pop("T6")
    bad = tmp_path / "claims.yaml"
    bad.write_text(yaml.safe_dump(raw))
    assert main(["claims", str(bad), "--quick", "--out", str(tmp_path / "runs")]) == 2
    assert "arms.T44: no claim uses it" in capsys.readouterr().err
    raw["arms"]["T6"] = raw["arms"].pop("T44")
    raw["settings"]["digits-dense"]["base"] = "digit"
    bad.write_text(yaml.safe_dump(raw))
    assert main(["claims", str(bad), "--quick", "--out", str(tmp_path / "runs")]) == 2
    assert "settings.digits-dense.base: 'digit' is not in bases" in capsys.readouterr().err


def test_quick_claims_end_to_end_and_resumed(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out, report, ledger = tmp_path / "runs", tmp_path / "CLAIMS.md", tmp_path / "ledger"
    args = ["claims", str(CLAIMS_FILE), "--quick", "--only", "C1,C5,C7", "--out", str(out), "--report", str(report),
            "--ledger", str(ledger), "--quiet"]
    assert main(args) == 0
    text = report.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| C")]
    assert [row.split("|")[1].strip() for row in rows] == ["C1", "C5", "C7"]
    for row in rows:
        cells = [c.strip() for c in row.split("|")[1:-1]]
        for said in cells[-1].strip("*").split("; "):          # a verdict per setting, none pooled
            setting, verdict = said.rsplit(": ", 1)
            assert verdict in VERDICTS and setting.startswith("digits-")
    details = [line for line in text.splitlines() if line.startswith("| digits-")
               and ("dense)" in line or "spiking)" in line)]
    assert details and all("[" in line and "]" in line for line in details)   # every effect with its interval
    assert "| Holm p | power (seeds for 80%) |" in text
    spec = load_spec(CLAIMS_FILE)
    tuning = plan_tuning(spec, claims_by_id(["C1", "C5", "C7"]), quick=True)
    # 13 (setting, arm) cells (best_constant: its 5 candidates in both settings) × 2 lr × 1 tuning seed;
    # C7's arms have no range
    assert len(tuning.jobs) == 26
    planned = int(text.split(" planned are complete")[0].rsplit(" of ", 1)[1])
    assert f"{planned} of {planned} planned are complete" in text and planned > len(tuning.jobs)
    files = list(out.glob("*.h5"))
    assert len(files) == planned and sum("-tune-" in f.name for f in files) == len(tuning.jobs)
    assert "Running time:" in text and "tuning seeds 100" in text
    assert "mnist1d-dense" in text                            # said to be left out by --quick
    assert "## What each arm got in the tuning stage" in text and "| digits-dense | best_constant | **T" in text
    assert "ctkd is not run in digits-snntorch" in text       # CTKD's spiking part, with why
    capsys.readouterr()
    assert main(args) == 0                                    # a second launch keeps every run of both stages
    assert len(list(out.glob("*.h5"))) == planned
    assert "over 2 launch(es)" in report.read_text()
    # The ledger kept every run: a launch on another machine (a fresh --out) restores them all,
    # runs nothing, and reaches the same verdicts, effects and intervals.
    parts = list(ledger.glob("part-*.jsonl.gz"))
    assert parts and sum(p.stat().st_size for p in parts) < 3_000 * planned
    elsewhere, second_report = tmp_path / "elsewhere", tmp_path / "CLAIMS-2.md"
    moved = [a if a != str(out) else str(elsewhere) for a in args]
    moved[moved.index(str(report))] = str(second_report)
    assert main(moved) == 0
    assert len(list(elsewhere.glob("*.h5"))) == planned
    assert all("restored_from" in Run.read(p).attrs for p in elsewhere.glob("*.h5"))
    assert "over 3 launch(es)" in second_report.read_text()   # the launches are listed in the ledger
    verdicts = [line for line in text.splitlines() if line.startswith("| C") or line.startswith("| digits-")]
    again = [line for line in second_report.read_text().splitlines()
             if line.startswith("| C") or line.startswith("| digits-")]
    assert again == verdicts


def test_every_schedule_is_set_against_the_fixed_t_with_its_interval() -> None:
    from tempdistill.studies.claims import schedule_comparison

    rng = np.random.default_rng(2)
    base = 0.9 + 0.01 * rng.standard_normal(5)
    cells = {("digits-dense", "best_constant"): [fake_run("T4", s, base[s], [0.9]) for s in range(5)],
             ("digits-dense", "cosine"): [fake_run("cosine", s, base[s] + 0.02 + 0.001 * s, [0.9]) for s in range(5)],
             ("digits-dense", "linear"): [fake_run("linear", s, base[s] - 0.03 + 0.001 * s, [0.9]) for s in range(5)],
             ("digits-dense", "adaptive"): [fake_run("adaptive", s, base[s] + (0.01 if s % 2 else -0.01), [0.9])
                                            for s in range(5)],
             ("digits-dense", "exponential"): [fake_run("exponential", s, base[s] + (0.001 if s % 2 else -0.001), [0.9])
                                               for s in range(5)]}
    table = schedule_comparison(index_of(cells))
    assert "p (Holm, 4 rows)" in table[0]
    rows = {line.split("|")[2].strip(): line for line in table[2:]}
    assert rows["cosine"].rstrip(" |").endswith("beats it")
    assert rows["linear"].rstrip(" |").endswith("worse")
    assert rows["exponential"].rstrip(" |").endswith("no clear difference")       # tight: powered for ±0.01
    assert rows["adaptive"].rstrip(" |").endswith("cannot tell (power below 0.8)")  # ±0.01 seed to seed
    assert "[" in rows["cosine"] and "best constant T" in rows
