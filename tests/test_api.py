"""The Python API: ``td.run`` / ``td.load_run`` make and read ordinary run files, ``callbacks``
sit at the loop's hook points, and bad input raises the CLI's one-line ``ConfigError``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest

import tempdistill as td
from tempdistill.app.cli import main
from tempdistill.config import config_from_mapping
from tempdistill.tasks.data import raw_split

FIXTURES = Path(__file__).resolve().parent / "data"


def test_public_names_are_exported_and_lazy():
    import subprocess
    import sys

    assert set(td.__all__) >= {"distill", "run", "load_run", "Run", "ArrayData", "StoredLogits", "Callback",
                               "ConfigError", "__version__"}
    # ``import tempdistill`` alone does not import torch (the CLI's --version and help stay fast).
    code = "import sys, tempdistill; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_run_from_a_config_file_with_overrides_returns_a_run_the_cli_reads(make_config, tmp_path, capsys):
    config = make_config()
    run = td.run(config, out=tmp_path / "api", **{"student.hidden": [12], "distill.epochs": 2})
    assert isinstance(run, td.Run) and run.status == "complete"
    assert run.config["student"]["hidden"] == [12] and run.path.parent == tmp_path / "api"
    assert run.overrides() == ["student.hidden=[12]", "distill.epochs=2"]
    assert list(run.metrics.index) == [0, 1] and "val_accuracy" in run.metrics
    assert 0.0 <= run.eval["student_accuracy"] <= 1.0
    for command in (["show", str(run.path)], ["compare", str(run.path)],
                    ["export", str(run.path), "--format", "pt", "--out", str(tmp_path / "s.pt")]):
        assert main(command) == 0, capsys.readouterr().err


def test_run_from_a_mapping_and_its_student_predicts_what_the_run_recorded(tiny_config_data, tmp_path):
    run = td.run(tiny_config_data)
    student = run.student
    assert not student.training
    x_test = raw_split(config_from_mapping(tiny_config_data).data, 0).x_test
    np.testing.assert_array_equal(run.predict(x_test), run.eval["test_predictions"])
    exported = run.export(tmp_path / "student.pt")
    from tempdistill.record.export import load_predictor

    np.testing.assert_array_equal(load_predictor(exported).predict(x_test), run.eval["test_predictions"])


def test_load_run_reads_every_format_version():
    for name in ("run_v1.h5", "run_v2_reference.h5", "run_v3.h5"):
        run = td.load_run(FIXTURES / name)
        assert run.format_version < 4 and len(run.metrics) == run.attrs["epochs_completed"]


def test_a_run_names_every_part_that_read_run_returns_and_reads_cheaply():
    """``Run`` is ``read_run``'s dictionary with names: every part is there, the same object
    (nothing copied), and a run made in memory has the empty groups of a file that lacks them."""
    import subprocess
    import sys

    from tempdistill.record import read_run
    from tempdistill.record.run import Run

    record = read_run(FIXTURES / "run_v3.h5")
    run = Run.from_record(record)
    renamed = {"metrics": "series", "steps": "step_series", "student": "student_arrays"}
    for key, value in record.items():
        if key == "path":
            assert run.path == Path(value)
        else:
            assert getattr(run, renamed.get(key, key)) is value, key
    assert run.label is None and sorted(run.series) == sorted([*run.metrics.columns, "epoch"])
    made = Run.from_parts(config={"seed": 1}, eval={"student_accuracy": 0.5})
    assert made.status == "complete" and made.config == {"seed": 1} and made.eval == {"student_accuracy": 0.5}
    assert made.series == {} and made.step_series == {} and not made.traces and made.warnings == []
    assert made.metrics.empty
    # reading a run imports neither pandas (until .metrics) nor torch (until .student)
    code = ("import sys; from tempdistill.record.run import Run; run = Run.read(sys.argv[1]); len(run.traces[1]); "
            "print('pandas' in sys.modules, 'torch' in sys.modules)")
    seen = subprocess.run([sys.executable, "-c", code, str(FIXTURES / "run_v3.h5")], capture_output=True, text=True)
    assert seen.stdout.strip() == "False False", seen.stderr


@pytest.mark.parametrize("change, field", [
    ({"distill.temperature": {"schedule": "constant", "value": -1.0}}, "distill.temperature"),
    ({"student.backend": "loihi"}, "student.backend"),
    ({"distill.temprature": 2.0}, "temprature"),
])
def test_bad_input_raises_the_clis_one_line_config_error(tiny_config_data, change, field):
    with pytest.raises(td.ConfigError) as caught:
        td.run(tiny_config_data, **change)
    assert field in str(caught.value) and "\n" not in str(caught.value)


class Recorder(td.Callback):
    """A user's callback: notes each epoch as it ends, and stops after ``stop_after`` epochs."""

    def __init__(self, stop_after: int) -> None:
        self.stop_after = stop_after
        self.seen: List[Dict[str, Any]] = []

    def on_epoch_end(self, loop: Any, end: td.EpochEnd) -> None:
        self.seen.append({"epoch": end.epoch, "temperature": end.metrics["temperature"],
                          "steps": len(end.steps["step"]), "history": len(loop.history)})
        if end.epoch + 1 == self.stop_after:
            loop.request_stop("enough for this test")


