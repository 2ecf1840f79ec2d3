"""``tempdistill convert`` on dense conv students (digits read as 1×8×8): one comparable run per
step count, batch norm folded, max pooling refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tempdistill.app.cli import main
from tempdistill.record.run import Run

CONV = {"backend": "dense", "arch": "conv", "channels": [4, 8], "hidden": [16]}


@pytest.fixture(scope="module")
def conv_runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    import yaml

    from conftest import TINY_CONFIG, _merge

    root = tmp_path_factory.mktemp("conv")
    paths = {}
    for name, extra in (("plain", {}), ("norm", {"batch_norm": True})):
        config = _merge(TINY_CONFIG, {"name": name, "data": {"layout": "image"}, "student": {**CONV, **extra},
                                      "distill": {"epochs": 8}, "record": {"dir": str(root / name)}})
        (root / f"{name}.yaml").write_text(yaml.safe_dump(config))
        assert main(["run", str(root / f"{name}.yaml"), "--quiet"]) == 0
        (paths[name],) = (root / name).glob("*.h5")
    return paths


def test_convert_writes_one_comparable_run_per_step_count_for_a_conv_student(conv_runs, tmp_path, capsys):
    source = conv_runs["plain"]
    assert main(["convert", str(source), "--steps", "4,64", "--out", str(tmp_path)]) == 0
    runs = sorted((Run.read(p) for p in tmp_path.glob("*.h5")), key=lambda r: r.eval["steps"])
    dense = Run.read(source)
    assert [r.eval["steps"] for r in runs] == [4, 64]
    student = runs[0].config["student"]
    assert student["backend"] == "converted" and student["arch"] == "conv" and student["channels"] == [4, 8]
    assert runs[1].eval["spikes_per_sample"] > runs[0].eval["spikes_per_sample"] > 0
    assert runs[1].eval["synops_per_sample"] > runs[1].eval["spikes_per_sample"]
    assert runs[0].eval["macs_per_sample"] == 4 * 1 * 9 * 64  # the first convolution on the analog image, once
    assert dense.eval["student_accuracy"] > 0.5
    assert abs(runs[1].eval["student_accuracy"] - dense.eval["student_accuracy"]) <= 0.03
    assert list(runs[1].data_attrs["input_shape"]) == [1, 8, 8]
    capsys.readouterr()
    assert main(["compare", str(tmp_path), str(source)]) == 0
    assert "converted" in capsys.readouterr().out


def test_a_batch_normalised_conv_student_converts_with_its_norm_folded(conv_runs, tmp_path):
    source = conv_runs["norm"]
    assert main(["convert", str(source), "--steps", "64", "--out", str(tmp_path)]) == 0
    (converted,) = (Run.read(p) for p in tmp_path.glob("*.h5"))
    dense = Run.read(source).eval["student_accuracy"]
    assert dense > 0.5 and abs(converted.eval["student_accuracy"] - dense) <= 0.03


def test_a_max_pooling_conv_student_is_refused_in_one_line(make_config, tmp_path: Path, capsys):
    config = make_config({"data": {"layout": "image"}, "student": {**CONV, "pool": "max"}, "distill": {"epochs": 1}})
    assert main(["run", str(config), "--out", str(tmp_path / "max"), "--quiet"]) == 0
    (path,) = (tmp_path / "max").glob("*.h5")
    capsys.readouterr()
    assert main(["convert", str(path), "--steps", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "student.pool" in err and "'avg'" in err
    assert list((tmp_path / "max").glob("*.h5")) == [path]


def test_the_layer_by_layer_reading_of_a_conversion_agrees_with_the_converted_run(conv_runs, tmp_path, capsys,
                                                                                  load_script):
    """experiments/conversion_layers.py (docs/images.md): per step count, the accuracy of the same
    simulation ``convert`` records (here on every validation row) and one spike count per hidden layer."""
    import re

    module = load_script("experiments/conversion_layers.py")
    source = conv_runs["plain"]
    assert main(["convert", str(source), "--steps", "4", "--out", str(tmp_path)]) == 0
    (converted,) = (Run.read(p) for p in tmp_path.glob("*.h5"))
    capsys.readouterr()
    module.main([str(source), "--rows", "100000", "--steps", "4,64"])
    out = capsys.readouterr().out
    found = re.findall(r"(\d+) steps: accuracy ([0-9.]+); spikes per sample per hidden layer: (.*)", out)
    assert [int(count) for count, _, _ in found] == [4, 64]
    assert abs(float(found[0][1]) - converted.eval["val_accuracy"]) < 1e-4
    assert all(len(spikes.split(", ")) == 3 for _, _, spikes in found)  # two conv stages and one hidden layer
    assert "as a ReLU network: accuracy" in out


@pytest.mark.parametrize("case", ["plain", "norm"])
def test_a_converted_conv_run_exports_as_nir_and_reproduces_its_recorded_predictions(conv_runs, tmp_path, case):
    """Conv2d (batch norm folded in), IF maps of shape (C, H, W), AvgPool2d, Flatten, the head
    and an integrator: read back by ``load_predictor`` to the run's test predictions exactly."""
    import nir
    import numpy as np

    from tempdistill.config import config_from_mapping
    from tempdistill.record.export import export_run, load_predictor
    from tempdistill.tasks.data import raw_split

    assert main(["convert", str(conv_runs[case]), "--steps", "32", "--out", str(tmp_path)]) == 0
    (converted,) = (Run.read(p) for p in tmp_path.glob("*.h5"))
    target = export_run(converted, "nir", tmp_path / "conv.nir")
    graph = nir.read(str(target))
    assert [type(graph.nodes[dst]).__name__ for _, dst in graph.edges] == [
        "Conv2d", "IF", "AvgPool2d", "Conv2d", "IF", "AvgPool2d", "Flatten", "Affine", "IF", "Affine", "I", "Output"]
    assert np.asarray(graph.nodes["layer0_neurons"].v_threshold).shape == (4, 8, 8)
    assert list(graph.nodes["layer2"].input_shape) == [4, 4]

    config = config_from_mapping(Run.read(conv_runs[case]).config)
    raw = raw_split(config.data, config.seed)
    recorded = np.asarray(converted.eval["test_predictions"])
    assert len(np.unique(recorded)) >= 5
    predictor = load_predictor(target)
    np.testing.assert_array_equal(predictor.predict(raw.x_test), recorded)
    np.testing.assert_array_equal(predictor.predict(raw.x_test.reshape(-1, 1, 8, 8)), recorded)


