"""distill.lr_schedule: the student's Adam rate held (default) or annealed by a cosine per epoch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tempdistill.config import ConfigError, config_from_mapping, load_config
from tempdistill.core.callbacks import Callback
from tempdistill.record.run_file import read_run
from tempdistill.runner import execute


class RatesSeen(Callback):
    """The optimiser's rate at the end of every epoch (the rate that epoch trained with)."""

    def __init__(self) -> None:
        self.rates = []

    def on_epoch_end(self, loop, end) -> None:
        self.rates.append(loop.optimizer.param_groups[0]["lr"])


def test_lr_schedule_defaults_to_constant_and_names_what_is_allowed():
    assert config_from_mapping({}).distill.lr_schedule == "constant"
    assert config_from_mapping({"distill": {"lr_schedule": "cosine"}}).distill.lr_schedule == "cosine"
    with pytest.raises(ConfigError, match=r"^distill.lr_schedule: got 'linear'; allowed: 'constant' or 'cosine'$"):
        config_from_mapping({"distill": {"lr_schedule": "linear"}})


def test_cosine_anneals_the_students_rate_per_epoch_and_constant_changes_nothing(make_config, tmp_path):
    base = load_config(make_config({"distill": {"epochs": 4, "lr": 0.01}}))
    rates = {}
    runs = {}
    for schedule in ("unset", "constant", "cosine"):
        config = base if schedule == "unset" else base.model_copy(
            update={"distill": base.distill.model_copy(update={"lr_schedule": schedule})})
        seen = RatesSeen()
        runs[schedule] = read_run(execute(config, str(tmp_path / schedule), warn=lambda _: None, callbacks=[seen]))
        rates[schedule] = seen.rates
    assert rates["unset"] == rates["constant"] == [0.01] * 4
    expected = [0.01 * 0.5 * (1 + math.cos(math.pi * epoch / 4)) for epoch in range(4)]
    np.testing.assert_allclose(rates["cosine"], expected, rtol=1e-12)
    # constant is the old behaviour exactly; cosine trains another student from the same seed
    np.testing.assert_array_equal(runs["unset"]["metrics"]["loss"], runs["constant"]["metrics"]["loss"])
    assert not np.array_equal(runs["constant"]["metrics"]["loss"][1:], runs["cosine"]["metrics"]["loss"][1:])
