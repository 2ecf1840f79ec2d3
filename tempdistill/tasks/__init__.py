"""Tasks: what is distilled, behind one interface (``tempdistill.tasks.base.Task``).

A task owns where the training batches come from, what the teacher says about them, how a
student is scored on held-out data and what extra the record gets. The distiller's loop is
the same for every task; the runner picks the task named by the config's ``task:`` here.
Tasks are imported lazily, so classification never imports gymnasium or Stable-Baselines3.
"""

from __future__ import annotations

import importlib
from typing import Any, Dict, List

from tempdistill.config import ConfigError

_REGISTRY: Dict[str, str] = {
    "classification": "tempdistill.tasks.classification:ClassificationTask",
    "policy": "tempdistill.tasks.policy:PolicyTask",
    "multitask": "tempdistill.tasks.multitask:MultiTask",
}


def known_tasks() -> List[str]:
    """Names a config may give as ``task``."""
    return sorted(_REGISTRY)


def get_task_class(name: str) -> Any:
    """The task class called ``name``; an unknown or not yet available one fails naming the known."""
    if name not in _REGISTRY:
        raise ConfigError(f"task: {name!r} is not available; allowed: {', '.join(repr(k) for k in known_tasks())}")
    module_name, class_name = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)
