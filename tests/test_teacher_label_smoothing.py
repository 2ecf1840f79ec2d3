"""teacher.label_smoothing: tempdistill's own teacher trained on smoothed labels gives softer
soft labels (the premise of claim C1), and the default leaves every cached teacher's key."""

from __future__ import annotations

import copy

import pytest

from tempdistill.config import ConfigError, config_from_mapping
from tempdistill.record import read_run
from tempdistill.runner import execute
from tempdistill.tasks.data import load_split
from tempdistill.tasks.teacher import teacher_key


def _entropy_at_t1(mapping, smoothing: float) -> float:
    mapping = copy.deepcopy(mapping)
    mapping["teacher"]["label_smoothing"] = smoothing
    run = read_run(execute(config_from_mapping(mapping), warn=lambda _: None))
    return float(run["eval"]["teacher_entropy_t1"])


def test_a_smoothed_teacher_has_softer_soft_labels(tiny_config_data):
    tiny_config_data["teacher"]["epochs"] = 30
    plain, smoothed = _entropy_at_t1(tiny_config_data, 0.0), _entropy_at_t1(tiny_config_data, 0.3)
    assert smoothed > plain + 0.3, (plain, smoothed)


def test_the_default_keeps_the_teacher_cache_key_and_bad_values_are_one_line(tiny_config_data):
    config = config_from_mapping(tiny_config_data)
    split = load_split(config.data, config.seed)
    explicit = config.teacher.model_copy(update={"label_smoothing": 0.0})
    assert teacher_key(explicit, config.data, 0, split) == teacher_key(config.teacher, config.data, 0, split)
    smoothed = config.teacher.model_copy(update={"label_smoothing": 0.2})
    assert teacher_key(smoothed, config.data, 0, split) != teacher_key(config.teacher, config.data, 0, split)
    for bad in (-0.1, 1.0):
        mapping = copy.deepcopy(tiny_config_data)
        mapping["teacher"]["label_smoothing"] = bad
        with pytest.raises(ConfigError, match=r"^teacher\.label_smoothing"):
            config_from_mapping(mapping)
