"""Spiking backends as the runner sees them: config, traces, state, export to NIR."""

from __future__ import annotations

import warnings
from pathlib import Path

import nir
import numpy as np
import pytest
import torch

from backends import get_backend
from backends.norse_backend import load_nir
from tempdistill.config import ConfigError

torch.set_num_threads(1)
BACKENDS = ["snntorch", "norse"]


def _build(name: str, num_inputs: int = 12, num_classes: int = 4, **options):
    backend = get_backend(name)
    return backend, backend.build_student(
        backend.validate({"backend": name, **options}, "student"), num_inputs, num_classes
    )


@pytest.mark.parametrize("name", BACKENDS)
def test_unknown_and_bad_options_name_the_field(name: str) -> None:
    backend = get_backend(name)
    with pytest.raises(ConfigError, match=r"^student\.thresh: unknown key"):
        backend.validate({"backend": name, "thresh": 2}, "student")
    with pytest.raises(ConfigError, match=r"^student\.encoder: "):
        backend.validate({"backend": name, "encoder": "rate"}, "student")
    with pytest.raises(ConfigError, match=r"^student\.theta0"):
        backend.validate({"backend": name, "theta0": -1.0}, "student")
    with pytest.raises(ConfigError, match=r"^student\.threshold_tau"):
        backend.validate({"backend": name, "threshold_tau": 0.5}, "student")
    with pytest.raises(ConfigError, match=r"^student\.homeostasis\.rate: unknown key"):
        backend.validate({"backend": name, "homeostasis": {"rate": 0.1}}, "student")
    with pytest.raises(ConfigError, match=r"^teacher\.backend: spiking teachers are not supported"):
        backend.build_teacher(backend.validate({"backend": name}, "teacher"), 4, 2)


@pytest.mark.parametrize("name", BACKENDS)
def test_capture_traces_and_measurements(name: str) -> None:
    _, student = _build(name, hidden=[6, 5], steps=7)
    student.eval()
    student.set_temperature(2.0)
    traces = student.capture_traces(torch.rand(3, 12))
    for layer, width in (("hidden0", 6), ("hidden1", 5), ("output", 4)):
        assert traces[f"{layer}/spikes"].shape == (3, 7, width) and traces[f"{layer}/spikes"].dtype == np.uint8
        assert traces[f"{layer}/membrane"].shape == (3, 7, width)
        assert traces[f"{layer}/membrane"].dtype in (np.float16, np.float32)
        assert traces[f"{layer}/threshold"].shape == (width,)
    assert np.allclose(traces["output/threshold"], 2.0 * student.thresholds[-1].theta0.numpy())
    with torch.no_grad():
        m = student(torch.rand(5, 12)).measured
    layers = ("hidden0", "hidden1", "output")
    assert float(m["spikes_per_sample"]) == pytest.approx(sum(float(m[f"spikes_per_sample.{n}"]) for n in layers))
    assert float(m["synops_per_sample"]) == pytest.approx(
        float(m["spikes_per_sample.hidden0"]) * 5 + float(m["spikes_per_sample.hidden1"]) * 4
    )
    assert all(0 <= float(m[f"rate.{n}"]) <= 1 for n in layers)
    assert float(m["energy_nj_per_sample"]) > 0
    assert all(v.dim() == 0 for v in m.values())


@pytest.mark.parametrize("name", BACKENDS)
def test_state_dict_round_trip_keeps_thresholds(name: str) -> None:
    backend, student = _build(name, threshold_tau=3.0)
    student.fit_to_teacher(torch.randn(50, 4) * 8)
    student.train()
    student.set_temperature(4.0)
    _, fresh = _build(name, threshold_tau=3.0)
    fresh.load_state_dict(student.state_dict())
    assert torch.equal(fresh.effective_temperature(), student.effective_temperature())
    assert torch.equal(fresh.thresholds[-1].theta0, student.thresholds[-1].theta0)
    x = torch.rand(4, 12)
    with torch.no_grad():
        assert torch.equal(fresh(x).tempered, student(x).tempered)


def _briefly_trained(name: str, **options):
    torch.manual_seed(0)
    backend, student = _build(name, num_inputs=12, num_classes=4, hidden=[16], steps=20, **options)
    x = torch.rand(128, 12)
    y = (x[:, :4] * torch.tensor([3.0, 2.0, 1.0, 0.5])).argmax(-1)
    student.fit_to_teacher(torch.nn.functional.one_hot(y, 4).float() * 10)
    opt = torch.optim.Adam(student.parameters(), lr=0.01)
    student.train()
    for _ in range(15):
        student.set_temperature(2.0)
        loss = torch.nn.functional.cross_entropy(student(x).logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return backend, student


@pytest.mark.parametrize("beta", [1.0, 0.9])
@pytest.mark.parametrize("name", BACKENDS)
def test_nir_export_reads_back_and_runs_in_norse(name: str, beta: float, tmp_path: Path) -> None:
    backend, student = _briefly_trained(name, beta=beta, theta0=2.0)
    student.eval()
    student.set_temperature(1.0)
    path = tmp_path / f"{name}.nir"
    backend.export_nir(student, str(path))
    graph = nir.read(str(path))
    kinds = {type(n).__name__ for n in graph.nodes.values()}
    assert ("IF" if beta == 1.0 else "LIF") in kinds and "Affine" in kinds
    probes = torch.rand(16, 12) * 3
    expected = student.capture_traces(probes)["output/spikes"]  # (S, T, K)
    net = load_nir(str(path))
    state, outputs = None, []
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(student.options.steps):
            out, state = net(probes, state)
            outputs.append(out)
    got = torch.stack(outputs, dim=1).numpy().astype(np.uint8)
    agreement = float((got == expected).mean())
    print(f"NIR {name} beta={beta}: {int(expected.sum())} vs {int(got.sum())} spikes, agreement {agreement:.4f}")
    assert expected.sum() > 0
    assert agreement >= (1.0 if beta == 1.0 else 0.99)
