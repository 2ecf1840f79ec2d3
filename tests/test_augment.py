"""Training-time augmentation of images (``data.augment``) and what a user's teacher reads for images."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np
import pytest
import torch
from torch import nn

from tempdistill.config import ConfigError, config_from_mapping
from tempdistill.tasks.augment import ImageTransform, draw_transform
from tempdistill.tasks.classification import ClassificationTask


def _reference(images: torch.Tensor, transform: ImageTransform) -> torch.Tensor:
    """The same transform, pixel by pixel: pad with zeros, cut the window, mirror."""
    b, c, h, w = images.shape
    p = transform.pad
    out = torch.zeros_like(images)
    for i in range(b):
        padded = torch.zeros(c, h + 2 * p, w + 2 * p)
        padded[:, p:p + h, p:p + w] = images[i]
        dy, dx = (int(v) for v in transform.offsets[i]) if transform.offsets is not None else (p, p)
        window = padded[:, dy:dy + h, dx:dx + w]
        if transform.flips is not None and bool(transform.flips[i]):
            window = window.flip(-1)
        out[i] = window
    return out


@pytest.mark.parametrize("crop,flip", [(0, True), (2, False), (3, True)])
def test_transform_matches_pad_crop_flip_by_hand(crop: int, flip: bool) -> None:
    images = torch.randn(6, 2, 5, 7)
    transform = draw_transform(6, crop, flip, torch.Generator().manual_seed(1))
    torch.testing.assert_close(transform(images), _reference(images, transform), rtol=0, atol=0)


def test_transform_draws_vary_and_repeat_with_the_seed() -> None:
    first = draw_transform(64, 2, True, torch.Generator().manual_seed(3))
    again = draw_transform(64, 2, True, torch.Generator().manual_seed(3))
    assert torch.equal(first.offsets, again.offsets) and torch.equal(first.flips, again.flips)
    assert len({tuple(o) for o in first.offsets.tolist()}) > 5  # many shifts in [0, 4]²
    assert 0 < int(first.flips.sum()) < 64
    assert int(first.offsets.min()) >= 0 and int(first.offsets.max()) <= 4


def _digits_images(changes: Dict[str, Any]) -> Dict[str, Any]:
    base = {"name": "aug", "seed": 0, "data": {"name": "digits", "layout": "image"},
            "teacher": {"hidden": [32], "epochs": 2}, "student": {"backend": "dense", "hidden": [16]},
            "distill": {"epochs": 1, "batch_size": 64}}
    for key, value in changes.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return base


class ShapeRecorder(nn.Module):
    """A user's teacher that remembers the shape of every batch it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 10)
        self.shapes: list = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape[1:]))
        return self.linear(x.flatten(1))


def test_users_teacher_reads_images_as_n_c_h_w() -> None:
    from tempdistill.tasks.sources import InMemory

    config = config_from_mapping(_digits_images({"teacher": {"source": "module"}}))
    teacher = ShapeRecorder()
    task, _ = ClassificationTask.build(config, None, _user_source(config), lambda _: None, InMemory(teacher=teacher))
    assert set(teacher.shapes) == {(1, 8, 8)}
    assert task.split.x_train.dim() == 2  # the pipeline keeps rows flat for the student


def _user_source(config):
    from tempdistill.tasks.teacher_sources import user_source

    return user_source(config.teacher)


def test_augmented_batches_carry_the_teachers_logits_on_the_augmented_images() -> None:
    from tempdistill.tasks.sources import InMemory

    config = config_from_mapping(_digits_images({"teacher": {"source": "module"},
                                                 "data": {"augment": {"crop": 2, "flip": True}}}))
    teacher = ShapeRecorder().eval()
    task, _ = ClassificationTask.build(config, None, _user_source(config), lambda _: None, InMemory(teacher=teacher))
    generator = torch.Generator().manual_seed(0)
    batches = list(task.train_batches(0, 64, generator))
    assert sum(len(b.x) for b in batches) == task.split.x_train.shape[0]
    changed = 0
    for batch in batches:
        assert batch.teacher_inputs is not None and batch.teacher_inputs.shape[1:] == (1, 8, 8)
        with torch.no_grad():
            expected = teacher(batch.teacher_inputs)
        torch.testing.assert_close(batch.teacher_logits, expected)
        changed += int((batch.x.abs().sum(dim=1) != 0).sum())
    # the student's rows are the same images, shifted alike: equal up to the (affine) normalisation
    first = batches[0]
    student_images = first.x.view(-1, 1, 8, 8)
    given_min = float(task.split.inputs("train", as_given=True).min())
    assert given_min == 0.0  # digits' pixels start at 0, so minmax maps padding zeros to zeros
    scale = task.split.x_train.max() / task.split.inputs("train", as_given=True).max()
    torch.testing.assert_close(student_images, first.teacher_inputs * scale, rtol=1e-5, atol=1e-5)
    # and they differ from the un-augmented rows: the logits are not the cached ones
    cached = task.teacher_train_logits
    assert not any(torch.allclose(b.teacher_logits, cached[: len(b.x)]) for b in batches)


