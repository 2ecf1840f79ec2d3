"""The examples run as documented (with fewer epochs) and do what they say."""

from __future__ import annotations

import numpy as np

from tempdistill.app.cli import main as cli_main
from tempdistill.record.export import load_predictor


def test_cnn_teacher_example_distils_plots_exports_and_reloads(tmp_path, capsys, load_script):
    example = load_script("examples/cnn_teacher_to_spiking_student.py")
    run = example.main(["--epochs", "3", "--teacher-epochs", "2", "--out", str(tmp_path)])
    assert run.status == "complete" and run.config["student"]["backend"] == "snntorch"
    assert run.eval["teacher_source"] == "module" and run.eval["teacher_class"] == "DigitsCNN"
    assert len(run.metrics) == 3 and {"val_accuracy", "spikes_per_sample"} <= set(run.metrics)
    assert (tmp_path / "cnn-teacher-metrics.png").stat().st_size > 0
    _, x_test, _, _ = example.digits_split()
    np.testing.assert_array_equal(load_predictor(tmp_path / "cnn-teacher-student.nir").predict(x_test),
                                  run.eval["test_predictions"])
    assert "agrees with the run's test predictions on 100.0% of rows" in capsys.readouterr().out
    assert cli_main(["show", str(run.path)]) == 0
