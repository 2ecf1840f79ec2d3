"""tempdistill's own CNN teacher for images (``teacher: {arch: cnn}``)."""

from __future__ import annotations

import pytest
import torch

import tempdistill as td
from backends.cnn import SmallVGG
from tempdistill.config import ConfigError


def _mapping(tmp_path, teacher, layout="image"):
    return {"name": "cnn", "seed": 0, "data": {"name": "digits", "layout": layout},
            "teacher": {"arch": "cnn", "channels": [8, 16], "hidden": [32], "epochs": 4, "batch_size": 32, **teacher},
            "student": {"backend": "dense", "hidden": [16]}, "distill": {"epochs": 1},
            "record": {"dir": str(tmp_path)}}


def test_cnn_teacher_learns_digits_as_images(tmp_path) -> None:
    run = td.run(_mapping(tmp_path, {"lr_schedule": "cosine"}))
    assert run.eval["teacher_accuracy"] > 0.9  # chance 0.1; 8x8 digits are easy for a CNN
    # its size is the VGG's: two 3x3 convolutions with batch norm per stage, then the head
    net = SmallVGG((1, 8, 8), [8, 16], [32], 10)
    assert int(run.eval["teacher_params"]) == sum(p.numel() for p in net.parameters())


def test_vgg_reads_flat_rows_and_images_alike() -> None:
    torch.manual_seed(0)
    net = SmallVGG((1, 8, 8), [4], [8], 10).eval()
    x = torch.randn(5, 1, 8, 8)
    torch.testing.assert_close(net(x), net(x.flatten(1)))
    assert isinstance(net.features[5], torch.nn.ReLU) and isinstance(net.features[6], torch.nn.MaxPool2d)


def test_cnn_teacher_refuses_flat_data_and_too_small_images(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"^teacher\.arch: 'cnn' reads images \(C, H, W\); set data\.layout: image"):
        td.run(_mapping(tmp_path, {}, layout="flat"))
    with pytest.raises(ConfigError, match=r"^teacher\.channels: 4 stages of 2x2 pooling need images of at least 16x16"):
        td.run(_mapping(tmp_path, {"channels": [4, 4, 4, 4]}))
    with pytest.raises(ConfigError, match=r"^student\.arch: 'cnn' is for teachers"):
        td.run({**_mapping(tmp_path, {}), "student": {"backend": "dense", "arch": "cnn"}})


def test_vgg_runs_channels_last_with_the_logits_of_the_plain_layout() -> None:
    """Channels-last is a speed choice only: the plain-layout computation gives the same logits,
    and weights loaded from a state dict (a cached teacher) keep the layout."""
    torch.manual_seed(0)
    net = SmallVGG((1, 28, 28), [8, 16], [32], 10).eval()
    assert net.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(6, 784)
    plain = SmallVGG((1, 28, 28), [8, 16], [32], 10).to(memory_format=torch.contiguous_format).eval()
    plain.load_state_dict({k: v.contiguous() for k, v in net.state_dict().items()})
    assert plain.features[0].weight.is_contiguous()
    with torch.no_grad():
        expected = plain.head(plain.features(x.view(6, 1, 28, 28)))
        assert torch.allclose(net(x), expected, atol=1e-5)
    reloaded = SmallVGG((1, 28, 28), [8, 16], [32], 10)
    reloaded.load_state_dict({k: v.contiguous() for k, v in net.state_dict().items()})
    assert reloaded.features[0].weight.is_contiguous(memory_format=torch.channels_last)
