"""`tempdistill floor`: the KL floor of each spiking readout for a classification teacher.

A run file does not hold the teacher's logits (``docs/record.md``), so the teacher is rebuilt
from the run's recorded config, or from a config file, as ``tempdistill entropy`` does (from
its checkpoint or cache, else trained now). θ0 is the one the run's spiking student would pick:
``student.theta0`` when it is a number, else ``spiking.theta0.auto_theta0`` on the teacher's
training logits (what ``fit_to_teacher`` does). The floors are measured on the validation rows,
where choices of T and readout are made (never on test).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import torch

from spiking.floor import FLOOR_READOUTS, kl_floor, kl_to
from spiking.theta0 import SPREAD_QUANTILE, auto_theta0
from tempdistill.config import ConfigError, RunConfig, config_from_mapping, load_config
from tempdistill.text import table

READOUT_NOTES = {
    "count": "(θ0/N)·spike count: quantised to θ0/N, bounded in [0, θ0]",
    "count_membrane": "count + residual membrane: unquantised; range taken as [0, θ0], so an upper bound; "
                      "independent of N",
    "li": "leaky-integrator membrane (Norse's LI cell; not a tempdistill readout yet): unbounded, unquantised, "
          "floor 0",
}


def config_for(path: str, overrides: Sequence[str] = ()) -> RunConfig:
    """The config of a run file (its recorded one) or of a YAML config file, with overrides."""
    if Path(path).suffix in (".h5", ".hdf5"):
        from tempdistill.record.run import Run

        run = Run.read(path)
        if run.config.get("data", {}).get("name") == "arrays":
            raise ConfigError(f"RUN: {path}: its data were given in memory and are not in the file; save them as "
                              "a .npz and give a config naming it")
        config = config_from_mapping(run.config, overrides)
    else:
        config = load_config(path, overrides)
    if config.task != "classification":
        raise ConfigError(f"task: floor reads a classification teacher's logits; {path} has task {config.task!r}")
    return config


def check_grid(temperatures: Sequence[float], steps: Sequence[int]) -> None:
    """One line naming the option at fault, before any teacher is built."""
    for t in temperatures:
        if not math.isfinite(t) or t <= 0:
            raise ConfigError(f"--temperatures: every T must be a finite number > 0, got {t}")
    for n in steps:
        if n < 1:
            raise ConfigError(f"--steps: every step count must be >= 1, got {n}")


def student_theta0(config: RunConfig, train_logits: torch.Tensor) -> Tuple[float, str]:
    """θ0 as the config's spiking student would have it, and where it came from."""
    chosen = (config.student.model_extra or {}).get("theta0", "auto")
    if chosen != "auto":
        return float(chosen), "student.theta0"
    return auto_theta0(train_logits), f"auto: {SPREAD_QUANTILE:g} quantile of the training logit spread"


def floors(logits: torch.Tensor, theta0: float, temperatures: Sequence[float],
           steps: Sequence[int]) -> Dict[str, List[List[float]]]:
    """readout -> rows (one per T) of floors (one per step count), nats."""
    return {readout: [[kl_floor(logits, float(t), int(n), theta0, readout) for n in steps] for t in temperatures]
            for readout in FLOOR_READOUTS}


def uniform_kl(logits: torch.Tensor, temperature: float) -> float:
    """Mean KL(softmax(z/T) ‖ uniform): what a constant readout (a silent student) reaches, the
    scale against which a floor is small or not."""
    u = logits.double() / float(temperature)
    return float(kl_to(u, torch.zeros_like(u)).mean())


def shown(value: float) -> str:
    """Three significant digits; below 1e-12 (float rounding of an exact 0) as 0."""
    return "0" if value < 1e-12 else f"{value:.3g}"


def floor_report(path: str, temperatures: Sequence[float], steps: Sequence[int], overrides: Sequence[str] = (),
                 log: Callable[[str], None] = lambda _: None) -> str:
    """The text ``tempdistill floor`` prints: θ0 and one table per readout (rows T, columns N)."""
    from tempdistill.runner import prepare_classifier

    check_grid(temperatures, steps)
    config = config_for(path, overrides)
    _, teacher = prepare_classifier(config, log=log)
    train, val = teacher.logits("train"), teacher.logits("val")
    if train is None or val is None:
        raise ConfigError("teacher: has no logits on the training or validation rows")
    theta0, source = student_theta0(config, train)
    parts = [f"{config.name}: KL floor (nats, mean over {val.shape[0]} validation rows) of "
             f"KL(softmax(z/T) ‖ softmax(readout)); θ0 = {theta0:.4g} ({source})"]
    for readout, rows in floors(val, theta0, temperatures, steps).items():
        parts.append(f"\nreadout {readout}: {READOUT_NOTES[readout]}")
        parts.append(table(["T"] + [f"N={n}" for n in steps] + ["uniform"],
                           [[f"{t:g}"] + [shown(v) for v in row] + [shown(uniform_kl(val, t))]
                            for t, row in zip(temperatures, rows)]))
    parts.append("\nuniform: KL to a constant readout (a silent student), for scale")
    return "\n".join(parts)
