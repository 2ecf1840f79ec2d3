"""`tempdistill compare` over a folder a new user has: runs of two tasks, copies, many factors."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List

import numpy as np
import pytest
import torch

from tempdistill.app.cli import main
from tempdistill.analysis.comparison import by_task, drop_duplicates, task_label, with_data_identity
from tempdistill.record.run import Run
from tempdistill.record.run_file import RunRecorder
from tempdistill.analysis.comparison import read_runs
from tempdistill.analysis.report import write_html
from tempdistill.analysis.statistics import WHERE_WIDTH, difference_table, group_table, replicate_key

DIGITS = {"task": "classification", "data": {"name": "digits", "test_fraction": 0.3}}
CARTPOLE = {"task": "policy", "env": {"id": "CartPole-v1"}}


def write_run(directory: Path, task: Dict[str, Any], seed: int, alpha: float, score: float,
              figures: Dict[str, Any] | None = None, **student: Any) -> Path:
    """A hand-made complete run of ``task`` whose test score (accuracy, or return for a
    policy) is ``score``, with other final ``figures`` besides."""
    config = {"name": "made", "seed": seed, **task, "student": {"backend": "dense", **student},
              "distill": {"alpha": alpha, "temperature": {"schedule": "constant", "value": 4.0}},
              "record": {"dir": str(directory)}}
    stem = f"{task['task']}-a{alpha}-s{seed}-" + "-".join(f"{k}{v}" for k, v in sorted(student.items()))
    recorder = RunRecorder.create(directory, stem, json.dumps(config), {"name": "made"})
    key = "student_return_mean" if task["task"] == "policy" else "student_accuracy"
    recorder.append_epoch({"epoch": 0.0, "kl": 0.1})
    recorder.write_eval({key: score, "select": "final", **(figures or {})})
    recorder.finish("complete")
    return recorder.path


def demo_like_folder(directory: Path, seeds: int = 4) -> None:
    """Digits runs whose KD gains 0.0123 accuracy on every seed, and CartPole runs whose KD
    gains 12.5 return on every seed, in one folder as the demo writes them."""
    rng = np.random.default_rng(0)
    for seed in range(seeds):
        accuracy, reward = 0.9 + 0.01 * rng.standard_normal(), 400 + 20 * rng.standard_normal()
        write_run(directory, DIGITS, seed, 0.0, accuracy)
        write_run(directory, DIGITS, seed, 0.9, accuracy + 0.0123)
        write_run(directory, CARTPOLE, seed, 0.0, reward)
        write_run(directory, CARTPOLE, seed, 0.9, reward + 12.5)


def difference_line(text: str, heading: str) -> str:
    section = text[text.index(heading):]
    return next(line for line in section.splitlines() if line.startswith("distill.alpha"))


def test_runs_of_two_tasks_are_compared_each_on_its_own_with_a_notice(tmp_path, capsys):
    demo_like_folder(tmp_path)
    assert main(["compare", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "runs of 2 different tasks were given" in out
    assert out.count("== classification on digits: 8 runs ==") == 1
    assert out.count("== policy on CartPole-v1: 8 runs ==") == 1
    digits, pole = difference_line(out, "== classification"), difference_line(out, "== policy")
    # each at its own score's precision: accuracy in 4 decimals, return in 1
    assert "+0.0123 [+0.0123, +0.0123]" in digits and digits.endswith("helped")
    assert "+12.5 [+12.5, +12.5]" in pole and pole.endswith("helped")
    assert "Δ accuracy" in out and "Δ return" in out
    digits_section = out[out.index("== classification"):out.index("== policy")]
    assert "return" not in digits_section and "accuracy" not in out[out.index("== policy"):]


def test_one_task_reads_as_before_without_headings_or_notices(tmp_path, capsys):
    for seed in range(3):
        write_run(tmp_path, DIGITS, seed, 0.0, 0.9)
        write_run(tmp_path, DIGITS, seed, 0.9, 0.91)
    assert main(["compare", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("run ") and "==" not in out and "dropped" not in out and "tasks" not in out


def test_tables_of_different_scores_refuse_to_mix():
    runs = [Run.from_parts(config={"seed": 0, "distill": {"alpha": a}}, eval={key: 1.0})
            for a, key in ((0.0, "student_accuracy"), (0.9, "student_return_mean"))]
    for make in (group_table, difference_table):
        with pytest.raises(ValueError, match="accuracy, return"):
            make(runs)


def test_task_labels_name_the_data_the_environment_or_the_heads():
    assert task_label(DIGITS) == "classification on digits"
    assert task_label({"task": "classification", "data": {"name": "npz", "path": "x/data.npz"}}) == \
        "classification on x/data.npz"
    assert task_label({**CARTPOLE, "data": {"name": "digits"}}) == "policy on CartPole-v1"
    heads = [{"name": "a", "env": "CartPole-v1"}, {"name": "b", "env": "Acrobot-v1"}]
    assert task_label({"task": "multitask", "heads": heads}) == "multitask on CartPole-v1 + Acrobot-v1"


def test_a_run_given_twice_counts_as_one_seed_with_a_notice(tmp_path, capsys):
    first, second = tmp_path / "a", tmp_path / "b"
    for seed in range(3):
        write_run(first, DIGITS, seed, 0.0, 0.90 + 0.01 * seed)
        write_run(first, DIGITS, seed, 0.9, 0.93 + 0.01 * seed)
    shutil.copytree(first, second)
    assert main(["compare", str(first), str(second), str(first / sorted(p.name for p in first.iterdir())[0])]) == 0
    out = capsys.readouterr().out
    notice = [line for line in out.splitlines() if line.startswith("dropped")]
    assert len(notice) == 1 and notice[0].startswith("dropped 7 duplicate runs (same config and seed")
    assert "and 4 more" in notice[0]
    groups = out[out.index("per group of seeds"):]
    rows = [line for line in groups.splitlines() if line.startswith("alpha=")]
    assert len(rows) == 2 and all("  3  " in row for row in rows), rows  # 3 seeds, not 6 or 7
    assert "  3  " in difference_line(out, "paired differences")  # 3 paired seeds


def test_of_duplicates_the_complete_run_is_kept_and_the_name_does_not_make_another_seed():
    config = {"name": "x", "seed": 1, "distill": {"alpha": 0.9}, "record": {"dir": "a"}}
    renamed = {**config, "name": "y", "record": {"dir": "b"}}
    assert replicate_key(config) == replicate_key(renamed)
    assert replicate_key(config) != replicate_key({**config, "seed": 2})
    assert replicate_key(config) != replicate_key({**config, "distill": {"alpha": 0.0}})
    failed = Run.from_parts(config=config, status="failed", path="a/x.h5")
    complete = Run.from_parts(config=renamed, eval={"student_accuracy": 0.9}, path="b/y.h5")
    kept, dropped = drop_duplicates([failed, complete])
    assert kept == [complete] and dropped == [failed]
    unreadable = [Run.from_parts(config={}, status="unknown", path=p) for p in ("c.h5", "d.h5")]
    assert drop_duplicates(unreadable) == (unreadable, [])  # no config: nothing says they are one run


def test_runs_on_other_arrays_given_in_memory_are_not_copies():
    """A config with ``data.name: arrays`` names no file: the same config and seed on other
    arrays is another run (its fingerprint in ``/data`` says so), the same arrays a copy."""
    config = {"name": "x", "seed": 0, "data": {"name": "arrays"}, "distill": {"alpha": 0.0}}

    def made(digest: str, rows: int) -> Run:
        shapes = json.dumps({"X": [rows, 4], "y": [rows], "X_test": [30, 4], "y_test": [30]})
        return Run.from_parts(config=config, eval={"student_accuracy": 0.9}, path=f"{digest}.h5",
                              data_attrs={"name": "arrays", "arrays_sha256": digest, "arrays_shapes": shapes})

    one, other, copy, bigger = made("aa" * 32, 100), made("bb" * 32, 100), made("aa" * 32, 100), made("cc" * 32, 120)
    assert drop_duplicates([one, other, copy]) == ([one, other], [copy])
    told = with_data_identity([one, bigger])
    assert [r.config["data"]["arrays"] for r in told] == ["X 100x4, X_test 30x4", "X 120x4, X_test 30x4"]
    assert one.config["data"] == {"name": "arrays"}            # the runs given are left as they were


def test_the_where_column_stays_narrow_with_many_factors(tmp_path, capsys):
    """Three factors besides alpha, one of them two keys changing together: the 'where' of a
    paired difference names one key per factor and is cut at WHERE_WIDTH characters."""
    for seed in range(2):
        for alpha in (0.0, 0.9):
            for steps in (8, 16):
                for encoder in ("poisson", "latency"):
                    for readout in ("count_membrane_with_a_long_name", "spike_count_with_a_longer_name"):
                        write_run(tmp_path, DIGITS, seed, alpha, 0.9 + 0.01 * seed + alpha / 100,
                                  backend="snntorch", steps=steps, hidden=[steps] * 3, encoder=encoder,
                                  readout=readout)
    runs = read_runs([tmp_path])
    header, rows = difference_table(runs)
    where = header.index("where")
    assert rows and all(len(row[where]) <= WHERE_WIDTH for row in rows)
    alpha_rows = [row[where] for row in rows if row[0] == "distill.alpha"]
    assert len(alpha_rows) == 8 and all(w.startswith(("encoder=latency hidden=", "encoder=poisson hidden="))
                                        for w in alpha_rows), alpha_rows
    assert not any("steps=" in w for w in alpha_rows)  # steps goes with hidden: one key for both
    assert any(w.endswith("…") for w in alpha_rows)
    _, groups = group_table(runs)
    assert groups[0][0] == "alpha=0.0 encoder=latency hidden=[16, 16, 16] readout=count_membrane_with_a_long_name"
    assert main(["compare", str(tmp_path)]) == 0
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) < 400


def test_the_report_page_has_a_table_per_task_and_the_notices(tmp_path):
    demo_like_folder(tmp_path / "runs", seeds=2)
    shutil.copy(next((tmp_path / "runs").glob("*.h5")), tmp_path / "copy.h5")
    runs = read_runs([tmp_path / "runs", tmp_path / "copy.h5"])
    assert [label for label, _ in by_task(drop_duplicates(runs)[0])] == ["classification on digits",
                                                                        "policy on CartPole-v1"]
    page = write_html(runs, [], tmp_path / "index.html").read_text()
    parsed = Tables()
    parsed.feed(page)
    assert parsed.tables == 2 and parsed.headings == ["classification on digits: 4 runs", "policy on CartPole-v1: 4 runs"]
    assert "dropped 1 duplicate run " in page and "runs of 2 different tasks" in page
    assert page.count('<pre class="statistics">') == 2


class Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables, self.headings, self._in_h3 = 0, [], False

    def handle_starttag(self, tag, attrs):
        self.tables += tag == "table"
        self._in_h3 = tag == "h3"

    def handle_data(self, data):
        if self._in_h3:
            self.headings.append(data)
            self._in_h3 = False


# ---------------------------------------------------------------- latency
def dense_student(seed: int = 0) -> torch.nn.Module:
    from backends import get_backend

    backend = get_backend("dense", "student.backend")
    torch.manual_seed(seed)
    return backend.build_student(backend.validate({"backend": "dense", "hidden": [16]}, "student"), 64, 10)


class CountingModel(torch.nn.Module):
    """A model that notes, for every pass, how many rows it got and on how many threads, and
    moves a fake clock on by that pass's duration."""

    def __init__(self, durations: List[float]) -> None:
        super().__init__()
        self.passes: List[tuple] = []
        self.durations = durations
        self.now = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.now += self.durations[len(self.passes)]
        self.passes.append((x.shape[0], torch.get_num_threads()))
        return x[:, :2]


