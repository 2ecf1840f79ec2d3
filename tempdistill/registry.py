"""Names a config may choose from: tasks, backends, temperature schedules, all listed here.

One mechanism for all three. A name maps to ``'package.module:attribute'``, imported the first
time the name is used, so listing the choices (an error message, a did-you-mean) imports
nothing: choosing ``dense`` never imports snnTorch or Norse. An entry may carry tags (what a
backend can build: ``student``, ``teacher``), so a field lists only the names that work there.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Optional

from tempdistill.errors import ConfigError


@dataclass(frozen=True)
class Entry:
    target: str  # 'package.module:attribute'
    tags: FrozenSet[str] = frozenset()


class Registry:
    """The ``kind`` of thing (``task``, ``backend``, ``schedule``) a config names, by name."""

    def __init__(self, kind: str, entries: Mapping[str, str | Entry] = ()) -> None:
        self.kind = kind
        self._entries: Dict[str, Entry] = {}
        self._loaded: Dict[str, Any] = {}
        for name, entry in dict(entries).items():
            self.register(name, entry)

    def register(self, name: str, target: str | Entry, tags: Iterable[str] = ()) -> None:
        """Make ``target`` (``'package.module:attribute'``) available as ``name``."""
        self._entries[name] = target if isinstance(target, Entry) else Entry(target, frozenset(tags))
        self._loaded.pop(name, None)

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)
        self._loaded.pop(name, None)

    def names(self, tag: Optional[str] = None) -> List[str]:
        """The names, sorted; with ``tag``, only those whose entry carries it."""
        return sorted(name for name, entry in self._entries.items() if tag is None or tag in entry.tags)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def tags(self, name: str) -> FrozenSet[str]:
        return self._entries[name].tags

    def unknown(self, name: Any, field: str, tag: Optional[str] = None) -> ConfigError:
        """The one-line error for a name that is not here (or lacks ``tag``), listing those that are."""
        return ConfigError(f"{field}: unknown {self.kind} {name!r}; allowed: {', '.join(self.names(tag))}")

    def load(self, name: str, field: str) -> Any:
        """The attribute ``name`` stands for, imported on first use."""
        if name not in self._entries:
            raise self.unknown(name, field)
        if name not in self._loaded:
            module_name, _, attribute = self._entries[name].target.partition(":")
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                raise ConfigError(f"{field}: {self.kind} {name!r} cannot be loaded ({exc})") from None
            self._loaded[name] = getattr(module, attribute)
        return self._loaded[name]


TASKS = Registry("task", {
    "classification": "tempdistill.tasks.classification:ClassificationTask",
    "policy": "tempdistill.tasks.policy:PolicyTask",
    "multitask": "tempdistill.tasks.multitask:MultiTask",
})

# Tags: what each backend can build; the spiking ones build students only.
BACKENDS = Registry("backend", {
    "dense": Entry("backends.dense:DenseBackend", frozenset({"student", "teacher"})),
    "snntorch": Entry("backends.snntorch_backend:SnnTorchBackend", frozenset({"student"})),
    "norse": Entry("backends.norse_backend:NorseBackend", frozenset({"student"})),
})

SCHEDULES = Registry("schedule", {name: f"tempdistill.schedules:{cls}" for name, cls in (
    ("constant", "Constant"), ("linear", "Linear"), ("cosine", "Cosine"), ("exponential", "Exponential"),
    ("step", "Step"), ("two_phase", "TwoPhase"), ("adaptive", "Adaptive"), ("learnable", "Learnable"),
    ("ctkd", "Ctkd"), ("instance", "Instance"), ("logit_std", "LogitStd"))})