def test_augment_needs_images_and_a_teacher_network() -> None:
    with pytest.raises(ConfigError, match=r"^data\.augment: shifts and flips need images; set data\.layout: image"):
        config_from_mapping(_digits_images({"data": {"layout": "flat", "augment": {"crop": 2}}}))
    with pytest.raises(ConfigError, match=r"data\.augment\.crop"):
        config_from_mapping(_digits_images({"data": {"augment": {"crop": -1}}}))


def test_augmented_run_trains_and_is_repeatable(tmp_path) -> None:
    import tempdistill as td

    mapping = _digits_images({"data": {"augment": {"crop": 1, "flip": False}}, "distill": {"epochs": 6},
                              "teacher": {"epochs": 10}, "record": {"dir": str(tmp_path)}})
    first = td.run(mapping)
    second = td.run({**mapping, "record": {"dir": str(tmp_path / "again")}})
    assert first.eval["teacher_accuracy"] > 0.7 and first.eval["student_accuracy"] > 0.5  # chance: 0.1
    np.testing.assert_array_equal(first.metrics["loss"].to_numpy(), second.metrics["loss"].to_numpy())


def test_hard_label_batches_skip_the_teachers_pass_and_draw_the_same_images() -> None:
    """With nothing to read the teacher's answer (alpha 0), the augmented batches come without
    it, the teacher is not run, and the draws (hence the images and labels) are unchanged."""
    from tempdistill.tasks.sources import InMemory

    config = config_from_mapping(_digits_images({"teacher": {"source": "module"},
                                                 "data": {"augment": {"crop": 2, "flip": True}}}))
    teacher = ShapeRecorder().eval()
    task, _ = ClassificationTask.build(config, None, _user_source(config), lambda _: None, InMemory(teacher=teacher))
    with_teacher = list(task.train_batches(0, 64, torch.Generator().manual_seed(0)))
    calls = len(teacher.shapes)
    without = list(task.train_batches(0, 64, torch.Generator().manual_seed(0), teacher=False))
    assert len(teacher.shapes) == calls  # not run
    assert all(b.teacher_logits is None for b in without) and len(without) == len(with_teacher)
    for a, b in zip(with_teacher, without):
        assert torch.equal(a.x, b.x) and torch.equal(a.targets, b.targets)


def test_a_hard_label_run_trains_the_same_without_the_teachers_pass(tmp_path, monkeypatch) -> None:
    import tempdistill as td
    from tempdistill.core.distiller import Distiller

    mapping = _digits_images({"data": {"augment": {"crop": 1, "flip": True}}, "distill": {"epochs": 3, "alpha": 0.0},
                              "teacher": {"epochs": 5}, "record": {"dir": str(tmp_path)}})
    skipped = td.run(mapping)
    monkeypatch.setattr(Distiller, "reads_teacher", lambda self, alpha: True)
    computed = td.run({**mapping, "record": {"dir": str(tmp_path / "teacher-run")}})
    np.testing.assert_array_equal(skipped.metrics["loss"].to_numpy(), computed.metrics["loss"].to_numpy())
    assert skipped.eval["student_accuracy"] == computed.eval["student_accuracy"]


def test_which_epochs_read_the_teacher() -> None:
    from types import SimpleNamespace

    from tempdistill.config import TemperatureConfig
    from tempdistill.core.distiller import Distiller
    from tempdistill.schedules import build_schedule

    def reads(temperature: Dict[str, Any], alpha: float, extra: Any = None) -> bool:
        schedule = build_schedule(TemperatureConfig(**temperature), total_epochs=4, steps_per_epoch=2, num_classes=3)
        return Distiller.reads_teacher(SimpleNamespace(schedule=schedule, extra=extra), alpha)

    assert not reads({"schedule": "constant", "value": 4.0}, 0.0)
    assert reads({"schedule": "constant", "value": 4.0}, 0.5)
    assert reads({"schedule": "constant", "value": 4.0}, 0.0, extra=object())  # a feature term
    assert reads({"schedule": "constant", "value": 4.0,
                  "groups": {"classes": [[0], [1, 2]], "factors": [1.0, 2.0]}}, 0.0)  # T from the teacher's logits
