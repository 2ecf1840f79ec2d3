"""The claims experiment: verdict rules on known numbers, claims judged from hand-made runs, the
shipped claims file's plan, and one quick end-to-end run of the command."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np
import pytest
import yaml

from tempdistill.studies.claims import (
    NOT_REPRODUCED,
    NOT_TESTABLE,
    OPPOSITE,
    REPRODUCED,
    VERDICTS,
    Part,
    RunIndex,
    claims_by_id,
    combine,
    log_std_ratio,
    part_verdict,
    speedup,
)
from tempdistill.analysis.bootstrap import Effect, bootstrap_strata, mean_difference
from tempdistill.record.run import Run
from tempdistill.studies.claims_experiment import choose, index_runs, load_spec, plan_claims, plan_tuning
from tempdistill.app.cli import main
from tempdistill.analysis.statistics import bootstrap_interval

REPO_ROOT = Path(__file__).resolve().parents[1]
CLAIMS_FILE = REPO_ROOT / "experiments" / "claims.yaml"


def part(low: float, high: float, **kwargs: Any) -> Part:
    return Part("effect", Effect((low + high) / 2, low, high, 5), "accuracy", **kwargs)


# --- verdict rules ----------------------------------------------------------------------------


def test_each_verdict_is_reached_by_its_rule() -> None:
    assert part_verdict(part(0.01, 0.03)) == REPRODUCED                       # wholly above 0
    assert part_verdict(part(-0.03, -0.01)) == OPPOSITE                       # wholly below 0
    assert part_verdict(part(-0.01, 0.03)) == NOT_REPRODUCED                  # contains 0
    assert part_verdict(part(0.0, 0.03)) == NOT_REPRODUCED                    # touching 0 is not excluding it
    assert part_verdict(part(math.nan, math.nan)) == NOT_TESTABLE             # no interval
    assert part_verdict(part(0.01, 0.03, untestable="no runs")) == NOT_TESTABLE


def test_a_quoted_size_must_overlap_the_interval() -> None:
    assert part_verdict(part(0.12, 0.25, quoted=(0.10, 0.20))) == REPRODUCED
    assert part_verdict(part(0.30, 0.50, quoted=(0.10, 0.20))) == NOT_REPRODUCED  # right side, wrong size
    assert part_verdict(part(0.01, 0.05, quoted=(0.10, 0.20))) == NOT_REPRODUCED
    assert part_verdict(part(-0.2, -0.1, quoted=(0.10, 0.20))) == OPPOSITE


def test_a_ratio_claimed_below_one_and_a_level() -> None:
    assert part_verdict(part(0.6, 0.8, side=-1, null=1.0, quoted=(0.73, 0.86))) == REPRODUCED
    assert part_verdict(part(0.4, 0.6, side=-1, null=1.0, quoted=(0.73, 0.86))) == NOT_REPRODUCED
    assert part_verdict(part(1.1, 1.6, side=-1, null=1.0)) == OPPOSITE
    assert part_verdict(part(0.9, 1.2, side=-1, null=1.0)) == NOT_REPRODUCED
    assert part_verdict(part(1.0, 1.3, side=None, quoted=(1.2, 1.6))) == REPRODUCED   # a level: overlap only
    assert part_verdict(part(1.7, 2.3, side=None, quoted=(1.2, 1.6))) == NOT_REPRODUCED


def test_combining_parts() -> None:
    assert combine([REPRODUCED, REPRODUCED]) == REPRODUCED
    assert combine([OPPOSITE, OPPOSITE]) == OPPOSITE
    assert combine([REPRODUCED, OPPOSITE]) == NOT_REPRODUCED
    assert combine([REPRODUCED, NOT_REPRODUCED]) == NOT_REPRODUCED
    assert combine([REPRODUCED, NOT_TESTABLE]) == NOT_TESTABLE
    assert combine([]) == NOT_TESTABLE


# --- intervals --------------------------------------------------------------------------------


def test_one_setting_gives_the_paired_bootstrap_interval_of_the_differences() -> None:
    x = np.array([[0.90, 0.93], [0.91, 0.91], [0.92, 0.95], [0.88, 0.90], [0.93, 0.96]])
    pooled, per = bootstrap_strata({"a": x}, mean_difference)
    differences = x[:, 1] - x[:, 0]
    assert pooled.estimate == pytest.approx(differences.mean())
    assert (pooled.low, pooled.high) == pytest.approx(bootstrap_interval(differences))
    assert pooled.n == 1 and per["a"].n == 5  # settings pooled; seeds in the setting
    assert (per["a"].low, per["a"].high) == (pooled.low, pooled.high)


def test_pooled_effect_is_the_mean_of_settings_and_skips_single_seeds() -> None:
    same = np.array([[0.0, 0.01], [0.0, 0.01], [0.0, 0.01]])         # every seed +0.01: a point interval
    other = np.array([[0.0, 0.03], [0.0, 0.03]])
    lone = np.array([[0.0, 1.0]])                                     # one seed: no interval, not pooled
    pooled, per = bootstrap_strata({"a": same, "b": other, "c": lone}, mean_difference)
    assert pooled.estimate == pytest.approx(0.02) and pooled.n == 2
    assert (pooled.low, pooled.high) == pytest.approx((0.02, 0.02))
    assert not per["c"].has_interval and per["c"].estimate == pytest.approx(1.0)


def test_spread_ratio_and_speedup_statistics() -> None:
    x = np.array([[0.90, 0.95], [0.94, 0.96], [0.86, 0.94], [0.92, 0.95]])
    ratio = math.exp(log_std_ratio(x[None])[0])
    expected = (x[:, 1].std(ddof=1) + 1e-4) / (x[:, 0].std(ddof=1) + 1e-4)
    assert ratio == pytest.approx(expected)
    epochs = np.array([[10.0, 8.0], [12.0, 11.0], [8.0, 6.0]])
    assert speedup(epochs[None])[0] == pytest.approx(1 - 25 / 30)


# --- claims judged from hand-made runs --------------------------------------------------------


def fake_run(arm: str, seed: int, test: float, val: Sequence[float], **metrics: float) -> Run:
    series = {"val_accuracy": np.asarray(val, dtype=float)}
    series.update({k: np.asarray([v], dtype=float) for k, v in metrics.items()})
    return Run.from_parts(config={"name": arm, "seed": seed}, series=series, eval={"student_accuracy": test})


def index_of(cells: Dict[tuple, List[Run]]) -> RunIndex:
    return RunIndex({key: {run.config["seed"]: run for run in runs} for key, runs in cells.items()})


def judge(claim_id: str, index: RunIndex):
    claim = claims_by_id([claim_id])[0]
    return claim.evaluate(claim, index)


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
    assert "[" in found.effect and found.parts[0].effect.n == 2


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
    assert judge("C3", cells([13, 14, 13, 12, 13])).verdict == OPPOSITE


def test_golden_ratio_is_read_at_the_t_best_on_validation() -> None:
    runs = {}
    for t, ratio, val in (("T1", 3.0, 0.90), ("T2", 1.5, 0.97), ("T4", 1.2, 0.93), ("T5", 1.1, 0.92), ("T8", 1.0, 0.91)):
        runs[("digits-dense", t)] = [fake_run(t, s, 0.9, [val], teacher_mi=ratio * (1 + 0.01 * s), student_mi=1.0)
                                     for s in range(5)]
    found = judge("C8", index_of(runs))
    assert found.verdict == REPRODUCED and "(T2)" in found.effect
    runs[("digits-dense", "T4")] = [fake_run("T4", s, 0.9, [0.99], teacher_mi=1.2, student_mi=1.0) for s in range(5)]
    assert judge("C8", index_of(runs)).verdict == NOT_REPRODUCED           # best T now has ratio 1.2


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
    # tuning: every (setting, arm) at every point of its grid, with every tuning seed
    for (setting, arm), grid in tuning.grids.items():
        jobs = [j for j in tuning.jobs if tuning.cells[j.name][:2] == (setting, arm)]
        points = int(np.prod([len(v) for v in grid.values()]))
        assert len(jobs) == points * len(tuning.seeds) and points >= 3, (setting, arm)
        assert {j.seed for j in jobs} == set(tuning.seeds)
    assert tuning.grids[("digits-dense", "linear")]["distill.temperature.start"] == [4.0, 8.0, 16.0]
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


def _tuning_run(name: str, seed: int, val: float, status: str = "complete") -> Run:
    return Run.from_parts(config={"name": name, "seed": seed}, series={"val_accuracy": np.asarray([0.5, val])},
                          eval={"student_accuracy": val}, status=status)


def test_each_arm_gets_its_best_point_on_validation_and_best_constant_resolves() -> None:
    spec = load_spec(CLAIMS_FILE)
    claims = claims_by_id(["C5"])                                         # best_constant vs ctkd
    tuning = plan_tuning(spec, claims)
    assert {a for _, a in tuning.grids} == {"T1", "T2", "T4", "T5", "T8", "ctkd"}
    assert {s for s, a in tuning.grids if a == "ctkd"} == {"digits-dense", "mnist1d-dense"}  # no CTKD on spiking students
    tuning.grids = {cell: grid for cell, grid in tuning.grids.items() if cell[0].endswith("-dense")}

    def validation(setting: str, arm: str, values: Dict[str, Any], seed: int) -> float:
        score = 0.80 + (0.05 if values["distill.lr"] == 0.004 else 0.0) + (0.02 if values["distill.alpha"] == 0.5 else 0.0)
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
        assert choice.values == {"distill.lr": 0.004, "distill.alpha": 0.5}, (setting, arm)
        assert choice.seeds == 2 and choice.points == choice.size == 6
    assert chosen.choices[("digits-dense", "T2")].score == pytest.approx(0.80 + 0.05 + 0.02 + 0.03 + 0.0005)
    assert chosen.aliases == {("digits-dense", "best_constant"): "T2", ("mnist1d-dense", "best_constant"): "T8"}
    # the evaluation stage runs each arm at its chosen point, with the evaluation seeds
    plan = plan_claims(spec, claims, chosen=chosen)
    assert set(plan.cells.values()) == {("digits-dense", "T2"), ("digits-dense", "ctkd"),
                                        ("mnist1d-dense", "T8"), ("mnist1d-dense", "ctkd")}
    for job in plan.jobs:
        assert job.mapping["distill"]["lr"] == 0.004 and job.mapping["distill"]["alpha"] == 0.5
        assert job.seed in spec.seeds_of(plan.cells[job.name][0]) and "tune" not in job.name
    ctkd = next(j for j in plan.jobs if plan.cells[j.name] == ("digits-dense", "ctkd"))
    assert ctkd.mapping["distill"]["temperature"]["schedule"] == "ctkd" and "lr=0.004" in ctkd.name
    # an arm whose tuning runs all failed is not evaluated, and says so
    partial = choose(spec, tuning, [r for r in runs if tuning.cells[r.config["name"]][1] != "ctkd"])
    assert ("digits-dense", "ctkd") in plan_claims(spec, claims, chosen=partial).unchosen


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
    out, report = tmp_path / "runs", tmp_path / "CLAIMS.md"
    args = ["claims", str(CLAIMS_FILE), "--quick", "--only", "C1,C5,C7", "--out", str(out), "--report", str(report),
            "--quiet"]
    assert main(args) == 0
    text = report.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| C")]
    assert [row.split("|")[1].strip() for row in rows] == ["C1", "C5", "C7"]
    for row in rows:
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert cells[-1].strip("*") in VERDICTS
        assert "[" in cells[3] and "]" in cells[3]            # every effect with its interval
    spec = load_spec(CLAIMS_FILE)
    tuning = plan_tuning(spec, claims_by_id(["C1", "C5", "C7"]), quick=True)
    # 13 (setting, arm) cells (best_constant: its 5 candidates in both settings) × 2 lr × 1 tuning seed
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


def test_every_schedule_is_set_against_the_fixed_t_with_its_interval() -> None:
    from tempdistill.studies.claims import schedule_comparison

    rng = np.random.default_rng(2)
    base = 0.9 + 0.01 * rng.standard_normal(5)
    cells = {("digits-dense", "best_constant"): [fake_run("T4", s, base[s], [0.9]) for s in range(5)],
             ("digits-dense", "cosine"): [fake_run("cosine", s, base[s] + 0.02 + 0.001 * s, [0.9]) for s in range(5)],
             ("digits-dense", "linear"): [fake_run("linear", s, base[s] - 0.03 + 0.001 * s, [0.9]) for s in range(5)],
             ("digits-dense", "adaptive"): [fake_run("adaptive", s, base[s] + (0.01 if s % 2 else -0.01), [0.9])
                                            for s in range(5)]}
    rows = {line.split("|")[2].strip(): line for line in schedule_comparison(index_of(cells))[2:]}
    assert rows["cosine"].rstrip(" |").endswith("beats it")
    assert rows["linear"].rstrip(" |").endswith("worse")
    assert rows["adaptive"].rstrip(" |").endswith("no clear difference")
    assert "[" in rows["cosine"] and "best constant T" in rows