def test_a_users_callback_sees_every_epoch_and_can_stop_the_run(tiny_config_data):
    callback = Recorder(stop_after=2)
    run = td.run(tiny_config_data, callbacks=[callback], **{"distill.epochs": 5})
    assert [s["epoch"] for s in callback.seen] == [0, 1]
    assert all(s["temperature"] == 4.0 and s["steps"] > 0 for s in callback.seen)
    assert [s["history"] for s in callback.seen] == [1, 2]
    assert run.status == "interrupted" and "enough for this test after epoch 2 of 5" in run.attrs["error"]
    assert len(run.metrics) == 2 and run.student is not None  # recorded before the user's callback ran


# ---------------------------------------------------------------- td.distill with what a user holds
def raw_digits_and_teacher(epochs: int = 150):
    """Digits split by the user, and a linear teacher trained on the raw pixel values (0-16)
    that scales them itself, as a user's own model does."""
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(digits.data, digits.target, test_size=0.3, random_state=0)

    class Scaled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(64, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x / 16.0)

    torch.manual_seed(0)
    teacher = Scaled()
    optimizer = torch.optim.Adam(teacher.parameters(), lr=0.02)
    inputs, labels = torch.as_tensor(x_train, dtype=torch.float32), torch.as_tensor(y_train)
    for _ in range(epochs):
        loss = torch.nn.functional.cross_entropy(teacher(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return (x_train, x_test, y_train, y_test), teacher.eval()


def test_distill_a_module_on_arrays_writes_an_ordinary_run(tmp_path, capsys):
    import torch

    (x_train, x_test, y_train, y_test), teacher = raw_digits_and_teacher()
    with torch.no_grad():
        own = float((teacher(torch.as_tensor(x_test, dtype=torch.float32)).argmax(1).numpy() == y_test).mean())
    run = td.distill(teacher=teacher, data=td.ArrayData(x_train, y_train, X_test=x_test, y_test=y_test),
                     student={"backend": "dense", "hidden": [16]}, temperature=4.0, epochs=3, out=tmp_path)
    assert run.eval["teacher_source"] == "module" and run.eval["teacher_class"] == "Scaled"
    assert run.eval["teacher_accuracy"] == pytest.approx(own)  # the teacher saw the raw features
    assert run.config["data"]["name"] == "arrays" and run.config["distill"]["temperature"]["value"] == 4.0
    assert run.predict(x_test).shape == (len(x_test),)
    assert main(["compare", str(run.path)]) == 0, capsys.readouterr().err


def test_distill_from_stored_logits_needs_no_network(tmp_path):
    import torch

    (x_train, _, y_train, _), teacher = raw_digits_and_teacher(epochs=50)
    with torch.no_grad():
        logits = teacher(torch.as_tensor(x_train, dtype=torch.float32)).numpy()
    run = td.distill(teacher=td.StoredLogits(logits), data=(x_train, y_train), epochs=2, out=tmp_path)
    assert run.status == "complete" and run.eval["teacher_source"] == "logits"
    assert "teacher_latency_ms_per_sample" not in run.eval


@pytest.mark.parametrize("teacher, data, field", [
    (object(), "digits", "teacher"),
    (None, 3.5, "data"),
])
def test_distill_refuses_what_it_cannot_use_naming_the_argument(tmp_path, teacher, data, field):
    with pytest.raises(td.ConfigError, match=rf"^{field}: "):
        td.distill(teacher=teacher, data=data, out=tmp_path)


def test_a_teacher_with_the_wrong_number_of_outputs_is_refused_before_training(tmp_path):
    import torch

    (x_train, _, y_train, _), _ = raw_digits_and_teacher(epochs=1)
    with pytest.raises(td.ConfigError) as caught:
        td.distill(teacher=torch.nn.Linear(64, 7), data=(x_train, y_train), epochs=1, out=tmp_path)
    assert "7" in str(caught.value) and "10" in str(caught.value) and "\n" not in str(caught.value)
    assert not list(tmp_path.glob("*.h5"))  # nothing was started
