"""A spiking conv student's training step against the snnTorch tutorial's conv loop.

One optimisation step (forward through the time loop, distillation loss, backward, Adam) of a
conv student — 1×28×28 images, channels [16, 32] (3×3 convolutions, 2×2 average pooling of
the spikes), hidden [128], 10 outputs, 8 steps, batch 128 — for:

- the snnTorch tutorial's network: ``nn.Conv2d`` + ``snn.Leaky`` stepped in a Python loop, one
  step at a time through every layer (pooling after the neuron, as the student pools spikes),
  the output count read out as the student does;
- the snnTorch backend's conv student with ``engine: loop`` (the reference: the library's
  neuron modules step by step under autograd) and ``engine: fused`` (``spiking.conv_sequence``:
  every stage in one time loop, per-step convolutions, a hand-written backward through time),
  with the same weights and thresholds.

Also the peak memory of a step: peak resident set of a child process that builds the network,
takes three steps, minus that of one that only builds it (``bench_common.peak_rss_mb``).

    .venv/bin/python benchmarks/conv_step.py [--device cpu] [--quick]
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Tuple

import numpy as np
import snntorch as snn
import torch
from snntorch import surrogate
from torch import nn
from torch.nn import functional as F

from engines import _optimise as distillation_step, student_training_step
from bench_common import PairedRatios, interleaved_times, markdown_table, peak_rss_mb
from backends import get_backend

BATCH, IMAGE, CHANNELS, HIDDEN, STEPS, CLASSES = 128, (1, 28, 28), [16, 32], [128], 8, 10
TEMPERATURE, THETA0 = 4.0, 20.0  # the step (loss, alpha) is engines.py's, at the same T


def _batch(device: str) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(BATCH, int(np.prod(IMAGE)), generator=generator) * 2.0
    teacher = torch.randn(BATCH, CLASSES, generator=generator) * 8.0
    labels = torch.randint(0, CLASSES, (BATCH,), generator=generator)
    return x.to(device), teacher.to(device), labels.to(device)


def conv_student(device: str, engine: str = "fused") -> nn.Module:
    backend = get_backend("snntorch")
    torch.manual_seed(0)
    options = backend.validate({"backend": "snntorch", "arch": "conv", "channels": CHANNELS, "hidden": HIDDEN,
                                "steps": STEPS, "theta0": THETA0, "engine": engine}, "student")
    return backend.build_student(options, int(np.prod(IMAGE)), CLASSES, IMAGE).to(device)


class TutorialConvNet(nn.Module):
    """The snnTorch tutorial's convolutional SNN (tutorial 7), sized as the student: per step
    Conv2d → ``snn.Leaky`` → pooling, twice, then Linear → Leaky → Linear → Leaky; the output
    count × θ0/steps is the readout. Weights copied from the student."""

    def __init__(self, student: nn.Module) -> None:
        super().__init__()
        grad = surrogate.fast_sigmoid(slope=25)
        self.convs = nn.ModuleList(nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, padding=c.padding)
                                   for c in student.conv.convs)
        self.linears = nn.ModuleList(nn.Linear(l.in_features, l.out_features) for l in student.linears)
        self.load_state_dict({**{f"convs.{k}": v for k, v in student.conv.convs.state_dict().items()},
                              **{f"linears.{k}": v for k, v in student.linears.state_dict().items()}})
        n = len(self.convs) + len(self.linears)
        thresholds = [1.0] * (n - 1) + [THETA0 * TEMPERATURE]
        self.neurons = nn.ModuleList(snn.Leaky(beta=1.0, threshold=t, spike_grad=grad, reset_mechanism="subtract")
                                     for t in thresholds)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image = x.view(x.shape[0], *IMAGE)
        mems = [neuron.init_leaky() for neuron in self.neurons]
        count: torch.Tensor | float = 0.0
        n_conv = len(self.convs)
        for _ in range(STEPS):
            signal = image
            for i, conv in enumerate(self.convs):
                spikes, mems[i] = self.neurons[i](conv(signal), mems[i])
                signal = F.avg_pool2d(spikes, 2)
            signal = signal.flatten(1)
            for j, linear in enumerate(self.linears):
                signal, mems[n_conv + j] = self.neurons[n_conv + j](linear(signal), mems[n_conv + j])
            count = count + signal
        return count * (THETA0 / STEPS)


def student_step(device: str, data, engine: str = "fused") -> Callable[[], None]:
    return student_training_step(conv_student(device, engine), data)


def tutorial_step(device: str, data) -> Callable[[], None]:
    model = TutorialConvNet(conv_student(device)).to(device)

    def forward(x: torch.Tensor):
        tempered = model(x)
        return tempered, tempered * TEMPERATURE

    return distillation_step(model, forward, *data)


CANDIDATES = {
    "snnTorch tutorial loop (nn.Conv2d + snn.Leaky per step)": lambda device, data: tutorial_step(device, data),
    "snntorch conv student, engine loop": lambda device, data: student_step(device, data, "loop"),
    "snntorch conv student, engine fused": lambda device, data: student_step(device, data, "fused"),
}
TUTORIAL, FUSED = "snnTorch tutorial loop (nn.Conv2d + snn.Leaky per step)", "snntorch conv student, engine fused"

_PEAK_CODE = """
import sys, torch
sys.path.insert(0, {here!r})
torch.set_num_threads(1)
import conv_step
data = conv_step._batch("cpu")
step = conv_step.CANDIDATES[{name!r}]("cpu", data)
for _ in range({steps}):
    step()
"""


def step_peak_mb(name: str) -> float:
    """Peak resident MB a step adds over building the network and its data (CPU)."""
    from pathlib import Path

    here = str(Path(__file__).resolve().parent)
    taken, _, _ = peak_rss_mb(["-c", _PEAK_CODE.format(here=here, name=name, steps=3)])
    built, _, _ = peak_rss_mb(["-c", _PEAK_CODE.format(here=here, name=name, steps=0)])
    return taken - built


def conv_table(device: str, repeats: int, memory: bool = True) -> Tuple[str, float]:
    """The table of ms per step (median over interleaved repeats) and the tutorial/fused ratio."""
    data = _batch(device)
    steps = {name: make(device, data) for name, make in CANDIDATES.items()}
    times = interleaved_times(steps, repeats, warmup=2, device=device)
    ratios = PairedRatios(times)
    rows = []
    for name, values in times.items():
        peak = f"{step_peak_mb(name):.0f}" if memory and device == "cpu" else "—"
        rows.append([name, f"{np.median(values):.1f}", f"{ratios(TUTORIAL, name):.2f}×", peak])
    text = (f"Batch {BATCH}, 1×28×28 images, channels {CHANNELS}, hidden {HIDDEN}, {STEPS} steps, {device}, "
            f"{torch.get_num_threads()} thread(s); median of {repeats} interleaved rounds; peak memory: the step's "
            "peak resident set over building the network (three steps in a child process).\n\n")
    text += markdown_table(["network", "ms / step", "tutorial / this (paired)", "step peak MB"], rows)
    return text, ratios(TUTORIAL, FUSED)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    text, ratio = conv_table(args.device, 3 if args.quick else 15)
    print(text)
    print(f"\nfused conv student: {ratio:.2f}× the snnTorch tutorial loop (target ≥ 2×)")


if __name__ == "__main__":
    sys.exit(main())
