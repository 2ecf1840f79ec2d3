"""NIR export of spiking conv students (snnTorch and Norse): a chain of Conv2d, IF/LIF maps of
shape (C, H, W), AvgPool2d, Flatten and the head, that loads back through Norse's importer and
reproduces the run's recorded test predictions exactly."""

from __future__ import annotations

import warnings

import nir
import numpy as np
import pytest
import torch

from backends.norse_backend import load_nir
from tempdistill.app.cli import main
from tempdistill.config import load_config
from tempdistill.record.export import export_run, load_predictor
from tempdistill.record.run import Run
from tempdistill.runner import execute
from tempdistill.tasks.data import raw_split

CASES = {  # backend, extra student options
    "snntorch-if": ("snntorch", {}),
    "norse-if": ("norse", {}),
    "norse-lif": ("norse", {"beta": 0.9}),
}


def _conv_config(make_config, backend: str, epochs: int = 1, **student):
    return load_config(make_config({
        "data": {"layout": "image"}, "distill": {"epochs": epochs},
        "student": {"backend": backend, "arch": "conv", "channels": [2, 4], "hidden": [16], "steps": 4, **student},
    }))


@pytest.mark.parametrize("case", list(CASES))
def test_conv_student_exports_as_nir_and_reproduces_the_runs_predictions(make_config, tmp_path, case):
    backend, extra = CASES[case]
    # Tiny conv students with few steps hardly learn in a few epochs (they predict one class);
    # this one (3 epochs, 25 steps) predicts several, so equal predictions mean something.
    config = _conv_config(make_config, backend, epochs=3, **{"channels": [4, 8], "hidden": [32], "steps": 25, **extra})
    path = execute(config)
    run = Run.read(path)
    target = export_run(run, "nir", tmp_path / "conv.nir")

    graph = nir.read(str(target))
    kinds = [type(graph.nodes[dst]).__name__ for _, dst in graph.edges]
    neuron = "IF" if not extra else "LIF"
    assert kinds == ["Conv2d", neuron, "AvgPool2d", "Conv2d", neuron, "AvgPool2d", "Flatten",
                     "Affine", neuron, "Affine", neuron, "Output"]
    assert list(graph.nodes["conv0"].input_shape) == [8, 8] and list(graph.nodes["conv1"].input_shape) == [4, 4]
    assert np.asarray(graph.nodes["conv0_neurons"].v_threshold).shape == (4, 8, 8)
    assert np.asarray(graph.nodes["conv1_neurons"].v_threshold).shape == (8, 4, 4)
    assert graph.nodes["conv1_neurons"].metadata["reset"] == "subtract"

    recorded = np.asarray(run.eval["test_predictions"])
    raw = raw_split(config.data, config.seed)
    assert len(np.unique(recorded)) >= 3
    predictor = load_predictor(target)
    np.testing.assert_array_equal(predictor.predict(raw.x_test), recorded)
    np.testing.assert_array_equal(predictor.predict(raw.x_test.reshape(-1, 1, 8, 8)), recorded)


def test_loaded_conv_graph_gives_the_students_output_spikes(make_config, tmp_path):
    run = Run.read(execute(_conv_config(make_config, "snntorch")))
    target = export_run(run, "nir", tmp_path / "conv.nir")
    student = run.student
    x = torch.rand(16, 64) * 2
    expected = student.capture_traces(x)["output/spikes"]  # (S, T, K)
    net = load_nir(str(target))
    state, outputs = None, []
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(4):
            out, state = net(x.view(16, 1, 8, 8), state)
            outputs.append(out)
    got = torch.stack(outputs, dim=1).numpy().astype(np.uint8)
    assert expected.sum() > 0
    np.testing.assert_array_equal(got, expected)


def test_max_pooling_conv_student_is_refused_for_nir_in_one_line(make_config, tmp_path, capsys):
    path = execute(_conv_config(make_config, "norse", pool="max"))
    capsys.readouterr()
    assert main(["export", str(path), "--format", "nir", "--out", str(tmp_path / "max.nir")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "student.pool" in err and "'avg'" in err
    assert not (tmp_path / "max.nir").exists()
