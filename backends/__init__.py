"""Student and teacher backends, looked up by name (``tempdistill.registry``).

Backends are imported lazily so that choosing ``dense`` never imports snnTorch or Norse. Each
entry says what it can build (``student``, ``teacher``) without importing it, so a field lists
only the backends that work there.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional

from tempdistill.errors import ConfigError
from tempdistill.registry import BACKENDS
from tempdistill.core.student import Backend

ROLES = ("student", "teacher")

_INSTANCES: Dict[str, Backend] = {}


def known_backends(role: Optional[str] = None) -> List[str]:
    """Names a config may give as ``student.backend`` / ``teacher.backend``; with ``role``,
    only those that can build that role's network."""
    return BACKENDS.names(role)


def register_backend(name: str, target: str, roles: Iterable[str] = ROLES) -> None:
    """Make a backend available by name; ``target`` is 'package.module:ClassName', ``roles``
    what it builds ('student', 'teacher')."""
    BACKENDS.register(name, target, roles)
    _INSTANCES.pop(name, None)


def get_backend(name: str, field: str = "student.backend") -> Backend:
    """The backend called ``name``; an unknown name, or one that cannot build what ``field``
    asks for (``teacher.backend``), fails listing the names that can."""
    role = field.split(".")[0] if field.split(".")[0] in ROLES else None
    if name not in BACKENDS:
        raise BACKENDS.unknown(name, field, role)
    if role is not None and role not in BACKENDS.tags(name):
        raise ConfigError(f"{field}: {name!r} builds {' and '.join(sorted(BACKENDS.tags(name)))}s only; "
                          f"allowed: {', '.join(known_backends(role))}")
    if name not in _INSTANCES:
        _INSTANCES[name] = BACKENDS.load(name, field)()
    return _INSTANCES[name]
