"""Getting a trained student out of a run file: as a PyTorch checkpoint or as NIR, and back.

The run stores the student's state dict and the options it was built from, so the student
is rebuilt by its backend exactly as trained, then handed to the backend's exporter.

An export carries everything needed to reproduce the run's predictions from raw inputs:
the input normalisation fitted on the run's training split, the class labels the output
indices stand for, the evaluation temperature, and for a spiking student its encoder, number
of steps, readout and θ0 (in the ``.pt`` dict; in a NIR graph's ``metadata['tempdistill']``
as JSON). ``load_predictor(FILE)`` reads either back into a ``Predictor`` whose
``predict(X)`` takes raw features and returns labels; a NIR file is run by Norse's NIR
importer, not by this project's student classes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import torch

from backends import get_backend
from tempdistill.config import ConfigError
from tempdistill.data import IDENTITY, Normalizer
from tempdistill.predict import seeded_argmax, seeded_logits
from tempdistill.record import read_run
from tempdistill.student import Backend, Student

FORMATS = ("nir", "pt")


def _flatten(tree: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    flat: Dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "/"))
        else:
            flat[name] = value
    return flat


def load_student(path: str | Path) -> Tuple[Backend, Student, Dict[str, Any]]:
    """Rebuild the trained student stored in a run file."""
    run = read_run(path)
    attrs = run["student_attrs"]
    if not run["student"] or "backend" not in attrs:
        raise ConfigError(f"RUN: {path} holds no trained student (the run did not complete, or record.save_student was false)")
    backend = get_backend(attrs["backend"])
    options = backend.validate(json.loads(attrs["options"]), "student")
    student = backend.build_student(options, int(attrs["input_dim"]), int(attrs["num_classes"]))
    # h5py splits names with '/', so nested groups are joined back into state-dict keys.
    state = {k.replace("/", "."): torch.as_tensor(v) for k, v in _flatten(run["student"]).items()}
    if "log_std" in state:  # a Gaussian policy's learned spread (``Student.enable_log_std``)
        student.enable_log_std(int(state["log_std"].numel()))
    student.load_state_dict(state)
    student.eval()
    return backend, student, run


EXPORT_FORMAT = 2  # 1: no normalisation, labels or readout facts (runs of format_version 1)


def usage_facts(run: Dict[str, Any], student: Student) -> Dict[str, Any]:
    """What a user needs besides the weights to get the run's predictions from raw inputs."""
    data = run.get("data_attrs", {})
    labels = run.get("data", {}).get("class_labels")
    num_classes = int(run["student_attrs"]["num_classes"])
    return {
        "export_format": EXPORT_FORMAT,
        "backend": run["student_attrs"]["backend"],
        "input_dim": int(run["student_attrs"]["input_dim"]),
        "num_classes": num_classes,
        "class_labels": [int(v) for v in labels] if labels is not None else list(range(num_classes)),
        "normalization": data.get("normalization", IDENTITY.to_json()),
        "eval_temperature": float(run["config"].get("distill", {}).get("eval_temperature", 1.0)),
        "describe": student.describe(),
        "task_facts": json.loads(run["student_attrs"].get("task_facts", "{}") or "{}"),
    }


