"""Registry of student/teacher backends, looked up by name.

Backends are imported lazily so that choosing ``dense`` never imports snnTorch or Norse.
"""

from __future__ import annotations

import importlib
from typing import Dict, FrozenSet, Iterable, List, Optional

from tempdistill.config import ConfigError
from tempdistill.student import Backend

ROLES = ("student", "teacher")

_REGISTRY: Dict[str, str] = {
    "dense": "backends.dense:DenseBackend",
    "snntorch": "backends.snntorch_backend:SnnTorchBackend",
    "norse": "backends.norse_backend:NorseBackend",
}
# What each backend can build, kept beside its name so that listing the choices for a field
# imports no backend: the spiking ones build students only.
_ROLES: Dict[str, FrozenSet[str]] = {
    "dense": frozenset(ROLES),
    "snntorch": frozenset({"student"}),
    "norse": frozenset({"student"}),
}
_LOADED: Dict[str, Backend] = {}


def known_backends(role: Optional[str] = None) -> List[str]:
    """Names a config may give as ``student.backend`` / ``teacher.backend``; with ``role``,
    only those that can build that role's network."""
    return sorted(name for name in _REGISTRY if role is None or role in _ROLES.get(name, ROLES))


def register_backend(name: str, target: str, roles: Iterable[str] = ROLES) -> None:
    """Make a backend available by name; ``target`` is 'package.module:ClassName', ``roles``
    what it builds ('student', 'teacher')."""
    _REGISTRY[name] = target
    _ROLES[name] = frozenset(roles)
    _LOADED.pop(name, None)


def get_backend(name: str, field: str = "student.backend") -> Backend:
    """The backend called ``name``; an unknown name, or one that cannot build what ``field``
    asks for (``teacher.backend``), fails listing the names that can."""
    role = field.split(".")[0] if field.split(".")[0] in ROLES else None
    allowed = ", ".join(known_backends(role))
    if name not in _REGISTRY:
        raise ConfigError(f"{field}: unknown backend {name!r}; allowed: {allowed}")
    if role is not None and role not in _ROLES.get(name, ROLES):
        raise ConfigError(f"{field}: {name!r} builds {' and '.join(sorted(_ROLES[name]))}s only; allowed: {allowed}")
    if name not in _LOADED:
        module_name, class_name = _REGISTRY[name].split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"{field}: backend {name!r} cannot be loaded ({exc})") from None
        _LOADED[name] = getattr(module, class_name)()
    return _LOADED[name]
