"""Tasks: what is distilled, behind one interface (``tempdistill.tasks.base.Task``).

A task owns where the training batches come from, what the teacher says about them, how a
student is scored on held-out data and what extra the record gets. The distiller's loop is
the same for every task; the runner picks the task named by the config's ``task:`` here.
Tasks are imported lazily (``tempdistill.registry``), so classification never imports
gymnasium or Stable-Baselines3.
"""

from __future__ import annotations

from typing import Any, List

from tempdistill.registry import TASKS


def known_tasks() -> List[str]:
    """Names a config may give as ``task``."""
    return TASKS.names()


def get_task_class(name: str) -> Any:
    """The task class called ``name``; an unknown one fails naming the known."""
    return TASKS.load(name, "task")
