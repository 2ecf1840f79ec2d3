"""``tempdistill convert``: a trained dense student turned into an integrate-and-fire network,
the ANN→SNN conversion baseline (``spiking.conversion``), written as run files.

Each step count becomes an ordinary run file beside the others, so ``compare`` and ``report``
put the dense student, its converted forms and the distilled spiking students side by side
(accuracy against steps and against spikes per sample). Thresholds are balanced on the run's
own training rows (never validation or test); each converted network is measured on
validation and shown the test rows once, like every other student. The balanced network is
kept in the run file's ``/student`` (format 5), so a converted run exports as NIR and predicts
(``tempdistill.record.converted``). A step count whose
converted run of the same source is already complete in the output folder is kept, not made
again, so a table's conversions can be rerun after a sweep is resumed.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from spiking.conversion import MAX_STEPS, PERCENTILE, Layer, balance_layers, input_macs, is_synapse, simulate
from spiking.conversion_graph import network_arrays
from spiking.conversion_modules import layers_of
from spiking.energy import spiking_energy_nj
from tempdistill.config import ConfigError, config_from_mapping
from tempdistill.core.predict import fair_argmax
from tempdistill.record.converted import KIND
from tempdistill.record.export import load_student
from tempdistill.record.run import Run
from tempdistill.record.run_file import RunRecorder, run_identity
from tempdistill.runner import output_directory, run_file_stem
from tempdistill.tasks.data import load_split


def parse_steps(text: str) -> List[int]:
    """'8,16,32' -> [8, 16, 32]: whole numbers from 1 to ``MAX_STEPS``."""
    try:
        steps = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--steps: expected whole numbers separated by commas, e.g. 8,16,32, got {text!r}") from None
    if not steps or any(not 1 <= s <= MAX_STEPS for s in steps):
        raise ConfigError(f"--steps: each step count must be from 1 to {MAX_STEPS}, got {text!r}")
    return steps


def convertible(run: Run) -> None:
    """Refuse, in one line, a run whose student cannot be converted here."""
    where = f"RUN: {run.path}"
    task = run.config.get("task", "classification")
    if task != "classification":
        raise ConfigError(f"{where}: conversion needs a classifier's run; this one is task {task!r}")
    backend = run.student_attrs.get("backend") or run.config.get("student", {}).get("backend")
    if backend != "dense":
        raise ConfigError(f"{where}: conversion needs a dense student (ReLU); this run's student is {backend!r}, "
                          "already spiking")
    options = json.loads(run.student_attrs.get("options", "{}") or "{}")
    activation = options.get("activation", "relu")
    if activation != "relu":
        raise ConfigError(f"{where}: conversion needs ReLU activations (a firing rate cannot be negative); this "
                          f"student uses {activation!r}")
    if options.get("arch") == "conv" and options.get("pool", "avg") != "avg":
        raise ConfigError(f"{where}: student.pool: {options.get('pool')!r} does not convert (the maximum of spike "
                          "rates is no spike rate); allowed: 'avg'")
    if run.config.get("data", {}).get("name") == "arrays":
        raise ConfigError(f"{where}: its data were given in memory and are not in the file; save them as a .npz "
                          "and run again to convert")


def converted_layers(run: Run) -> tuple[List[Layer], Any, Any]:
    """The balanced IF layers of the run's student, with the run's config and data split, its
    inputs shaped as the student's first layer reads them ((n, C, H, W) for a conv student)."""
    convertible(run)
    _, student = load_student(run)
    config = config_from_mapping(run.config)
    split = load_split(config.data, config.seed)
    features = getattr(student, "features", None)
    network = student.net if features is None else torch.nn.Sequential(features, student.net)
    if features is not None:  # the pipeline's rows are flat; the convolutions read images
        split = dataclasses.replace(split, **{name: getattr(split, name).reshape(-1, *student.image_shape)
                                              for name in ("x_train", "x_val", "x_test")})
    try:
        layers = layers_of(network)
    except ValueError as exc:
        raise ConfigError(f"RUN: {run.path}: {exc}") from None
    with torch.no_grad():
        layers = balance_layers(layers, split.x_train)
    return layers, config, split


def figures(layers: Sequence[Layer], x: torch.Tensor, y: torch.Tensor, steps: int) -> Dict[str, Any]:
    """Accuracy, spikes, synaptic operations and the energy estimate of one pass over ``x``."""
    output, spikes, synops = simulate(layers, x, steps)
    macs = input_macs(layers, x)  # the constant input current, once per sample
    predictions = fair_argmax(output)
    return {
        "accuracy": float((predictions == y).float().mean()),
        "spikes_per_sample": float(spikes.sum(dim=1).mean()),
        "synops_per_sample": float(synops.mean()),
        "macs_per_sample": float(macs),
        "energy_nj_per_sample": float(spiking_energy_nj(synops.mean(), macs)),
        "predictions": predictions,
    }


