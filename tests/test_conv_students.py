"""Convolutional students (``student.arch: conv``) on images, for every backend.

Data stays flat in the pipeline, (B, C·H·W); a conv student views it as (B, C, H, W) itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest
import torch

import tempdistill as td
from backends import get_backend
from spiking.conv import conv_fan_out, conv_macs, flatten_fan_out, input_fan_out, stage_maps
from tempdistill.app.cli import main
from tempdistill.config import ConfigError
from tempdistill.record.export import load_predictor

BACKENDS = ["dense", "snntorch", "norse"]
IMAGE = (1, 8, 8)


def build(backend_name: str, options: Dict[str, Any], input_shape=IMAGE, num_classes: int = 10):
    backend = get_backend(backend_name)
    opts = backend.validate({"backend": backend_name, **options}, "student")
    return backend.build_student(opts, int(np.prod(input_shape)), num_classes, input_shape)


def image_run(tmp_path: Path, backend: str, **student: Any) -> Dict[str, Any]:
    return {
        "name": f"conv-{backend}", "seed": 0, "data": {"name": "digits", "layout": "image"},
        "teacher": {"hidden": [32], "epochs": 4, "lr": 0.01},
        "student": {"backend": backend, "arch": "conv", "channels": [8, 16], "hidden": [32], **student},
        "distill": {"epochs": 4, "batch_size": 64, "lr": 0.01, "temperature": {"schedule": "constant", "value": 4.0}},
        "record": {"dir": str(tmp_path / "runs"), "traces": {"every": 0, "samples": 0}},
    }


# --- geometry ---------------------------------------------------------------------------------
def test_stage_maps_halve_each_stage_and_refuse_what_pools_to_nothing():
    assert stage_maps((1, 8, 8), [4, 8], 3) == [(4, 8, 8), (8, 4, 4)]
    assert stage_maps((2, 7, 5), [3, 3], 3) == [(3, 7, 5), (3, 3, 2)]
    with pytest.raises(ValueError, match=r"^student\.channels: 4 stages .* 8×8 .* at most 3"):
        stage_maps((1, 8, 8), [4, 4, 4, 4], 3)
    with pytest.raises(ValueError, match=r"^student\.arch: .*data\.layout: image"):
        stage_maps(None, [4], 3)
    with pytest.raises(ValueError, match=r"^student\.arch: .*data\.layout: image"):
        stage_maps((64,), [4], 3)
    with pytest.raises(ValueError, match=r"^student\.kernel"):
        stage_maps((1, 8, 8), [4], 4)


def test_fan_out_counts_the_targets_that_read_each_neuron():
    # A 1×4×4 map pooled to 2×2, read by 3 channels of a 3×3 convolution with padding 1:
    # every pooled cell is read by all 4 positions (3×3 windows cover a 2×2 map), 3 channels each.
    fan = conv_fan_out((1, 4, 4), 3, 3)
    assert fan.shape == (16,) and torch.all(fan == 12)
    # An odd row/column is dropped by the pooling: nobody reads it.
    fan = conv_fan_out((1, 5, 5), 2, 1).reshape(5, 5)
    assert torch.all(fan[:4, :4] == 2) and torch.all(fan[4] == 0) and torch.all(fan[:, 4] == 0)
    assert torch.all(flatten_fan_out((2, 3, 3), 7).reshape(2, 3, 3)[:, :2, :2] == 7)
    # Input pixels: a corner of a 3×3 kernel with padding 1 is read at 4 positions, the centre at 9.
    pixels = input_fan_out((1, 5, 5), 2, 3).reshape(5, 5)
    assert pixels[0, 0] == 8 and pixels[2, 2] == 18
    assert conv_macs(3, (16, 8, 8), 3) == 16 * 3 * 9 * 64


# --- dense --------------------------------------------------------------------------------------
def test_dense_conv_student_views_flat_input_as_images_and_counts_conv_macs():
    student = build("dense", {"arch": "conv", "channels": [4, 6], "hidden": [12], "batch_norm": True})
    flat = torch.rand(5, 64)
    out = student(flat)
    assert out.tempered.shape == (5, 10)
    assert torch.equal(student(flat.view(5, 1, 8, 8)).logits, out.logits)
    expected = conv_macs(1, (4, 8, 8), 3) + conv_macs(4, (6, 4, 4), 3) + 6 * 2 * 2 * 12 + 12 * 10
    assert student.measured["macs_per_sample"] == expected
    assert [type(m).__name__ for m in student.features] == [
        "Conv2d", "BatchNorm2d", "ReLU", "AvgPool2d", "Conv2d", "BatchNorm2d", "ReLU", "AvgPool2d", "Flatten"]
    assert student.describe()["arch"] == "conv" and student.describe()["channels"] == [4, 6]


def test_dense_feature_taps_give_post_activation_maps():
    student = build("dense", {"arch": "conv", "channels": [4, 6], "hidden": [12], "pool": "max"})
    taps = student.feature_layers()
    assert list(taps) == ["conv0", "conv1", "hidden0"]
    seen = {}
    for name, module in taps.items():
        module.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o))
    student(torch.rand(3, 64))
    assert seen["conv0"].shape == (3, 4, 8, 8) and seen["conv1"].shape == (3, 6, 4, 4)
    assert seen["hidden0"].shape == (3, 12) and float(seen["conv0"].detach().min()) >= 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_mlp_students_accept_images(backend):
    student = build(backend, {"hidden": [8]}, input_shape=(64,))
    x = torch.rand(4, 64)
    student.eval()
    assert torch.equal(student(x.view(4, 1, 8, 8)).logits, student(x).logits)


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv_student_on_flat_data_is_one_line_naming_the_field(backend, make_config, capsys):
    code = main(["run", str(make_config({"student": {"backend": backend, "arch": "conv"}})), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "student.arch" in err and "data.layout: image" in err


def test_image_too_small_for_the_pooling_is_refused_before_training(make_config, capsys):
    config = make_config({"data": {"layout": "image"}, "student": {"arch": "conv", "channels": [2, 2, 2, 2]}})
    code = main(["run", str(config), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.splitlines()[-1].startswith("tempdistill run: error: student.channels:"), err


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv_student_trains_on_digits_images_and_exports(backend, tmp_path):
    run = td.run(image_run(tmp_path, backend))
    losses = run.metrics["loss"].to_numpy()
    assert losses[-1] < losses[0]
    assert run.eval["student_accuracy"] > 0.5, run.eval  # chance is 0.1
    assert run.student.describe()["arch"] == "conv"
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    predicted = run.predict(x[:300].reshape(-1, 1, 8, 8))
    assert (predicted == y[:300]).mean() > 0.5
    out = tmp_path / "student.pt"
    assert main(["export", str(run.path), "--format", "pt", "--out", str(out)]) == 0
    assert np.array_equal(load_predictor(out).predict(x[:300]), predicted)
