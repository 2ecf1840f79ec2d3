"""The HDF5 record: appended per epoch, status running -> complete/failed, partial files readable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import h5py
import numpy as np
import pytest

from tempdistill.record import journal
from tempdistill.record.run_file import FORMAT_VERSION, RunRecorder, read_run

CONFIG_JSON = json.dumps({"name": "unit", "distill": {"epochs": 3}})


def epoch_metrics(i: int) -> dict:
    return {"epoch": float(i), "loss": 1.0 / (i + 1), "temperature": 4.0, "val_accuracy": 0.5 + 0.1 * i}


def record_reference_run(path: Path) -> None:
    """One run through every writing call: late series, traces on some epochs, a per-class T
    group, warnings, eval, arrays. ``tests/data/run_v2_reference.h5`` is what the recorder that
    copied the whole file for every commit wrote for these calls."""
    rng = np.random.default_rng(7)
    rec = RunRecorder(path, CONFIG_JSON, {"name": "unit", "student_backend": "snntorch"})
    rec.write_arrays("data", {"class_labels": np.arange(3)}, {"normalization": '{"kind": "none"}'})
    for i in range(3):
        metrics = {**epoch_metrics(i), **({"silent.output": float(i == 1)} if i else {})}
        steps = {"step": np.arange(4 * i, 4 * i + 4, dtype=float), "temperature": np.full(4, 4.0 - i)}
        if i == 2:
            steps["threshold_mean"] = np.full(3, 0.5)
        traces = None if i == 1 else {
            "hidden0.spikes": (rng.random((4, 25, 16)) > 0.8).astype(np.uint8),
            "hidden0.membrane": rng.standard_normal((4, 25, 16)).astype(np.float32),
            "output.spikes": (rng.random((4, 25, 3)) > 0.5).astype(np.uint8),
        }
        groups = {"temperature": {"class0": 4.0 - i, "class1": 3.0}}
        rec.append_epoch(metrics, steps=steps, traces=traces, groups=groups)
        if i == 0:
            rec.add_warning("warning: epoch 1: output layer silent")
    rec.add_warning("note: epoch 3: output layer no longer silent (it was from epoch 2)")
    rec.write_eval({"student_accuracy": 0.7, "teacher_source": "trained", "confusion": np.eye(3),
                    "test_predictions": np.array([0, 2, 1, 1])})
    rec.write_arrays("student", {"net.0.weight": np.ones((3, 2), dtype=np.float32)}, {"backend": "snntorch"})
    rec.finish("complete")


def test_new_record_is_running_and_readable(tmp_path):
    path = tmp_path / "run.h5"
    RunRecorder(path, CONFIG_JSON, {"name": "unit", "student_backend": "dense"})
    run = read_run(path)
    assert run["status"] == "running"
    assert run["config"] == json.loads(CONFIG_JSON)
    assert run["metrics"] == {} and run["eval"] == {}
    assert run["attrs"]["name"] == "unit" and run["attrs"]["student_backend"] == "dense"
    assert "format_version" in run["attrs"] and "created" in run["attrs"]
    assert "python" in run["env"] and "torch" in run["env"]


def test_metrics_appended_per_epoch_then_complete(tmp_path):
    path = tmp_path / "run.h5"
    rec = RunRecorder(path, CONFIG_JSON)
    for i in range(3):
        rec.append_epoch(epoch_metrics(i), steps={"temperature": np.full(5, 4.0), "step": np.arange(5 * i, 5 * i + 5)})
        run = read_run(path)
        assert run["status"] == "running"
        assert run["attrs"]["epochs_completed"] == i + 1
        for name, series in run["metrics"].items():
            assert series.shape == (i + 1,), name
        np.testing.assert_array_equal(run["metrics"]["epoch"], np.arange(i + 1, dtype=float))
        assert run["steps"]["temperature"].shape == (5 * (i + 1),)
    rec.write_eval({"student_accuracy": 0.7, "teacher_source": "trained", "confusion": np.eye(3)})
    rec.finish("complete")
    run = read_run(path)
    assert run["status"] == "complete"
    assert "finished" in run["attrs"] and "error" not in run["attrs"]
    np.testing.assert_allclose(run["metrics"]["val_accuracy"], [0.5, 0.6, 0.7])
    np.testing.assert_array_equal(run["steps"]["step"], np.arange(15))
    assert run["eval"]["student_accuracy"] == pytest.approx(0.7)
    assert run["eval"]["teacher_source"] == "trained"
    np.testing.assert_array_equal(run["eval"]["confusion"], np.eye(3))
    assert not list(tmp_path.glob(".*writing"))


def test_series_first_seen_late_is_nan_padded(tmp_path):
    path = tmp_path / "run.h5"
    rec = RunRecorder(path, CONFIG_JSON)
    rec.append_epoch({"loss": 1.0})
    rec.append_epoch({"loss": 0.5, "spikes": 3.0})
    m = read_run(path)["metrics"]
    assert m["loss"].shape == m["spikes"].shape == (2,)
    assert np.isnan(m["spikes"][0]) and m["spikes"][1] == 3.0


def test_failed_status_carries_the_error(tmp_path):
    path = tmp_path / "run.h5"
    rec = RunRecorder(path, CONFIG_JSON)
    rec.append_epoch(epoch_metrics(0))
    rec.finish("failed", error="RuntimeError: boom")
    run = read_run(path)
    assert run["status"] == "failed"
    assert run["attrs"]["error"] == "RuntimeError: boom"
    assert run["metrics"]["loss"].shape == (1,)


def test_traces_and_arrays_round_trip(tmp_path):
    path = tmp_path / "run.h5"
    rec = RunRecorder(path, CONFIG_JSON)
    spikes = (np.random.default_rng(0).random((4, 25, 10)) > 0.8).astype(np.uint8)
    rec.append_epoch(epoch_metrics(0), traces={"spikes": spikes})
    rec.write_arrays("student", {"net.0.weight": np.ones((3, 2), dtype=np.float32)}, {"backend": "dense"})
    run = read_run(path)
    np.testing.assert_array_equal(run["traces"][0]["spikes"], spikes)
    assert run["traces"][0]["spikes"].dtype == np.uint8
    np.testing.assert_array_equal(run["student"]["net.0.weight"], np.ones((3, 2)))
    assert run["student_attrs"]["backend"] == "dense"


def test_failed_write_leaves_last_good_state(tmp_path):
    """An exception inside an edit must not corrupt the file or its completed epochs."""
    path = tmp_path / "run.h5"
    rec = RunRecorder(path, CONFIG_JSON)
    rec.append_epoch(epoch_metrics(0))
    with pytest.raises(RuntimeError):
        with rec.edit() as f:
            f.attrs["status"] = "complete"
            del f["config"]
            raise RuntimeError("crash mid-write")
    run = read_run(path)
    assert run["metrics"]["loss"].shape == (1,) and run["status"] == "running"
    assert run["config"] == json.loads(CONFIG_JSON)
    assert not list(tmp_path.glob(".*writing"))


# ---------------------------------------------------------------- partial / foreign files
def test_read_run_refuses_an_hdf5_file_that_is_not_a_run(tmp_path):
    path = tmp_path / "bare.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("weights", data=np.ones(3))
    with pytest.raises(ValueError, match="not a tempdistill run"):
        read_run(path)


def test_read_run_on_a_run_file_with_only_its_status(tmp_path):
    path = tmp_path / "status-only.h5"
    with h5py.File(path, "w") as f:
        f.attrs["status"] = "running"
    run = read_run(path)
    assert run["status"] == "running" and run["format_version"] == 1
    for key in ("config", "env", "metrics", "steps", "eval", "traces", "student", "temperature", "episodes", "data"):
        assert run[key] == {}, key


def test_read_run_on_file_with_some_groups(tmp_path):
    path = tmp_path / "partial.h5"
    with h5py.File(path, "w") as f:
        f.attrs["status"] = "running"
        f.create_group("metrics").create_dataset("loss", data=np.array([1.0, 0.5]))
    run = read_run(path)
    assert run["status"] == "running"
    assert run["config"] == {}
    np.testing.assert_array_equal(run["metrics"]["loss"], [1.0, 0.5])
    assert run["eval"] == {} and run["env"] == {} and run["steps"] == {} and run["traces"] == {}


def test_read_run_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_run(tmp_path / "absent.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(ValueError):
        read_run(junk)


def test_show_and_compare_survive_partial_files(tmp_path):
    from tempdistill.analysis.comparison import compare_runs
    from tempdistill.analysis.report import show_run

    bare = tmp_path / "bare.h5"  # a run file whose writer died after its very first attribute
    with h5py.File(bare, "w") as f:
        f.attrs["format_version"] = 1
    foreign = tmp_path / "weights.h5"  # not a run: passed over in a directory
    with h5py.File(foreign, "w") as f:
        f.create_dataset("w", data=np.ones(2))
    partial = tmp_path / "partial.h5"
    RunRecorder(partial, CONFIG_JSON).append_epoch(epoch_metrics(0))
    for p in (bare, partial):
        assert "status" in show_run(p)
    text = compare_runs([tmp_path])
    assert "running" in text and "unknown" in text
    assert len(text.splitlines()) == 2 + 2  # header, rule, two runs: weights.h5 is not one


# ---------------------------------------------------------------- the finished file
REFERENCE = Path(__file__).resolve().parent / "data" / "run_v2_reference.h5"
VOLATILE_ATTRS = {"created", "finished"}


def h5_content(path: Path) -> Dict[str, Any]:
    """Every object of a file but ``/env`` (this machine's versions): attrs, and for datasets
    dtype, shape, maxshape, chunks, compression and values."""
    content: Dict[str, Any] = {}

    def visit(name: str, obj: Any) -> None:
        if name == "env" or name.startswith("env/"):
            return
        item: Dict[str, Any] = {"attrs": {k: v for k, v in obj.attrs.items() if k not in VOLATILE_ATTRS}}
        if isinstance(obj, h5py.Dataset):
            item.update(dtype=obj.dtype, shape=obj.shape, maxshape=obj.maxshape, chunks=obj.chunks,
                        compression=obj.compression, opts=obj.compression_opts, values=obj[()])
        content[name] = item

    with h5py.File(path, "r") as f:
        visit("/", f)
        f.visititems(visit)
    return content


def test_finished_file_is_what_the_copying_recorder_wrote(tmp_path):
    path = tmp_path / "run.h5"
    record_reference_run(path)
    new, old = h5_content(path), h5_content(REFERENCE)
    assert sorted(new) == sorted(old)
    for name, item in old.items():
        got = new[name]
        assert set(got) == set(item) and set(got["attrs"]) == set(item["attrs"]), name
        for key, value in item["attrs"].items():
            if name == "/" and key == "format_version":  # the reference was written at format 2;
                assert got["attrs"][key] == FORMAT_VERSION  # 3 changed what runs record, not how
                continue
            np.testing.assert_array_equal(got["attrs"][key], value, err_msg=f"{name} attr {key}")
        for key in set(item) - {"attrs", "values"}:
            if key in ("compression", "opts") and item["maxshape"] == (None,):
                assert got["compression"] == "gzip", name  # series are stored compressed now: a
                continue                                     # filter, read back unasked, not a layout
            assert got[key] == item[key], (name, key)
        if "values" in item:
            np.testing.assert_array_equal(got["values"], item["values"], err_msg=name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5"]  # no journal, no temporary


# ---------------------------------------------------------------- journal: cost and crashes
def test_appending_an_epoch_leaves_the_run_file_untouched(tmp_path):
    path = tmp_path / "run.h5"
    rec = RunRecorder(path, CONFIG_JSON)
    before = path.stat()
    spikes = np.zeros((8, 25, 64), dtype=np.uint8)
    written = []
    for i in range(40):
        start = rec.journal.path.stat().st_size if rec.journal.path.exists() else 0
        rec.append_epoch(epoch_metrics(i), steps={"temperature": np.full(5, 4.0)}, traces={"hidden0.spikes": spikes})
        written.append(rec.journal.path.stat().st_size - start)
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    # the first record also says which values are which series; after it, epoch 40 costs epoch 2's bytes
    assert spikes.nbytes < min(written) and max(written[1:]) - min(written[1:]) <= 4 < written[0] - written[1], written
    assert read_run(path)["attrs"]["epochs_completed"] == 40
    assert sorted(tmp_path.glob("*.h5")) == [path]


def killed_run(directory: Path, epochs: int = 5) -> RunRecorder:
    """A run of 9 epochs whose writer died after ``epochs``, mid-way through the next commit's
    journal record and with an edit's temporary copy half written."""
    rec = RunRecorder(directory / "run.h5", json.dumps({"name": "killed", "distill": {"epochs": 9}}))
    for i in range(epochs):
        rec.append_epoch(epoch_metrics(i), steps={"temperature": np.full(5, 4.0)}, groups={"temperature": {"c0": 4.0}})
        if i == 1:
            rec.add_warning("warning: epoch 2: output layer silent")
    record = journal.encode({"kind": "epoch", "epoch": epochs, "step": 5 * epochs}, [np.ones(10)])  # same series
    with open(rec.journal.path, "ab") as f:
        f.write(record[: len(record) // 2])
    (directory / f".run.h5.{os.getpid() + 1}.writing").write_bytes(rec.path.read_bytes()[:500])
    return rec


def test_a_killed_run_reads_every_completed_epoch_and_shows(tmp_path, capsys):
    from tempdistill.app.cli import main
    from tempdistill.record.run_file import find_runs

    rec = killed_run(tmp_path)
    run = read_run(rec.path)
    assert run["status"] == "running" and run["attrs"]["epochs_completed"] == 5
    np.testing.assert_array_equal(run["metrics"]["epoch"], np.arange(5.0))
    np.testing.assert_array_equal(run["steps"]["temperature"], np.full(25, 4.0))
    np.testing.assert_array_equal(run["temperature"]["c0"], np.full(5, 4.0))
    assert run["warnings"] == ["warning: epoch 2: output layer silent"]
    assert "journal" not in run["attrs"]
    assert main(["show", str(rec.path)]) == 0
    shown = capsys.readouterr().out
    assert "status running" in shown and "5 of 9 recorded" in shown
    assert find_runs([tmp_path]) == [rec.path]  # the journal and the temporary copy are not runs
    assert main(["compare", str(tmp_path)]) == 0
    rows = capsys.readouterr().out.strip().splitlines()[2:]
    assert len(rows) == 1 and "running" in rows[0]


def test_a_commit_cut_short_at_any_byte_is_not_read(tmp_path):
    path = tmp_path / "run.h5"
    rec = RunRecorder(path, CONFIG_JSON)
    for i in range(2):
        rec.append_epoch(epoch_metrics(i), steps={"temperature": np.full(3, 4.0)})
    two = rec.journal.path.read_bytes()
    rec.append_epoch(epoch_metrics(2), steps={"temperature": np.full(3, 4.0)})
    three = rec.journal.path.read_bytes()
    for cut in [*range(len(two), len(three), 7), len(three) - 1]:
        rec.journal.path.write_bytes(three[:cut])
        assert read_run(path)["attrs"]["epochs_completed"] == 2, cut
    rec.journal.path.write_bytes(two + b"\x00" * 40)  # a torn header
    assert read_run(path)["attrs"]["epochs_completed"] == 2
    rec.journal.path.write_bytes(three)
    assert read_run(path)["attrs"]["epochs_completed"] == 3


def test_a_failed_journal_write_is_cut_back_and_the_run_goes_on(tmp_path, monkeypatch):
    path = tmp_path / "run.h5"
    rec = RunRecorder(path, CONFIG_JSON)
    rec.append_epoch(epoch_metrics(0))
    size = rec.journal.path.stat().st_size
    real_write = os.write

    def disk_full(fd: int, data: bytes) -> int:
        real_write(fd, bytes(data[:10]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal.os, "write", disk_full)
    late = {**epoch_metrics(1), "spikes": 2.0}  # a new series: this record says which value is which
    with pytest.raises(OSError, match="No space"):
        rec.append_epoch(late)
    monkeypatch.undo()
    assert rec.journal.path.stat().st_size == size
    rec.append_epoch(late)  # the failed commit is not counted: this one is epoch 1
    with pytest.raises(ValueError, match="loss"):
        rec.append_epoch({"loss": np.ones((2, 2))})  # refused before anything is written
    rec.finish("complete")
    metrics = read_run(path)["metrics"]
    np.testing.assert_array_equal(metrics["epoch"], [0.0, 1.0])
    np.testing.assert_array_equal(metrics["spikes"], [np.nan, 2.0])



def test_a_reader_racing_finish_never_loses_epochs(tmp_path, monkeypatch):
    """The writer finishes (folds the journal in, replaces the file, removes the journal) after
    a reader copied the old file and before it read the journal."""
    path = tmp_path / "run.h5"
    rec = RunRecorder(path, CONFIG_JSON)
    for i in range(3):
        rec.append_epoch(epoch_metrics(i))
    read_journal = journal.read

    def finish_in_between(journal_path: Path) -> list:
        monkeypatch.setattr(journal, "read", read_journal)
        rec.finish("complete")
        return read_journal(journal_path)  # gone by now: nothing

    monkeypatch.setattr(journal, "read", finish_in_between)
    run = read_run(path)
    assert run["status"] == "complete"
    np.testing.assert_array_equal(run["metrics"]["epoch"], [0.0, 1.0, 2.0])

KILL_IN_FINISH = {
    "before-rename": "os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)",
    "after-rename": ("unlink = pathlib.Path.unlink\n"
                     "pathlib.Path.unlink = lambda p, **k: os.kill(os.getpid(), signal.SIGKILL) "
                     "if p.name.endswith('.journal') else unlink(p, **k)"),
}


@pytest.mark.parametrize("moment", list(KILL_IN_FINISH))
def test_a_run_killed_during_finish_reads_every_epoch_once(tmp_path, moment):
    from tempdistill.analysis.comparison import compare_runs

    script = "\n".join([
        "import os, pathlib, signal, sys",
        "import numpy as np",
        "from tempdistill.record.run_file import RunRecorder",
        "rec = RunRecorder(sys.argv[1], '{\"name\": \"k\", \"distill\": {\"epochs\": 4}}')",
        "for i in range(4):",
        "    rec.append_epoch({'epoch': float(i), 'loss': 1.0 / (i + 1)}, steps={'temperature': np.full(3, 2.0)},",
        "                     traces={'spikes': np.ones((4, 25, 16), dtype=np.uint8)})",
        KILL_IN_FINISH[moment],
        "rec.finish('complete')",
    ])
    path = tmp_path / "run.h5"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120,
                          check=False, env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert len(list(tmp_path.glob(".run.h5.*.journal"))) == 1  # killed before removing it
    run = read_run(path)
    assert run["status"] == ("running" if moment == "before-rename" else "complete")
    np.testing.assert_array_equal(run["metrics"]["epoch"], np.arange(4.0))
    np.testing.assert_array_equal(run["steps"]["temperature"], np.full(12, 2.0))
    assert sorted(run["traces"]) == [0, 1, 2, 3]
    assert len(compare_runs([tmp_path]).splitlines()) == 3  # header, rule, one run


def test_a_placed_or_consolidated_running_file_stands_alone(tmp_path):
    from tempdistill.record.run_file import consolidate, place_run_file

    rec = killed_run(tmp_path / "a")
    expected = read_run(rec.path)
    placed = place_run_file(rec.path, tmp_path / "b")
    assert sorted(p.name for p in placed.parent.iterdir()) == ["run.h5"]
    consolidate(rec.path)
    assert not rec.journal.path.exists()
    for path in (placed, rec.path):
        with h5py.File(path, "r") as f:
            assert "journal" not in f.attrs
        run = read_run(path)
        assert run["status"] == "running" and run["warnings"] == expected["warnings"]
        for group in ("metrics", "steps", "temperature"):
            assert run[group].keys() == expected[group].keys()
            for name, values in expected[group].items():
                np.testing.assert_array_equal(run[group][name], values)
    untouched = place_run_file(REFERENCE, tmp_path / "c")
    assert untouched.read_bytes() == REFERENCE.read_bytes()  # a finished file is copied as it is


def test_per_step_series_and_long_arrays_are_stored_compressed(tmp_path):
    """A sweep keeps thousands of run files: the per-step series and the test predictions are
    gzip-compressed, and read back exactly."""
    path = tmp_path / "run.h5"
    rec = RunRecorder(path, CONFIG_JSON)
    for i in range(4):
        rec.append_epoch(epoch_metrics(i), steps={"step": np.arange(500 * i, 500 * i + 500, dtype=float),
                                                  "temperature": np.full(500, 4.0)})
    predictions = np.random.default_rng(0).integers(0, 10, 10_000)
    rec.write_eval({"student_accuracy": 0.7, "test_predictions": predictions})
    rec.finish("complete")
    with h5py.File(path, "r") as f:
        assert f["steps/step"].compression == "gzip" and f["eval/test_predictions"].compression == "gzip"
        assert f["steps/temperature"].id.get_storage_size() < 0.05 * 2000 * 8
        assert f["eval/test_predictions"].id.get_storage_size() < 0.25 * predictions.nbytes
    run = read_run(path)
    np.testing.assert_array_equal(run["steps"]["step"], np.arange(2000.0))
    np.testing.assert_array_equal(run["steps"]["temperature"], np.full(2000, 4.0))
    np.testing.assert_array_equal(run["eval"]["test_predictions"], predictions)
