"""tempdistill: temperature-controlled knowledge distillation into dense and spiking students.

The public names are below (``__all__``); they are imported when first used, so ``import
tempdistill`` and the command line start fast. Modules not reached from here are internal:
their names may change between versions. The core (temperature, losses, schedules,
information) imports neither snnTorch nor Norse; concrete students live in the sibling
package ``backends``.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_PUBLIC = {
    "distill": "tempdistill.api",
    "run": "tempdistill.api",
    "load_run": "tempdistill.api",
    "Run": "tempdistill.record.run",
    "ArrayData": "tempdistill.tasks.sources",
    "StoredLogits": "tempdistill.tasks.sources",
    "Callback": "tempdistill.core.callbacks",
    "EpochEnd": "tempdistill.core.callbacks",
    "ConfigError": "tempdistill.errors",
    "runs_frame": "tempdistill.analysis.comparison",
    "load_predictor": "tempdistill.record.export",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tempdistill' has no attribute {name!r}")


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__))
