"""ANN→SNN conversion of convolutional ReLU networks (``spiking.conversion``): fan-out counted
exactly, batch norm folded, max pooling refused, and a converted digits CNN approaching the
CNN's accuracy as the steps grow."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spiking.conversion import AvgPool, Conv, Dense, Flatten, Stage, balance_layers, simulate
from spiking.conversion_modules import layers_of
from spiking.fanout import fan_out


def _targets_by_perturbation(stage: Stage, shape) -> torch.Tensor:
    """Per input neuron, how many outputs of ``stage`` (positive weights) change when it alone is 1."""
    counts = torch.zeros(shape)
    base = stage(torch.zeros(1, *shape))
    for index in range(counts.numel()):
        x = torch.zeros(counts.numel())
        x[index] = 1.0
        counts.view(-1)[index] = float(((stage(x.view(1, *shape)) - base).abs() > 0).sum())
    return counts


@pytest.mark.parametrize("stage, shape", [
    (Stage((AvgPool((2, 2), (2, 2)),), Conv(torch.rand(3, 2, 3, 3) + 0.1, torch.zeros(3), (1, 1), (1, 1))), (2, 9, 8)),
    (Stage((), Conv(torch.rand(3, 2, 3, 3) + 0.1, torch.zeros(3), (2, 2), (0, 0))), (2, 7, 7)),
    (Stage((AvgPool((2, 2), (2, 2)), Flatten()), Dense(torch.rand(5, 2 * 2 * 2) + 0.1, torch.zeros(5))), (2, 4, 5)),
])
def test_fan_out_is_the_number_of_targets_each_neuron_reaches(stage, shape):
    counts = fan_out(stage.ones, shape).float()
    assert torch.equal(counts, _targets_by_perturbation(stage, shape))
    if isinstance(stage.synapse, Conv) and stage.passive:
        # a corner pooled unit feeds 2x2 of 3x3 kernel positions, an interior one 3x3; the 9th row is pooled away
        assert counts[0, 0, 0] == 3 * 4 and counts[0, 2, 2] == 3 * 9 and counts[:, 8].sum() == 0


def test_batch_norm_is_folded_into_the_convolution_before_it():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                        nn.Linear(16, 3))
    net[1].running_mean.uniform_(-1, 1)
    net[1].running_var.uniform_(0.5, 2)
    nn.init.uniform_(net[1].weight, 0.5, 2)
    nn.init.uniform_(net[1].bias, -1, 1)
    net.eval()
    layers = layers_of(net)
    assert [type(layer) for layer in layers] == [Conv, AvgPool, Flatten, Dense]
    x = torch.randn(5, 1, 4, 4)
    h = torch.relu(layers[0](x))
    for layer in layers[1:]:
        h = layer(h)
    torch.testing.assert_close(h, net(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("modules, word", [
    ([nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2, 3)], "max pooling"),
    ([nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 3)], "Tanh"),
    ([nn.Linear(4, 4), nn.Linear(4, 3)], "ReLU"),
    ([nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3), nn.ReLU()], "output layer"),
    ([nn.Linear(4, 4), nn.ReLU(), nn.BatchNorm2d(4), nn.Linear(4, 3)], "batch norm"),
])
def test_what_does_not_convert_is_named(modules, word):
    with pytest.raises(ValueError, match=word):
        layers_of(nn.Sequential(*modules))


@pytest.fixture(scope="module")
def digits_cnn():
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32).view(-1, 1, 8, 8)
    y = torch.tensor(digits.target)
    order = torch.randperm(len(y))
    train, test = order[:1200], order[1200:]
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                        nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    optimiser = torch.optim.Adam(net.parameters(), 0.01)
    for _ in range(15):
        for rows in train[torch.randperm(len(train))].split(64):
            optimiser.zero_grad()
            nn.functional.cross_entropy(net(x[rows]), y[rows]).backward()
            optimiser.step()
    net.eval()
    return net, x[train], x[test], y[test]


def test_converted_cnn_approaches_the_cnn_as_steps_grow(digits_cnn):
    net, x_train, x_test, y_test = digits_cnn
    with torch.no_grad():
        ann = float((net(x_test).argmax(1) == y_test).float().mean())
    assert ann >= 0.85
    layers = balance_layers(layers_of(net), x_train)
    accuracy, totals = {}, {}
    for steps in (4, 16, 64):
        out, spikes, synops = simulate(layers, x_test, steps)
        accuracy[steps] = float((out.argmax(1) == y_test).float().mean())
        totals[steps] = float(spikes.sum(1).mean())
        assert spikes.shape == (len(y_test), 3) and torch.all(synops >= spikes[:, -1] * 10)
    assert abs(accuracy[64] - ann) <= 0.02 and accuracy[64] >= accuracy[4]
    assert totals[4] < totals[16] < totals[64]


def test_chunks_of_rows_give_what_one_pass_gives(digits_cnn, monkeypatch):
    """Balancing and simulating go through the rows in chunks (a conv layer over a whole
    training split at once took 24 GB); the thresholds, including the strided subsample the
    percentile takes past torch.quantile's limit, and every figure are the one-pass ones."""
    import spiking.conversion as conversion

    net, x_train, x_test, _ = digits_cnn
    monkeypatch.setattr(conversion, "QUANTILE_LIMIT", 5_000)  # force the strided subsample
    one_pass = {}
    for rows in (10 ** 9, 37):  # everything at once, then chunks of 37 rows
        monkeypatch.setattr(conversion, "CHUNK_ROWS", rows)
        layers = balance_layers(layers_of(net), x_train)
        one_pass.setdefault("weights", [l.weight for l in layers if hasattr(l, "weight")])
        for mine, theirs in zip([l.weight for l in layers if hasattr(l, "weight")], one_pass["weights"]):
            torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)
        out = simulate(layers, x_test, 8)
        for mine, theirs in zip(out, one_pass.setdefault("out", out)):
            torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)


def test_synaptic_operations_are_spikes_times_fan_out():
    torch.manual_seed(1)
    layers = [Conv(torch.randn(2, 1, 3, 3), torch.full((2,), 0.5), (1, 1), (1, 1)), AvgPool((2, 2), (2, 2)),
              Flatten(), Dense(torch.randn(3, 8), torch.zeros(3))]
    x = torch.rand(4, 1, 4, 4)
    _, spikes, synops = simulate(layers, x, 1)  # one step: the first layer fires where its current ≥ 1
    fired = (layers[0](x) >= 1.0).float()
    assert torch.equal(spikes[:, 0], fired.flatten(1).sum(1))
    assert torch.equal(synops, spikes[:, 0] * 3)  # each conv neuron reaches all 3 outputs through its pool
