"""MNIST-1D: generated offline by its package, its own split, cached after the first time."""

from __future__ import annotations

import numpy as np

from tempdistill.config import DataConfig, config_from_mapping
from tempdistill.tasks.data import load_split
from tempdistill.record.run_file import read_run
from tempdistill.runner import execute


def test_mnist1d_has_its_published_shape_and_split_and_is_cached():
    first = load_split(DataConfig(name="mnist1d"), seed=0)
    # validation is 15% of the dataset's 4000 training rows; its 1000 test rows stay whole
    assert tuple(first.x_train.shape) == (3400, 40) and tuple(first.x_val.shape) == (600, 40)
    assert tuple(first.x_test.shape) == (1000, 40)
    assert first.num_classes == 10 and first.normalizer.kind == "standard"  # auto, chosen on validation
    assert sorted(np.unique(first.y_test.numpy()).tolist()) == list(range(10))
    assert np.bincount(first.y_val.numpy()).min() >= 50  # stratified: every class in validation
    # The dataset's own test rows whatever the seed (compared unscaled: the standardisation is
    # fitted on the seed's training rows); validation is carved by the seed.
    raw, again = (load_split(DataConfig(name="mnist1d", normalize="none"), seed=s) for s in (0, 5))
    assert np.array_equal(raw.x_test.numpy(), again.x_test.numpy())
    assert not np.array_equal(raw.x_val.numpy(), again.x_val.numpy())


def test_a_run_on_mnist1d_learns_above_chance(tmp_path):
    config = config_from_mapping({
        "name": "m1d", "data": {"name": "mnist1d"},
        "teacher": {"hidden": [128], "epochs": 8},
        "student": {"backend": "dense", "hidden": [32]},
        "distill": {"epochs": 3},
        "record": {"dir": str(tmp_path), "traces": {"every": 0}},
    })
    run = read_run(execute(config, warn=lambda _: None))
    assert run["status"] == "complete" and (run["data_attrs"]["n_train"], run["data_attrs"]["n_val"]) == (3400, 600)
    assert run["eval"]["teacher_accuracy"] > 0.15 and run["eval"]["student_accuracy"] > 0.15  # chance: 0.1


def test_a_conv1d_teacher_beats_an_mlp_teacher_on_mnist1d(tmp_path):
    """MNIST-1D separates architectures (published: CNN 94%, MLP 68%): at the same 8 epochs a
    small conv1d teacher is already far ahead of an MLP teacher."""
    accuracy = {}
    for arch in ("mlp", "conv1d"):
        config = config_from_mapping({
            "name": f"m1d-{arch}", "data": {"name": "mnist1d"},
            "teacher": {"arch": arch, "hidden": [128], "channels": 32, "epochs": 8, "lr": 0.003},
            "student": {"backend": "dense", "hidden": [8]}, "distill": {"epochs": 1},
            "record": {"dir": str(tmp_path), "traces": {"every": 0}},
        })
        accuracy[arch] = read_run(execute(config, warn=lambda _: None))["eval"]["teacher_accuracy"]
    assert accuracy["conv1d"] > accuracy["mlp"] + 0.1, accuracy


def test_conv1d_is_refused_for_a_student(make_config, capsys):
    from tempdistill.app.cli import main

    assert main(["run", str(make_config({"student": {"arch": "conv1d"}})), "--quiet"]) == 2
    assert capsys.readouterr().err.strip().startswith("tempdistill run: error: student.arch: 'conv1d' is for teachers")


def test_the_mnist1d_experiment_and_its_selection_sweep_are_valid_configs():
    """experiments/mnist1d.yaml trains its students as chosen by experiments/mnist1d-select.yaml
    (48 runs: 4 widths x 3 rates x 2 weight decays x 2 seeds, hard labels, cosine rate)."""
    from pathlib import Path

    from tempdistill.config import load_config, read_yaml
    from tempdistill.sweep.plan import plan_sweep

    experiments = Path(__file__).resolve().parents[1] / "experiments"
    config = load_config(experiments / "mnist1d.yaml")
    assert (config.student.hidden, config.distill.epochs, config.distill.lr_schedule) == ([256, 256], 200, "cosine")
    jobs = plan_sweep(read_yaml(experiments / "mnist1d-select.yaml"), {}, None)
    assert len(jobs) == 48 and all(job.mapping["distill"]["alpha"] == 0.0 for job in jobs)
