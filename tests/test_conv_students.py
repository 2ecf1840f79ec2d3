"""Convolutional students (``student.arch: conv``) on images, for every backend.

Data stays flat in the pipeline, (B, C·H·W); a conv student views it as (B, C, H, W) itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest
import torch

import tempdistill as td
from backends import get_backend
from spiking.conv import conv_fan_out, conv_macs, flatten_fan_out, input_fan_out, stage_maps
from tempdistill.app.cli import main
from tempdistill.record.export import load_predictor

BACKENDS = ["dense", "snntorch", "norse"]
IMAGE = (1, 8, 8)


def build(backend_name: str, options: Dict[str, Any], input_shape=IMAGE, num_classes: int = 10):
    backend = get_backend(backend_name)
    opts = backend.validate({"backend": backend_name, **options}, "student")
    return backend.build_student(opts, int(np.prod(input_shape)), num_classes, input_shape)


def image_run(tmp_path: Path, backend: str, **student: Any) -> Dict[str, Any]:
    return {
        "name": f"conv-{backend}", "seed": 0, "data": {"name": "digits", "layout": "image"},
        "teacher": {"hidden": [32], "epochs": 4, "lr": 0.01},
        "student": {"backend": backend, "arch": "conv", "channels": [8, 16], "hidden": [32], **student},
        "distill": {"epochs": 4, "batch_size": 64, "lr": 0.01, "temperature": {"schedule": "constant", "value": 4.0}},
        "record": {"dir": str(tmp_path / "runs"), "traces": {"every": 0, "samples": 0}},
    }


# --- geometry ---------------------------------------------------------------------------------
def test_stage_maps_halve_each_stage_and_refuse_what_pools_to_nothing():
    assert stage_maps((1, 8, 8), [4, 8], 3) == [(4, 8, 8), (8, 4, 4)]
    assert stage_maps((2, 7, 5), [3, 3], 3) == [(3, 7, 5), (3, 3, 2)]
    with pytest.raises(ValueError, match=r"^student\.channels: 4 stages .* 8×8 .* at most 3"):
        stage_maps((1, 8, 8), [4, 4, 4, 4], 3)
    with pytest.raises(ValueError, match=r"^student\.arch: .*data\.layout: image"):
        stage_maps(None, [4], 3)
    with pytest.raises(ValueError, match=r"^student\.arch: .*data\.layout: image"):
        stage_maps((64,), [4], 3)
    with pytest.raises(ValueError, match=r"^student\.kernel"):
        stage_maps((1, 8, 8), [4], 4)


def test_fan_out_counts_the_targets_that_read_each_neuron():
    # A 1×4×4 map pooled to 2×2, read by 3 channels of a 3×3 convolution with padding 1:
    # every pooled cell is read by all 4 positions (3×3 windows cover a 2×2 map), 3 channels each.
    fan = conv_fan_out((1, 4, 4), 3, 3)
    assert fan.shape == (16,) and torch.all(fan == 12)
    # An odd row/column is dropped by the pooling: nobody reads it.
    fan = conv_fan_out((1, 5, 5), 2, 1).reshape(5, 5)
    assert torch.all(fan[:4, :4] == 2) and torch.all(fan[4] == 0) and torch.all(fan[:, 4] == 0)
    assert torch.all(flatten_fan_out((2, 3, 3), 7).reshape(2, 3, 3)[:, :2, :2] == 7)
    # Input pixels: a corner of a 3×3 kernel with padding 1 is read at 4 positions, the centre at 9.
    pixels = input_fan_out((1, 5, 5), 2, 3).reshape(5, 5)
    assert pixels[0, 0] == 8 and pixels[2, 2] == 18
    assert conv_macs(3, (16, 8, 8), 3) == 16 * 3 * 9 * 64


# --- dense --------------------------------------------------------------------------------------
def test_dense_conv_student_views_flat_input_as_images_and_counts_conv_macs():
    student = build("dense", {"arch": "conv", "channels": [4, 6], "hidden": [12], "batch_norm": True})
    flat = torch.rand(5, 64)
    out = student(flat)
    assert out.tempered.shape == (5, 10)
    assert torch.equal(student(flat.view(5, 1, 8, 8)).logits, out.logits)
    expected = conv_macs(1, (4, 8, 8), 3) + conv_macs(4, (6, 4, 4), 3) + 6 * 2 * 2 * 12 + 12 * 10
    assert student.measured["macs_per_sample"] == expected
    assert [type(m).__name__ for m in student.features] == [
        "Conv2d", "BatchNorm2d", "ReLU", "AvgPool2d", "Conv2d", "BatchNorm2d", "ReLU", "AvgPool2d", "Flatten"]
    assert student.describe()["arch"] == "conv" and student.describe()["channels"] == [4, 6]


def test_dense_feature_taps_give_post_activation_maps():
    student = build("dense", {"arch": "conv", "channels": [4, 6], "hidden": [12], "pool": "max"})
    taps = student.feature_layers()
    assert list(taps) == ["conv0", "conv1", "hidden0"]
    seen = {}
    for name, module in taps.items():
        module.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o))
    student(torch.rand(3, 64))
    assert seen["conv0"].shape == (3, 4, 8, 8) and seen["conv1"].shape == (3, 6, 4, 4)
    assert seen["hidden0"].shape == (3, 12) and float(seen["conv0"].detach().min()) >= 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_mlp_students_accept_images(backend):
    student = build(backend, {"hidden": [8]}, input_shape=(64,))
    x = torch.rand(4, 64)
    student.eval()
    assert torch.equal(student(x.view(4, 1, 8, 8)).logits, student(x).logits)


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv_student_on_flat_data_is_one_line_naming_the_field(backend, make_config, capsys):
    code = main(["run", str(make_config({"student": {"backend": backend, "arch": "conv"}})), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "student.arch" in err and "data.layout: image" in err


def test_image_too_small_for_the_pooling_is_refused_before_training(make_config, capsys):
    config = make_config({"data": {"layout": "image"}, "student": {"arch": "conv", "channels": [2, 2, 2, 2]}})
    code = main(["run", str(config), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.splitlines()[-1].startswith("tempdistill run: error: student.channels:"), err


# Spiking conv students learn slowly at the spiking defaults: the surrogate's default slope (25)
# leaves little gradient after three spiking layers, and the second stage reads pooled spikes
# (≤ 1) through small weights. A gentler slope and hidden thresholds of 0.25 reach ~0.7 in five
# epochs of a few seconds (measured 0.70 with snnTorch); chance is 0.1.
SPIKING_TRAINING = {"steps": 16, "hidden_threshold": 0.25, "slope": 5.0}
TRAINING = {"dense": ({}, 0.5), "snntorch": (SPIKING_TRAINING, 0.45), "norse": (SPIKING_TRAINING, 0.45)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv_student_trains_on_digits_images_and_exports(backend, tmp_path):
    student, floor = TRAINING[backend]
    config = image_run(tmp_path, backend, **student)
    if backend != "dense":
        config["distill"].update(epochs=5, lr=0.005)
    run = td.run(config)
    losses = run.metrics["loss"].to_numpy()
    assert losses[-1] < losses[0]
    assert run.eval["student_accuracy"] > floor, run.eval
    assert run.student.describe()["arch"] == "conv"
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    predicted = run.predict(x[:300].reshape(-1, 1, 8, 8))
    assert (predicted == y[:300]).mean() > floor
    out = tmp_path / "student.pt"
    assert main(["export", str(run.path), "--format", "pt", "--out", str(out)]) == 0
    assert np.array_equal(load_predictor(out).predict(x[:300]), predicted)


# --- spiking: the fused engine is the reference loop --------------------------------------------
SPIKING = {
    "if-subtract": {"steps": 4},
    "lif-zero-max": {"steps": 5, "beta": 0.8, "reset": "zero", "pool": "max"},
    "lif-subtract-membrane": {"steps": 4, "beta": 0.9, "readout": "count_membrane", "temperature_on_hidden": True},
    "if-zero-poisson": {"steps": 4, "reset": "zero", "encoder": "poisson"},
    "latency-no-hidden": {"steps": 5, "encoder": "latency", "hidden": []},
}


def spiking_conv(backend: str, options: Dict[str, Any], engine: str, input_shape=(2, 6, 6), dtype=torch.float32):
    torch.manual_seed(3)
    opts = {"arch": "conv", "channels": [3, 4], "hidden": [12], "hidden_threshold": 0.3, "slope": 2.0, "engine": engine,
            **options}
    student = build(backend, opts, input_shape).to(dtype)
    student.fit_to_teacher(torch.randn(100, 10, generator=torch.Generator().manual_seed(1)) * 8.0)
    with torch.no_grad():  # stronger convolutions than the default initialisation: every stage fires
        for conv in student.conv.convs:
            conv.weight.mul_(4.0)
    return student


def spiking_pass(student, x: torch.Tensor, temperature: float = 2.0):
    student.train()
    student.set_temperature(temperature)
    torch.manual_seed(11)  # the same Poisson draws for both engines
    sim = student._simulate(x)
    target = torch.linspace(-1.0, 1.0, sim.logits.numel(), dtype=x.dtype).reshape(sim.logits.shape)
    loss = ((sim.logits - 3.0 * target) ** 2).mean() + torch.log_softmax(sim.logits, -1)[:, 0].mean()
    student.zero_grad()
    loss.backward()
    return sim, {n: p.grad.detach().clone() for n, p in student.named_parameters()}


@pytest.mark.parametrize("backend", ["snntorch", "norse"])
@pytest.mark.parametrize("config", list(SPIKING))
def test_fused_conv_engine_gives_the_loops_spikes_and_gradients(backend, config):
    loop, fused = (spiking_conv(backend, SPIKING[config], engine) for engine in ("loop", "fused"))
    fused.load_state_dict(loop.state_dict())
    x = torch.rand(6, 72, generator=torch.Generator().manual_seed(2)) * 2.0
    (sim_loop, grads_loop), (sim_fused, grads_fused) = spiking_pass(loop, x), spiking_pass(fused, x)
    assert len(sim_loop.counts) == len(loop.layer_names)
    assert all(float(c.sum()) > 0 for c in sim_loop.counts[:2]), "a conv stage is silent: nothing compared"
    for a, b in zip(sim_loop.counts, sim_fused.counts):
        assert torch.equal(a, b), "spike counts differ"
    assert torch.equal(sim_loop.logits, sim_fused.logits)
    assert float(grads_loop["conv.convs.0.weight"].abs().max()) > 1e-4, "no gradient reaches the first conv"
    for name, a in grads_loop.items():
        assert torch.allclose(a, grads_fused[name], rtol=1e-4, atol=1e-5), (name, float((a - grads_fused[name]).abs().max()))


def test_fused_conv_engine_in_float64_too():
    loop, fused = (spiking_conv("snntorch", {"steps": 4, "beta": 0.9}, e, dtype=torch.float64) for e in ("loop", "fused"))
    fused.load_state_dict(loop.state_dict())
    x = torch.rand(5, 72, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 2.0
    (sim_loop, grads_loop), (sim_fused, grads_fused) = spiking_pass(loop, x), spiking_pass(fused, x)
    for a, b in zip(sim_loop.counts, sim_fused.counts):
        assert torch.equal(a, b)
    for name, a in grads_loop.items():
        assert torch.allclose(a, grads_fused[name], rtol=1e-6, atol=1e-8), name


@pytest.mark.parametrize("options", [{"steps": 4}, {"steps": 5, "beta": 0.9, "reset": "zero"}])
def test_fused_conv_engine_on_even_maps_with_listened_taps(options):
    """(1, 8, 8) images: both stages' maps are even, so the fused engine pools them by adds and
    unpools their gradients by a product, the last stage's too (the (2, 6, 6) cases above end on
    an odd 3×3 map); a loss on the rate taps adds its gradient to every step's spikes."""
    students = [spiking_conv("snntorch", options, engine, input_shape=(1, 8, 8)) for engine in ("loop", "fused")]
    students[1].load_state_dict(students[0].state_dict())
    x = torch.rand(6, 64, generator=torch.Generator().manual_seed(4)) * 2.0
    results = []
    for student in students:
        rates = []
        for tap in student.feature_layers().values():
            tap.register_forward_hook(lambda m, i, o: rates.append(o))
        student.train()
        student.set_temperature(2.0)
        sim = student._simulate(x)
        loss = ((sim.logits - 1.0) ** 2).mean() + sum((r * torch.linspace(-1, 1, r.numel()).view(r.shape)).sum()
                                                     for r in rates)
        student.zero_grad()
        loss.backward()
        results.append((sim, rates, {n: p.grad.clone() for n, p in student.named_parameters()}))
    (sim_loop, rates_loop, grads_loop), (sim_fused, rates_fused, grads_fused) = results
    assert all(float(c.sum()) > 0 for c in sim_loop.counts[:2]), "a conv stage is silent: nothing compared"
    for a, b in zip(sim_loop.counts, sim_fused.counts):
        assert torch.equal(a, b)
    assert torch.equal(sim_loop.logits, sim_fused.logits)
    for a, b in zip(rates_loop, rates_fused):
        assert torch.equal(a, b)
    for name, a in grads_loop.items():
        assert torch.allclose(a, grads_fused[name], rtol=1e-4, atol=1e-5), (name, float((a - grads_fused[name]).abs().max()))


