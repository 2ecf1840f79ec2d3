"""The examples run as documented (with fewer epochs) and do what they say."""

from __future__ import annotations

import numpy as np

from tempdistill.app.cli import main as cli_main
from tempdistill.record.export import load_predictor
from tempdistill.record.run import Run


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


def test_mnist1d_refit_trains_the_chosen_setting_on_the_validation_rows_too(tmp_path, capsys, load_script):
    """experiments/mnist1d_refit.py (docs/results.md): the holdout arm trains on the split every
    run makes; the refit arm on those rows plus the validation rows, tested on the same rows."""
    script = load_script("experiments/mnist1d_refit.py")
    holdout, refit = script.arm_data("holdout", 0), script.arm_data("refit", 0)
    assert (len(holdout.y), len(holdout.y_val), len(holdout.y_test)) == (3400, 600, 1000)
    assert len(refit.y) == 4000 and np.array_equal(refit.X[3400:], holdout.X_val)
    assert np.array_equal(refit.X_test, holdout.X_test)
    script.main(["--seeds", "0", "--epochs", "1", "--out", str(tmp_path)])
    assert "seed 0 refit: 4000 training rows" in capsys.readouterr().out
    runs = {path.name.split("-")[1]: path for path in tmp_path.glob("*.h5")}
    assert set(runs) == {"holdout", "refit"}
    assert {arm: Run.read(path).data_attrs["n_train"] for arm, path in runs.items()} == {"holdout": 3400, "refit": 4000}
    assert cli_main(["show", str(runs["refit"])]) == 0
    capsys.readouterr()
    # compare tells the arms apart by the arrays' sizes, and does not take them for copies
    assert cli_main(["compare", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "arrays=X 3400x40, X_test 1000x40, X_val 600x40" in out and "arrays=X 4000x40" in out
    assert "duplicate" not in out
