"""Validation and test are different rows: per-epoch measures and choices use validation, the
test data is looked at once per reported model, and ``best_val`` reports the right epoch."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
import torch

from backends.dense import DenseBackend
from tempdistill.config import ConfigError, DataConfig, config_from_mapping
from tempdistill.tasks.data import load_split, raw_split
from tempdistill.record.run import Run
from tempdistill.record.run_file import read_run
from tempdistill.runner import execute, plan_run, prepare_teacher
from tempdistill.analysis.statistics import score_of
from tempdistill.core.student import Student
from tempdistill.tasks.classification import ClassificationTask

N, FEATURES, CLASSES = 300, 6, 3


def id_data(path: Path, n: int = N, seed: int = 0, **extra: np.ndarray) -> Path:
    """A user's .npz whose feature 0 is a unique row id (i / n) and whose class shows in feature 1."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % CLASSES
    x = rng.normal(size=(n, FEATURES))
    x[:, 0] = np.arange(n) / n
    x[:, 1] += 2.0 * y
    np.savez(path, X=x, y=y, **extra)
    return path


def ids(x: Any) -> set:
    return set(np.round(np.asarray(x)[:, 0] * N).astype(int).tolist())


# ---------------------------------------------------------------- the three parts
@pytest.mark.parametrize("seed", [0, 3])
def test_validation_and_test_never_overlap_and_cover_the_data(tmp_path, seed):
    config = DataConfig(name="npz", path=str(id_data(tmp_path / "d.npz")), test_fraction=0.3, val_fraction=0.15)
    raw = raw_split(config, seed)
    train, val, test = ids(raw.x_train), ids(raw.x_val), ids(raw.x_test)
    assert not train & val and not train & test and not val & test
    assert train | val | test == set(range(N))
    assert (len(test), len(val)) == (90, 32)  # 30% of 300; 15% of the 210 left for training, rounded up
    # stratified: each class keeps its share in every part
    for part in (raw.y_train, raw.y_val, raw.y_test):
        counts = np.bincount(part, minlength=CLASSES)
        assert counts.max() - counts.min() <= 1, counts
    again = raw_split(config, seed)
    assert ids(again.x_val) == val and ids(again.x_test) == test  # seeded


