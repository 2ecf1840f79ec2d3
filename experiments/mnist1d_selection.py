"""The MNIST-1D student selection table: validation accuracy only, never test.

    python experiments/mnist1d_selection.py runs/mnist1d-select [more run directories]

One row per setting (student widths, lr, lr schedule, weight decay, epochs, batch size, alpha),
best first: the mean over seeds of the reported (final) student's validation accuracy, each
seed's figure, and the mean of each run's best epoch (for reference; the choice is made on the
final figure, which is the student a run reports)."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from tempdistill.record.run import Run


def main(directories: list[str]) -> None:
    rows = defaultdict(list)
    for directory in directories:
        for path in sorted(Path(directory).glob("*.h5")):
            run = Run.read(path)
            if run.status != "complete":
                continue
            s, d = run.config["student"], run.config["distill"]
            key = (s["backend"], "x".join(map(str, s["hidden"])), d["lr"], d.get("lr_schedule", "constant"),
                   d["weight_decay"], d["epochs"], d["batch_size"], d["alpha"])
            rows[key].append((run.config["seed"], float(run.eval["val_accuracy"]),
                              float(np.max(run.series["val_accuracy"]))))
    table = sorted(rows.items(), key=lambda item: -np.mean([r[1] for r in item[1]]))
    print("| student | hidden | lr | schedule | weight decay | epochs | batch | alpha | seeds "
          "| validation accuracy (final) | per seed | best epoch (mean) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for key, runs in table:
        runs.sort()
        final = [r[1] for r in runs]
        print("| " + " | ".join(map(str, key)) + f" | {len(runs)} | {np.mean(final):.4f} | "
              + " ".join(f"{v:.4f}" for v in final) + f" | {np.mean([r[2] for r in runs]):.4f} |")


if __name__ == "__main__":
    main(sys.argv[1:] or ["runs/mnist1d-select"])
