"""Sizes a config may ask for: absurd ones are refused by the schema, ones the machine cannot
hold are refused from an estimate before any network is built, and an allocation that fails
anyway is one line, exit 2 — never a traceback."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List

import pytest
import torch

from backends.dense import DenseBackend
from tempdistill import runner
from tempdistill.core import memory
from tempdistill.app.cli import main
from tempdistill.config import ConfigError, config_from_mapping
from tempdistill.core.memory import NetworkSize, Part, allocation_failure, check_fits, fully_connected_size

GB = 10**9


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def nothing_built(monkeypatch):
    """Any network construction fails the test: a refusal must come before it."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("a network was built before the sizes were checked")

    monkeypatch.setattr(DenseBackend, "build_student", refuse)
    monkeypatch.setattr(DenseBackend, "build_teacher", refuse)


def run(capsys, path: Path, *extra: str) -> tuple[int, str, float]:
    started = time.perf_counter()
    code = main(["run", str(path), "--quiet", *extra])
    return code, one_error_line(capsys), time.perf_counter() - started


# (changes, field, allowed range as the message writes it)
ABSURD = [
    ({"distill": {"epochs": 100_000_000}}, "distill.epochs", "from 1 to 100,000"),
    ({"teacher": {"epochs": 10**9}}, "teacher.epochs", "from 1 to 100,000"),
    ({"student": {"hidden": [100_000_000]}}, "student.hidden", "from 1 to 65,536"),
    ({"teacher": {"hidden": [512, 10**8]}}, "teacher.hidden", "from 1 to 65,536"),
    ({"student": {"hidden": [4] * 65}}, "student.hidden", "at most 64 hidden layers"),
    ({"distill": {"batch_size": 10**9}}, "distill.batch_size", "from 1 to 1,048,576"),
    ({"teacher": {"batch_size": 10**9}}, "teacher.batch_size", "from 1 to 1,048,576"),
    ({"eval": {"episodes": 10**9}}, "eval.episodes", "from 1 to 100,000"),
    ({"eval": {"val_episodes": 10**9}}, "eval.val_episodes", "from 1 to 100,000"),
    ({"record": {"traces": {"samples": 10**9}}}, "record.traces.samples", "from 0 to 10,000"),
    ({"student": {"backend": "norse", "steps": 10**8}}, "student.steps", "less than or equal to 10000"),
]


@pytest.mark.parametrize("changes,field,allowed", ABSURD, ids=[c[1] + "-" + str(i) for i, c in enumerate(ABSURD)])
def test_absurd_sizes_are_refused_naming_the_field_and_range(capsys, make_config, nothing_built, changes, field, allowed):
    code, line, seconds = run(capsys, make_config(changes))
    assert code == 2
    assert line.startswith(f"tempdistill run: error: {field}: "), line
    assert allowed in line
    assert seconds < 5  # refused from the config, nothing allocated


def test_policy_sizes_are_bounded_too():
    with pytest.raises(ConfigError, match=r"^env\.n_envs: must be from 1 to 256 \(got 100000\)$"):
        config_from_mapping({"task": "policy", "env": {"id": "CartPole-v1", "n_envs": 100_000}})
    with pytest.raises(ConfigError, match=r"^distill\.dagger\.buffer_size: must be from 1 to 10,000,000"):
        config_from_mapping({"task": "policy", "env": {"id": "CartPole-v1"}, "distill": {"dagger": {"buffer_size": 10**12}}})
    from tempdistill.config import validate_section
    from tempdistill.tasks.policy import PolicyTeacherOptions

    with pytest.raises(ConfigError, match=r"^teacher\.timesteps: must be from 1 to 1,000,000,000"):
        validate_section(PolicyTeacherOptions, {"timesteps": 10**12}, "teacher")
    with pytest.raises(ConfigError, match=r"^teacher\.n_envs: must be from 1 to 256"):
        validate_section(PolicyTeacherOptions, {"n_envs": 10**6}, "teacher")


def test_the_bounds_leave_every_shipped_config_valid():
    """The bounds are sanity checks: the defaults and the ends of each range are accepted."""
    config = config_from_mapping({"distill": {"epochs": 100_000, "batch_size": 1_048_576},
                                  "student": {"hidden": [65_536]}, "eval": {"episodes": 100_000}})
    assert config.distill.epochs == 100_000 and config.student.hidden == [65_536]
    assert config_from_mapping({}).eval.episodes == 100


