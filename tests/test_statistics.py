"""Statistics over runs: factors, groups of seeds, bootstrap intervals, paired differences."""

from __future__ import annotations

import math
from typing import Any, Dict, List

import numpy as np
import pytest

from tempdistill.cli import main
from tempdistill.report import runs_frame
from tempdistill.statistics import (
    bootstrap_interval,
    factors,
    group_runs,
    paired_differences,
    verdict,
)


def fake_run(seed: int, accuracy: float, **config: Any) -> Dict[str, Any]:
    base = {"seed": seed, "name": f"r{seed}", "student": {"backend": "dense"},
            "distill": {"alpha": 0.9, "temperature": {"schedule": "constant", "value": 4.0}}, "record": {"dir": "x"}}
    for key, value in config.items():
        section, leaf = key.split("__")
        base[section] = {**base[section], leaf: value}
    return {"config": base, "eval": {"student_accuracy": accuracy}, "status": "complete"}


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_more_seeds():
    rng = np.random.default_rng(1)
    few, many = rng.normal(0.9, 0.02, 5), rng.normal(0.9, 0.02, 200)
    low, high = bootstrap_interval(few)
    assert low < few.mean() < high
    low_many, high_many = bootstrap_interval(many)
    assert high_many - low_many < high - low
    assert all(math.isnan(v) for v in bootstrap_interval([0.9]))


def test_verdict_needs_the_interval_to_exclude_zero():
    assert verdict((0.01, 0.03)) == "helped" and verdict((-0.03, -0.01)) == "hurt"
    assert verdict((-0.01, 0.03)) == "no clear difference" and verdict((0.0, 0.0)) == "no clear difference"
    assert verdict((math.nan, math.nan)).startswith("cannot tell")


def test_keys_that_change_together_are_one_factor_and_seeds_are_not_a_factor():
    runs = [fake_run(s, 0.9, distill__temperature={"schedule": "cosine", "start": 8, "end": 1}) for s in range(2)]
    runs += [fake_run(s, 0.9) for s in range(2)]
    found = factors([r["config"] for r in runs])
    assert found == [("distill.temperature.end", "distill.temperature.schedule", "distill.temperature.start",
                      "distill.temperature.value")]
    _, groups = group_runs(runs)
    assert [len(g.runs) for g in groups] == [2, 2]


def test_paired_differences_match_seeds_and_give_verdicts():
    runs: List[Dict[str, Any]] = []
    for seed in range(5):
        runs.append(fake_run(seed, 0.90 + 0.01 * seed, distill__alpha=0.0))
        runs.append(fake_run(seed, 0.92 + 0.01 * seed, distill__alpha=0.9))  # always +0.02 on the same seed
        runs.append(fake_run(seed, 0.90 + 0.01 * seed + (0.01 if seed % 2 else -0.01), distill__alpha=0.0,
                             student__backend="snntorch"))
        runs.append(fake_run(seed, 0.90 + 0.01 * seed, distill__alpha=0.9, student__backend="snntorch"))
    diffs = {(d.factor, d.within): d for d in paired_differences(runs, lambda r: r["eval"]["student_accuracy"])}
    kd_dense = diffs[("distill.alpha", "backend=dense")]
    assert kd_dense.n == 5 and kd_dense.mean == pytest.approx(0.02) and kd_dense.verdict == "helped"
    # unpaired, the seeds' spread (0.01 per seed) would hide this; paired it is exact
    assert kd_dense.interval == pytest.approx((0.02, 0.02))
    assert diffs[("distill.alpha", "backend=snntorch")].verdict == "no clear difference"
    assert diffs[("student.backend", "alpha=0.9")].verdict == "hurt"


def test_compare_prints_groups_and_differences_and_writes_csv(make_config, tmp_path, capsys):
    config = make_config({"distill": {"epochs": 1}})
    out = tmp_path / "sweep"
    assert main(["sweep", str(config), "--grid", "distill.alpha=0,0.9", "--seeds", "0-2", "--out", str(out),
                 "--quiet", "--jobs", "2"]) == 0
    capsys.readouterr()
    assert main(["compare", str(out), "--csv", str(tmp_path / "runs.csv")]) == 0
    printed = capsys.readouterr().out
    assert "per group of seeds" in printed and "[95% CI]" in printed
    assert "alpha=0.0 -> alpha=0.9" in printed
    frame = runs_frame([out])
    assert len(frame) == 6 and sorted(frame["seed"].tolist()) == [0, 0, 1, 1, 2, 2]
    assert set(frame["config.distill.alpha"]) == {0.0, 0.9} and "eval.student_accuracy" in frame
    assert (tmp_path / "runs.csv").read_text().splitlines()[0].startswith("path,status,seed,")


def write_run(directory, seed: int, alpha: float, accuracy: float) -> None:
    """A hand-made complete run file whose final accuracy is known."""
    import json

    from tempdistill.record import RunRecorder

    config = {"name": "made", "seed": seed, "student": {"backend": "dense"}, "distill": {"alpha": alpha}}
    recorder = RunRecorder.create(directory, f"made-a{alpha}-s{seed}", json.dumps(config), {"name": "made"})
    recorder.append_epoch({"epoch": 0.0, "val_accuracy": accuracy, "kl": 0.1})
    recorder.write_eval({"student_accuracy": accuracy})
    recorder.finish("complete")


@pytest.mark.parametrize("case,expected", [
    ("clear effect", "helped"),
    ("no effect", "no clear difference"),
    ("too few seeds", "cannot tell (fewer than 2 paired seeds)"),
])
def test_compare_gives_the_known_answer_on_hand_made_run_files(tmp_path, capsys, case, expected):
    rng = np.random.default_rng(0)
    seeds = 1 if case == "too few seeds" else 6
    for seed in range(seeds):
        base = 0.90 + 0.02 * rng.standard_normal()  # the seed moves both runs alike
        effect = 0.03 if case != "no effect" else 0.002 * rng.standard_normal()
        write_run(tmp_path, seed, 0.0, base)
        write_run(tmp_path, seed, 0.9, base + effect)
    assert main(["compare", str(tmp_path)]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("distill.alpha"))
    assert line.endswith(expected), line
    assert f"  {seeds}  " in line  # the number of paired seeds is shown
