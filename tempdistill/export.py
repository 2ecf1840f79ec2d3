"""Getting a trained student out of a run file: as a PyTorch checkpoint or as NIR.

The run stores the student's state dict and the options it was built from, so the student
is rebuilt by its backend exactly as trained, then handed to the backend's exporter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Tuple

import torch

from backends import get_backend
from tempdistill.config import ConfigError
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
    student.load_state_dict(state)
    student.eval()
    return backend, student, run


def export_run(path: str | Path, fmt: str, out: str | Path) -> Path:
    """Write the run's student to ``out`` in ``fmt`` ('nir' or 'pt')."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format: got {fmt!r}; allowed: {', '.join(FORMATS)}")
    backend, student, run = load_student(path)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "pt":
        torch.save(
            {
                "backend": backend.name,
                "options": json.loads(run["student_attrs"]["options"]),
                "input_dim": int(run["student_attrs"]["input_dim"]),
                "num_classes": int(run["student_attrs"]["num_classes"]),
                "state_dict": student.state_dict(),
                "config": run["config"],
            },
            out,
        )
        return out
    exporter = getattr(backend, "export_nir", None)
    if exporter is None:
        raise ConfigError(f"--format: 'nir' needs a spiking student; this run's student backend is {backend.name!r} (use --format pt)")
    student.set_temperature(run["config"].get("distill", {}).get("eval_temperature", 1.0))
    exporter(student, out)
    return out
