"""Spiking students against hand-written PyTorch and against each library's stock neuron.

One optimisation step (forward through the time loop, distillation loss, backward, Adam) of a
64-input, 10-output student with one hidden layer, for:

- a hand-written loop: two ``nn.Linear`` and the integrate-and-fire equation written inline
  with the project's surrogate spike (what a user would write without any library);
- snnTorch's stock ``snn.Leaky`` stepped in a Python loop, and Norse's stock ``LIFCell``;
- each backend's student with ``engine: loop`` (the reference path: the library's neuron module
  per step) and ``engine: fused`` (``spiking.functional.network_sequence``);
- optionally ``torch.compile`` of the hand-written loop (compile time reported on its own).

Also how a step scales as the steps double (25 → 200) and the width doubles (64 → 1024).

    .venv/bin/python benchmarks/engines.py [--device cpu] [--quick]
"""

from __future__ import annotations

import argparse
import time
from typing import Callable, Dict, List, Tuple

import numpy as np
import torch
from torch import nn

from bench_common import PairedRatios, interleaved_medians, interleaved_times, markdown_table
from backends import get_backend
from spiking.surrogate import make_spike_fn
from tempdistill.losses import distillation_objective

INPUTS, CLASSES, TEMPERATURE, ALPHA = 64, 10, 4.0, 0.9
SIZES = ((64, 64, 25), (128, 1024, 100))  # (batch, hidden, steps)


def _batch(batch: int, device: str) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(batch, INPUTS, generator=generator) * 2.0
    teacher = torch.randn(batch, CLASSES, generator=generator) * 8.0
    labels = torch.randint(0, CLASSES, (batch,), generator=generator)
    return x.to(device), teacher.to(device), labels.to(device)