@pytest.mark.parametrize("rows", [7, 3000])
def test_latency_times_a_fixed_batch_after_warm_up_and_keeps_the_median(monkeypatch, rows):
    """Whatever the validation set (a classifier's few rows, a policy's thousands), every pass
    sees the same batch on one thread, warm-up passes are not timed, and one slow pass (another
    process took the CPU) does not move the figure. A fake clock: no assertion on real speed."""
    import tempdistill.core.latency as latency

    durations = [0.5] * latency.WARMUP + [0.001] * (latency.REPEATS - 1) + [5.0]  # seconds per pass
    model = CountingModel(durations)
    monkeypatch.setattr(latency, "time", SimpleNamespace(perf_counter=lambda: model.now))
    figure = latency.inference_latency_ms(model, torch.randn(rows, 4))
    assert model.passes == [(latency.BATCH, latency.THREADS)] * (latency.WARMUP + latency.REPEATS)
    assert figure == pytest.approx(1000.0 * 0.001 / latency.BATCH)


def test_latency_leaves_threads_and_mode_as_it_found_them_and_pads_the_batch():
    from tempdistill.core.latency import BATCH, fixed_batch, inference_latency_ms, latency_conditions

    student = dense_student()
    student.train()
    threads = torch.get_num_threads()
    inference_latency_ms(student, torch.randn(5, 64), 1.0, repeats=2)
    assert student.training and torch.get_num_threads() == threads
    x = torch.arange(5.0).unsqueeze(1)
    assert fixed_batch(x).shape == (BATCH, 1) and fixed_batch(x)[5:10].flatten().tolist() == [0, 1, 2, 3, 4]
    assert set(latency_conditions()) == {"latency_batch", "latency_repeats", "latency_threads"}


