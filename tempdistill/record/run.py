"""A run file as one typed Python object: what every reader of runs takes.

``read_run`` returns a run as a dictionary of plain Python/numpy objects (its documented
contract); ``Run`` is built from that dictionary and names each part, so a reader never has to
know the HDF5 layout nor the dictionary's keys. Every reader in tempdistill (``show``,
``compare``, ``report``, the statistics over seeds, a sweep's summary, the claims study, export,
the demo) takes ``Run`` objects and reads files through ``Run.read`` (``load_run``). Any format
version ``read_run`` reads, ``Run`` reads; a damaged file is refused by the same one-line checks
(``tempdistill.record.checks``).

A ``Run`` is cheap: pandas is imported only when ``metrics`` or ``steps`` is asked for, traces
are read from the file an epoch at a time when asked for, and the student is rebuilt only when
``student``, ``predict`` or ``export`` needs it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from tempdistill.record.run_file import FORMAT_VERSION, read_run


@dataclass(eq=False, repr=False)
class Run:
    """One run file (its groups are laid out in ``docs/record.md``).

    :ivar path: the HDF5 file.
    :ivar status: ``complete``, ``running`` (killed), ``interrupted`` or ``failed``.
    :ivar format_version: the file's format version (1 to 5; ``run_file`` says what each added).
    :ivar config: the resolved config the run was made with (a mapping, as recorded).
    :ivar eval: the final figures (``/eval``): ``student_accuracy`` or ``student_return_mean``,
        ``teacher_accuracy``, parameter counts, latency, ..., and its arrays (``test_predictions``).
    :ivar series: the per-epoch measures (``/metrics``), name -> 1-D array, one entry per
        finished epoch (``metrics`` is the same as a pandas ``DataFrame``).
    :ivar step_series: the per-optimisation-step series (``/steps``), name -> 1-D array
        (``steps`` is the same as a ``DataFrame``).
    :ivar temperature: per-group or per-head T per epoch (``/temperature``), name -> 1-D array.
    :ivar episodes: a policy's test episodes (``/episodes``): returns, lengths, rollouts.
    :ivar traces: epoch -> spike and membrane traces of the probes, read from the file when asked for.
    :ivar attrs: the file's root attributes (``created``, ``finished``, ``error``, ``overrides``, ...).
    :ivar warnings: what the run warned about (silent layers, a mismatched algorithm, ...).
    :ivar env: the versions the run was made with (``/env``).
    :ivar data: ``/data``'s arrays (``class_labels``); ``data_attrs``: its attributes
        (``normalization``, ``n_train``, ``n_val``, ``n_test``, ...).
    :ivar student_arrays: the trained student's weights as stored (``/student``; names with a
        '.' are nested groups); ``student_attrs``: what rebuilds it (``backend``, ``options``,
        ``input_dim``, ``num_classes``, ``weights``, ...).
    :ivar label: how a comparison names the run among those read with it
        (``tempdistill.analysis.comparison.read_runs`` sets it); ``None`` for a run read alone.
    """

    path: Path
    status: str
    format_version: int
    config: Dict[str, Any]
    eval: Dict[str, Any]
    series: Dict[str, np.ndarray]
    step_series: Dict[str, np.ndarray]
    temperature: Dict[str, np.ndarray]
    episodes: Dict[str, Any]
    traces: Mapping[int, Dict[str, Any]]
    attrs: Dict[str, Any]
    warnings: List[str]
    env: Dict[str, Any]
    data: Dict[str, Any]
    data_attrs: Dict[str, Any]
    student_arrays: Dict[str, Any]
    student_attrs: Dict[str, Any]
    label: Optional[str] = None

    @classmethod
    def read(cls, path: str | Path) -> "Run":
        """The run stored at ``path`` (``FileNotFoundError``, or ``RunFileError`` with one line
        for a file that is not a readable run)."""
        return cls.from_record(read_run(path))

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "Run":
        """The run that ``tempdistill.record.read_run`` returned as a dictionary."""
        return cls(
            path=Path(record["path"]), status=record["status"], format_version=record["format_version"],
            config=record["config"], eval=record["eval"], series=record["metrics"], step_series=record["steps"],
            temperature=record["temperature"], episodes=record["episodes"], traces=record["traces"],
            attrs=record["attrs"], warnings=record["warnings"], env=record["env"], data=record["data"],
            data_attrs=record["data_attrs"], student_arrays=record["student"], student_attrs=record["student_attrs"],
        )

    @classmethod
    def from_parts(cls, *, path: str | Path = "run.h5", status: str = "complete",
                   format_version: int = FORMAT_VERSION, **parts: Any) -> "Run":
        """A run made in memory (tests, a what-if in a notebook): the parts given, every other
        group empty, as ``read_run`` gives a file that lacks it."""
        empty = {name: {} for name in ("config", "eval", "series", "step_series", "temperature", "episodes",
                                        "traces", "attrs", "env", "data", "data_attrs", "student_arrays",
                                        "student_attrs")}
        return cls(path=Path(path), status=status, format_version=format_version,
                   **{"warnings": [], **empty, **parts})

    @property
    def name(self) -> str:
        return str(self.config.get("name", self.path.stem))

    @cached_property
    def metrics(self) -> Any:
        """One row per finished epoch, one column per measure (``/metrics``), as a pandas
        ``DataFrame`` indexed by epoch (0-based)."""
        frame = _frame(self.series)
        if "epoch" in frame:
            frame.index = frame.pop("epoch").astype(int)
            frame.index.name = "epoch"
        return frame

    @cached_property
    def steps(self) -> Any:
        """One row per optimisation step (``/steps``: T, output threshold trace, ...), as a pandas
        ``DataFrame``."""
        return _frame(self.step_series)

    @cached_property
    def student(self) -> Any:
        """The trained student as a torch module in eval mode, at the run's evaluation
        temperature, holding the weights the run reports (``eval["select"]``)."""
        from tempdistill.record.export import load_student

        _, student = load_student(self)
        student.set_temperature(float(self.config.get("distill", {}).get("eval_temperature", 1.0)))
        return student

    def predict(self, x: Any, head: Optional[str] = None) -> np.ndarray:
        """The student's answers for raw inputs ``x`` (n, F), normalised as in the run: the
        user's class labels, or a policy's actions (``head`` for a multi-task student)."""
        from tempdistill.record.export import run_predictor

        return run_predictor(self).predict(np.asarray(x), head=head)

    def export(self, out: str | Path, format: Optional[str] = None) -> Path:
        """Write the student to ``out`` as ``tempdistill export`` does; ``format`` ('pt' or
        'nir') defaults to the file's suffix."""
        from tempdistill.config import ConfigError
        from tempdistill.record.export import FORMATS, export_run

        fmt = format or Path(out).suffix.lstrip(".")
        if fmt not in FORMATS:
            raise ConfigError(f"format: got {fmt!r} (from {'the argument' if format else 'the file suffix'}); "
                              f"allowed: {', '.join(FORMATS)}")
        return export_run(self, fmt, out)

    def overrides(self) -> List[str]:
        """The ``--set`` (or keyword) overrides the run was made with."""
        return list(json.loads(self.attrs.get("overrides", "[]") or "[]"))

    def __repr__(self) -> str:
        score = next((f"{k}={self.eval[k]:.4g}" for k in ("student_accuracy", "student_return_mean", "return_retained")
                      if isinstance(self.eval.get(k), (int, float))), "")
        return f"Run({self.name!r}, {self.status}{', ' + score if score else ''}, path={str(self.path)!r})"


def _frame(series: Mapping[str, Any]) -> Any:
    """Series of any lengths as one float ``DataFrame`` (a shorter one padded with NaN)."""
    import pandas as pd

    return pd.DataFrame({name: pd.Series(np.asarray(values, dtype=float)) for name, values in series.items()})


def load_run(path: str | Path) -> Run:
    """Read any run file (any format version) as a ``Run``."""
    return Run.read(path)
