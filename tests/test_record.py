"""The HDF5 record: appended per epoch, status running -> complete/failed, partial files readable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import h5py
import numpy as np
import pytest

from tempdistill.record import RunRecorder, read_run

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
            f["metrics"]["loss"].resize((5,))
            raise RuntimeError("crash mid-write")
    run = read_run(path)
    assert run["metrics"]["loss"].shape == (1,) and run["status"] == "running"


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
        f.create_dataset("config", data="not json", dtype=h5py.string_dtype())
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
    from tempdistill.report import compare_runs, show_run

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
            np.testing.assert_array_equal(got["attrs"][key], value, err_msg=f"{name} attr {key}")
        for key in set(item) - {"attrs", "values"}:
            assert got[key] == item[key], (name, key)
        if "values" in item:
            np.testing.assert_array_equal(got["values"], item["values"], err_msg=name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5"]  # no journal, no temporary
