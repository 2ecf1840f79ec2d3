"""From output spike counts to tempered logits.

logits = (θ0/N)·count. For a non-leaky IF neuron with subtract reset and mean input current Ī,
count ≈ N·Ī/θ, so at θ = θ0·T the readout is ≈ Ī/T: raising thresholds by T divides the
logits by T, like a dense student's z/T, as long as the neuron is unsaturated (Ī < θ). An
output neuron fires at most once a step, so the readout is bounded: 0 <= logits <= θ0 (the
saturation bound; see ``spiking.theta0`` for how θ0 is chosen to cover the teacher's spread).

``count_membrane`` (the default) adds the residual membrane v_N/θ. For the IF neuron with
subtract reset Σ_t I_t = count·θ + v_N exactly, so that readout is exactly Ī/T, below
saturation and beyond it (the residual keeps what one spike per step could not carry), and can
go negative; it trades a spike-only readout for exactness. Its KL floor against the tempered
teacher is 0 at every T, where the count readout's grows with T (``spiking.floor``).
"""

from __future__ import annotations

import torch

READOUTS = ("count", "count_membrane")


def readout(
    count: torch.Tensor, last_membrane: torch.Tensor, theta: torch.Tensor, theta0: torch.Tensor, steps: int, kind: str
) -> torch.Tensor:
    """Tempered logits (B, K) from spike counts (B, K) over ``steps`` time steps."""
    if kind == "count":
        return count * (theta0 / steps)
    if kind == "count_membrane":
        return (count + last_membrane / theta) * (theta0 / steps)
    raise ValueError(f"unknown readout {kind!r}; allowed: {READOUTS}")
