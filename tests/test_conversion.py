"""ANN→SNN conversion (``tempdistill convert``): a dense ReLU student run as integrate-and-fire
neurons approaches the dense student's accuracy as the steps grow, is recorded as ordinary run
files, and what cannot be converted is refused in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from spiking.conversion import balance, simulate
from tempdistill.app.cli import main
from tempdistill.record.run import Run


@pytest.fixture(scope="module")
def dense_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import yaml

    from conftest import TINY_CONFIG, _merge

    root = tmp_path_factory.mktemp("dense")
    config = _merge(TINY_CONFIG, {"name": "ann", "student": {"hidden": [32]}, "distill": {"epochs": 12},
                                  "record": {"dir": str(root / "runs")}})
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", str(root / "config.yaml"), "--quiet"]) == 0
    (path,) = (root / "runs").glob("*.h5")
    return path


def test_balanced_if_network_matches_the_relu_network_as_steps_grow():
    torch.manual_seed(0)
    weights = [torch.randn(16, 8) * 0.5, torch.randn(4, 16) * 0.5]
    biases = [torch.randn(16) * 0.1, torch.randn(4) * 0.1]
    x = torch.rand(256, 8)
    relu_out = torch.relu(x @ weights[0].T + biases[0]) @ weights[1].T + biases[1]
    layers = balance(weights, biases, x)
    agreement = []
    for steps in (2, 16, 256):
        out, spikes, synops = simulate(layers, x, steps)
        agreement.append(float((out.argmax(1) == relu_out.argmax(1)).float().mean()))
        assert torch.all(spikes <= steps * 16) and torch.all(synops == spikes.sum(1) * 4)
    assert agreement[-1] >= 0.95 and agreement[-1] >= agreement[0]


def test_converted_runs_go_beside_the_run_by_default(dense_run):
    assert main(["convert", str(dense_run), "--steps", "2"]) == 0
    (converted,) = dense_run.parent.glob("*converted-T2*.h5")
    assert Run.read(converted).eval["steps"] == 2
    converted.unlink()


def test_convert_writes_one_comparable_run_per_step_count(dense_run, tmp_path, capsys):
    assert main(["convert", str(dense_run), "--steps", "4,64", "--out", str(tmp_path)]) == 0
    runs = sorted((Run.read(p) for p in tmp_path.glob("*.h5")), key=lambda r: r.eval["steps"])
    dense = Run.read(dense_run)
    assert [r.eval["steps"] for r in runs] == [4, 64]
    assert all(r.status == "complete" and r.config["student"]["backend"] == "converted" for r in runs)
    assert runs[1].eval["spikes_per_sample"] > runs[0].eval["spikes_per_sample"] > 0
    assert abs(runs[1].eval["student_accuracy"] - dense.eval["student_accuracy"]) <= 0.03
    assert set(np.unique(runs[1].eval["test_predictions"])) <= set(dense.data["class_labels"])
    capsys.readouterr()
    assert main(["compare", str(tmp_path), str(dense_run)]) == 0
    assert "converted" in capsys.readouterr().out


def test_a_converted_run_exports_as_nir_and_reproduces_its_recorded_predictions(dense_run, tmp_path, capsys):
    """The balanced network is kept in the converted run's /student: exported as a NIR chain
    (Affine, IF at threshold 1 resetting by subtraction, Affine, an nir.I integrator) that
    ``load_predictor`` runs to the run's own test predictions, from raw features."""
    import nir

    from tempdistill.config import config_from_mapping
    from tempdistill.record.export import load_predictor
    from tempdistill.tasks.data import raw_split

    assert main(["convert", str(dense_run), "--steps", "16", "--out", str(tmp_path)]) == 0
    (converted,) = tmp_path.glob("*.h5")
    run = Run.read(converted)
    assert run.format_version == 5 and run.student_attrs["backend"] == "converted"
    capsys.readouterr()
    assert main(["export", str(converted), "--format", "nir", "--out", str(tmp_path / "c.nir")]) == 0
    graph = nir.read(str(tmp_path / "c.nir"))
    assert [type(graph.nodes[dst]).__name__ for _, dst in graph.edges] == ["Affine", "IF", "Affine", "I", "Output"]
    neurons = graph.nodes["layer0_neurons"]
    assert np.all(np.asarray(neurons.v_threshold) == 1.0) and neurons.metadata["reset"] == "subtract"

    source = Run.read(dense_run)
    raw = raw_split(config_from_mapping(source.config).data, source.config["seed"])
    recorded = np.asarray(run.eval["test_predictions"])
    assert len(np.unique(recorded)) >= 5
    np.testing.assert_array_equal(load_predictor(tmp_path / "c.nir").predict(raw.x_test), recorded)
    np.testing.assert_array_equal(run.predict(raw.x_test), recorded)

    assert main(["export", str(converted), "--format", "pt", "--out", str(tmp_path / "c.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'nir'" in err and not (tmp_path / "c.pt").exists()


def test_a_converted_run_of_format_4_still_reads_and_says_how_to_export_it(tmp_path, capsys):
    """Converted runs written before format 5 kept figures only: show, compare and report read them;
    export names the run to convert again, in one line, and writes nothing."""
    old = Path(__file__).parent / "data" / "run_v4_converted.h5"
    run = Run.read(old)
    assert run.format_version == 4 and not run.student_arrays and run.eval["steps"] == 8
    for args in (["show", str(old)], ["compare", str(old)], ["report", str(old), "--out", str(tmp_path / "report")]):
        assert main(args) == 0
    capsys.readouterr()
    assert main(["export", str(old), "--format", "nir", "--out", str(tmp_path / "c.nir")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "runs/fixture-dense-s0" in err and "convert" in err
    assert not (tmp_path / "c.nir").exists()


def test_a_conversion_already_made_is_kept_not_made_again(dense_run, tmp_path, capsys):
    """A table's conversions run again after its sweep resumes: a complete converted run of the
    same source and step count is kept, the missing step counts are made."""
    assert main(["convert", str(dense_run), "--steps", "4", "--out", str(tmp_path)]) == 0
    (first,) = tmp_path.glob("*.h5")
    stamp = first.stat().st_mtime_ns
    capsys.readouterr()
    assert main(["convert", str(dense_run), "--steps", "4,8", "--out", str(tmp_path)]) == 0
    assert "T=4: kept" in capsys.readouterr().err
    files = sorted(tmp_path.glob("*.h5"))
    assert len(files) == 2 and first in files and first.stat().st_mtime_ns == stamp
    assert sorted(Run.read(p).eval["steps"] for p in files) == [4, 8]


def test_what_cannot_be_converted_is_refused_in_one_line(dense_run, tmp_path, capsys, make_config):
    assert main(["convert", str(dense_run), "--steps", "0"]) == 2
    assert "--steps" in capsys.readouterr().err
    for student, word in (({"backend": "snntorch", "hidden": [8], "steps": 4}, "spiking"),
                          ({"backend": "dense", "hidden": [8], "activation": "tanh"}, "ReLU")):
        out = tmp_path / student["backend"]
        assert main(["run", str(make_config({"student": student, "distill": {"epochs": 1}})), "--out", str(out),
                     "--quiet"]) == 0
        capsys.readouterr()
        (path,) = out.glob("*.h5")
        assert main(["convert", str(path), "--steps", "8"]) == 2 and list(out.glob("*.h5")) == [path]
        err = capsys.readouterr().err
        assert word in err and len(err.strip().splitlines()) == 1


def test_converted_runs_of_several_seeds_form_one_group_per_step_count(tmp_path):
    """Each seed's converted run names its own source file; that path is no factor, so compare
    groups the converted runs by step count across seeds (and pairs the step counts by seed)."""
    import yaml

    from conftest import TINY_CONFIG, _merge
    from tempdistill.analysis.statistics import difference_table, group_runs

    for seed in (0, 1):
        config = _merge(TINY_CONFIG, {"name": "ann", "seed": seed, "student": {"hidden": [16]}, "distill": {"epochs": 3},
                                      "record": {"dir": str(tmp_path / "dense")}})
        (tmp_path / f"c{seed}.yaml").write_text(yaml.safe_dump(config))
        assert main(["run", str(tmp_path / f"c{seed}.yaml"), "--quiet"]) == 0
    for path in sorted((tmp_path / "dense").glob("*.h5")):
        assert main(["convert", str(path), "--steps", "4,8", "--out", str(tmp_path / "converted")]) == 0
    runs = [Run.read(p) for p in sorted((tmp_path / "converted").glob("*.h5"))]
    factors, groups = group_runs(runs)
    assert not any("conversion.source" in str(f) for f in factors)
    assert len(groups) == 2 and all(len(group.runs) == 2 for group in groups)
    _, rows = difference_table(runs)
    assert len(rows) == 1 and "4" in str(rows[0]) and "8" in str(rows[0])
