"""Bad input is rejected by `tempdistill run` with exit 2 and one line naming the field.

No traceback, and no run file left behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List

import numpy as np
import pytest
import torch

from tempdistill.app.cli import main
from tempdistill.config import ConfigError, config_from_mapping, load_config, parse_override


def assert_no_run_file(*dirs: Path) -> None:
    for d in dirs:
        if d.exists():
            leftovers = [p for p in d.rglob("*") if p.is_file()]
            assert leftovers == [], f"a rejected config left files behind: {leftovers}"


def assert_one_line_naming(stderr: str, field: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    line = lines[0]
    assert "error" in line and field in line, f"{field!r} not named in {line!r}"
    return line


# (id, changes merged into the tiny config | raw YAML text, extra CLI args, field the message must name)
CASES: List[tuple] = [
    ("alpha>1", {"distill": {"alpha": 1.5}}, [], "distill.alpha"),
    ("alpha<0", {"distill": {"alpha": -0.1}}, [], "distill.alpha"),
    ("unknown-student-backend", {"student": {"backend": "quantum"}}, [], "student.backend"),
    ("unknown-teacher-backend", {"teacher": {"backend": "quantum"}}, [], "teacher.backend"),
    ("temperature-zero", {"distill": {"temperature": {"value": 0}}}, [], "distill.temperature.value"),
    ("temperature-negative", {"distill": {"temperature": {"value": -2.0}}}, [], "distill.temperature.value"),
    ("temperature-string", {"distill": {"temperature": {"value": "hot"}}}, [], "distill.temperature.value"),
    ("temperature-unknown-param", {"distill": {"temperature": {"start": 8.0}}}, [], "distill.temperature.start"),
    ("unknown-schedule", {"distill": {"temperature": {"schedule": "warp-drive"}}}, [], "distill.temperature.schedule"),
    ("temperature-not-a-mapping", {"distill": {"temperature": 4.0}}, [], "distill.temperature"),
    ("eval-temperature-zero", {"distill": {"eval_temperature": 0}}, [], "distill.eval_temperature"),
    ("test-fraction>1", {"data": {"test_fraction": 1.5}}, [], "data.test_fraction"),
    ("test-fraction-zero", {"data": {"test_fraction": 0.0}}, [], "data.test_fraction"),
    ("val-fraction-zero", {"data": {"val_fraction": 0.0}}, [], "data.val_fraction"),
    ("val-fraction-one", {"data": {"val_fraction": 1.0}}, [], "data.val_fraction"),
    ("select-unknown", {"distill": {"select": "best"}}, [], "distill.select"),
    ("eval-seeds-overlap", {"eval": {"val_seed": 10000}}, [], "eval.val_seed"),
    ("unknown-dataset", {"data": {"name": "mnist"}}, [], "data.name"),
    ("device-gpu", {"device": "gpu"}, [], "device"),
    ("task-regression", {"task": "regression"}, [], "task"),
    ("unknown-top-level-key", {"foo": 1}, [], "foo"),
    ("unknown-distill-key", {"distill": {"epoch": 3}}, [], "distill.epoch"),
    ("unknown-student-key", {"student": {"dropuot": 0.1}}, [], "student.dropuot"),
    ("student-dropout>1", {"student": {"dropout": 2.0}}, [], "student.dropout"),
    ("student-hidden-zero", {"student": {"hidden": [16, 0]}}, [], "student.hidden"),
    ("student-hidden-not-int", {"student": {"hidden": ["wide"]}}, [], "student.hidden"),
    ("teacher-hidden-negative", {"teacher": {"hidden": [-4]}}, [], "teacher.hidden"),
    ("distill-epochs-zero", {"distill": {"epochs": 0}}, [], "distill.epochs"),
    ("teacher-epochs-zero", {"teacher": {"epochs": 0}}, [], "teacher.epochs"),
    ("batch-size-zero", {"distill": {"batch_size": 0}}, [], "distill.batch_size"),
    ("lr-negative", {"distill": {"lr": -0.1}}, [], "distill.lr"),
    ("traces-every-negative", {"record": {"traces": {"every": -1}}}, [], "record.traces.every"),
    ("empty-name", {"name": ""}, [], "name"),
    ("seed-not-int", {"seed": "zero"}, [], "seed"),
    ("npz-without-path", {"data": {"name": "npz"}}, [], "data.path"),
    ("set-without-equals", {}, ["--set", "distill.alpha"], "--set"),
    ("set-bad-alpha", {}, ["--set", "distill.alpha=2"], "distill.alpha"),
    ("set-bad-epochs", {}, ["--set", "distill.epochs=many"], "distill.epochs"),
    ("set-unknown-backend", {}, ["--set", "student.backend=abacus"], "student.backend"),
    ("set-into-scalar", {}, ["--set", "seed.x=1"], "seed"),
    ("set-temperature-nan", {}, ["--set", "distill.temperature.value=.nan"], "distill.temperature.value"),
]

RAW_CASES: List[tuple] = [
    ("temperature-nan-yaml", "distill.temperature.value", "distill:\n  temperature: {schedule: constant, value: .nan}\n"),
    ("temperature-inf-yaml", "distill.temperature.value", "distill:\n  temperature: {schedule: constant, value: .inf}\n"),
    ("lr-inf-yaml", "distill.lr", "distill: {lr: .inf}\n"),
    ("lr-nan-yaml", "distill.lr", "distill: {lr: .nan}\n"),
    ("alpha-nan-yaml", "distill.alpha", "distill: {alpha: .nan}\n"),
    ("invalid-yaml", "config", "distill: {lr: [0.1\n"),
    ("not-a-mapping", "config", "- just\n- a list\n"),
]


def run_main(capsys, config: Path, extra: List[str], out: Path) -> tuple[int, str]:
    code = main(["run", str(config), "--out", str(out), "--quiet", *extra])
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize("changes,extra,field", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_config_rejected(capsys, make_config, tmp_path, changes, extra, field):
    config = make_config(changes)
    out = tmp_path / "out"
    code, err = run_main(capsys, config, extra, out)
    assert code == 2, err
    assert_one_line_naming(err, field)
    assert_no_run_file(out, tmp_path / "runs")


@pytest.mark.parametrize("field,raw", [c[1:] for c in RAW_CASES], ids=[c[0] for c in RAW_CASES])
def test_bad_raw_yaml_rejected(capsys, make_config, tmp_path, field, raw):
    config = make_config(raw=raw)
    out = tmp_path / "out"
    code, err = run_main(capsys, config, [], out)
    assert code == 2, err
    assert_one_line_naming(err, field)
    assert_no_run_file(out)


def test_missing_config_file(capsys, tmp_path):
    code, err = run_main(capsys, tmp_path / "nope.yaml", [], tmp_path / "out")
    assert code == 2
    assert_one_line_naming(err, "config")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_device(capsys, make_config, tmp_path):
    code, err = run_main(capsys, make_config({"device": "cuda"}), [], tmp_path / "out")
    assert code == 2
    assert_one_line_naming(err, "device")
    assert_no_run_file(tmp_path / "out", tmp_path / "runs")


# ---------------------------------------------------------------- the user's data file
def _npz(tmp_path: Path, name: str, **arrays: Any) -> Path:
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "arrays",
    [
        {"X": np.zeros((20, 3)), "y": np.zeros(19, dtype=int)},  # row counts differ
        {"X": np.zeros((20, 3))},  # no y
        {"X": np.zeros(20), "y": np.zeros(20, dtype=int)},  # X not 2-D
        {"X": np.full((20, 3), np.nan), "y": np.arange(20) % 2},  # non-finite X
        {"X": np.zeros((20, 3)), "y": np.linspace(0, 1, 20)},  # fractional labels
        {"X": np.zeros((20, 3)), "y": np.full(20, 7)},  # a single class
        {"X": np.zeros((20, 3)), "y": np.arange(20) % 2, "X_test": np.zeros((5, 4)), "y_test": np.zeros(5, dtype=int)},
        {"X": np.zeros((20, 3)), "y": np.arange(20) % 2, "X_val": np.zeros((5, 3))},  # X_val without y_val
    ],
    ids=["rows-differ", "no-y", "x-1d", "x-nan", "y-float", "y-one-class", "x-test-features", "x-val-alone"],
)
def test_bad_npz_rejected(capsys, make_config, tmp_path, arrays):
    data = _npz(tmp_path, "bad.npz", **arrays)
    config = make_config({"data": {"name": "npz", "path": str(data)}})
    code, err = run_main(capsys, config, [], tmp_path / "out")
    assert code == 2, err
    assert_one_line_naming(err, "data.path")
    assert_no_run_file(tmp_path / "out", tmp_path / "runs")


def test_npz_missing_file_and_not_npz(capsys, make_config, tmp_path):
    np.save(tmp_path / "single.npy", np.zeros((4, 3)))
    for path in (tmp_path / "absent.npz", tmp_path / "garbage.npz", tmp_path / "single.npy"):
        if path.name == "garbage.npz":
            path.write_bytes(b"this is not a zip archive")
        config = make_config({"data": {"name": "npz", "path": str(path)}})
        code, err = run_main(capsys, config, [], tmp_path / "out")
        assert code == 2, err
        assert_one_line_naming(err, "data.path")
    assert_no_run_file(tmp_path / "out", tmp_path / "runs")


def test_teacher_checkpoint_missing_or_garbage(capsys, make_config, tmp_path):
    garbage = tmp_path / "teacher.pt"
    garbage.write_bytes(b"\x00not a torch file")
    for path in (tmp_path / "absent.pt", garbage):
        config = make_config({"teacher": {"checkpoint": str(path)}})
        code, err = run_main(capsys, config, [], tmp_path / "out")
        assert code == 2, err
        assert_one_line_naming(err, "teacher.checkpoint")
    assert_no_run_file(tmp_path / "out", tmp_path / "runs")


def test_backend_that_cannot_be_imported_is_a_user_error(capsys, make_config, tmp_path):
    """A registered backend whose module is missing (e.g. its library is not installed) must
    fail like an unknown one: exit 2 naming the field, no traceback."""
    import backends

    backends.register_backend("phantom", "backends.no_such_module_xyz:Phantom")
    try:
        code, err = run_main(capsys, make_config({"student": {"backend": "phantom"}}), [], tmp_path / "out")
    except ImportError as exc:  # pragma: no cover - the failure mode this test guards against
        pytest.fail(f"ImportError escaped the CLI instead of a one-line error: {exc!r}")
    finally:
        backends.BACKENDS.unregister("phantom")
    assert code == 2
    assert_one_line_naming(err, "student.backend")


# ---------------------------------------------------------------- through a real process
SUBPROCESS_CASES = [
    ("alpha", ["--set", "distill.alpha=1.5"], "distill.alpha"),
    ("temperature", ["--set", "distill.temperature.value=-1"], "distill.temperature.value"),
    ("unknown-key", ["--set", "foo=1"], "foo"),
    ("set-no-equals", ["--set", "student.backend"], "--set"),
]


@pytest.mark.parametrize("extra,field", [c[1:] for c in SUBPROCESS_CASES], ids=[c[0] for c in SUBPROCESS_CASES])
def test_bad_config_subprocess_no_traceback(cli_subprocess, tiny_config, tmp_path, extra, field):
    out = tmp_path / "out"
    proc = cli_subprocess(["run", tiny_config, "--out", out, "--quiet", *extra])
    assert proc.returncode == 2, proc.stderr
    assert_one_line_naming(proc.stderr, field)
    assert proc.stdout == ""
    assert_no_run_file(out, tmp_path / "runs")


def test_bad_npz_subprocess_without_quiet(cli_subprocess, make_config, tmp_path):
    """Without --quiet too (a progress bar must not garble the one-line error): an npz whose
    X and y row counts differ is detected after the config validates, inside the run."""
    data = _npz(tmp_path, "rows.npz", X=np.zeros((30, 4)), y=np.zeros(29, dtype=int))
    config = make_config({"data": {"name": "npz", "path": str(data)}})
    out = tmp_path / "out"
    proc = cli_subprocess(["run", config, "--out", out])
    assert proc.returncode == 2, proc.stderr
    assert_one_line_naming(proc.stderr, "data.path")
    assert_no_run_file(out, tmp_path / "runs")


# ---------------------------------------------------------------- the library API
def test_config_api_errors_are_config_errors():
    with pytest.raises(ConfigError, match="distill.alpha"):
        config_from_mapping({"distill": {"alpha": 3}})
    with pytest.raises(ConfigError, match="--set"):
        parse_override("no-equals-sign")
    with pytest.raises(ConfigError, match="distill.lr"):
        config_from_mapping({"distill": {"lr": float("inf")}})
    assert isinstance(ConfigError("x"), ValueError)


def test_overrides_apply_with_yaml_types(tiny_config):
    cfg = load_config(tiny_config, ["distill.epochs=7", "student.hidden=[8, 4]", "distill.temperature.value=2.5"])
    assert cfg.distill.epochs == 7
    assert cfg.student.hidden == [8, 4]
    assert cfg.distill.temperature.model_dump()["value"] == 2.5
    assert parse_override("a.b=c=d") == ("a.b", "c=d")


def test_val_fraction_message_says_what_is_allowed():
    with pytest.raises(ConfigError, match=r"^data.val_fraction: must be > 0 and < 1: the share of the training part "
                                          r"held out for validation, which every run needs \(got 0\)$"):
        config_from_mapping({"data": {"val_fraction": 0}})
    with pytest.raises(ConfigError, match=r"^distill.select: got 'last'; allowed: 'final' or 'best_val'$"):
        config_from_mapping({"distill": {"select": "last"}})
    assert config_from_mapping({}).data.val_fraction == 0.15 and config_from_mapping({}).distill.select == "final"
