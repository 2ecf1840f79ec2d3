"""What happens around a run: parallel runs, interruptions, inputs that used to slip through,
silent spiking layers, paths, exports that reproduce predictions, and telling runs apart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import h5py
import numpy as np
import pytest
import torch
import yaml

from tempdistill.app.cli import main
from tempdistill.config import load_config
from tempdistill.tasks.data import file_sha256, raw_split
from tempdistill.record.export import export_run, load_predictor
from tempdistill.record.run import Run
from tempdistill.record.run_file import read_run
from tempdistill.runner import execute, prepare_teacher

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURE_V1 = Path(__file__).resolve().parent / "data" / "run_v1.h5"


def run_files(directory: Path) -> List[Path]:
    return sorted(p for p in directory.glob("*.h5") if not p.name.startswith(".")) if directory.exists() else []


def cli(args: List[Any], cwd: Path = REPO_ROOT, **popen: Any) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "tempdistill", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def one_error_line(err: str, *fields: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for name in fields:
        assert name in lines[0], (name, err)


def wait_for_epochs(out: Path, proc: subprocess.Popen, epochs: int, files: int = 1, timeout: float = 90) -> List[Path]:
    """Poll until ``files`` run files in ``out`` each hold at least ``epochs`` epochs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"ended early: {proc.communicate()[1]}"
        found = run_files(out)
        if len(found) >= files and all(len(read_run(f)["metrics"].get("epoch", [])) >= epochs for f in found[:files]):
            return found
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("runs did not start in time")


# ---------------------------------------------------------------- 1. parallel runs
def test_eight_concurrent_runs_into_one_directory_leave_eight_complete_files(make_config, tmp_path):
    config = make_config({"distill": {"epochs": 2}})
    prepare_teacher(load_config(config))  # cached: the eight runs start training at the same instant
    out = tmp_path / "shared"
    rates = [0.001 * (i + 1) for i in range(8)]  # same name and seed: the file names collide
    procs = [cli(["run", config, "--out", out, "--quiet", "--set", f"distill.lr={lr}"]) for lr in rates]
    results = [p.communicate(timeout=240) for p in procs]
    for proc, (stdout, stderr) in zip(procs, results):
        assert proc.returncode == 0, stderr
        assert "Traceback" not in stderr and "record" in stdout
    files = run_files(out)
    assert len(files) == 8, files
    runs = [read_run(f) for f in files]
    assert all(r["status"] == "complete" for r in runs)
    assert sorted(r["config"]["distill"]["lr"] for r in runs) == rates  # each file holds its own config
    assert len({r["attrs"]["created"][:16] for r in runs}) <= 2  # they really ran at the same time
    assert not list(out.glob(".*"))  # no temporary file left behind


def test_a_claimed_name_is_never_reused(tmp_path):
    from tempdistill.record.run_file import RunRecorder

    config = json.dumps({"name": "x"})
    first = RunRecorder.create(tmp_path, "x-s0", config)
    second = RunRecorder.create(tmp_path, "x-s0", config)
    assert (first.path.name, second.path.name) == ("x-s0.h5", "x-s0-1.h5")
    with pytest.raises(FileExistsError):
        RunRecorder(first.path, config)
    with pytest.raises(ValueError, match="config"):
        RunRecorder(tmp_path / "empty.h5", "{}")


