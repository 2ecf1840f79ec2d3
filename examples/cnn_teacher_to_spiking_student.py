"""Your own CNN teacher, trained in plain PyTorch, distilled into a spiking student.

    .venv/bin/python examples/cnn_teacher_to_spiking_student.py [--epochs 30] [--out runs/example]

1. trains a small convolutional network on scikit-learn's 8x8 digits in plain PyTorch (it
   scales the raw pixel values itself: tempdistill hands a user's teacher the inputs as given);
2. distils it into a snnTorch student through ``tempdistill.distill``;
3. plots the student's validation accuracy and spikes per sample from ``run.metrics``;
4. exports the student to NIR and reloads it, checking that the reloaded graph predicts
   what the run recorded on its test rows.

The run file it writes is an ordinary one: ``tempdistill show``, ``compare`` and ``report``
read it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import tempdistill as td


class DigitsCNN(nn.Module):
    """Two convolutions over the 8x8 image; takes the 64 raw pixel values (0-16) per row."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.classify = nn.Linear(32 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = (x / 16.0).reshape(-1, 1, 8, 8)  # its own preprocessing
        return self.classify(self.features(images).flatten(1))


def train_teacher(x: np.ndarray, y: np.ndarray, epochs: int, seed: int = 0) -> nn.Module:
    """A plain PyTorch training loop, as a user already has one."""
    torch.manual_seed(seed)
    model = DigitsCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    inputs, labels = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y)
    for _ in range(epochs):
        for batch in torch.randperm(len(inputs)).split(64):
            loss = nn.functional.cross_entropy(model(inputs[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def digits_split() -> tuple:
    """scikit-learn's digits, 30% held out for test (the user's own split; tempdistill carves its
    validation rows from the training part)."""
    digits = load_digits()
    return train_test_split(digits.data, digits.target, test_size=0.3, random_state=0, stratify=digits.target)


def main(argv: list[str] | None = None) -> td.Run:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30, help="student epochs (the teacher trains 15)")
    parser.add_argument("--teacher-epochs", type=int, default=15)
    parser.add_argument("--out", default="runs/example")
    args = parser.parse_args(argv)

    x_train, x_test, y_train, y_test = digits_split()
    teacher = train_teacher(x_train, y_train, args.teacher_epochs)
    with torch.no_grad():
        teacher_test = float((teacher(torch.as_tensor(x_test, dtype=torch.float32)).argmax(1).numpy() == y_test).mean())
    print(f"CNN teacher: test accuracy {teacher_test:.4f}")

    run = td.distill(teacher=teacher, data=td.ArrayData(x_train, y_train, X_test=x_test, y_test=y_test),
                     student={"backend": "snntorch", "hidden": [64], "steps": 16},
                     temperature={"schedule": "cosine", "start": 8, "end": 1}, epochs=args.epochs,
                     out=args.out, name="cnn-teacher")
    print(f"student: test accuracy {run.eval['student_accuracy']:.4f}  "
          f"({run.eval['student_params']} parameters, teacher {run.eval['teacher_params']})  record {run.path}")

    out = Path(args.out)
    figure = plot_metrics(run, out / "cnn-teacher-metrics.png")
    print(f"plot: {figure}")

    graph = run.export(out / "cnn-teacher-student.nir")
    from tempdistill.record.export import load_predictor

    reloaded = load_predictor(graph).predict(x_test)
    agree = float((reloaded == run.eval["test_predictions"]).mean())
    print(f"NIR graph {graph}: reloaded, agrees with the run's test predictions on {agree:.1%} of rows")
    return run


def plot_metrics(run: td.Run, path: Path) -> Path:
    """Validation accuracy and spikes per sample against the epoch, from ``run.metrics``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = run.metrics
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.plot(metrics.index + 1, metrics["val_accuracy"])
    left.set(xlabel="epoch", ylabel="validation accuracy")
    right.plot(metrics.index + 1, metrics["spikes_per_sample"], color="tab:orange")
    right.set(xlabel="epoch", ylabel="spikes per sample")
    fig.suptitle(f"{run.name}: snnTorch student of a CNN teacher")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
