"""The fused engine is the reference loop, faster: the same spikes, gradients equal to rounding.

Both engines start from the same weights and thresholds; the loop runs the library's neuron
modules step by step under autograd, the fused engine runs ``spiking.functional.
network_sequence`` with its hand-written backward through time.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import pytest
import torch

from backends import get_backend
from spiking.functional import network_sequence, neuron_step, synaptic_current
from spiking.workspace import BlockPool
from spiking.surrogate import make_spike_fn

CONFIGS: Dict[str, Dict[str, Any]] = {
    "if-subtract-direct": {"hidden": [48], "steps": 25},
    "lif-two-layers": {"hidden": [32, 24], "steps": 20, "beta": 0.9},
    "zero-reset-count-membrane": {"hidden": [32], "steps": 20, "reset": "zero", "readout": "count_membrane"},
    "poisson-lif-atan": {"hidden": [32], "steps": 16, "encoder": "poisson", "beta": 0.8, "surrogate": "atan"},
    "latency-subtract-membrane": {"hidden": [32], "steps": 16, "encoder": "latency", "readout": "count_membrane"},
}


def _pair(backend_name: str, options: Dict[str, Any]) -> Tuple[torch.nn.Module, torch.nn.Module]:
    backend = get_backend(backend_name)
    built = []
    for engine in ("loop", "fused"):
        torch.manual_seed(3)
        opts = backend.validate({"backend": backend_name, **options, "engine": engine}, "student")
        built.append(backend.build_student(opts, 64, 10))
    loop, fused = built
    teacher_logits = torch.randn(200, 10, generator=torch.Generator().manual_seed(1)) * 8.0
    for student in built:
        student.fit_to_teacher(teacher_logits)
    fused.load_state_dict(loop.state_dict())
    return loop, fused


def _pass(student: torch.nn.Module, x: torch.Tensor, temperature: Any) -> Tuple[Any, List[torch.Tensor]]:
    student.train()
    student.set_temperature(temperature)
    torch.manual_seed(11)  # the same Poisson draws for both engines
    sim = student._simulate(x)
    target = torch.linspace(-1.0, 1.0, sim.logits.numel()).reshape(sim.logits.shape)
    loss = ((sim.logits - 3.0 * target) ** 2).mean() + torch.log_softmax(sim.logits, -1)[:, 0].mean()
    student.zero_grad()
    loss.backward()
    return sim, [p.grad.detach().clone() for p in student.parameters()]


@pytest.mark.parametrize("backend_name", ["snntorch", "norse"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_fused_engine_gives_the_loops_spikes_and_gradients(backend_name, config):
    loop, fused = _pair(backend_name, CONFIGS[config])
    x = torch.rand(96, 64, generator=torch.Generator().manual_seed(2)) * 2.0
    (sim_loop, grads_loop), (sim_fused, grads_fused) = (_pass(loop, x, 2.0), _pass(fused, x, 2.0))
    for a, b in zip(sim_loop.counts, sim_fused.counts):
        assert torch.equal(a, b), "spike counts differ"
    assert torch.equal(sim_loop.logits, sim_fused.logits)
    if sim_loop.input_events is not None:
        assert torch.equal(sim_loop.input_events, sim_fused.input_events)
    assert any(float(g.abs().max()) > 1e-3 for g in grads_loop), "no gradient to compare"
    for a, b in zip(grads_loop, grads_fused):
        assert torch.allclose(a, b, rtol=0.0, atol=1e-5), float((a - b).abs().max())


def test_fused_engine_matches_under_per_sample_thresholds():
    """Instance-wise temperatures give every sample its own output thresholds (B, K)."""
    loop, fused = _pair("snntorch", {"hidden": [32], "steps": 20})
    x = torch.rand(40, 64, generator=torch.Generator().manual_seed(4)) * 2.0
    temperature = torch.linspace(1.0, 6.0, 40).unsqueeze(1)
    (sim_loop, grads_loop), (sim_fused, grads_fused) = (_pass(loop, x, temperature), _pass(fused, x, temperature))
    assert loop.thresholds[-1].theta().shape == (40, 10)
    assert torch.equal(sim_loop.logits, sim_fused.logits)
    for a, b in zip(grads_loop, grads_fused):
        assert torch.allclose(a, b, rtol=0.0, atol=1e-5)


@pytest.mark.parametrize("beta, zero_reset", [(None, False), (0.85, False), (None, True), (0.7, True)])
def test_one_layer_sequence_is_neuron_step_repeated(beta, zero_reset):
    """One layer alone, with gradients arriving at both the spikes and the final membrane."""
    generator = torch.Generator().manual_seed(5)
    currents = (torch.randn(30, 8, 12, generator=generator) * 0.6 + 0.3).requires_grad_()
    theta = torch.rand(12, generator=generator) + 0.5
    beta_t = None if beta is None else torch.tensor(beta)
    spike_fn = make_spike_fn("fast_sigmoid", 25.0)
    v, steps = torch.zeros(8, 12), []
    for t in range(30):
        s, v = neuron_step(v, currents[t], theta, beta_t, spike_fn, zero_reset)
        steps.append(s)
    spikes_loop, v_loop = torch.stack(steps), v
    spikes, v_fused, _ = network_sequence(currents, [], [], [theta], beta_t, "fast_sigmoid", 25.0, zero_reset)
    assert torch.equal(spikes_loop, spikes) and torch.equal(v_loop, v_fused)
    assert 0 < float(spikes.detach().mean()) < 1
    w_s, w_v = torch.randn(30, 8, 12, generator=generator), torch.randn(8, 12, generator=generator)
    (g_loop,) = torch.autograd.grad((spikes_loop * w_s).sum() + (v_loop * w_v).sum(), currents)
    (g_fused,) = torch.autograd.grad((spikes * w_s).sum() + (v_fused * w_v).sum(), currents)
    assert torch.allclose(g_loop, g_fused, rtol=0.0, atol=1e-5)


def test_held_current_gradient_is_the_sum_over_steps():
    """Direct encoding holds W·x for every step: its gradient is the per-step gradients summed."""
    generator = torch.Generator().manual_seed(6)
    current = (torch.rand(4, 6, generator=generator) + 0.2).requires_grad_()
    expanded = current.detach().unsqueeze(0).expand(12, -1, -1).clone().requires_grad_()
    theta = torch.ones(6)
    held, _, _ = network_sequence(current, [], [], [theta], None, "atan", 2.0, False, steps=12)
    full, _, _ = network_sequence(expanded, [], [], [theta], None, "atan", 2.0, False)
    assert torch.equal(held, full)
    weights = torch.randn(12, 4, 6, generator=generator)
    (g_held,) = torch.autograd.grad((held * weights).sum(), current)
    (g_full,) = torch.autograd.grad((full * weights).sum(), expanded)
    assert torch.allclose(g_held, g_full.sum(dim=0), atol=1e-6)


@pytest.mark.parametrize("beta, zero_reset, surrogate", [(None, False, "fast_sigmoid"), (0.8, True, "atan")])
def test_layer_chain_is_neuron_step_and_synaptic_current_repeated(beta, zero_reset, surrogate):
    """Three layers in one time loop: spikes, counts and every weight's gradient as autograd
    through the per-step equations gives them, with gradients into spikes and final membrane."""
    generator = torch.Generator().manual_seed(8)
    widths, steps, batch = [12, 9, 5], 15, 6
    currents = (torch.randn(steps, batch, widths[0], generator=generator) * 0.7 + 0.4).requires_grad_()
    weights = [(torch.randn(b, a, generator=generator) * 0.8).requires_grad_() for a, b in zip(widths, widths[1:])]
    biases = [(torch.randn(b, generator=generator) * 0.1).requires_grad_() for b in widths[1:]]
    thetas = [torch.rand(n, generator=generator) * 0.5 + 0.4 for n in widths]
    beta_t = None if beta is None else torch.tensor(beta)
    spike_fn = make_spike_fn(surrogate, 2.0 if surrogate == "atan" else 25.0)
    v = [torch.zeros(batch, n) for n in widths]
    out_steps, counts = [], [torch.zeros(batch, n) for n in widths[:-1]]
    for t in range(steps):
        signal = None
        for l in range(len(widths)):
            current = currents[t] if l == 0 else synaptic_current(signal, weights[l - 1], biases[l - 1])
            signal, v[l] = neuron_step(v[l], current, thetas[l], beta_t, spike_fn, zero_reset)
            if l < len(widths) - 1:
                counts[l] = counts[l] + signal.detach()
        out_steps.append(signal)
    spikes_loop = torch.stack(out_steps)
    spikes, v_final, fused_counts = network_sequence(
        currents, weights, biases, thetas, beta_t, surrogate, 2.0 if surrogate == "atan" else 25.0, zero_reset)
    assert torch.equal(spikes_loop, spikes) and torch.equal(v[-1], v_final)
    assert all(torch.equal(a, b) for a, b in zip(counts, fused_counts))
    assert all(0 < float(c.mean()) / steps < 1 for c in fused_counts), "a layer is silent or saturated"
    w_s, w_v = torch.randn(steps, batch, widths[-1], generator=generator), torch.randn(batch, widths[-1], generator=generator)
    inputs = [currents, *weights, *biases]
    grads_loop = torch.autograd.grad((spikes_loop * w_s).sum() + (v[-1] * w_v).sum(), inputs)
    grads_fused = torch.autograd.grad((spikes * w_s).sum() + (v_final * w_v).sum(), inputs)
    assert float(grads_loop[0].abs().max()) > 1e-3 and float(grads_loop[1].abs().max()) > 1e-3
    for a, b in zip(grads_loop, grads_fused):
        assert torch.allclose(a, b, rtol=0.0, atol=1e-5), float((a - b).abs().max())


def test_blocks_are_lent_to_one_pass_at_a_time(monkeypatch):
    """A pass's per-step blocks go back to the pool after its backward (or at once without
    grad), a second pass in flight gets others, and a second backward is refused."""
    pool = BlockPool()
    monkeypatch.setattr("spiking.functional.BLOCKS", pool)
    current = (torch.rand(4, 8) + 0.5).requires_grad_()
    theta = torch.ones(8)
    first, _, _ = network_sequence(current, [], [], [theta], None, "fast_sigmoid", 25.0, False, steps=10)
    second, _, _ = network_sequence(current, [], [], [theta], None, "fast_sigmoid", 25.0, False, steps=10)
    assert torch.equal(first, second)
    assert not pool._free, "blocks held by a pass awaiting its backward were handed out"
    first.sum().backward(retain_graph=True)
    assert len(pool._free[((10, 4, 8), torch.float32, torch.device("cpu"))]) == 1
    with pytest.raises(RuntimeError, match="engine: loop"):
        first.sum().backward()
    with torch.no_grad():
        network_sequence(current, [], [], [theta], None, "fast_sigmoid", 25.0, False, steps=10)
    assert len(pool._free[((10, 4, 8), torch.float32, torch.device("cpu"))]) == 1  # taken and given back
    grad_before = current.grad.clone()
    second.sum().backward()
    assert torch.equal(current.grad, 2 * grad_before)


def test_trace_capture_uses_the_loop_and_agrees_with_the_fused_counts():
    loop, fused = _pair("norse", {"hidden": [32], "steps": 12})
    fused.eval()
    fused.set_temperature(2.0)
    x = torch.rand(16, 64, generator=torch.Generator().manual_seed(7)) * 2.0
    with torch.no_grad():
        counts = fused._simulate(x).counts[-1]
    traces = fused.capture_traces(x)
    assert traces["output/spikes"].shape == (16, 12, 10)
    assert torch.equal(torch.as_tensor(traces["output/spikes"]).sum(dim=1).float(), counts)


def test_unknown_engine_is_refused_with_the_allowed_values(capsys, make_config, tmp_path):
    from tempdistill.app.cli import main

    config = make_config({"student": {"backend": "norse", "hidden": [8], "engine": "jit"}})
    code = main(["run", str(config), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "student.engine" in err and "'loop'" in err and "'fused'" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("kind, slope", [("fast_sigmoid", 25.0), ("atan", 2.0)])
def test_surrogate_factor_is_the_published_derivative_over_theta(kind, slope):
    """SuperSpike's 1/(slope·|x| + 1)² and snnTorch's atan (α/2)/(1 + (π/2·α·x)²), on the
    normalised distance x = (v − θ)/θ and divided by θ, whatever algebra computes them."""
    import math

    from spiking.surrogate import SurrogateFactor

    theta = torch.tensor([0.5, 1.0, 20.0, 80.0])
    v = torch.linspace(-2.0, 3.0, 41).unsqueeze(1) * theta
    x = (v - theta) / theta
    expected = (1.0 / (slope * x.abs() + 1.0) ** 2 if kind == "fast_sigmoid"
                else (slope / 2.0) / (1.0 + (math.pi / 2.0 * slope * x) ** 2)) / theta
    got = SurrogateFactor(theta, kind, slope)(v, out=torch.empty_like(v))
    assert torch.allclose(got, expected, rtol=1e-5, atol=0.0)
    v_spiking = v.clone().requires_grad_()
    make_spike_fn(kind, slope)(v_spiking, theta).sum().backward()
    assert torch.allclose(v_spiking.grad, expected, rtol=1e-5, atol=0.0)