@pytest.mark.parametrize("engine", ["loop", "fused"])
def test_both_backends_give_identical_conv_spikes_and_gradients(engine):
    options = {"steps": 5, "beta": 0.85, "reset": "subtract"}
    snn, norse = spiking_conv("snntorch", options, engine), spiking_conv("norse", options, engine)
    norse.load_state_dict(snn.state_dict(), strict=False)
    for name, p in snn.named_parameters():
        assert torch.equal(p, dict(norse.named_parameters())[name])
    x = torch.rand(6, 72, generator=torch.Generator().manual_seed(7)) * 2.0
    (sim_a, grads_a), (sim_b, grads_b) = spiking_pass(snn, x), spiking_pass(norse, x)
    for a, b in zip(sim_a.counts, sim_b.counts):
        assert torch.equal(a, b)
    assert torch.equal(sim_a.logits, sim_b.logits)
    for name, a in grads_a.items():
        assert torch.allclose(a, grads_b[name], rtol=1e-5, atol=1e-6), name


@pytest.mark.parametrize("engine", ["loop", "fused"])
def test_spiking_rate_taps_are_differentiable_firing_rates(engine):
    student = spiking_conv("snntorch", {"steps": 4}, engine)
    assert list(student.feature_layers()) == ["conv0", "conv1"]
    seen = {}
    for name, tap in student.feature_layers().items():
        tap.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o))
    x = torch.rand(6, 72, generator=torch.Generator().manual_seed(2)) * 2.0
    sim = student._simulate(x)
    assert seen["conv0"].shape == (6, 3, 6, 6) and seen["conv1"].shape == (6, 4, 3, 3)
    assert torch.equal(seen["conv0"].detach().flatten(1) * 4, sim.counts[0])
    seen["conv1"].sum().backward()
    assert float(student.conv.convs[0].weight.grad.abs().max()) > 0


