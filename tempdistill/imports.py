"""A user's object named by import path, ``package.module:name``: a custom temperature schedule
(``distill.temperature.schedule``) or a teacher factory (``teacher.factory``).

Importing runs the module's top-level code. That is the point of naming your own class or
factory, and the docs say so; nothing else in tempdistill imports a module a config names.
The module must be importable as it stands (installed, or on ``PYTHONPATH``).
"""

from __future__ import annotations

import importlib
from typing import Any

from tempdistill.config import ConfigError


def import_object(target: str, field: str) -> Any:
    """The object ``name`` of module ``package.module`` for a target ``'package.module:name'``.

    Any failure (no such module, a module that raises while importing, no such name) is one
    line naming ``field`` and the error, never a traceback: the module is the user's code.
    """
    module_name, _, name = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), name)
    except Exception as exc:  # a user's module can fail to import in any way (SyntaxError, its own errors)
        raise ConfigError(f"{field}: cannot import {target!r} ({type(exc).__name__}: {exc})") from None