def architecture(options: Dict[str, Any]) -> Dict[str, Any]:
    """The source student's shape (its resolved options) as a converted run records it; batch
    norm, if any, is folded into the convolutions."""
    kept = ("hidden", "arch", "channels", "kernel", "pool") if options.get("arch") == "conv" else ("hidden",)
    return {key: options.get(key) for key in kept}


def network_record(layers: Sequence[Layer], student: Dict[str, Any], steps: int,
                   source: Dict[str, Any]) -> tuple[Dict[str, np.ndarray], Dict[str, Any]]:
    """``/student`` of a converted run: the balanced synapses' arrays, and what runs them
    (``tempdistill.record.converted``): exported as NIR and predicted with like a student."""
    spec, arrays = network_arrays(layers)
    describe = {"kind": KIND, "steps": steps, "neuron": "if", "threshold": 1.0, "reset": "subtract",
                "encoder": "direct", "output": "integrator", "layers": spec}
    attrs = {"weights": "final", "backend": "converted", "options": json.dumps(student),
             "describe": json.dumps(describe), "input_dim": int(source["input_dim"]), "num_classes": int(source["num_classes"])}
    return arrays, attrs


def converted_before(directory: Path, name: str, seed: int, source: Path) -> Optional[Path]:
    """A complete converted run named ``name`` of ``source`` (the same file name: its path may be
    spelled another way) and seed in ``directory``, if there is one."""
    for candidate in sorted(directory.glob(f"{name}-s{seed}-*.h5")):
        identity = run_identity(candidate)
        if identity is None:
            continue
        status, config = identity
        recorded_source = str((config.get("conversion") or {}).get("source", ""))
        if (status == "complete" and config.get("name") == name and config.get("seed") == seed
                and Path(recorded_source).name == source.name):
            return candidate
    return None


def convert_run(path: str | Path, steps: Sequence[int], out: Optional[str] = None,
                log=lambda _: None) -> List[Path]:
    """One run file per step count for the converted student of the run at ``path`` (kept where
    one is already complete in the output folder)."""
    run = Run.read(path)
    name, seed = str(run.config.get("name")), run.config.get("seed", 0)
    kept = {count: converted_before(Path(out or run.path.parent), f"{name}-converted-T{count}", seed, run.path)
            for count in steps}
    for count, found in kept.items():
        if found is not None:
            log(f"T={count}: kept {found} (converted before)")
    if all(found is not None for found in kept.values()):
        return [kept[count] for count in steps]
    layers, config, split = converted_layers(run)
    directory = output_directory(config, out or str(run.path.parent))  # beside the run it converts
    labels = np.asarray(run.data.get("class_labels", np.arange(layers[-1].weight.shape[0])), dtype=np.int64)
    paths = []
    for count in steps:
        if kept[count] is not None:
            paths.append(kept[count])
            continue
        val = figures(layers, split.x_val, split.y_val, count)
        test = figures(layers, split.x_test, split.y_test, count)  # the test rows, once
        recorded = copy.deepcopy(run.config)
        recorded["name"] = f"{config.name}-converted-T{count}"
        recorded["student"] = {"backend": "converted", **architecture(json.loads(run.student_attrs["options"])),
                               "steps": count, "neuron": "if", "reset": "subtract"}
        recorded["conversion"] = {"source": str(run.path), "steps": count, "percentile": PERCENTILE,
                                  "balanced_on": "training rows"}
        converted = config.student.model_copy(update={"backend": "converted"})
        stem = run_file_stem(config.model_copy(update={"name": recorded["name"], "student": converted}))
        recorder = RunRecorder.create(directory, stem, json.dumps(recorded),
                                      {"name": recorded["name"], "student_backend": "converted"})
        if run.data or run.data_attrs:  # labels and normalisation, as the source run has them
            recorder.write_arrays("data", run.data, run.data_attrs)
        recorder.write_arrays("student", *network_record(layers, recorded["student"], count, run.student_attrs))
        values = {key: test[key] for key in ("spikes_per_sample", "synops_per_sample", "macs_per_sample",
                                             "energy_nj_per_sample")}
        values.update({
            "student_accuracy": test["accuracy"], "val_accuracy": val["accuracy"], "select": "final",
            "student_params": int(sum(layer.weight.numel() + layer.bias.numel() for layer in layers if is_synapse(layer))),
            "steps": count, "converted_from": str(run.path), "epochs_trained": 0,
            "test_predictions": labels[test["predictions"].numpy()],
            **{key: run.eval[key] for key in ("teacher_accuracy", "teacher_params") if key in run.eval},
        })
        if "teacher_params" in values:
            values["param_ratio"] = values["student_params"] / values["teacher_params"]
        recorder.write_eval(values)
        recorder.finish("complete")
        log(f"T={count}: validation accuracy {val['accuracy']:.4f}, {test['spikes_per_sample']:.1f} spikes per sample, "
            f"record {recorder.path}")
        paths.append(recorder.path)
    return paths