def test_conv_measures_count_spikes_times_exact_fan_out():
    student = spiking_conv("snntorch", {"steps": 4}, "fused")
    student.eval()
    x = torch.rand(6, 72, generator=torch.Generator().manual_seed(2)) * 2.0
    sim = student._simulate(x)
    measured = student._measure(sim)
    assert [k for k in measured if k.startswith("rate.")] == ["rate.conv0", "rate.conv1", "rate.hidden0", "rate.output"]
    fans = student.conv.fan_outs()
    expected = sum(float((c.double() @ f.double()).mean()) for c, f in zip(sim.counts[:2], fans))
    expected += float(sim.counts[2].sum(1).mean()) * 10
    assert float(measured["synops_per_sample"]) == pytest.approx(expected, rel=1e-6)
    assert float(measured["macs_per_sample"]) == conv_macs(2, (3, 6, 6), 3)
    assert float(measured["energy_nj_per_sample"]) > 0
    traces = student.capture_traces(x[:2])
    assert traces["conv0/spikes"].shape == (2, 4, 3 * 6 * 6) and list(traces["conv1/shape"]) == [4, 3, 3]
    assert student.describe()["channels"] == [3, 4] and student.describe()["pool"] == "avg"


def test_spiking_conv_memory_estimate_counts_conv_neurons_per_step():
    backend = get_backend("snntorch")
    options = backend.validate({"backend": "snntorch", "arch": "conv", "channels": [4], "hidden": [8], "steps": 10},
                               "student")
    size = backend.network_size(options, 64, 10, (1, 8, 8))
    conv_per_step = 3 * 4 * 8 * 8 + 4 * 4 * 4
    assert size.activations_per_sample == 10 * (64 + conv_per_step + 3 * (8 + 10))
    assert size.parameters == 4 * (9 + 1) + (64 + 1) * 8 + (8 + 1) * 10


