"""Wall time of one Fashion-MNIST distillation epoch for each conv student kind.

``experiments/fashion-mnist-conv.yaml``'s settings (51,000 training images in batches of 128,
augmented, the teacher's logits per batch from its VGG; conv students [16, 32] + [32], spiking
ones 8 steps), run through ``td.run`` for one epoch per student kind: dense, snnTorch and Norse
(fused engine), and snnTorch with the loop engine. The teacher here is the VGG untrained, given as
a module in memory (its cost per batch is the trained one's; a user's teacher reads the images
as given, (B, 1, 28, 28), which costs the same); the figures are the epoch's wall time as the
run records it (``wall_seconds`` after the first epoch, validation included), and the projection
of the config's 15-epoch run from it. Then the snnTorch student with the table's feature term,
the teacher's features taken from the pass that gives its logits per augmented batch (one
teacher pass per batch) against a pass of their own (two), as a ratio in the same process.
Needs the Fashion-MNIST files (``make fashion-mnist``); without them it says so and measures
nothing.

    .venv/bin/python benchmarks/fashion_epoch.py [--device cpu] [--features-only]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import tempdistill as td  # noqa: E402
from backends.cnn import SmallVGG  # noqa: E402
from bench_common import markdown_table  # noqa: E402
from tempdistill.tasks.data import FASHION_MNIST_ROOT, fashion_mnist_files  # noqa: E402
from tempdistill.tasks.sources import InMemory  # noqa: E402

KINDS = {
    "dense conv": {"backend": "dense", "arch": "conv", "channels": [16, 32], "kernel": 3, "pool": "avg", "hidden": [32]},
    "snnTorch conv (fused)": {"engine": "fused"},
    "snnTorch conv (loop)": {"engine": "loop"},
    "Norse conv (fused)": {"backend": "norse", "engine": "fused"},
}


# The feature arm of the table (experiments/fashion-mnist-conv.yaml's snn-kd-features).
FEATURES = [{"teacher": "features.12", "student": "conv1", "loss": "mse", "weight": 1.0}]


def _missing_data() -> str:
    """Why nothing can be measured here, or '' when the Fashion-MNIST files are present."""
    try:
        fashion_mnist_files(None)
    except Exception as exc:  # the data is a Debian package this machine may lack
        return f"not measured: {str(exc).splitlines()[0]} (default root {FASHION_MNIST_ROOT})"
    return ""


def epoch_seconds(device: str, student: dict, out: str, features: list | None = None) -> float:
    """Wall time of one epoch of the table's config with ``student`` (and feature terms)."""
    config = yaml.safe_load((HERE.parent / "experiments" / "fashion-mnist-conv.yaml").read_text())
    config.pop("sweep")
    config["student"] = student if student.get("backend") == "dense" else {**config["student"], **student}
    config.update(device=device, teacher={"source": "module"})
    config["distill"]["epochs"] = 1
    if features:
        config["distill"]["features"] = features
    config["record"]["dir"] = out
    torch.manual_seed(0)
    teacher = SmallVGG((1, 28, 28), [32, 64, 128], [256], 10, dropout=0.3)
    run = td.run(config, given=InMemory(teacher=teacher))
    return float(run.metrics["wall_seconds"].iloc[0])


def epoch_table(device: str) -> str:
    missing = _missing_data()
    if missing:
        return missing
    epochs = yaml.safe_load((HERE.parent / "experiments" / "fashion-mnist-conv.yaml").read_text())["distill"]["epochs"]
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for label, student in KINDS.items():
            seconds = epoch_seconds(device, student, out)
            rows.append([label, f"{seconds:.0f}", f"{seconds * epochs / 60:.1f}"])
    return markdown_table(["student", "one epoch, s", f"{epochs} epochs, min (projected)"], rows)


def feature_pass_table(device: str) -> str:
    """The snnTorch student with the table's feature term: the teacher's features taken from
    the pass that gives its logits per augmented batch (one teacher pass), against a pass of
    their own (two), in the same process."""
    missing = _missing_data()
    if missing:
        return missing
    from contextlib import contextmanager

    from tempdistill.core.features import FeatureTerms

    shared = FeatureTerms.watching_teacher

    @contextmanager
    def own_pass(self):  # the teacher's features from a pass of their own
        yield

    rows = []
    with tempfile.TemporaryDirectory() as out:
        for label, watching in (("two teacher passes per batch", own_pass), ("one teacher pass per batch", shared)):
            FeatureTerms.watching_teacher = watching  # type: ignore[method-assign]
            try:
                rows.append([label, epoch_seconds(device, KINDS["snnTorch conv (fused)"], out, FEATURES)])
            finally:
                FeatureTerms.watching_teacher = shared  # type: ignore[method-assign]
    base = rows[0][1]
    return markdown_table(["snnTorch conv + feature term (features.12 ↔ conv1, mse)", "one epoch, s", "speed-up"],
                          [[label, f"{seconds:.0f}", f"{base / seconds:.2f}x"] for label, seconds in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--features-only", action="store_true", help="only the feature term's teacher passes")
    args = parser.parse_args()
    if not args.features_only:
        print(epoch_table(args.device))
        print()
    print(feature_pass_table(args.device))


if __name__ == "__main__":
    main()
