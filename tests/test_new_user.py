"""What a new user tripped on: switching schedules with --set, two_phase's switch, and the
normalisation of a user's tabular arrays."""

from __future__ import annotations

import numpy as np
import pytest

from tempdistill.cli import main
from tempdistill.config import DataConfig, load_config
from tempdistill.data import load_split
from tempdistill.schedules import build_schedule


def test_switching_schedule_with_set_says_how_to_replace_the_section(make_config, capsys):
    path = make_config({"distill": {"temperature": {"schedule": "constant", "value": 2.0}}})
    assert main(["run", str(path), "--set", "distill.temperature.schedule=cosine", "--quiet"]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("tempdistill run: error: distill.temperature.value: unknown key for schedule 'cosine'")
    assert "(it takes: start, end)" in line
    assert "--set 'distill.temperature={schedule: cosine, start: ..., end: ...}'" in line
    # and the command it suggests works
    config = load_config(path, ["distill.temperature={schedule: cosine, start: 8, end: 1}"])
    assert config.distill.temperature.schedule == "cosine"


@pytest.mark.parametrize("epochs,switch", [(10, 5), (7, 3), (2, 1)])
def test_two_phase_switches_at_half_the_epochs_by_default(make_config, epochs, switch):
    config = load_config(make_config({"distill": {"epochs": epochs}}), ["distill.temperature={schedule: two_phase}"])
    schedule = build_schedule(config.distill.temperature, epochs, 3)
    assert [schedule.temperature(0, e) for e in range(epochs)] == [8.0] * switch + [1.0] * (epochs - switch)
    assert schedule.alpha(switch, 0.9) == 0.5 and schedule.alpha(switch - 1, 0.9) == 0.9


def test_two_phase_in_one_epoch_is_a_clear_error(make_config, capsys):
    path = make_config({"distill": {"epochs": 1}})
    assert main(["run", str(path), "--set", "distill.temperature={schedule: two_phase}", "--quiet"]) == 2
    assert "distill.temperature.switch_epoch" in capsys.readouterr().err


def test_auto_normalization_is_minmax_for_images_and_per_feature_for_user_arrays(tmp_path):
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(0, 1, 300), rng.normal(5000, 1000, 300), rng.normal(0, 0.01, 300)])
    y = (x[:, 0] + x[:, 2] * 100 > 0).astype(int)
    np.savez(tmp_path / "table.npz", X=x, y=y)
    table = load_split(DataConfig(name="npz", path=str(tmp_path / "table.npz")), seed=0)
    assert table.normalizer.kind == "standard"
    assert abs(float(table.x_train[:, 2].std()) - 1.0) < 0.05  # the small feature keeps its spread
    assert load_split(DataConfig(name="digits"), seed=0).normalizer.kind == "minmax"