def test_conv_init_balance_wakes_every_layer_below_the_output():
    """``conv_init: balance`` scales each conv stage and hidden layer so that the 99th
    percentile of its input current on the fitting images is its threshold: a second stage
    that PyTorch's initialisation leaves nearly silent fires."""
    from sklearn.datasets import load_digits

    from backends import get_backend
    from spiking.conv import BALANCE_PERCENTILE
    from spiking.conversion import percentile_of

    x = torch.tensor(load_digits().data[:256] / 16.0, dtype=torch.float32)
    teacher = torch.randn(256, 10)
    counts = {}
    for init in ("none", "balance"):
        torch.manual_seed(0)
        backend = get_backend("snntorch")
        options = backend.validate({"backend": "snntorch", "arch": "conv", "channels": [4, 8], "hidden": [16],
                                    "steps": 4, "conv_init": init}, "student")
        student = backend.build_student(options, 64, 10, (1, 8, 8))
        student.fit_to_teacher(teacher, x)
        if init == "balance":
            first = student.conv.first_current(x)
            assert percentile_of(first, BALANCE_PERCENTILE) == pytest.approx(1.0, rel=1e-3)
        student.eval()
        student.set_temperature(1.0)
        with torch.no_grad():
            measured = student(x).measured
        counts[init] = {k: float(v) for k, v in measured.items() if k.startswith("spikes_per_sample.")}
    assert counts["none"]["spikes_per_sample.conv1"] < 1.0  # of 128 neurons over 4 steps: nearly silent
    assert counts["balance"]["spikes_per_sample.conv1"] > 10 * max(counts["none"]["spikes_per_sample.conv1"], 1.0)
    assert counts["balance"]["spikes_per_sample.hidden0"] > 0.0
