"""A run file as one typed Python object: what a notebook, a script and the Python API read.

``read_run`` returns a run as a dictionary of plain objects, which the CLI's readers share;
``Run`` wraps that dictionary with names, a per-epoch ``DataFrame`` and the run's trained
student, so a user never has to know the HDF5 layout. Any format version ``read_run`` reads,
``Run`` reads; a damaged file is refused by the same one-line checks (``runfile``).
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from tempdistill.record.run_file import Traces, read_run


class Run:
    """One run file.

    :ivar path: the HDF5 file.
    :ivar status: ``complete``, ``running`` (killed), ``interrupted`` or ``failed``.
    :ivar config: the resolved config the run was made with (a mapping, as recorded).
    :ivar eval: the final figures (``/eval``): ``student_accuracy`` or ``student_return_mean``,
        ``teacher_accuracy``, parameter counts, latency, ...
    :ivar warnings: what the run warned about (silent layers, a mismatched algorithm, ...).
    :ivar traces: epoch -> spike and membrane traces of the probes, read when asked for.
    """

    def __init__(self, record: Dict[str, Any]) -> None:
        self.record = record
        self.path = Path(record["path"])
        self.status: str = record["status"]
        self.format_version: int = record["format_version"]
        self.config: Dict[str, Any] = record["config"]
        self.eval: Dict[str, Any] = record["eval"]
        self.warnings: List[str] = record["warnings"]
        self.episodes: Dict[str, Any] = record["episodes"]
        self.traces: Traces = record["traces"]

    @classmethod
    def read(cls, path: str | Path) -> "Run":
        """The run stored at ``path``."""
        return cls(read_run(path))

    @property
    def name(self) -> str:
        return str(self.config.get("name", self.path.stem))

    @cached_property
    def metrics(self) -> Any:
        """One row per finished epoch, one column per measure (``/metrics``), as a pandas
        ``DataFrame`` indexed by epoch (0-based)."""
        import pandas as pd

        series = {name: pd.Series(np.asarray(values, dtype=float)) for name, values in self.record["metrics"].items()}
        frame = pd.DataFrame(series)
        if "epoch" in frame:
            frame.index = frame.pop("epoch").astype(int)
            frame.index.name = "epoch"
        return frame

    @cached_property
    def steps(self) -> Any:
        """One row per optimisation step (``/steps``: T, output threshold trace, ...)."""
        import pandas as pd

        return pd.DataFrame({name: pd.Series(np.asarray(v, dtype=float)) for name, v in self.record["steps"].items()})

    @cached_property
    def student(self) -> Any:
        """The trained student as a torch module in eval mode, at the run's evaluation
        temperature, holding the weights the run reports (``eval["select"]``)."""
        from tempdistill.record.export import load_student

        _, student, _ = load_student(self.path)
        student.set_temperature(float(self.config.get("distill", {}).get("eval_temperature", 1.0)))
        return student

    def predict(self, x: Any, head: Optional[str] = None) -> np.ndarray:
        """The student's answers for raw inputs ``x`` (n, F), normalised as in the run: the
        user's class labels, or a policy's actions (``head`` for a multi-task student)."""
        from tempdistill.record.export import run_predictor

        return run_predictor(self.path).predict(np.asarray(x), head=head)

    def export(self, out: str | Path, format: Optional[str] = None) -> Path:
        """Write the student to ``out`` as ``tempdistill export`` does; ``format`` ('pt' or
        'nir') defaults to the file's suffix."""
        from tempdistill.config import ConfigError
        from tempdistill.record.export import FORMATS, export_run

        fmt = format or Path(out).suffix.lstrip(".")
        if fmt not in FORMATS:
            raise ConfigError(f"format: got {fmt!r} (from {'the argument' if format else 'the file suffix'}); "
                              f"allowed: {', '.join(FORMATS)}")
        return export_run(self.path, fmt, out)

    def overrides(self) -> List[str]:
        """The ``--set`` (or keyword) overrides the run was made with."""
        return list(json.loads(self.record["attrs"].get("overrides", "[]") or "[]"))

    def __repr__(self) -> str:
        score = next((f"{k}={self.eval[k]:.4g}" for k in ("student_accuracy", "student_return_mean", "return_retained")
                      if isinstance(self.eval.get(k), (int, float))), "")
        return f"Run({self.name!r}, {self.status}{', ' + score if score else ''}, path={str(self.path)!r})"


def load_run(path: str | Path) -> Run:
    """Read any run file (any format version) as a ``Run``."""
    return Run.read(path)

