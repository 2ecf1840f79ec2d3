"""tempdistill from Python: distil a teacher you hold, run a config, read a run.

Every function here makes or reads the same HDF5 run file as the command line (which is a
layer over ``run``): a run made from a notebook is an ordinary run that ``tempdistill show``,
``compare``, ``report`` and ``export`` read. Bad input raises ``tempdistill.ConfigError`` with
the CLI's one-line message, before anything is trained.

    import tempdistill as td
    run = td.distill(teacher=my_model, data=td.ArrayData(X, y, X_test=Xt, y_test=yt),
                     student={"backend": "snntorch", "hidden": [64]},
                     temperature={"schedule": "cosine", "start": 8, "end": 1}, epochs=40, out="runs/mine")
    run.eval["student_accuracy"], run.metrics, run.student, run.predict(X_raw), run.export("s.nir")

Progress and warnings go to the ``tempdistill`` logger (warnings reach stderr unless logging
is configured otherwise).
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

from tempdistill.core.callbacks import Callback
from tempdistill.config import ConfigError, config_from_mapping, read_yaml, set_path
from tempdistill.core.interrupt import NEVER, StopRequest
from tempdistill.record.run import Run, load_run

__all__ = ["distill", "run", "load_run"]

LOGGER = logging.getLogger("tempdistill")

# data= given as a name: the bundled data sets (anything else is a path to a user's .npz).
BUNDLED_DATA = ("digits", "mnist1d")


def run(config: str | Path | Mapping[str, Any], *, out: Optional[str | Path] = None, set: Sequence[str] = (),
        callbacks: Sequence[Callback] = (), stop: StopRequest = NEVER, given: Any = None,
        log: Callable[[str], None] = LOGGER.info, warn: Callable[[str], None] = LOGGER.warning,
        **overrides: Any) -> Run:
    """Run one distillation from a config file or mapping and return it as a ``Run``.

    :param config: a YAML file (relative paths in it are read against its folder) or a mapping
        of the same sections.
    :param out: the folder for the run file (default: the config's ``record.dir``).
    :param set: ``"key=value"`` overrides as the CLI's ``--set`` takes them (YAML values).
    :param callbacks: ``tempdistill.Callback`` objects called after every epoch.
    :param given: teacher and data held in memory (``tempdistill.tasks.sources.InMemory``), for the
        config's ``teacher.source: module`` / ``logits`` and ``data.name: arrays``.
    :param log: where progress lines go; ``warn``: where warnings go (both also recorded).
    :param overrides: dotted keys with Python values, e.g. ``**{"student.backend": "norse"}``.
    """
    raw = read_yaml(config) if isinstance(config, (str, Path)) else copy.deepcopy(dict(config))
    for key, value in overrides.items():
        set_path(raw, key, value)
    resolved = config_from_mapping(raw, list(set))
    recorded = [*set, *(f"{key}={json.dumps(value, default=str)}" for key, value in overrides.items())]
    from tempdistill.runner import execute

    extra = {"given": given} if given is not None else {}
    path = execute(resolved, None if out is None else str(out), log=log, stop=stop, overrides=recorded, warn=warn,
                   callbacks=callbacks, **extra)
    return Run.read(path)


def distill(teacher: Any, data: Any, *, student: Optional[Mapping[str, Any]] = None, temperature: Any = None,
            epochs: Optional[int] = None, alpha: Optional[float] = None, out: str | Path = "runs",
            name: str = "distill", seed: int = 0, device: str = "cpu", callbacks: Sequence[Callback] = (),
            stop: StopRequest = NEVER, **overrides: Any) -> Run:
    """Distil ``teacher`` into a student on ``data`` and return the run.

    :param teacher: an ``nn.Module`` that maps the raw inputs to logits; a path to a
        TorchScript archive or a tempdistill teacher ``.pt``; ``StoredLogits`` (no network);
        a mapping of ``teacher:`` config keys (``{"factory": ..., "checkpoint": ...}``); or
        ``None`` to have tempdistill train its own teacher on the data.
    :param data: ``ArrayData``, a pair ``(X, y)``, ``"digits"`` / ``"mnist1d"``, a path to a
        ``.npz``, or a mapping of ``data:`` config keys.
    :param student: ``student:`` config keys (backend, hidden, steps, ...); default a dense [64].
    :param temperature: a number (constant T) or a ``distill.temperature`` mapping (a schedule).
    :param overrides: any other config key, dotted: ``**{"distill.lr": 0.005}``.
    """
    teacher_section, teacher_given = _teacher_section(teacher)
    data_section, data_given = _data_section(data)
    distill_section: Dict[str, Any] = {}
    if temperature is not None:
        distill_section["temperature"] = (dict(temperature) if isinstance(temperature, Mapping)
                                          else {"schedule": "constant", "value": temperature})
    if epochs is not None:
        distill_section["epochs"] = epochs
    if alpha is not None:
        distill_section["alpha"] = alpha
    mapping = {"name": name, "seed": seed, "device": device, "task": "classification", "data": data_section,
               "teacher": teacher_section, "student": dict(student or {}), "distill": distill_section,
               "record": {"dir": str(out)}}
    given = None
    if teacher_given or data_given:
        from tempdistill.tasks.sources import InMemory

        given = InMemory(**teacher_given, **data_given)
    return run(mapping, callbacks=callbacks, stop=stop, given=given, **overrides)


def _teacher_section(teacher: Any) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The ``teacher:`` config section for what was passed, and what goes in memory."""
    import torch

    from tempdistill.tasks.sources import StoredLogits

    if teacher is None:
        return {}, {}
    if isinstance(teacher, torch.nn.Module):
        return {"source": "module"}, {"teacher": teacher}
    if isinstance(teacher, StoredLogits):
        return {"source": "logits"}, {"logits": teacher}
    if isinstance(teacher, (str, Path)):
        return {"checkpoint": str(teacher)}, {}
    if isinstance(teacher, Mapping):
        return dict(teacher), {}
    raise ConfigError(f"teacher: got a {type(teacher).__name__}; allowed: a torch.nn.Module, a checkpoint path, "
                      "tempdistill.StoredLogits, a mapping of teacher keys, or None (train one)")


def _data_section(data: Any) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The ``data:`` config section for what was passed, and what goes in memory."""
    from tempdistill.tasks.sources import ArrayData

    if isinstance(data, tuple) and len(data) == 2:
        data = ArrayData(*data)
    if isinstance(data, ArrayData):
        return {"name": "arrays"}, {"data": data}
    if isinstance(data, str) and data in BUNDLED_DATA:
        return {"name": data}, {}
    if isinstance(data, (str, Path)):
        return {"name": "npz", "path": str(data)}, {}
    if isinstance(data, Mapping):
        return dict(data), {}
    raise ConfigError(f"data: got a {type(data).__name__}; allowed: tempdistill.ArrayData, a pair (X, y), "
                      f"{', '.join(repr(n) for n in BUNDLED_DATA)}, a path to a .npz, or a mapping of data keys")

