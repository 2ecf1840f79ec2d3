"""The spiking neuron and readout semantics that make thresholds a temperature."""

from __future__ import annotations

import math

import pytest
import torch

from backends import get_backend

torch.set_num_threads(1)
BACKENDS = ["snntorch", "norse"]


def _student(name: str, num_inputs: int, num_classes: int, **options):
    backend = get_backend(name)
    return backend.build_student(backend.validate({"backend": name, **options}, "student"), num_inputs, num_classes)


def _run_layer(layer, current: torch.Tensor, theta: torch.Tensor, steps: int) -> torch.Tensor:
    layer.use_threshold(theta)
    state, out = None, []
    for _ in range(steps):
        spikes, _, state = layer.step(current, state)
        out.append(spikes)
    return torch.stack(out)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("T", [1.0, 2.0, 4.0, 8.0, 3.0])
def test_if_input_over_T_equals_threshold_times_T(name: str, T: float) -> None:
    """Non-leaky IF, subtract reset: spikes(I/T, θ0) == spikes(I, θ0·T) step by step."""
    student = _student(name, 4, 7, hidden=[])
    layer = student.neurons[0]
    torch.manual_seed(0)
    current = torch.rand(5, 7) * 3 - 0.5
    theta0 = torch.full((7,), 1.3)
    scaled_input = _run_layer(layer, current / T, theta0, 60)
    scaled_threshold = _run_layer(layer, current, theta0 * T, 60)
    mismatches = int((scaled_input != scaled_threshold).sum())
    # Powers of two scale floats exactly; T = 3 may flip a spike where v lands on θ within rounding.
    assert mismatches <= (0 if math.log2(T).is_integer() else 2)
    assert scaled_input.sum() > 0


@pytest.mark.parametrize("readout,tolerance", [("count", 1e-2), ("count_membrane", 1e-5)])
@pytest.mark.parametrize("T", [1.0, 2.0, 4.0, 8.0])
def test_readout_softmax_matches_tempered_softmax(readout: str, tolerance: float, T: float) -> None:
    """At θ = θ0·T the readout's softmax equals softmax(z/T) while unsaturated (z/T < θ0).

    The student is one output layer fed z directly (W = I, b = 0); z spans 9 nats, a sharp
    teacher-like distribution at T = 1, and θ0 = 12 keeps every z/T below saturation.
    """
    K, steps = 10, 1000
    student = _student("snntorch", K, K, hidden=[], steps=steps, theta0=12.0, readout=readout)
    with torch.no_grad():
        student.linears[0].weight.copy_(torch.eye(K))
        student.linears[0].bias.zero_()
    torch.manual_seed(3)
    z = torch.rand(32, K) * 9 + 0.5
    student.eval()
    student.set_temperature(T)
    with torch.no_grad():
        logits = student(z).tempered
    assert float(logits.max()) <= 12.0  # the saturation bound
    error = (torch.softmax(logits, -1) - torch.softmax(z / T, -1)).abs().max()
    assert float(error) < tolerance
    assert torch.allclose(student.effective_temperature(), torch.full((K,), T))


def test_readout_saturates_at_theta0() -> None:
    """Inputs beyond θ0·T give one spike per step: the count readout is capped at θ0."""
    student = _student("norse", 3, 3, hidden=[], steps=50, theta0=5.0, readout="count")
    with torch.no_grad():
        student.linears[0].weight.copy_(torch.eye(3))
        student.linears[0].bias.zero_()
    student.eval()
    student.set_temperature(1.0)
    with torch.no_grad():
        logits = student(torch.tensor([[100.0, 6.0, 2.5]])).tempered
    assert logits[0, 0] == pytest.approx(5.0) and logits[0, 1] == pytest.approx(5.0)
    assert logits[0, 2] == pytest.approx(2.5, abs=5.0 / 50)


@pytest.mark.parametrize("name", BACKENDS)
def test_count_membrane_readout_is_exact_beyond_saturation(name) -> None:
    """The default readout adds the residual membrane: Σ I = count·θ + v_N for IF neurons with
    subtract reset, so the readout is the mean current / T whether or not the neuron saturates."""
    student = _student(name, 3, 3, hidden=[], steps=50, theta0=5.0)
    with torch.no_grad():
        student.linears[0].weight.copy_(torch.eye(3))
        student.linears[0].bias.zero_()
    student.eval()
    for temperature in (1.0, 4.0):
        student.set_temperature(temperature)
        with torch.no_grad():
            logits = student(torch.tensor([[100.0, 6.0, 2.5]])).tempered
        assert torch.allclose(logits[0], torch.tensor([100.0, 6.0, 2.5]) / temperature, rtol=1e-5)


def test_both_backends_identical_spikes_and_gradients() -> None:
    """Same weights, same options: the two libraries produce the same spikes and gradients."""
    results = {}
    for name in BACKENDS:
        torch.manual_seed(0)
        student = _student(name, 16, 5, hidden=[24], theta0=1.0)
        with torch.no_grad():
            student.linears[1].weight.mul_(4)
        student.train()
        student.set_temperature(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]))
        torch.manual_seed(1)
        x = torch.rand(8, 16) * 3
        logits = student(x).tempered
        (logits * torch.linspace(-1, 1, 5)).sum().backward()
        traces = student.capture_traces(x)
        results[name] = (traces, [p.grad for p in student.parameters()])
    (ta, ga), (tb, gb) = results["snntorch"], results["norse"]
    for key in ("hidden0/spikes", "output/spikes"):
        assert (ta[key] == tb[key]).all(), key
    assert ta["output/spikes"].sum() > 0
    for a, b in zip(ga, gb):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", BACKENDS)
def test_leaky_zero_reset_and_encoders_run(name: str) -> None:
    """β < 1, reset to zero, and the spiking encoders all run and give (B, K) logits."""
    for encoder in ("poisson", "latency"):
        student = _student(name, 6, 3, hidden=[8], beta=0.8, reset="zero", encoder=encoder, steps=10)
        out = student(torch.rand(4, 6))
        logits = out.tempered
        assert logits.shape == (4, 3)
        assert out.measured["synops_per_sample"] >= 0
