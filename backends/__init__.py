"""Registry of student/teacher backends, looked up by name.

Backends are imported lazily so that choosing ``dense`` never imports snnTorch or Norse.
"""

from __future__ import annotations

import importlib
from typing import Dict, List

from tempdistill.config import ConfigError
from tempdistill.student import Backend

_REGISTRY: Dict[str, str] = {
    "dense": "backends.dense:DenseBackend",
    "snntorch": "backends.snntorch_backend:SnnTorchBackend",
    "norse": "backends.norse_backend:NorseBackend",
}
_LOADED: Dict[str, Backend] = {}


def known_backends() -> List[str]:
    """Names a config may give as ``student.backend`` / ``teacher.backend``."""
    return sorted(_REGISTRY)


def register_backend(name: str, target: str) -> None:
    """Make a backend available by name; ``target`` is 'package.module:ClassName'."""
    _REGISTRY[name] = target
    _LOADED.pop(name, None)


def get_backend(name: str, field: str = "student.backend") -> Backend:
    """The backend called ``name``; an unknown name fails listing the known ones."""
    if name not in _REGISTRY:
        raise ConfigError(f"{field}: unknown backend {name!r}; known: {', '.join(known_backends())}")
    if name not in _LOADED:
        module_name, class_name = _REGISTRY[name].split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"{field}: backend {name!r} cannot be loaded ({exc})") from None
        _LOADED[name] = getattr(module, class_name)()
    return _LOADED[name]