def _optimise(model: nn.Module, forward: Callable[[torch.Tensor], Tuple[torch.Tensor, torch.Tensor]],
              x: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor) -> Callable[[], None]:
    """One distillation step; ``forward`` gives (tempered logits, T = 1 logits)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        tempered, logits = forward(x)
        total, _, _ = distillation_objective(torch.log_softmax(tempered, -1), logits, teacher, TEMPERATURE, labels, ALPHA)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    return step


def student_step(backend: str, hidden: int, steps: int, engine: str, data, device: str) -> Callable[[], None]:
    chosen = get_backend(backend)
    torch.manual_seed(0)
    options = chosen.validate({"backend": backend, "hidden": [hidden], "steps": steps, "engine": engine}, "student")
    return student_training_step(chosen.build_student(options, INPUTS, CLASSES).to(device), data)


def student_training_step(student: nn.Module, data) -> Callable[[], None]:
    """One distillation step of a tempdistill student at TEMPERATURE, fitted to the teacher first."""
    student.fit_to_teacher(data[1])
    student.train()

    def forward(x: torch.Tensor):
        student.set_temperature(TEMPERATURE)
        out = student(x)
        return out.tempered, out.logits

    return _optimise(student, forward, *data)


class HandWritten(nn.Module):
    """Integrate-and-fire with subtract reset, written inline: the baseline for the backends."""

    def __init__(self, hidden: int, steps: int, theta0: float) -> None:
        super().__init__()
        self.hidden, self.output = nn.Linear(INPUTS, hidden), nn.Linear(hidden, CLASSES)
        self.steps, self.theta0 = steps, theta0
        self.spike = make_spike_fn("fast_sigmoid", 25.0)
        self.register_buffer("theta_hidden", torch.ones(hidden))
        self.register_buffer("theta_out", torch.full((CLASSES,), theta0 * TEMPERATURE))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        current = self.hidden(x)
        v1 = torch.zeros_like(current)
        v2 = torch.zeros(x.shape[0], CLASSES, device=x.device)
        count = torch.zeros_like(v2)
        for _ in range(self.steps):
            v1 = v1 + current
            s1 = self.spike(v1, self.theta_hidden)
            v1 = v1 - s1.detach() * self.theta_hidden
            v2 = v2 + self.output(s1)
            s2 = self.spike(v2, self.theta_out)
            v2 = v2 - s2.detach() * self.theta_out
            count = count + s2
        return count * (self.theta0 / self.steps)


def hand_written_step(hidden: int, steps: int, data, device: str, compile_it: bool = False) -> Callable[[], None]:
    torch.manual_seed(0)
    model = HandWritten(hidden, steps, theta0=20.0).to(device)
    run = torch.compile(model) if compile_it else model

    def forward(x: torch.Tensor):
        tempered = run(x)
        return tempered, tempered * TEMPERATURE

    return _optimise(model, forward, *data)


def _stock_loop_step(model: nn.ModuleDict, initial: Callable[[], Tuple], steps: int, data) -> Callable[[], None]:
    """Two library cells stepped in a Python loop, ``spikes, state = cell(current, state)``
    (both libraries' calling convention); ``initial`` gives the two cells' starting states."""

    def forward(x: torch.Tensor):
        state1, state2 = initial()
        current, count = model["fc1"](x), 0.0
        for _ in range(steps):
            spk1, state1 = model["lif1"](current, state1)
            spk2, state2 = model["lif2"](model["fc2"](spk1), state2)
            count = count + spk2
        tempered = count * (20.0 / steps)
        return tempered, tempered * TEMPERATURE

    return _optimise(model, forward, *data)


def stock_snntorch_step(hidden: int, steps: int, data, device: str) -> Callable[[], None]:
    """snnTorch as its tutorials write it: ``snn.Leaky`` layers stepped in a Python loop."""
    import snntorch as snn

    torch.manual_seed(0)
    model = nn.ModuleDict({
        "fc1": nn.Linear(INPUTS, hidden), "lif1": snn.Leaky(beta=1.0, threshold=1.0),
        "fc2": nn.Linear(hidden, CLASSES), "lif2": snn.Leaky(beta=1.0, threshold=20.0 * TEMPERATURE),
    }).to(device)
    return _stock_loop_step(model, lambda: (model["lif1"].init_leaky(), model["lif2"].init_leaky()), steps, data)


def stock_norse_step(hidden: int, steps: int, data, device: str) -> Callable[[], None]:
    """Norse's stock ``LIFCell`` (current-based LIF, default parameters) stepped in a loop."""
    from norse.torch import LIFCell

    torch.manual_seed(0)
    model = nn.ModuleDict({"fc1": nn.Linear(INPUTS, hidden), "lif1": LIFCell(),
                           "fc2": nn.Linear(hidden, CLASSES), "lif2": LIFCell()}).to(device)
    return _stock_loop_step(model, lambda: (None, None), steps, data)


def engine_table(batch: int, hidden: int, steps: int, device: str, repeats: int, compile_it: bool) -> Tuple[str, PairedRatios]:
    data = _batch(batch, device)
    candidates = {
        "hand-written loop": hand_written_step(hidden, steps, data, device),
        "snnTorch stock snn.Leaky loop": stock_snntorch_step(hidden, steps, data, device),
        "Norse stock LIFCell loop": stock_norse_step(hidden, steps, data, device),
    }
    for backend in ("snntorch", "norse"):
        for engine in ("loop", "fused"):
            candidates[f"{backend} student, engine {engine}"] = student_step(backend, hidden, steps, engine, data, device)
    compile_seconds = None
    if compile_it:
        compiled = hand_written_step(hidden, steps, data, device, compile_it=True)
        started = time.perf_counter()
        compiled()
        compile_seconds = time.perf_counter() - started
        candidates["hand-written loop, torch.compile"] = compiled
    times = interleaved_times(candidates, repeats, device=device)
    ms = {name: float(np.median(values)) for name, values in times.items()}
    ratio = PairedRatios(times)
    base, stock = "hand-written loop", "snnTorch stock snn.Leaky loop"
    rows = []
    for name, value in ms.items():
        today = f"{name.split()[0]} student, engine loop"
        rows.append([name, value, ratio(name, base), ratio(stock, name),
                     f"{ratio(today, name):.2f}" if today in ms and name.endswith("fused") else ""])
    text = markdown_table(["(batch, hidden, steps) = " + f"({batch}, {hidden}, {steps})", "ms/step", "× hand-written",
                           "speed-up vs snn.Leaky", "speed-up vs engine loop"], rows)
    if compile_seconds is not None:
        text += f"\n\n`torch.compile` of the hand-written loop took {compile_seconds:.1f} s to compile (first call)."
    text += "\n\nRatios are medians over rounds of the ratio within each round (both calls back to back)."
    return text, ratio


def scaling_table(device: str, repeats: int, quick: bool) -> str:
    """ms per step as the steps double at width 64, and as the width doubles at 25 steps."""
    rows: List[List[object]] = []
    step_counts = (25, 50, 100) if quick else (25, 50, 100, 200)
    widths = (64, 256, 1024) if quick else (64, 128, 256, 512, 1024)
    for label, grid in (("steps", [(64, s) for s in step_counts]), ("width", [(w, 25) for w in widths])):
        previous: Dict[str, float] = {}
        for hidden, steps in grid:
            data = _batch(64, device)
            ms = interleaved_medians(
                {engine: student_step("snntorch", hidden, steps, engine, data, device) for engine in ("loop", "fused")},
                repeats, device=device,
            )
            growth = [f"{ms[e] / previous[e]:.2f}" if previous else "" for e in ("loop", "fused")]
            rows.append([label, hidden, steps, ms["loop"], growth[0], ms["fused"], growth[1]])
            previous = ms
    return markdown_table(["doubling", "hidden", "steps", "loop ms", "× previous", "fused ms", "× previous"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    for batch, hidden, steps in SIZES:
        print(engine_table(batch, hidden, steps, args.device, 3 if args.quick else 10, False)[0], "\n")
    print(scaling_table(args.device, 3 if args.quick else 7, args.quick))


if __name__ == "__main__":
    main()
