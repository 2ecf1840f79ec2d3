"""What a Python caller hands to a run beside its config: arrays, a teacher module, stored logits.

A config names everything a run reads by a name or a file; a caller in Python may already hold
the objects. ``runner.execute(config, given=InMemory(...))`` takes them, and the config says
that it does, so a run file's ``/config`` still tells what the run was given:

- ``data: {name: arrays}`` reads ``InMemory.data`` (an ``ArrayData``), checked like a ``.npz``;
- ``teacher: {source: module}`` uses ``InMemory.teacher`` (a ``torch.nn.Module``), which reads
  the inputs as the caller gave them;
- ``teacher: {source: logits}`` reads ``InMemory.logits`` (a ``StoredLogits``) when given, else
  ``teacher_logits`` from the ``.npz``.

Something given that the config does not name (or named and not given) is refused in one
line, so nothing given is silently ignored. The run file records fingerprints (SHA-256) of
what came from memory, since no file path can identify it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, List, Optional

import torch

from tempdistill.config import ConfigError, RunConfig


@dataclass(frozen=True)
class ArrayData:
    """A user's arrays given from Python (numpy arrays or tensors): inputs (n, F) and integer
    class labels (n,), with optional own validation and test parts; a part not given is carved
    from ``X`` as for a ``.npz`` (``data.val_fraction``, ``data.test_fraction``, seeded)."""

    X: Any
    y: Any
    X_val: Any = None
    y_val: Any = None
    X_test: Any = None
    y_test: Any = None

    def names(self) -> List[str]:
        """The arrays given, by their ``.npz`` names."""
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]


@dataclass(frozen=True)
class StoredLogits:
    """A teacher's logits computed elsewhere, (n, K) each, aligned row for row with the data's
    parts: ``train`` with ``X``, ``val`` with ``X_val``, ``test`` with ``X_test`` (like
    ``teacher_logits``, ``teacher_logits_val`` and ``teacher_logits_test`` in a ``.npz``)."""

    train: Any
    val: Any = None
    test: Any = None


@dataclass(frozen=True)
class InMemory:
    """What a Python caller hands to ``runner.execute`` beside the config (all optional)."""

    teacher: Optional[torch.nn.Module] = None
    data: Optional[ArrayData] = None
    logits: Optional[StoredLogits] = None

    def parts(self) -> List[str]:
        """The names of what was given."""
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]


def as_array(value: Any) -> Any:
    """A numpy view of a given array (a tensor is detached and brought to the CPU first)."""
    import numpy as np

    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def check_given(config: RunConfig, given: InMemory, accepted: bool) -> None:
    """Refuse, in one line, what was given in memory that the config does not name, what it
    names that was not given, and objects of the wrong type; ``accepted``: whether the task
    takes anything from memory at all."""
    if given.parts() and not accepted:
        raise ConfigError(f"given: {', '.join(given.parts())} given in memory, but task {config.task!r} takes "
                          "nothing from memory; allowed: task 'classification'")
    for name, kind, type_name in (("teacher", torch.nn.Module, "a torch.nn.Module"), ("data", ArrayData, "an ArrayData"),
                                  ("logits", StoredLogits, "a StoredLogits")):
        value = getattr(given, name)
        if value is not None and not isinstance(value, kind):
            raise ConfigError(f"given.{name}: expected {type_name}, got {type(value).__name__}")
    if config.data.name == "arrays" and given.data is None:
        raise ConfigError("data.name: 'arrays' reads arrays given in memory (given=InMemory(data=ArrayData(X, y))), "
                          "and none were given; allowed for a config file: 'digits', 'mnist1d', 'npz'")
    if given.data is not None and config.data.name != "arrays":
        raise ConfigError(f"data.name: arrays were given in memory, but data.name is {config.data.name!r}; "
                          "set data.name: arrays to use them")
    source = config.teacher.source
    if source == "module" and given.teacher is None:
        raise ConfigError("teacher.source: 'module' uses a torch.nn.Module given in memory "
                          "(given=InMemory(teacher=model)), and none was given; allowed without one: 'auto', 'logits'")
    if given.teacher is not None and source != "module":
        raise ConfigError(f"teacher.source: a teacher module was given in memory, but teacher.source is {source!r}; "
                          "set teacher.source: module to use it")
    if given.logits is not None and source != "logits":
        raise ConfigError(f"teacher.source: logits were given in memory, but teacher.source is {source!r}; "
                          "set teacher.source: logits to use them")
    if source == "logits" and config.data.name == "arrays" and given.logits is None:
        raise ConfigError("teacher.source: 'logits' with data.name 'arrays' reads logits given in memory "
                          "(given=InMemory(logits=StoredLogits(train, val, test))), and none were given")
