"""MNIST-1D: generated offline by its package, its own split, cached after the first time."""

from __future__ import annotations

import numpy as np

from tempdistill.config import DataConfig, config_from_mapping
from tempdistill.data import load_split
from tempdistill.record import read_run
from tempdistill.runner import execute


def test_mnist1d_has_its_published_shape_and_split_and_is_cached():
    first = load_split(DataConfig(name="mnist1d"), seed=0)
    assert tuple(first.x_train.shape) == (4000, 40) and tuple(first.x_test.shape) == (1000, 40)
    assert first.num_classes == 10 and first.normalizer.kind == "minmax"
    assert sorted(np.unique(first.y_test.numpy()).tolist()) == list(range(10))
    again = load_split(DataConfig(name="mnist1d"), seed=5)  # the dataset's own split, whatever the seed
    assert np.array_equal(first.x_test.numpy(), again.x_test.numpy())


def test_a_run_on_mnist1d_learns_above_chance(tmp_path):
    config = config_from_mapping({
        "name": "m1d", "data": {"name": "mnist1d"},
        "teacher": {"hidden": [128], "epochs": 8},
        "student": {"backend": "dense", "hidden": [32]},
        "distill": {"epochs": 3},
        "record": {"dir": str(tmp_path), "traces": {"every": 0}},
    })
    run = read_run(execute(config, warn=lambda _: None))
    assert run["status"] == "complete" and run["data_attrs"]["n_train"] == 4000
    assert run["eval"]["teacher_accuracy"] > 0.15 and run["eval"]["student_accuracy"] > 0.15  # chance: 0.1
