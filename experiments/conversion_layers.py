"""Layer by layer, where a converted network loses accuracy at few steps (docs/images.md).

For each dense run given: the balanced network's accuracy as a ReLU network, each hidden
layer's mean activation against its threshold (the 99.9th percentile), and, per step count,
the converted network's accuracy and spikes per sample in each hidden layer, all on the first
``--rows`` validation rows (never test):

    .venv/bin/python experiments/conversion_layers.py \\
        experiments/results/fashion-mnist-conv/fashion-mnist-conv-dense-kd-s[01]-*.h5
"""

from __future__ import annotations

import argparse
from typing import List, Optional

import torch

from spiking.conversion import simulate, stages
from tempdistill.conversion import converted_layers, parse_steps
from tempdistill.core.predict import fair_argmax
from tempdistill.record.run import Run


def describe(path: str, rows: int, steps: List[int]) -> None:
    layers, _, split = converted_layers(Run.read(path))
    x, y = split.x_val[:rows], split.y_val[:rows]
    network = stages(layers)
    h, means = x, []
    with torch.no_grad():
        for index, stage in enumerate(network):
            h = stage(h)
            if index < len(network) - 1:
                h = torch.relu(h)
                means.append(float(h.mean()))
    print(f"{path}\n  as a ReLU network: accuracy {float((fair_argmax(h) == y).float().mean()):.4f}; "
          f"mean activation / threshold per hidden layer: {', '.join(f'{m:.3f}' for m in means)}")
    for count in steps:
        output, spikes, _ = simulate(layers, x, count)
        accuracy = float((fair_argmax(output) == y).float().mean())  # as convert scores it
        print(f"  {count:3d} steps: accuracy {accuracy:.4f}; spikes per sample per hidden layer: "
              f"{', '.join(f'{s:,.0f}' for s in spikes.mean(0).tolist())}")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="dense run files (tempdistill convert's sources)")
    parser.add_argument("--rows", type=int, default=2000, help="validation rows to simulate (default 2000)")
    parser.add_argument("--steps", default="16,32,64", help="step counts, e.g. 16,32,64")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for path in args.runs:
        describe(path, args.rows, parse_steps(args.steps))


if __name__ == "__main__":
    main()
