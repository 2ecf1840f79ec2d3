"""Statistics over runs: factors, groups of seeds, t-intervals, paired differences."""

from __future__ import annotations

import math
from typing import Any, List

import numpy as np
import pytest

from tempdistill.app.cli import main
from tempdistill.analysis.comparison import runs_frame
from tempdistill.analysis.statistics import (
    mean_interval,
    factors,
    group_runs,
    group_table,
    paired_differences,
    verdict,
)
from tempdistill.record.run import Run


def fake_run(seed: int, accuracy: float, **config: Any) -> Run:
    base = {"seed": seed, "name": f"r{seed}", "student": {"backend": "dense"},
            "distill": {"alpha": 0.9, "temperature": {"schedule": "constant", "value": 4.0}}, "record": {"dir": "x"}}
    for key, value in config.items():
        section, leaf = key.split("__")
        base[section] = {**base[section], leaf: value}
    return Run.from_parts(config=base, eval={"student_accuracy": accuracy})


def test_mean_interval_brackets_the_mean_and_narrows_with_more_seeds():
    rng = np.random.default_rng(1)
    few, many = rng.normal(0.9, 0.02, 5), rng.normal(0.9, 0.02, 200)
    low, high = mean_interval(few)
    assert low < few.mean() < high
    # the t-interval: mean ± t_{4, 0.975}·s/√5, t_{4, 0.975} = 2.776
    assert high - few.mean() == pytest.approx(2.7764451 * few.std(ddof=1) / math.sqrt(5), rel=1e-6)
    low_many, high_many = mean_interval(many)
    assert high_many - low_many < high - low
    assert all(math.isnan(v) for v in mean_interval([0.9]))


def test_verdict_needs_the_interval_to_exclude_zero():
    assert verdict((0.01, 0.03)) == "helped" and verdict((-0.03, -0.01)) == "hurt"
    assert verdict((-0.01, 0.03)) == "no clear difference" and verdict((0.0, 0.0)) == "no clear difference"
    assert verdict((math.nan, math.nan)).startswith("cannot tell")


def test_keys_that_change_together_are_one_factor_and_seeds_are_not_a_factor():
    runs = [fake_run(s, 0.9, distill__temperature={"schedule": "cosine", "start": 8, "end": 1}) for s in range(2)]
    runs += [fake_run(s, 0.9) for s in range(2)]
    found = factors([r.config for r in runs])
    assert found == [("distill.temperature.end", "distill.temperature.schedule", "distill.temperature.start",
                      "distill.temperature.value")]
    _, groups = group_runs(runs)
    assert [len(g.runs) for g in groups] == [2, 2]


def test_paired_differences_match_seeds_and_give_verdicts():
    runs: List[Run] = []
    for seed in range(5):
        runs.append(fake_run(seed, 0.90 + 0.01 * seed, distill__alpha=0.0))
        runs.append(fake_run(seed, 0.92 + 0.01 * seed, distill__alpha=0.9))  # always +0.02 on the same seed
        runs.append(fake_run(seed, 0.90 + 0.01 * seed + (0.01 if seed % 2 else -0.01), distill__alpha=0.0,
                             student__backend="snntorch"))
        runs.append(fake_run(seed, 0.90 + 0.01 * seed, distill__alpha=0.9, student__backend="snntorch"))
    diffs = {(d.factor, d.within): d for d in paired_differences(runs, lambda r: r.eval["student_accuracy"])}
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


def write_run(directory, seed: int, alpha: float, accuracy: float, best_val: float | None = None) -> None:
    """A hand-made complete run file whose final accuracy is known (and, with ``best_val``,
    the test accuracy of its best-validation weights, selected as its score)."""
    import json

    from tempdistill.record.run_file import RunRecorder

    config = {"name": "made", "seed": seed, "student": {"backend": "dense"},
              "distill": {"alpha": alpha, "temperature": {"schedule": "constant", "value": 4.0}}}
    recorder = RunRecorder.create(directory, f"made-a{alpha}-s{seed}", json.dumps(config), {"name": "made"})
    recorder.append_epoch({"epoch": 0.0, "val_accuracy": accuracy, "kl": 0.1})
    selected = {"select": "best_val", "student_accuracy_best_val": best_val, "best_val_epoch": 0} if best_val else {}
    recorder.write_eval({"student_accuracy": accuracy, "select": "final", **selected})
    recorder.finish("complete")


def test_compare_scores_each_run_by_the_test_figure_of_the_weights_it_selected(tmp_path, capsys):
    """Runs with distill.select: best_val are ranked by their best-validation weights' test
    accuracy, the others by the final student's: here that turns 'hurt' into 'helped'."""
    rng = np.random.default_rng(0)
    for seed in range(6):
        base = 0.90 + 0.01 * rng.standard_normal()
        write_run(tmp_path, seed, 0.0, base)
        write_run(tmp_path, seed, 0.9, base - 0.05, best_val=base + 0.03)
    assert main(["compare", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("distill.alpha"))
    assert line.endswith("helped"), line
    assert "+0.0300" in line
    header = out.splitlines()[0].split()
    assert "select" in header and out.count("best_val@1") == 6


def test_a_missing_test_figure_is_never_filled_from_validation_in_new_files():
    from tempdistill.analysis.comparison import _test_figure

    old = Run.from_parts(format_version=2, series={"val_accuracy": np.array([0.5, 0.7])})
    new = Run.from_parts(format_version=3, series={"val_accuracy": np.array([0.5, 0.7])})
    assert _test_figure(old, "student_accuracy", "val_accuracy") == 0.7  # formats 1-2 measured epochs on test
    assert _test_figure(new, "student_accuracy", "val_accuracy") is None
    chosen = Run.from_parts(format_version=3,
                            eval={"select": "best_val", "student_accuracy": 0.8, "student_accuracy_best_val": 0.9})
    assert _test_figure(chosen, "student_accuracy") == 0.9


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


def test_the_sweep_summary_and_the_headline_use_the_selected_weights(tmp_path):
    from tempdistill.analysis.report import headline
    from tempdistill.sweep.summary import summarize

    for seed, (final, best) in enumerate([(0.80, 0.90), (0.82, 0.94)]):
        write_run(tmp_path, seed, 0.9, final, best_val=best)
    runs = [Run.read(path) for path in sorted(tmp_path.glob("*.h5"))]
    [row] = summarize(runs)
    assert row["accuracy"][0] == pytest.approx(0.92) and row["score_name"] == "accuracy"
    line = headline(runs[0].eval)
    assert line == "best_val (epoch 1): student accuracy 0.9000  final:  student accuracy 0.8000"


def test_group_table_summarises_spikes_and_synaptic_operations_per_group():
    runs = [Run.from_parts(config={"seed": s, "name": f"r{s}", "student": {"backend": "snntorch"}, "record": {"dir": "x"}},
                           eval={"student_accuracy": 0.9, "spikes_per_sample": 10.0 * (s + 1),
                                 "synops_per_sample": 1000.0 * (s + 1)}) for s in range(3)]
    header, rows = group_table(runs)
    assert header[3:] == ["spikes/sample mean ± std [95% CI]", "synops/sample mean ± std [95% CI]"]
    assert rows[0][3].startswith("20.0 ± 10.0") and rows[0][4].startswith("2000 ± 1000")  # no energy: not recorded
