"""What a new user tripped on: switching schedules with --set, two_phase's switch, the
normalisation of a user's tabular arrays; a hand-made teacher checkpoint, a backend offered and
then refused, no --version, progress bars in log files, misspelt and misplaced keys."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from backends.dense import mlp
from tempdistill import __version__
from tempdistill.app.cli import main
from tempdistill.config import ConfigError, DataConfig, load_config
from tempdistill.tasks.data import load_split
from tempdistill.core.progress import PlainProgress, progress_bar
from tempdistill.schedules import build_schedule
from tempdistill.tasks.teacher import load_checkpoint


def test_switching_schedule_with_set_says_how_to_replace_the_section(make_config, capsys):
    path = make_config({"distill": {"temperature": {"schedule": "constant", "value": 2.0}}})
    assert main(["run", str(path), "--set", "distill.temperature.schedule=cosine", "--quiet"]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("tempdistill run: error: distill.temperature.value: unknown key for schedule 'cosine'")
    assert "(it takes: start, end)" in line
    assert "--set 'distill.temperature={schedule: cosine, start: ..., end: ...}'" in line
    # and the command it suggests works
    config = load_config(path, ["distill.temperature={schedule: cosine, start: 8, end: 1}"])
    assert config.distill.temperature.schedule == "cosine"


@pytest.mark.parametrize("epochs,switch", [(10, 5), (7, 3), (2, 1)])
def test_two_phase_switches_at_half_the_epochs_by_default(make_config, epochs, switch):
    config = load_config(make_config({"distill": {"epochs": epochs}}), ["distill.temperature={schedule: two_phase}"])
    schedule = build_schedule(config.distill.temperature, epochs, 3)
    assert [schedule.temperature(0, e) for e in range(epochs)] == [8.0] * switch + [1.0] * (epochs - switch)
    assert schedule.alpha(switch, 0.9) == 0.5 and schedule.alpha(switch - 1, 0.9) == 0.9


def test_two_phase_in_one_epoch_is_a_clear_error(make_config, capsys):
    path = make_config({"distill": {"epochs": 1}})
    assert main(["run", str(path), "--set", "distill.temperature={schedule: two_phase}", "--quiet"]) == 2
    assert "distill.temperature.switch_epoch" in capsys.readouterr().err


def test_auto_normalization_is_minmax_for_images_and_per_feature_for_user_arrays(tmp_path):
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(0, 1, 300), rng.normal(5000, 1000, 300), rng.normal(0, 0.01, 300)])
    y = (x[:, 0] + x[:, 2] * 100 > 0).astype(int)
    np.savez(tmp_path / "table.npz", X=x, y=y)
    table = load_split(DataConfig(name="npz", path=str(tmp_path / "table.npz")), seed=0)
    assert table.normalizer.kind == "standard"
    assert abs(float(table.x_train[:, 2].std()) - 1.0) < 0.05  # the small feature keeps its spread
    assert load_split(DataConfig(name="digits"), seed=0).normalizer.kind == "minmax"


# ---------------------------------------------------------------- issue 17, item 5
def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


def _digits_split():
    return load_split(DataConfig(name="digits"), seed=0)


class _OwnNames(nn.Module):
    """A teacher a user wrote by hand: the same widths as teacher.hidden [32], its own names."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(64, 32), nn.Linear(32, 10)


def test_hand_made_checkpoint_is_refused_naming_the_keys_that_differ(tmp_path):
    split = _digits_split()
    torch.save({"state_dict": _OwnNames().state_dict()}, tmp_path / "own.pt")  # no data sizes either
    with pytest.raises(ConfigError) as refused:
        load_checkpoint(mlp(64, [32], 10, "relu", 0.0), tmp_path / "own.pt", split)
    message = str(refused.value)
    assert message.startswith("teacher.checkpoint: checkpoint weights do not fit the configured teacher: "
                              "missing keys 0.weight, 0.bias, 2.weight and 1 more; "
                              "unexpected keys fc1.weight, fc1.bias, fc2.weight and 1 more; ")
    assert "the teacher's keys are 0.weight, 0.bias, 2.weight, 2.bias" in message
    assert "set teacher.hidden" not in message  # no width would fix it