def test_a_converted_graph_or_network_out_of_shape_is_refused_in_one_line(conv_runs, tmp_path, capsys):
    """A NIR file whose chain is not a converted network (a neuron at another threshold, a leaky
    neuron), or a run whose stored network lacks an array, is refused naming what is wrong."""
    import h5py
    import nir
    import numpy as np

    from tempdistill.record.export import export_run, load_predictor

    assert main(["convert", str(conv_runs["plain"]), "--steps", "8", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("*.h5")
    target = export_run(Run.read(path), "nir", tmp_path / "conv.nir")
    for change in ("threshold", "leaky"):
        graph = nir.read(str(target))
        node = graph.nodes["layer5_neurons"]
        if change == "threshold":
            node.v_threshold = np.full_like(np.asarray(node.v_threshold), 2.0)
        else:
            graph.nodes["layer5_neurons"] = nir.LIF(tau=np.ones_like(node.r), r=node.r, v_leak=np.zeros_like(node.r),
                                                    v_threshold=node.v_threshold, v_reset=node.v_reset)
        bad = tmp_path / f"{change}.nir"
        nir.write(str(bad), graph)
        with pytest.raises(Exception) as caught:
            load_predictor(bad)
        message = str(caught.value)
        assert len(message.splitlines()) == 1 and "layer5_neurons" in message and str(bad) in message
    with h5py.File(path, "r+") as f:
        del f["student/5/weight"]
    capsys.readouterr()
    assert main(["export", str(path), "--format", "nir", "--out", str(tmp_path / "x.nir")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "5/weight" in err and not (tmp_path / "x.nir").exists()