def test_digits_test_rows_are_unchanged_by_carving_validation():
    """Validation comes out of the training part only: the test rows are the ones a run without
    validation had, so test figures stay comparable."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    _, x_test, _, _ = train_test_split(digits.data, digits.target, test_size=0.3, random_state=0, stratify=digits.target)
    raw = raw_split(DataConfig(), 0)
    np.testing.assert_array_equal(raw.x_test, x_test)
    assert len(raw.x_train) + len(raw.x_val) + len(raw.x_test) == len(digits.data)
    assert len(raw.x_val) == math.ceil(0.15 * (len(digits.data) - len(x_test)))  # as scikit-learn rounds
    assert np.bincount(raw.y_val, minlength=10).min() >= 15  # every class in validation


def test_a_users_npz_brings_its_own_test_and_validation(tmp_path):
    rng = np.random.default_rng(1)
    x_test, x_val = rng.normal(size=(40, FEATURES)) + 100.0, rng.normal(size=(20, FEATURES)) - 100.0
    y_test, y_val = np.arange(40) % CLASSES, np.arange(20) % CLASSES
    path = id_data(tmp_path / "own.npz", X_test=x_test, y_test=y_test, X_val=x_val, y_val=y_val)
    raw = raw_split(DataConfig(name="npz", path=str(path)), 0)
    np.testing.assert_array_equal(raw.x_test, x_test)
    np.testing.assert_array_equal(raw.x_val, x_val)
    assert len(raw.x_train) == N and ids(raw.x_train) == set(range(N))  # nothing carved from X
    only_test = id_data(tmp_path / "test-only.npz", X_test=x_test, y_test=y_test)
    raw = raw_split(DataConfig(name="npz", path=str(only_test), val_fraction=0.2), 0)
    np.testing.assert_array_equal(raw.x_test, x_test)
    assert (len(raw.x_train), len(raw.x_val)) == (240, 60) and not ids(raw.x_train) & ids(raw.x_val)


def test_labels_of_every_part_share_one_mapping(tmp_path):
    """Labels {2, 5, 9} in X and a label 7 only the test part has: one sorted mapping for all."""
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(60, 3)), np.array([2, 5, 9] * 20)
    path = tmp_path / "labels.npz"
    np.savez(path, X=x, y=y, X_test=rng.normal(size=(4, 3)), y_test=np.array([2, 5, 7, 9]))
    split = load_split(DataConfig(name="npz", path=str(path)), 0)
    assert split.class_labels.tolist() == [2, 5, 7, 9] and split.num_classes == 4
    assert split.y_test.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("arrays,names", [
    ({"X_test": np.zeros((10, FEATURES + 1)), "y_test": np.zeros(10, dtype=int)}, ("X_test", "features")),
    ({"y_test": np.zeros(10, dtype=int)}, ("y_test", "X_test")),
    ({"X_val": np.zeros((10, FEATURES)), "y_val": np.zeros(9, dtype=int)}, ("y_val", "X_val")),
    ({"X_val": np.zeros((10, FEATURES)), "y_val": np.full(10, 0.5)}, ("y_val", "integer")),
    ({"X_val": np.zeros((0, FEATURES)), "y_val": np.zeros(0, dtype=int)}, ("X_val", "no samples")),
], ids=["test-features", "y-test-alone", "val-rows", "val-labels", "val-empty"])
def test_a_bad_own_part_names_the_array(tmp_path, arrays, names):
    path = id_data(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ConfigError) as caught:
        raw_split(DataConfig(name="npz", path=str(path)), 0)
    message = str(caught.value)
    assert message.startswith("data.path: ") and "\n" not in message
    assert all(name in message for name in names), message


# ---------------------------------------------------------------- normalisation
@pytest.mark.parametrize("normalize", ["standard", "minmax"])
def test_normalisation_statistics_come_from_training_rows_only(tmp_path, normalize):
    """Validation and test rows far outside the training range must not move the statistics."""
    rng = np.random.default_rng(3)
    far = {"X_test": rng.normal(size=(30, FEATURES)) * 50 + 500, "y_test": np.arange(30) % CLASSES,
           "X_val": rng.normal(size=(30, FEATURES)) * 50 - 500, "y_val": np.arange(30) % CLASSES}
    config = DataConfig(name="npz", path=str(id_data(tmp_path / "far.npz", **far)), normalize=normalize)
    raw, split = raw_split(config, 0), load_split(config, 0)
    if normalize == "standard":
        np.testing.assert_allclose(split.normalizer.offset, raw.x_train.mean(axis=0))
        np.testing.assert_allclose(split.normalizer.scale, raw.x_train.std(axis=0))
        np.testing.assert_allclose(split.x_train.mean(0).numpy(), 0.0, atol=1e-5)
    else:
        assert float(split.normalizer.offset) == raw.x_train.min()
        assert float(split.normalizer.scale) == raw.x_train.max() - raw.x_train.min()
        assert float(split.x_train.min()) == 0.0 and float(split.x_train.max()) == 1.0
    assert float(split.x_test.mean()) > 5 and float(split.x_val.mean()) < -5  # left outside, not folded in


def test_carved_validation_is_outside_the_statistics_too(tmp_path):
    config = DataConfig(name="npz", path=str(id_data(tmp_path / "d.npz")), normalize="standard")
    raw, split = raw_split(config, 0), load_split(config, 0)
    everything_but_test = np.concatenate([raw.x_train, raw.x_val])
    np.testing.assert_allclose(split.normalizer.offset, raw.x_train.mean(axis=0))
    assert not np.allclose(split.normalizer.offset, everything_but_test.mean(axis=0))


def test_the_student_is_fitted_and_measured_on_the_right_rows(tiny_config_data):
    """θ0 is sized from the teacher's logits on training rows; each epoch is measured on validation."""
    config = config_from_mapping(tiny_config_data)
    split, teacher, _ = prepare_teacher(config)
    task = ClassificationTask(split, teacher)
    assert task.fitting_logits().shape[0] == split.x_train.shape[0]
    batch = task.evaluation_batch()
    assert torch.equal(batch.x, split.x_val) and torch.equal(batch.targets, split.y_val)
    assert torch.equal(task.probe_inputs(5), split.x_val[:5])


