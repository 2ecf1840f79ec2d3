"""ANN→SNN conversion: a trained ReLU network run as integrate-and-fire neurons.

The baseline every distillation-into-SNN paper measures itself against (Rueckauer et al. 2017,
"Conversion of continuous-valued deep networks to efficient event-driven networks"). A ReLU
unit's activation is read as a firing rate: an IF neuron driven by the same weighted input,
reset by subtraction, fires at a rate proportional to the activation, up to one spike per step.
So each layer is rescaled (data-based normalisation) to keep its activations within one spike
per step: with λ_l the ``percentile``-th percentile of layer l's activations on training data,
W_l ← W_l · λ_{l-1} / λ_l and b_l ← b_l / λ_l (λ_0 = 1: the input is a constant current). The
output layer integrates without firing, and its accumulated potential is the prediction.
The approximation improves with the number of steps; that trade-off (accuracy against steps
and spikes) is what the baseline shows.

Pure torch: nothing here knows of tempdistill's students, records or configs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch

PERCENTILE = 99.9


@dataclass(frozen=True)
class IFLayer:
    """One layer of the converted network: weights (out, in) and bias (out,) after balancing."""

    weight: torch.Tensor
    bias: torch.Tensor


def percentile_of(values: torch.Tensor, percentile: float) -> float:
    """The ``percentile``-th percentile of the positive values (ReLU outputs); 1 if none fire."""
    positive = values[values > 0].float()
    if positive.numel() == 0:
        return 1.0
    if positive.numel() > 2_000_000:  # torch.quantile's limit; a strided subsample keeps the estimate
        positive = positive[:: positive.numel() // 2_000_000 + 1]
    return float(torch.quantile(positive, percentile / 100.0))


def balance(weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor], x: torch.Tensor,
            percentile: float = PERCENTILE) -> List[IFLayer]:
    """Rescale a ReLU MLP (``weights[l]`` (out, in), ``biases[l]``) so each hidden layer's
    activations on ``x`` (training rows) stay within one spike per step at their percentile."""
    layers: List[IFLayer] = []
    previous = 1.0
    h = x
    for index, (weight, bias) in enumerate(zip(weights, biases)):
        pre = h @ weight.T + bias
        last = index == len(weights) - 1
        scale = 1.0 if last else percentile_of(torch.relu(pre), percentile)
        layers.append(IFLayer(weight * previous / scale, bias / scale))
        h = torch.relu(pre)
        previous = scale
    return layers


@torch.no_grad()
def simulate(layers: Sequence[IFLayer], x: torch.Tensor, steps: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the converted network for ``steps`` steps on inputs ``x`` (a constant current).

    Returns the output layer's accumulated potential (n, K) (argmax: the prediction), the
    spikes of each hidden layer per sample (n, layers - 1), and the synaptic operations per
    sample (n,): each spike triggers one accumulate per neuron of the next layer.
    """
    if steps < 1:
        raise ValueError(f"steps: must be >= 1, got {steps}")
    hidden = layers[:-1]
    potentials = [torch.zeros(x.shape[0], layer.weight.shape[0]) for layer in hidden]
    spikes = torch.zeros(x.shape[0], len(hidden))
    synops = torch.zeros(x.shape[0])
    output = torch.zeros(x.shape[0], layers[-1].weight.shape[0])
    drive = x @ hidden[0].weight.T + hidden[0].bias if hidden else None  # constant input current
    for _ in range(steps):
        signal = None
        for index, layer in enumerate(hidden):
            current = drive if index == 0 else signal @ layer.weight.T + layer.bias
            potentials[index] += current
            fired = (potentials[index] >= 1.0).float()
            potentials[index] -= fired  # reset by subtraction keeps the residue: rate ∝ activation
            count = fired.sum(dim=1)
            spikes[:, index] += count
            synops += count * layers[index + 1].weight.shape[0]  # one accumulate per neuron it reaches
            signal = fired
        last = layers[-1]
        output += (x @ last.weight.T if signal is None else signal @ last.weight.T) + last.bias
    return output, spikes, synops
