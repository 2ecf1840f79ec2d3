"""The config keys shared by every spiking backend, declared once.

Both spiking backends accept the same keys with the same meaning; each backend's options
model inherits these fields and only pins its own ``backend`` name. Plain pydantic (not
``tempdistill.config.Strict``) so that this package stays independent of ``tempdistill``;
the backend mixes ``Strict`` in, which forbids unknown keys.
"""

from __future__ import annotations

from typing import List, Literal, Optional, Union

from pydantic import BaseModel, Field, field_validator


class Homeostasis(BaseModel):
    """Pull each neuron's firing rate (spikes per step) toward ``target_rate``.

    Per optimisation step θ += strength·(rate − target_rate)·θ0: a neuron firing too often
    raises its threshold, a silent one lowers it.
    """

    model_config = {"extra": "forbid"}
    target_rate: float = Field(0.2, gt=0.0, lt=1.0)
    strength: float = Field(0.01, gt=0.0)


class SpikingOptions(BaseModel):
    hidden: List[int] = Field(default_factory=lambda: [64])
    steps: int = Field(25, ge=1, le=10000)
    beta: float = Field(1.0, gt=0.0, le=1.0)
    theta0: Union[Literal["auto"], float] = "auto"
    hidden_threshold: float = Field(1.0, gt=0.0)
    reset: Literal["subtract", "zero"] = "subtract"
    surrogate: Literal["fast_sigmoid", "atan"] = "fast_sigmoid"
    slope: Optional[float] = Field(None, gt=0.0)
    encoder: Literal["direct", "poisson", "latency"] = "direct"
    threshold_tau: float = Field(10.0, ge=1.0)
    temperature_on_hidden: bool = False
    homeostasis: Optional[Homeostasis] = None
    # "count_membrane" (count + residual membrane v/θ, exact for IF neurons) is the default: its KL
    # floor against the tempered teacher is 0 for T in [1, 16] at every step count (docs/spiking.md,
    # `tempdistill floor`), where the spike-only "count" readout's grows with T (0.037 nats at
    # T = 8, N = 25 for the digits teacher) and cannot express what a high T carries.
    readout: Literal["count", "count_membrane"] = "count_membrane"
    # How the time loop runs: "fused" (every layer's T steps at once, hand-written backward
    # through time; same spikes, gradients equal to rounding) or "loop" (step by step through
    # the library's own neuron modules, the reference). Trace capture always uses the loop.
    engine: Literal["loop", "fused"] = "fused"
    # Start the output layer's current at the teacher's logit scale ("teacher", given the
    # teacher's inputs; see spiking.output_fit) or leave PyTorch's initialisation ("none").
    # Chosen on validation (experiments/slow-start.yaml, 5 seeds): epochs to 95% validation
    # accuracy 11.4 ± 8.3 with "teacher" against 16.2 ± 1.8 with "none" (count_membrane readout;
    # 9.4 ± 3.9 against 23.2 ± 5.5 with the count readout).
    output_fit: Literal["teacher", "none"] = "teacher"
    # arch conv only: before training, scale each conv stage and hidden layer so that the 99th
    # percentile of its input current on training images reaches its threshold ("balance",
    # spiking.conv), as conversion balances a ReLU network; "none" keeps PyTorch's
    # initialisation, under which a [4, 8] student on 8x8 digits kept conv1 silent all run.
    # Not the default: on 10,000 Fashion-MNIST images a [16, 32] student reached the same
    # validation accuracy after 2 epochs either way (0.786)
    conv_init: Literal["balance", "none"] = "none"
    # "conv" (image data): per entry of ``channels`` a Conv2d (``kernel``, padding kernel//2),
    # spiking neurons on every (c, h, w), 2×2 pooling of the spikes (``pool``); then ``hidden``.
    arch: Literal["mlp", "conv"] = "mlp"
    channels: List[int] = Field(default_factory=lambda: [16, 32])
    kernel: int = Field(3, ge=1)
    pool: Literal["avg", "max"] = "avg"

    @field_validator("theta0")
    @classmethod
    def _positive_theta0(cls, value: Union[str, float]) -> Union[str, float]:
        if not isinstance(value, str) and not value > 0:
            raise ValueError("must be 'auto' or a number > 0")
        return value

    @field_validator("channels")
    @classmethod
    def _positive_channels(cls, channels: List[int]) -> List[int]:
        if not channels or any(c < 1 for c in channels):
            raise ValueError("expected a non-empty list of channel counts >= 1")
        return channels

    @field_validator("hidden")
    @classmethod
    def _positive_widths(cls, widths: List[int]) -> List[int]:
        if any(w < 1 for w in widths):
            raise ValueError("every hidden width must be an integer >= 1")
        return widths

    def surrogate_slope(self) -> float:
        """The slope actually used: the surrogate's customary default when not configured."""
        if self.slope is not None:
            return float(self.slope)
        return DEFAULT_SLOPE[self.surrogate]


# On the normalised argument x = (v − θ)/θ; 25 is snnTorch's fast-sigmoid default, 2 its atan one.
DEFAULT_SLOPE = {"fast_sigmoid": 25.0, "atan": 2.0}