# ---------------------------------------------------------------- the test data is looked at once
class RowCounter:
    """Counts, per outermost module call (a student's forward, the teacher network's, or any
    module called on its own, as a trace capture calls a student's first layer), how many test
    rows (recognised by their id feature) it was given. Calls nested in another are not
    counted again."""

    def __init__(self, test_ids: torch.Tensor) -> None:
        self.test_ids = test_ids
        self.depth = 0
        self.calls: Dict[str, List[int]] = {"student": [], "teacher": [], "other": []}

    def before(self, module: torch.nn.Module, args: Any) -> None:
        self.depth += 1
        if self.depth > 1 or not args or not isinstance(args[0], torch.Tensor) or args[0].dim() != 2:
            return
        who = "student" if isinstance(module, Student) else "teacher" if getattr(module, "_counted_teacher", False) else "other"
        self.calls[who].append(int(torch.isin(args[0][:, 0], self.test_ids).sum()))

    def after(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        self.depth -= 1

    def test_passes(self, who: str) -> List[int]:
        return [n for n in self.calls[who] if n]


@pytest.mark.parametrize("select", ["final", "best_val"])
def test_the_test_split_is_evaluated_exactly_once_per_run(tmp_path, tiny_config_data, monkeypatch, select):
    """The rule: each model the run reports sees the test rows in exactly one pass over all of
    them — the teacher once, the final student once, and with best_val the best-validation
    weights once more; no training step, per-epoch measure, probe or latency timing sees any."""
    data = id_data(tmp_path / "ids.npz")
    mapping = copy.deepcopy(tiny_config_data)
    mapping["name"] = f"count-{select}"
    mapping["data"] = {"name": "npz", "path": str(data), "normalize": "none"}  # ids stay readable
    mapping["distill"].update(epochs=3, select=select)
    mapping["student"] = {"backend": "snntorch", "hidden": [8], "steps": 4}
    mapping["record"]["traces"] = {"every": 1, "samples": 4}
    config = config_from_mapping(mapping)
    raw = raw_split(config.data, config.seed)
    counter = RowCounter(torch.as_tensor(raw.x_test[:, 0], dtype=torch.float32))

    build_teacher = DenseBackend.build_teacher

    def marked_teacher(self, *args, **kwargs):
        network = build_teacher(self, *args, **kwargs)
        network._counted_teacher = True
        return network

    monkeypatch.setattr(DenseBackend, "build_teacher", marked_teacher)
    test_figures = ClassificationTask.test_figures
    asked: List[str] = []

    def counted_test_figures(self, student, temperature, weights="final"):
        asked.append(weights)
        return test_figures(self, student, temperature, weights)

    monkeypatch.setattr(ClassificationTask, "test_figures", counted_test_figures)
    monkeypatch.setenv("TEMPDISTILL_CACHE", str(tmp_path / "fresh-cache"))  # the teacher trains here, counted too
    hooks = [torch.nn.modules.module.register_module_forward_pre_hook(counter.before),
             torch.nn.modules.module.register_module_forward_hook(counter.after)]
    try:
        run = read_run(execute(config, warn=lambda _: None))
    finally:
        for hook in hooks:
            hook.remove()
    assert run["status"] == "complete" and run["eval"]["teacher_source"] == "trained"
    n_test = len(raw.x_test)
    assert asked == (["final", "best_val"] if select == "best_val" else ["final"])
    assert counter.test_passes("student") == [n_test] * len(asked)
    assert counter.test_passes("teacher") == [n_test]
    assert counter.test_passes("other") == [] and counter.calls["other"]  # trace captures looked elsewhere
    assert len(counter.calls["student"]) >= 3 * 3  # it did count: every training batch went through the hook
    assert run["eval"]["select"] == select


# ---------------------------------------------------------------- best_val
class ScriptedScore:
    """A classification score replaced by a script: epoch e's validation score is scores[e]."""

    def __init__(self, scores: List[float]) -> None:
        self.scores = scores
        self.calls = 0

    def __call__(self, student, output, batch) -> Dict[str, float]:
        score = self.scores[self.calls]
        self.calls += 1
        return {"val_accuracy": score}


def _spiking_run(tiny_config_data, name: str, epochs: int, select: str) -> Run:
    mapping = copy.deepcopy(tiny_config_data)
    mapping["name"] = name
    mapping["student"] = {"backend": "norse", "hidden": [16], "steps": 6}
    mapping["distill"].update(epochs=epochs, select=select)
    return Run.read(execute(config_from_mapping(mapping), warn=lambda _: None))


@pytest.mark.parametrize("scores,best", [([0.2, 0.9, 0.5, 0.4], 1), ([float("nan"), 0.3, 0.6, 0.6], 2)],
                         ids=["peak", "nan-then-tie"])
def test_best_val_restores_the_best_epochs_weights(tiny_config_data, monkeypatch, scores, best):
    """The run's best-validation weights (parameters and threshold buffers) are exactly those a
    run stopped after that epoch ends with; ties keep the earlier epoch, NaN never wins."""
    monkeypatch.setattr(ClassificationTask, "score", ScriptedScore(scores))
    selected = _spiking_run(tiny_config_data, "best", len(scores), "best_val")
    monkeypatch.undo()
    stopped = _spiking_run(tiny_config_data, "stopped", best + 1, "final")
    ev = selected.eval
    assert ev["select"] == "best_val" and ev["best_val_epoch"] == best
    assert ev["best_val_score"] == scores[best]
    assert selected.student_attrs["weights"] == "best_val" and stopped.student_attrs["weights"] == "final"
    assert sorted(selected.student_arrays) == sorted(stopped.student_arrays)
    assert any(name.startswith("thresholds") for name in selected.student_arrays)  # buffers are part of it
    for name, array in stopped.student_arrays.items():
        np.testing.assert_array_equal(selected.student_arrays[name], array, err_msg=name)
    assert ev["student_accuracy_best_val"] == stopped.eval["student_accuracy"]
    np.testing.assert_array_equal(ev["test_predictions_best_val"], stopped.eval["test_predictions"])
    # the final student is tested and recorded too, and the run is scored by the selected weights
    assert "student_accuracy" in ev and "test_predictions" in ev
    assert score_of(selected) == ("accuracy", ev["student_accuracy_best_val"])


def test_final_select_keeps_the_last_epoch_and_records_no_best(tiny_config_data):
    run = _spiking_run(tiny_config_data, "final", 2, "final")
    ev = run.eval
    assert ev["select"] == "final" and run.student_attrs["weights"] == "final"
    assert not {"best_val_epoch", "best_val_score", "student_accuracy_best_val"} & set(ev)
    assert ev["val_accuracy"] == pytest.approx(float(run.series["val_accuracy"][-1]))  # a validation figure
    assert score_of(run) == ("accuracy", ev["student_accuracy"])


def test_best_val_is_refused_where_a_task_has_no_single_validation_score(tmp_path):
    heads = [{"name": n, "env": "CartPole-v1", "checkpoint": str(tmp_path / f"{n}.zip")} for n in ("a", "b")]
    config = config_from_mapping({"task": "multitask", "heads": heads, "distill": {"select": "best_val"}})
    with pytest.raises(ConfigError, match=r"^distill.select: 'best_val' needs one validation score per epoch.*"
                                          r"'multitask'.*allowed here: 'final'$"):
        plan_run(config)


def test_policy_validation_and_test_episodes_never_share_a_seed():
    with pytest.raises(ConfigError, match=r"^eval.val_seed: validation episodes \(seeds 10090–10099\) overlap"):
        config_from_mapping({"eval": {"episodes": 100, "seed": 10000, "val_seed": 10090}})
    config_from_mapping({"eval": {"episodes": 100, "seed": 10000, "val_seed": 10100, "val_episodes": 5}})