# ---------------------------------------------------------------- 2. interruption
def test_sigint_on_run_keeps_an_exportable_interrupted_run(make_config, tmp_path):
    config = make_config({"distill": {"epochs": 400}})
    prepare_teacher(load_config(config))
    out = tmp_path / "interrupted"
    proc = cli(["run", config, "--out", out, "--quiet"])
    wait_for_epochs(out, proc, 3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    one_error_line(stderr, "interrupted", "SIGINT")
    [path] = run_files(out)
    run = read_run(path)
    assert run["status"] == "interrupted"
    epochs = len(run["metrics"]["epoch"])
    assert 3 <= epochs < 400 and run["eval"]["epochs_trained"] == epochs
    assert f"after epoch {epochs} of 400" in run["attrs"]["error"]
    assert run["student"], "the student trained so far is kept"
    predictor = load_predictor(export_run(Run.read(path), "pt", tmp_path / "partial.pt"))
    x_test = raw_split(load_config(config).data, 0).x_test
    np.testing.assert_array_equal(predictor.predict(x_test), run["eval"]["test_predictions"])
    assert predictor.facts["status"] == "interrupted"


def test_sigint_on_sweep_stops_queued_runs_and_summarises(make_config, tmp_path):
    config = make_config({"distill": {"epochs": 300}})
    out = tmp_path / "sweep"
    proc = cli(["sweep", config, "--grid", "distill.lr=0.001,0.002,0.003,0.004,0.005,0.006",
                "--jobs", "2", "--out", out, "--quiet"])
    wait_for_epochs(out, proc, 2, files=2, timeout=150)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    runs = [read_run(f) for f in run_files(out)]
    assert 2 <= len(runs) < 6  # the queued runs never started
    assert all(r["status"] == "interrupted" for r in runs)
    assert all(len(r["metrics"]["epoch"]) < 300 for r in runs)
    assert "queued runs not started" in stdout and "interrupted" in stdout
    assert "queued runs not started" in (out / "summary.txt").read_text()


# ---------------------------------------------------------------- 3. inputs that slipped through
def _npz(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    np.savez(path, X=x, y=y)
    return path


def _iris_npz(tmp_path: Path, labels: List[int]) -> Path:
    from sklearn.datasets import load_iris

    bunch = load_iris()
    return _npz(tmp_path / "iris.npz", bunch.data, np.asarray(labels)[bunch.target])


@pytest.mark.parametrize(
    "changes, overrides, field",
    [
        ({}, ["data.path=my.npz"], "data.path"),
        ({}, ["seed=-1"], "seed"),
        ({"name": "my run/x"}, [], "name"),
    ],
    ids=["npz-path-with-digits", "negative-seed", "name-with-slash"],
)
def test_rejected_config_values_exit_2_naming_the_field(make_config, tmp_path, capsys, changes, overrides, field):
    config = make_config(changes)
    args = ["run", str(config), "--out", str(tmp_path / "out"), "--quiet"]
    for item in overrides:
        args += ["--set", item]
    assert main(args) == 2
    one_error_line(capsys.readouterr().err, field)
    assert not (tmp_path / "out").exists() or not run_files(tmp_path / "out")


@pytest.mark.parametrize("labels", [[1, 2, 3], [0, 1, 9]], ids=["iris-1-to-3", "labels-0-1-9"])
def test_labels_are_remapped_and_recorded(make_config, tmp_path, labels):
    data = _iris_npz(tmp_path, labels)
    config = load_config(make_config({"data": {"name": "npz", "path": str(data), "normalize": "standard"},
                                      "teacher": {"epochs": 30}, "distill": {"epochs": 10}}))
    run = read_run(execute(config))
    assert run["student_attrs"]["num_classes"] == 3
    np.testing.assert_array_equal(run["data"]["class_labels"], labels)
    assert set(np.unique(run["eval"]["test_predictions"])) <= set(labels)
    assert run["eval"]["teacher_accuracy"] > 0.8 and run["eval"]["student_accuracy"] > 0.6


def test_entropy_uses_the_number_of_distinct_labels(make_config, tmp_path, capsys):
    data = _iris_npz(tmp_path, [1, 2, 3])
    config = make_config({"data": {"name": "npz", "path": str(data)}})
    assert main(["entropy", str(config), "--temperatures", "1", "4", "--plot", str(tmp_path / "e.png")]) == 0
    assert "% of log 3" in capsys.readouterr().out


def test_out_naming_a_file_fails_before_the_teacher_is_trained(make_config, tmp_path, capsys, monkeypatch):
    import tempdistill.runner as runner

    def must_not_train(*_args, **_kwargs):
        raise AssertionError("the teacher was prepared before --out was checked")

    monkeypatch.setattr(runner, "prepare_teacher", must_not_train)
    target = tmp_path / "a-file"
    target.write_text("keep me")
    assert main(["run", str(make_config()), "--out", str(target), "--quiet"]) == 2
    one_error_line(capsys.readouterr().err, "--out", "not a directory")
    assert target.read_text() == "keep me"


def test_run_given_a_directory_says_so(tmp_path, capsys):
    assert main(["run", str(tmp_path), "--quiet"]) == 2
    one_error_line(capsys.readouterr().err, "config", "is a directory")


def test_show_piped_into_head_ends_quietly(tmp_path):
    from tempdistill.record.run_file import RunRecorder

    recorder = RunRecorder(tmp_path / "long.h5", json.dumps({"name": "long", "distill": {"epochs": 3000}}))
    epochs = np.arange(3000, dtype=float)  # one append of 3000 values: a table far beyond a pipe's buffer
    recorder.append_epoch({"epoch": epochs, "loss": 1 / (epochs + 1), "val_accuracy": epochs / 3000})
    recorder.finish("complete")
    shell = f"{sys.executable} -m tempdistill show {tmp_path / 'long.h5'} | head -3"
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True, timeout=60,
                          cwd=REPO_ROOT)
    assert len(proc.stdout.splitlines()) == 3
    assert proc.stderr == "", proc.stderr
    assert proc.returncode == 141  # what a Unix filter reports when its reader goes away


def test_show_refuses_an_hdf5_file_that_is_not_a_run(tmp_path, capsys):
    foreign = tmp_path / "weights.h5"
    with h5py.File(foreign, "w") as f:
        f.create_dataset("w", data=np.ones(3))
    assert main(["show", str(foreign)]) == 2
    one_error_line(capsys.readouterr().err, "weights.h5", "not a tempdistill run")


def test_compare_and_report_of_an_empty_directory_both_exit_2(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["compare", str(empty)]) == 2
    one_error_line(capsys.readouterr().err, "no run files")
    assert main(["report", str(empty), "--out", str(tmp_path / "report")]) == 2
    one_error_line(capsys.readouterr().err, "no run files")


def test_grid_without_values_names_the_grid(make_config, tmp_path, capsys):
    assert main(["sweep", str(make_config()), "--grid", "distill.alpha", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    one_error_line(err, "--grid", "distill.alpha", "no values")
    assert "--set" not in err


def test_empty_config_file_is_an_error_naming_it(make_config, capsys):
    config = make_config(raw="")
    assert main(["run", str(config), "--quiet"]) == 2
    one_error_line(capsys.readouterr().err, str(config), "empty")


# ---------------------------------------------------------------- 4. silent spiking layers
def test_a_silent_output_layer_is_warned_about_and_flagged(make_config, tmp_path):
    config = load_config(make_config({"student": {"backend": "snntorch", "hidden": [16], "steps": 5, "theta0": 1e5, "output_fit": "none"}}))
    warnings: List[str] = []
    run = read_run(execute(config, warn=warnings.append))
    assert len(warnings) == 1, warnings  # once, not every epoch
    assert "output layer" in warnings[0] and "no spike" in warnings[0] and "student.theta0" in warnings[0]
    assert run["warnings"] == warnings
    assert main(["show", run["path"]]) == 0
    np.testing.assert_array_equal(run["metrics"]["silent.output"], [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(run["metrics"]["silent.hidden0"], [0.0, 0.0, 0.0])


def test_a_working_spiking_student_raises_no_alarm(make_config):
    student = {"backend": "norse", "hidden": [16], "steps": 10, "theta0": 3.0}  # fires from the first epoch
    config = load_config(make_config({"student": student}))
    warnings: List[str] = []
    run = read_run(execute(config, warn=warnings.append))
    assert warnings == [] and run["warnings"] == []
    assert not run["metrics"]["silent.output"].any() and not run["metrics"]["saturated.output"].any()


# ---------------------------------------------------------------- 5. paths
def test_paths_in_a_config_are_relative_to_the_file_not_the_shell(tmp_path, tiny_config_data):
    project = tmp_path / "project"
    (project / "configs").mkdir(parents=True)
    (project / "data").mkdir()
    raw = raw_split(load_config_from(tiny_config_data, tmp_path).data, 0)
    x, y = raw.x_train, raw.y_train
    _npz(project / "data" / "mine.npz", x, y)
    config = dict(tiny_config_data, data={"name": "npz", "path": "../data/mine.npz"}, record={"dir": "../runs"})
    (project / "configs" / "c.yaml").write_text(yaml.safe_dump(config))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = cli(["run", "../project/configs/c.yaml", "--quiet"], cwd=elsewhere)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    [path] = run_files(project / "runs")
    assert not (elsewhere / "runs").exists()
    run = read_run(path)
    assert run["config"]["data"]["path"] == str((project / "data" / "mine.npz").resolve())
    teacher_file = Path(run["eval"]["teacher_file"])
    assert teacher_file.parent == Path(os.environ["TEMPDISTILL_CACHE"]).resolve() / "teachers"
    assert run["eval"]["teacher_sha256"] == file_sha256(teacher_file)


def load_config_from(mapping: Dict[str, Any], tmp_path: Path):
    path = tmp_path / "helper.yaml"
    path.write_text(yaml.safe_dump(mapping))
    return load_config(path)


def test_the_teacher_cache_does_not_follow_the_working_directory(monkeypatch, tmp_path):
    from tempdistill.tasks.cache import cache_dir

    monkeypatch.delenv("TEMPDISTILL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    first = cache_dir()
    monkeypatch.chdir(tmp_path)
    assert cache_dir() == first == (tmp_path / "xdg" / "tempdistill" / "teachers").resolve()
    monkeypatch.setenv("TEMPDISTILL_CACHE", "relative-cache")
    assert cache_dir() == (tmp_path / "relative-cache" / "teachers").resolve()


def test_an_edited_data_file_does_not_reuse_a_stale_teacher(make_config, tmp_path):
    data = _iris_npz(tmp_path, [0, 1, 2])
    config = load_config(make_config({"data": {"name": "npz", "path": str(data)}}))
    _, _, first = prepare_teacher(config)
    _, _, again = prepare_teacher(config)
    assert (first.kind, again.kind) == ("trained", "cache") and first.file == again.file
    with np.load(data) as arrays:
        _npz(data, arrays["X"] * 2.0, arrays["y"])
    _, _, edited = prepare_teacher(config)
    assert edited.kind == "trained" and edited.file != first.file


# ---------------------------------------------------------------- 6. exports reproduce predictions
EXPORT_CASES = {  # student, normalisation (a Poisson encoder needs features in [0, 1]), formats
    "dense": ({"backend": "dense", "hidden": [16]}, "standard", ["pt"]),
    "snntorch-direct": ({"backend": "snntorch", "hidden": [16], "steps": 10}, "standard", ["pt", "nir"]),
    "norse-poisson": ({"backend": "norse", "hidden": [16], "steps": 10, "encoder": "poisson"}, "minmax", ["pt", "nir"]),
}


@pytest.mark.parametrize("case", list(EXPORT_CASES))
def test_export_round_trip_reproduces_the_runs_predictions(make_config, tmp_path, case):
    student, normalize, formats = EXPORT_CASES[case]
    config = load_config(make_config({"student": student, "data": {"normalize": normalize}, "distill": {"epochs": 6}}))
    path = execute(config)
    run = read_run(path)
    recorded = run["eval"]["test_predictions"]
    raw = raw_split(config.data, config.seed)
    x_test = raw.x_test
    recorded_accuracy = (recorded == raw.class_labels[raw.y_test]).mean()
    assert recorded_accuracy > 0.3  # a student that predicts (chance: 0.1), not one stuck on a class
    # The test accuracy comes from the same seeded pass as the predictions, Poisson spikes included.
    assert recorded_accuracy == run["eval"]["student_accuracy"]
    for fmt in formats:
        predictor = load_predictor(export_run(Run.read(path), fmt, tmp_path / f"student.{fmt}"))
        assert predictor.facts["normalization"] == run["data_attrs"]["normalization"]
        np.testing.assert_array_equal(predictor.predict(x_test), recorded, err_msg=f"{case} {fmt}")
        if case == "norse-poisson":  # the encoder is really random: another seed draws other spikes
            from tempdistill.core.predict import seeded_argmax

            forward = predictor.forward
            x = torch.as_tensor(predictor.normalizer.apply(x_test), dtype=torch.float32)
            assert (seeded_argmax(forward, x, seed=1) != seeded_argmax(forward, x, seed=0)).any()


def test_nir_export_carries_encoder_steps_readout_theta0_and_normalisation(make_config, tmp_path):
    import nir

    student = {"backend": "snntorch", "hidden": [8], "steps": 6, "encoder": "poisson", "readout": "count_membrane"}
    config = load_config(make_config({"student": student}))
    target = export_run(Run.read(execute(config)), "nir", tmp_path / "s.nir")
    facts = json.loads(nir.read(str(target)).metadata["tempdistill"])
    described = facts["describe"]
    assert (described["encoder"], described["steps"], described["readout"]) == ("poisson", 6, "count_membrane")
    assert described["theta0"] > 0
    assert json.loads(facts["normalization"])["kind"] == "minmax"
    assert facts["class_labels"] == list(range(10))


def test_old_run_files_still_read_show_compare_and_export(tmp_path, capsys):
    run = read_run(FIXTURE_V1)
    assert run["format_version"] == 1 and run["status"] == "complete"
    assert run["data"] == {} and run["warnings"] == []
    assert main(["show", str(FIXTURE_V1)]) == 0
    assert "v1-fixture" in capsys.readouterr().out
    assert main(["compare", str(FIXTURE_V1.parent)]) == 0
    assert "v1-fixture" in capsys.readouterr().out
    predictor = load_predictor(export_run(Run.read(FIXTURE_V1), "pt", tmp_path / "old.pt"))
    assert predictor.class_labels.tolist() == list(range(10))


# ---------------------------------------------------------------- 7. telling runs apart
def test_labels_say_what_varies_and_colours_and_rasters_follow_the_run(make_config, tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    from tempdistill.analysis.comparison import read_runs
    from tempdistill.analysis.report import write_report

    base = make_config({"student": {"backend": "snntorch", "hidden": [8], "steps": 5},
                        "record": {"traces": {"every": 1, "samples": 2}}})
    out = tmp_path / "runs"
    for backend in ("snntorch", "norse"):
        assert main(["run", str(base), "--out", str(out), "--quiet", "--set", f"student.backend={backend}"]) == 0
    labels = sorted(r.label for r in read_runs([out]))
    assert labels == ["tiny[backend=norse]", "tiny[backend=snntorch]"]
    [single] = read_runs([run_files(out)[0]])
    assert single.label in ("tiny[student.backend=norse]", "tiny[student.backend=snntorch]")

    drawn: Dict[str, set] = {}
    original_plot = Axes.plot

    def plot(self, *args, **kwargs):
        drawn.setdefault(kwargs.get("label"), set()).add(kwargs.get("color"))
        return original_plot(self, *args, **kwargs)

    monkeypatch.setattr(Axes, "plot", plot)
    write_report([out], tmp_path / "report")
    for label in labels:
        assert len(drawn[label]) == 1, (label, drawn[label])  # one colour in every figure
    assert drawn[labels[0]] != drawn[labels[1]]
    rasters = sorted(p.name for p in (tmp_path / "report").glob("raster-*.png"))
    assert rasters == sorted(f"raster-{p.stem}.png" for p in run_files(out))


# ---------------------------------------------------------------- 8. smaller
def test_show_counts_epochs_from_one(tiny_config, tmp_path, capsys):
    assert main(["run", str(tiny_config), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["show", str(run_files(tmp_path / "o")[0])]) == 0
    rows = capsys.readouterr().out.split("-----")[-1].strip().splitlines()[1:]
    assert [int(r.split()[0]) for r in rows] == [1, 2, 3]


def test_dkd_parts_says_when_labels_and_temperature_are_swapped():
    from tempdistill.losses import dkd_parts

    s, t, y = torch.randn(4, 5), torch.randn(4, 5), torch.tensor([0, 1, 2, 3])
    with pytest.raises(ValueError, match="swapped"):
        dkd_parts(s, t, 4.0, y)
    tckd, nckd = dkd_parts(s, t, y, 4.0)
    assert float(tckd) >= 0 and float(nckd) >= 0


def test_a_one_seed_sweep_prints_no_spread(make_config, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", str(make_config({"distill": {"epochs": 1}})), "--grid", "distill.alpha=0.9,0",
                 "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "±" not in printed
    [row] = [ln for ln in printed.splitlines() if ln.startswith("tiny-alpha=0.9 ")]
    assert row.split()[3] == "1"


def test_a_silent_start_that_recovers_is_warned_then_noted(make_config):
    """Without output_fit a spiking student starts silent (θ0·T above the first output
    currents) and, with a count readout (which only spikes move), recovers; the default fits
    the output and fires from the start."""
    student = {"backend": "snntorch", "hidden": [16], "steps": 10, "output_fit": "none", "readout": "count"}
    config = load_config(make_config({"student": student, "distill": {"epochs": 8}}))
    warnings: List[str] = []
    run = read_run(execute(config, warn=warnings.append))
    silent = run["metrics"]["silent.output"]
    assert silent[0] == 1.0 and silent[-1] == 0.0, silent
    first_firing = int(np.argmin(silent)) + 1
    assert warnings[0].startswith("warning: epoch 1: output layer")
    assert warnings[1] == f"note: epoch {first_firing}: output layer no longer silent (it was from epoch 1)"
