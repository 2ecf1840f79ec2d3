"""End-to-end runs: kill safety, determinism, a user's npz, the teacher cache, show/compare."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

from tempdistill.app.cli import main
from tempdistill.config import load_config
from tempdistill.record.run_file import read_run
from tempdistill.runner import execute

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_files(directory: Path) -> List[Path]:
    return sorted(p for p in directory.glob("*.h5") if not p.name.startswith(".")) if directory.exists() else []


def assert_consistent(run: Dict, epochs: int) -> None:
    lengths = {name: len(series) for name, series in run["metrics"].items()}
    assert lengths and set(lengths.values()) == {epochs}, lengths
    assert run["attrs"]["epochs_completed"] == epochs


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("TEMPDISTILL_CACHE", str(cache))
    return cache


# ---------------------------------------------------------------- a run killed mid-way
def test_sigkill_leaves_readable_running_file(make_config, tmp_path, cli_subprocess):
    config = make_config({"teacher": {"epochs": 2}, "distill": {"epochs": 500}}, name="long.yaml")
    out = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1", TEMPDISTILL_CACHE=str(tmp_path / "kill-cache"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tempdistill", "run", str(config), "--out", str(out), "--quiet"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        seen = 0
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"run ended early: {proc.stderr.read().decode()}"
            files = run_files(out)
            if files:
                assert len(files) == 1, files
                seen = len(read_run(files[0])["metrics"].get("epoch", []))
                if seen >= 3:
                    break
            time.sleep(0.05)
        assert seen >= 3, "the run did not record 3 epochs within 60 s"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    (path,) = run_files(out)
    run = read_run(path)
    assert run["status"] == "running"
    epochs = run["attrs"]["epochs_completed"]
    assert 3 <= epochs < 500
    assert_consistent(run, epochs)
    np.testing.assert_array_equal(run["metrics"]["epoch"], np.arange(epochs, dtype=float))
    assert run["config"]["distill"]["epochs"] == 500

    shown = cli_subprocess(["show", path])
    assert shown.returncode == 0, shown.stderr
    assert "running" in shown.stdout and "val_accuracy" in shown.stdout
    assert f"{epochs} of 500" in shown.stdout
    compared = cli_subprocess(["compare", out])
    assert compared.returncode == 0, compared.stderr
    assert "running" in compared.stdout


# ---------------------------------------------------------------- determinism
def test_same_config_twice_gives_identical_metrics(tiny_config, tmp_path, fresh_cache):
    config = load_config(tiny_config)
    first = read_run(execute(config, str(tmp_path / "a")))
    second = read_run(execute(config, str(tmp_path / "b")))
    # The first run trained the teacher, the second loaded it from the cache: same numbers.
    assert (first["eval"]["teacher_source"], second["eval"]["teacher_source"]) == ("trained", "cache")
    assert first["status"] == second["status"] == "complete"
    names = set(first["metrics"]) - {"wall_seconds"}
    assert names == set(second["metrics"]) - {"wall_seconds"}
    assert {"loss", "kd_loss", "ce_loss", "temperature", "kl", "val_accuracy"} <= names
    for name in sorted(names):
        np.testing.assert_array_equal(first["metrics"][name], second["metrics"][name], err_msg=name)
    for name in first["steps"]:
        np.testing.assert_array_equal(first["steps"][name], second["steps"][name], err_msg=name)
    for key, value in first["eval"].items():
        # Timings (wall clock, latency) are measurements of the machine, not of the run.
        if key not in ("wall_seconds", "teacher_source") and not key.endswith("latency_ms_per_sample"):
            np.testing.assert_array_equal(value, second["eval"][key], err_msg=key)
    for name, weights in first["student"].items():
        np.testing.assert_array_equal(weights, second["student"][name], err_msg=name)


# ---------------------------------------------------------------- a user's own data
def test_user_npz_runs_end_to_end(make_config, tmp_path, capsys):
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=400, n_features=12, n_informative=6, n_redundant=2, n_classes=3, random_state=0
    )
    data = tmp_path / "mine.npz"
    np.savez(data, X=x.astype(np.float32), y=y)
    config = make_config(
        {"name": "mine", "data": {"name": "npz", "path": str(data), "normalize": "standard"},
         "teacher": {"epochs": 20}, "distill": {"epochs": 10}},
        name="mine.yaml",
    )
    out = tmp_path / "npz-runs"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0
    assert "student accuracy" in capsys.readouterr().out
    (path,) = run_files(out)
    run = read_run(path)
    assert run["status"] == "complete"
    assert_consistent(run, 10)
    chance = 1 / 3
    assert run["eval"]["teacher_accuracy"] > chance + 0.15
    assert run["eval"]["student_accuracy"] > chance + 0.15
    assert run["config"]["data"]["path"] == str(data)
    assert run["student_attrs"]["input_dim"] == 12 and run["student_attrs"]["num_classes"] == 3


# ---------------------------------------------------------------- the teacher cache
def test_teacher_cache_and_checkpoint(make_config, tmp_path, fresh_cache, capsys):
    config = make_config(name="cache.yaml")
    out = tmp_path / "cache-runs"

    assert main(["run", str(config), "--out", str(out / "1"), "--quiet"]) == 0
    assert main(["run", str(config), "--out", str(out / "2"), "--quiet"]) == 0
    capsys.readouterr()
    (first,), (second,) = run_files(out / "1"), run_files(out / "2")
    r1, r2 = read_run(first), read_run(second)
    assert r1["eval"]["teacher_source"] == "trained"
    assert r2["eval"]["teacher_source"] == "cache"
    assert r1["eval"]["teacher_accuracy"] == r2["eval"]["teacher_accuracy"]

    cached = sorted(fresh_cache.rglob("*.pt"))
    assert len(cached) == 1, cached

    # A different teacher config is a different cache entry.
    assert main(["run", str(config), "--out", str(out / "3"), "--quiet", "--set", "teacher.epochs=4"]) == 0
    assert read_run(run_files(out / "3")[0])["eval"]["teacher_source"] == "trained"
    assert len(sorted(fresh_cache.rglob("*.pt"))) == 2

    # Pointing teacher.checkpoint at the cached file loads it.
    assert main(["run", str(config), "--out", str(out / "4"), "--quiet", "--set", f"teacher.checkpoint={cached[0]}"]) == 0
    r4 = read_run(run_files(out / "4")[0])
    assert r4["eval"]["teacher_source"] == "checkpoint"
    assert r4["eval"]["teacher_accuracy"] == r1["eval"]["teacher_accuracy"]
    capsys.readouterr()

    # A checkpoint whose shapes do not fit the configured teacher: exit 2, naming the field, no file.
    for extra in (["--set", "teacher.hidden=[64]"], ["--set", "teacher.hidden=[32, 32]"]):
        bad_out = tmp_path / "bad-ckpt"
        code = main(["run", str(config), "--out", str(bad_out), "--quiet",
                     "--set", f"teacher.checkpoint={cached[0]}", *extra])
        err = capsys.readouterr().err
        assert code == 2, err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "teacher.checkpoint" in lines[0] and "Traceback" not in err
        assert run_files(bad_out) == []


def test_checkpoint_for_other_data_is_rejected(make_config, tmp_path, fresh_cache, cli_subprocess):
    """A teacher trained on 12-feature data cannot be used on digits (64 features)."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=120, n_features=12, n_classes=3, n_informative=4, random_state=1)
    data = tmp_path / "other.npz"
    np.savez(data, X=x, y=y)
    other = make_config({"data": {"name": "npz", "path": str(data)}, "distill": {"epochs": 1}}, name="other.yaml")
    execute(load_config(other), str(tmp_path / "other-runs"))
    (ckpt,) = sorted(fresh_cache.rglob("*.pt"))
    digits = make_config({"teacher": {"checkpoint": str(ckpt)}}, name="digits.yaml")
    proc = cli_subprocess(["run", digits, "--out", tmp_path / "x", "--quiet"])
    assert proc.returncode == 2, proc.stderr
    assert "teacher.checkpoint" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists() or run_files(tmp_path / "x") == []