def test_checkpoint_widths_that_differ_name_the_shapes_and_hidden(tmp_path):
    split = _digits_split()
    torch.save(mlp(64, [48], 10, "relu", 0.0).state_dict(), tmp_path / "wide.pt")  # a bare state dict
    with pytest.raises(ConfigError, match=r"0\.weight is \(48, 64\) in the file, \(32, 64\) here; 0\.bias is \(48,\) "
                                          r"in the file, \(32,\) here and 1 more; set teacher\.hidden"):
        load_checkpoint(mlp(64, [32], 10, "relu", 0.0), tmp_path / "wide.pt", split)
    wrapped = {f"module.{k}": v for k, v in mlp(64, [32], 10, "relu", 0.0).state_dict().items()}
    torch.save(wrapped, tmp_path / "wrapped.pt")
    with pytest.raises(ConfigError, match=r"the file's keys carry the prefix 'module\.'"):
        load_checkpoint(mlp(64, [32], 10, "relu", 0.0), tmp_path / "wrapped.pt", split)


def test_hand_made_checkpoint_that_fits_is_used(tmp_path):
    """A bare state dict of the right network, without the data's sizes, loads as it is."""
    split = _digits_split()
    made = mlp(64, [32], 10, "relu", 0.0)
    torch.save(made.state_dict(), tmp_path / "bare.pt")
    loaded = load_checkpoint(mlp(64, [32], 10, "relu", 0.0), tmp_path / "bare.pt", split)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), made.state_dict().values()))


def test_hand_made_checkpoint_through_the_cli_is_one_line(make_config, capsys, tmp_path):
    torch.save({"state_dict": _OwnNames().state_dict()}, tmp_path / "own.pt")
    assert main(["run", str(make_config({"teacher": {"checkpoint": str(tmp_path / "own.pt")}})), "--quiet"]) == 2
    assert "unexpected keys fc1.weight" in _one_line(capsys)


def test_teacher_backend_lists_only_backends_that_build_teachers(make_config, capsys):
    assert main(["run", str(make_config({"teacher": {"backend": "snntorch"}})), "--quiet"]) == 2
    assert _one_line(capsys) == "tempdistill run: error: teacher.backend: 'snntorch' builds students only; allowed: dense"
    assert main(["run", str(make_config({"teacher": {"backend": "quantum"}})), "--quiet"]) == 2
    assert _one_line(capsys).endswith("teacher.backend: unknown backend 'quantum'; allowed: dense")
    assert main(["run", str(make_config({"student": {"backend": "quantum"}})), "--quiet"]) == 2
    assert _one_line(capsys).endswith("student.backend: unknown backend 'quantum'; allowed: dense, norse, snntorch")


def test_version_prints_the_package_version(cli_subprocess):
    proc = cli_subprocess(["--version"])
    assert proc.returncode == 0, proc.stderr
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert proc.stdout.strip() == f"tempdistill {pyproject['project']['version']}" == f"tempdistill {__version__}"


def test_progress_into_a_pipe_is_one_plain_line_per_epoch(cli_subprocess, tiny_config, tmp_path):
    proc = cli_subprocess(["run", tiny_config, "--out", tmp_path / "out"])
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr
    epochs = [line for line in proc.stderr.splitlines() if line.startswith("tiny [dense]: ")]
    assert [line.split()[2] for line in epochs] == ["1/3", "2/3", "3/3"], proc.stderr
    assert all(" epoch  T=4.00  val_accuracy=" in line for line in epochs)


def test_plain_progress_writes_about_the_lines_asked_for():
    stream = io.StringIO()
    bar = progress_bar(100_000, "teach", "step", lines=10, stream=stream)
    assert isinstance(bar, PlainProgress)  # a StringIO is no terminal
    for _ in range(100_000 // 8):
        bar.update(8)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "teach: 10,000/100,000 step" and lines[-1] == "teach: 100,000/100,000 step"
    assert len(lines) == 10


@pytest.mark.parametrize("changes,line", [
    ({"distill": {"temprature": {"schedule": "constant", "value": 2.0}}},
     "distill.temprature: unknown key; did you mean temperature?"),
    ({"student": {"hiden": [8]}}, "student.hiden: unknown key; did you mean hidden?"),
    ({"student": {"steps": 30}},
     "student.steps: applies to spiking backends (snntorch, norse) only, but student.backend is 'dense'"),
    ({"student": {"backend": "norse", "dropout": 0.1}},
     "student.dropout: applies to the dense backend only, but student.backend is 'norse'"),
    ({"teacher": {"steps": 30}},
     "teacher.steps: applies to spiking backends (snntorch, norse) only, but teacher.backend is 'dense'"),
])
def test_unknown_keys_suggest_the_nearest_or_say_whose_they_are(make_config, capsys, changes, line):
    assert main(["run", str(make_config(changes)), "--quiet"]) == 2
    assert _one_line(capsys) == f"tempdistill run: error: {line}"
