"""One teacher, five ways in: does how a teacher reaches tempdistill change the student?

For each seed a dense teacher is trained the old way (tempdistill trains and caches it), and a
snnTorch student [64] is distilled from it (a) loaded the old way. The same network is then
wrapped so that it reads the raw digits features (``raw_teacher.RawInputTeacher``: the min-max
normalisation tempdistill fitted, inside the wrapper) and handed over (b) as TorchScript, (c) as
factory + state dict, (d) as stored logits in a ``.npz`` and (e) as a module in memory through
``runner.execute(given=...)``. Everything else (split, student normalisation, seed, student
initialisation) is the same, so the differences to (a) measure the plumbing, not the teacher.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/own_teacher.py [--seeds 0 1 2] [--epochs 15]

A tiny setting keeps it short: teacher [128, 128] for 30 epochs, student snnTorch [64] with 25
steps, distilled for ``--epochs`` epochs at constant T = 4.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # raw_teacher: the "user's module" the factory names
sys.path.insert(1, str(HERE.parent))

from raw_teacher import RawInputTeacher  # noqa: E402
from tempdistill.config import config_from_mapping  # noqa: E402
from tempdistill.record.run import Run  # noqa: E402
from tempdistill.runner import execute, prepare_teacher  # noqa: E402
from tempdistill.tasks.sources import InMemory  # noqa: E402

VARIANTS = ("a: tempdistill's own", "b: TorchScript", "c: factory + state dict", "d: stored logits (.npz)",
            "e: module in memory")


def base_config(seed: int, epochs: int, out: Path) -> Dict[str, Any]:
    return {
        "name": "own-teacher", "seed": seed, "task": "classification",
        "data": {"name": "digits", "test_fraction": 0.3, "normalize": "minmax"},
        "teacher": {"backend": "dense", "hidden": [128, 128], "epochs": 30, "lr": 0.001, "batch_size": 64},
        "student": {"backend": "snntorch", "hidden": [64], "steps": 25},
        "distill": {"epochs": epochs, "batch_size": 64, "lr": 0.002, "alpha": 0.9,
                    "temperature": {"schedule": "constant", "value": 4.0}},
        "record": {"dir": str(out), "traces": {"every": 0, "samples": 0}},
    }


def wrapped(network: torch.nn.Module, low: float, span: float) -> RawInputTeacher:
    """The same weights behind the min-max scaling tempdistill fitted: reads raw features."""
    teacher = RawInputTeacher(64, [128, 128], 10, low, span)
    teacher.net.load_state_dict(network.state_dict())
    return teacher.eval()


def one_seed(seed: int, epochs: int, work: Path) -> Dict[str, Dict[str, float]]:
    config = base_config(seed, epochs, work / "runs")
    runs: Dict[str, Path] = {}
    runs[VARIANTS[0]] = execute(config_from_mapping(config), warn=lambda _: None)
    split, network, _ = prepare_teacher(config_from_mapping(config))  # the cached teacher, loaded the old way
    assert split.normalizer.kind == "minmax" and network is not None
    teacher = wrapped(network, float(split.normalizer.offset), float(split.normalizer.scale))

    user = {k: v for k, v in config.items() if k != "teacher"}
    script = work / f"teacher-{seed}.pt"  # TorchScript under a .pt name: recognised by content
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(teacher).save(str(script))
    runs[VARIANTS[1]] = execute(config_from_mapping({**user, "teacher": {"checkpoint": str(script)}}), warn=lambda _: None)

    weights = work / f"weights-{seed}.pt"
    torch.save(teacher.state_dict(), weights)
    factory = {"factory": "raw_teacher:make", "kwargs": {"hidden": [128, 128]}, "checkpoint": str(weights)}
    runs[VARIANTS[2]] = execute(config_from_mapping({**user, "teacher": factory}), warn=lambda _: None)

    from sklearn.datasets import load_digits

    bunch = load_digits()
    with torch.no_grad():
        logits = teacher(torch.as_tensor(bunch.data, dtype=torch.float32)).numpy()
    npz = work / f"digits-logits-{seed}.npz"
    np.savez(npz, X=bunch.data, y=bunch.target, teacher_logits=logits)
    stored = {**user, "data": {**user["data"], "name": "npz", "path": str(npz)}, "teacher": {"source": "logits"}}
    runs[VARIANTS[3]] = execute(config_from_mapping(stored), warn=lambda _: None)

    runs[VARIANTS[4]] = execute(config_from_mapping({**user, "teacher": {"source": "module"}}),
                                given=InMemory(teacher=teacher), warn=lambda _: None)
    with torch.no_grad():  # the wrapper fed what the student reads: what (b)-(e) would show if the raw rule broke
        misfed = float((teacher(split.x_test).argmax(-1) == split.y_test).float().mean())
    figures: Dict[str, Dict[str, Any]] = {"misfed": {"teacher": misfed}}
    for name, path in runs.items():
        ev = Run.read(path).eval
        figures[name] = {"student": float(ev["student_accuracy"]), "teacher": float(ev["teacher_accuracy"]),
                         "source": str(ev["teacher_source"])}
    return figures


def mean_std(values: List[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.2f} ± {100 * spread:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=15, help="distillation epochs of each student")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TEMPDISTILL_CACHE"] = str(Path(tmp) / "cache")  # a teacher trained here, not reused
        per_seed = {seed: one_seed(seed, args.epochs, Path(tmp)) for seed in args.seeds}
    print(f"digits, seeds {args.seeds}, snnTorch student [64] x 25 steps, {args.epochs} epochs, T = 4; "
          f"test accuracy in %, mean ± std over seeds ({time.perf_counter() - started:.0f} s)\n")
    print("| teacher given as | teacher_source | teacher acc. | student acc. | student − (a) |")
    print("|---|---|---|---|---|")
    for name in VARIANTS:
        student = [per_seed[s][name]["student"] for s in args.seeds]
        teacher = [per_seed[s][name]["teacher"] for s in args.seeds]
        diff = [per_seed[s][name]["student"] - per_seed[s][VARIANTS[0]]["student"] for s in args.seeds]
        sources = sorted({per_seed[s][name]["source"] for s in args.seeds})
        print(f"| {name} | {'/'.join(sources)} | {mean_std(teacher)} | {mean_std(student)} | {mean_std(diff)} |")
    misfed = [per_seed[s]["misfed"]["teacher"] for s in args.seeds]
    print(f"\nThe wrapped teacher fed the normalised inputs instead of the raw ones: test accuracy {mean_std(misfed)}.")


if __name__ == "__main__":
    main()