# ---------------------------------------------------------------- memory the machine has
def test_a_student_too_big_for_the_memory_is_refused_before_anything_is_built(capsys, make_config, nothing_built,
                                                                               monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "available_bytes", lambda device="cpu": 2 * GB)
    # 30,000 × 30,000 weights: 0.9e9 parameters, 14.4 GB with gradients and Adam's moments
    code, line, seconds = run(capsys, make_config({"student": {"hidden": [30_000, 30_000]}}))
    assert code == 2
    assert line.startswith("tempdistill run: error: student.hidden: the run needs at least 14.4 GB of memory"), line
    assert "but 2.0 GB is available" in line
    assert seconds < 5
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_spiking_activations_grow_with_steps_and_name_the_batch(capsys, make_config, monkeypatch):
    monkeypatch.setattr(runner, "available_bytes", lambda device="cpu": 8 * GB)
    path = make_config({"student": {"backend": "norse", "hidden": [1024], "steps": 1000},
                        "distill": {"batch_size": 4096}})
    code, line, _ = run(capsys, path)
    assert code == 2
    # 1000 steps × 4096 samples × (1 + 3 × (1024 + 1)) floats × 4 bytes, before the data is known
    assert line.startswith("tempdistill run: error: distill.batch_size: the run needs at least 50.4 GB"), line
    assert "student activations of a batch of 4096 over 1000 steps (student.steps)" in line


def test_the_real_input_size_is_checked_before_the_student_is_built(capsys, make_config, monkeypatch, tmp_path):
    """Planning sizes a network with one input; once the data says 64, the student is sized
    again, and refused before it is built (the teacher, small, was already made)."""
    built: List[str] = []
    original = DenseBackend.build_student
    monkeypatch.setattr(DenseBackend, "build_student", lambda self, *a: built.append("student") or original(self, *a))
    plan_floor = 20_001 * 3 * 16 + 2 * 20_001 * 8 * 4  # [1, 20000, 1]: params ×4 copies + a batch of 8
    monkeypatch.setattr(runner, "available_bytes", lambda device="cpu": 3 * plan_floor)
    code, line, _ = run(capsys, make_config({"student": {"hidden": [20_000]}, "distill": {"batch_size": 8}}),
                        "--out", str(tmp_path / "out"))
    assert code == 2
    assert line.startswith("tempdistill run: error: student.hidden: the run needs at least 25.3 MB"), line  # [64, 20000, 10]
    assert built == []
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_check_fits_names_the_largest_part_of_the_peak_phase():
    small = [Part("teacher.hidden", "teacher", 1 * GB), Part("distill.batch_size", "activations", 2 * GB)]
    large = [Part("teacher.hidden", "teacher training", 5 * GB), Part("teacher.batch_size", "teacher batch", 1 * GB)]
    check_fits([small, large], available=6 * GB)
    check_fits([small, large], available=None)  # unknown: nothing is refused
    with pytest.raises(ConfigError, match=r"^teacher\.hidden: the run needs at least 6\.0 GB .* but 5\.9 GB"):
        check_fits([small, large], available=int(5.9 * GB))


def test_fully_connected_size_counts_weights_and_biases():
    net = torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    assert fully_connected_size([7, 5, 3]) == NetworkSize(sum(p.numel() for p in net.parameters()), 2 * (5 + 3))


def test_available_bytes_reads_the_machine():
    available = memory.available_bytes("cpu")
    assert available is not None and 0 < available < 2**50


# ---------------------------------------------------------------- an allocation that fails anyway
def real_allocation_error() -> RuntimeError:
    try:
        torch.empty(2**60, dtype=torch.uint8)  # refused by the allocator at once, nothing is touched
    except RuntimeError as exc:
        return exc
    pytest.skip("this machine's allocator accepted 2**60 bytes")


@pytest.mark.parametrize("error", ["torch", "memory"])
def test_an_allocation_failure_is_one_line_exit_2(capsys, make_config, monkeypatch, error):
    exc = real_allocation_error() if error == "torch" else MemoryError()

    def fail(*_args):
        raise exc

    monkeypatch.setattr(DenseBackend, "build_student", fail)
    code, line, _ = run(capsys, make_config())
    assert code == 2
    assert line.startswith("tempdistill run: error: out of memory"), line
    if error == "torch":
        assert "tried to allocate 1152921504.6 GB" in line


def test_other_runtime_errors_still_raise(make_config, monkeypatch):
    def fail(*_args):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(DenseBackend, "build_student", fail)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        main(["run", str(make_config()), "--quiet"])
    assert allocation_failure(ValueError("not enough memory")) is None