# ---------------------------------------------------------------- reading runs back
def test_show_and_compare_print_tables(tiny_config, tmp_path, capsys):
    out = tmp_path / "shown"
    assert main(["run", str(tiny_config), "--out", str(out)]) == 0  # with progress output
    captured = capsys.readouterr()
    assert "student accuracy" in captured.out
    assert main(["run", str(tiny_config), "--out", str(out), "--quiet", "--set", "distill.alpha=0.5",
                 "--set", "name=half"]) == 0
    capsys.readouterr()
    files = run_files(out)
    assert len(files) == 2
    runs = [read_run(p) for p in files]

    assert main(["show", str(files[0])]) == 0
    text = capsys.readouterr().out
    assert "complete" in text
    header = next(line for line in text.splitlines() if line.split()[:1] == ["epoch"])
    assert "val_accuracy" in header and "temperature" in header
    table_lines = text[text.index(header):].splitlines()[2:]
    assert len(table_lines) == 3  # one row per epoch
    acc = runs[0]["metrics"]["val_accuracy"]
    for line, value in zip(table_lines, acc):
        assert line.split()[-1] == f"{value:.4f}"

    assert main(["compare", str(out)]) == 0
    text = capsys.readouterr().out
    lines = text.split("\n\n")[0].splitlines()
    assert "accuracy" in lines[0] and "teacher_acc" in lines[0]
    assert len(lines) == 4  # header, rule, one row per run
    # the two runs differ in alpha on one seed: a difference, but no verdict
    assert "alpha=0.5 -> alpha=0.9" in text and "cannot tell (fewer than 2 paired seeds)" in text
    for run in runs:
        assert f"{run['eval']['student_accuracy']:.4f}" in text
        assert run["config"]["name"] in text

    assert main(["compare", str(files[0]), str(files[1])]) == 0
    assert capsys.readouterr().out == text


def test_show_and_compare_bad_paths_exit_2(tmp_path, capsys):
    assert main(["show", str(tmp_path / "absent.h5")]) == 2
    assert main(["compare", str(tmp_path / "absent")]) == 2
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"nope")
    assert main(["show", str(junk)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 3