def export_run(path: str | Path, fmt: str, out: str | Path) -> Path:
    """Write the run's student to ``out`` in ``fmt`` ('nir' or 'pt'), with ``usage_facts``."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format: got {fmt!r}; allowed: {', '.join(FORMATS)}")
    backend, student, run = load_student(path)
    exporter = getattr(backend, "export_nir", None)
    if fmt == "nir" and exporter is None:
        raise ConfigError(f"--format: 'nir' needs a spiking student; this run's student backend is {backend.name!r} (use --format pt)")
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out: {out} is a directory; expected a file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    facts = usage_facts(run, student)
    student.set_temperature(facts["eval_temperature"])
    if fmt == "pt":
        torch.save(
            {
                **facts,
                "options": json.loads(run["student_attrs"]["options"]),
                "state_dict": student.state_dict(),
                "config": run["config"],
                "status": run["status"],
            },
            out,
        )
        return out
    exporter(student, out, {"tempdistill": json.dumps(facts)})
    return out


@dataclass
class Predictor:
    """A loaded export: raw features in, the user's class labels out."""

    forward: Callable[[torch.Tensor], torch.Tensor]
    normalizer: Normalizer
    class_labels: np.ndarray
    facts: Dict[str, Any]

    def predict(self, x: np.ndarray, head: Optional[str] = None) -> np.ndarray:
        """Labels for raw features ``x`` (n, F), normalised as in the run, seeded as in the run.

        A policy's student gives actions for observations: action indices, or for continuous
        actions the Gaussian's mean squashed into the action box as the run acted. A multi-task
        student needs ``head``, the task the observations come from (they are padded and
        one-hot tagged as in the run)."""
        task = self.facts.get("task_facts") or {}
        x = np.asarray(x, dtype=np.float64)
        spec = self._head(task, head)
        width = spec["input_dim"] if spec else self.facts["input_dim"]
        if x.ndim != 2 or x.shape[1] != width:
            raise ValueError(f"x: expected shape (n, {width}), got {x.shape}")
        inputs = torch.as_tensor(self.normalizer.apply(x), dtype=torch.float32)
        if spec is not None:  # a multi-task student: pad, tag, and read the head's columns
            padded = torch.zeros(inputs.shape[0], self.facts["input_dim"])
            padded[:, : inputs.shape[1]] = inputs
            padded[:, task["features"] + [h["name"] for h in task["heads"]].index(spec["name"])] = 1.0
            start, stop = spec["columns"]
            return seeded_logits(self.forward, padded)[:, start:stop].argmax(dim=-1).numpy()
        actions = task.get("actions", {})
        if actions.get("kind") == "gaussian":
            from tempdistill.tasks.actions import GaussianActions

            gaussian = GaussianActions.from_facts(actions)
            logits = seeded_logits(self.forward, inputs) * self.facts.get("eval_temperature", 1.0)  # at T = 1
            return gaussian.to_env(gaussian.student_mean(logits))
        return self.class_labels[seeded_argmax(self.forward, inputs)]

    @staticmethod
    def _head(task: Dict[str, Any], head: Optional[str]) -> Optional[Dict[str, Any]]:
        if task.get("task") != "multitask":
            if head is not None:
                raise ValueError("head: only a multi-task student has heads")
            return None
        names = [h["name"] for h in task["heads"]]
        if head not in names:
            raise ValueError(f"head: got {head!r}; this multi-task student's heads: {', '.join(names)}")
        return task["heads"][names.index(head)]


def load_predictor(path: str | Path) -> Predictor:
    """Read a ``.pt`` or ``.nir`` written by ``tempdistill export`` back into a ``Predictor``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"export file not found: {path}")
    if path.suffix == ".nir":
        import nir

        from spiking.nir_graph import metadata_text

        graph = nir.read(str(path))
        if "tempdistill" not in (graph.metadata or {}):
            raise ConfigError(f"{path}: NIR graph carries no tempdistill metadata (exported by an older version?)")
        facts = json.loads(metadata_text(graph.metadata["tempdistill"]))
        forward = get_backend("norse").nir_forward(str(path), facts["describe"])
    else:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        facts = {k: v for k, v in saved.items() if k not in ("state_dict", "config")}
        backend = get_backend(saved["backend"])
        student = backend.build_student(backend.validate(saved["options"], "student"), saved["input_dim"], saved["num_classes"])
        if "log_std" in saved["state_dict"]:  # a Gaussian policy's learned spread
            student.enable_log_std(int(saved["state_dict"]["log_std"].numel()))
        student.load_state_dict(saved["state_dict"])
        student.eval()
        student.set_temperature(saved.get("eval_temperature", 1.0))
        forward = student
    normalizer = Normalizer.from_json(facts["normalization"]) if "normalization" in facts else IDENTITY
    labels = np.asarray(facts.get("class_labels") or range(facts["num_classes"]), dtype=np.int64)
    return Predictor(forward, normalizer, labels, facts)