def test_compare_shows_latency_only_where_measured_on_a_fixed_batch(tmp_path, capsys):
    from tempdistill.analysis.comparison import comparison_rows

    timed = {"student_latency_ms_per_sample": 0.001}
    old = write_run(tmp_path, DIGITS, 0, 0.0, 0.9, timed)
    new = write_run(tmp_path, DIGITS, 0, 0.9, 0.9, {**timed, "latency_batch": 256})
    runs: List[Run] = read_runs([old, new])
    header, rows = comparison_rows(runs)
    column = header.index("latency_ms/sample")
    assert [row[column] for row in rows] == [None, 0.001]


def test_a_run_records_its_latencies_and_how_they_were_timed(tiny_config_data):
    """End to end: a run records student and teacher latencies with the batch, repeats and
    threads they were measured under (their agreement across runs is a benchmark's job)."""
    from tempdistill.config import config_from_mapping
    from tempdistill.core.latency import latency_conditions
    from tempdistill.record.run_file import read_run
    from tempdistill.runner import execute

    config = config_from_mapping({**tiny_config_data, "distill": {**tiny_config_data["distill"], "epochs": 1}})
    first = read_run(execute(config, warn=lambda _: None))["eval"]
    for key in ("student_latency_ms_per_sample", "teacher_latency_ms_per_sample"):
        assert 0 < first[key] < float("inf"), key
    assert {key: first[key] for key in latency_conditions()} == latency_conditions()
