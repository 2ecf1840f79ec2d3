"""Teacher files from others, read without running Python code from them.

Three kinds of file are read, each told apart by its content, never by its name:

- **weights** (tempdistill's own checkpoint, or a state dict for ``teacher.factory``):
  ``torch.load(weights_only=True)``, which rebuilds tensors and plain containers only;
- **TorchScript** (``torch.jit.script(model).save(path)`` or ``torch.jit.trace``): a zip
  archive whose entries hold ``constants.pkl`` and ``code/``. Only once it is recognised is it
  given to ``torch.jit.load``, which reads the archive's own pickles with TorchScript's
  unpickler (tensors and TorchScript types, no Python globals) and compiles its code for the
  TorchScript interpreter: the model's forward is the archive's TorchScript code, and it runs
  there, with the operators TorchScript offers, not as Python;
- anything else is refused. A whole module pickled with ``torch.save(model)`` is refused
  too, though PyTorch could open it: unpickling it imports and calls whatever its pickle
  names, which is running the file's code. The message says the three ways that work.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from tempdistill.config import ConfigError

OWN_TEACHER_WAYS = ("a teacher of your own is read as TorchScript (torch.jit.script(model).save(path)), as "
                    "teacher.factory with a state dict (torch.save(model.state_dict(), path)), or as stored logits "
                    "(teacher.source: logits)")


def is_torchscript(path: str | Path) -> bool:
    """Whether the file is a TorchScript archive: a zip with ``constants.pkl`` and ``code/``
    under its one top folder (what ``torch.jit.save`` writes, whatever the file is called)."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return False
    inner = [name.split("/", 1)[1] for name in names if "/" in name]
    return "constants.pkl" in inner and any(name.startswith("code/") for name in inner)


def load_torchscript(path: str | Path, device: str, field: str = "teacher.checkpoint") -> torch.jit.ScriptModule:
    """A recognised TorchScript archive, loaded onto ``device``; a damaged one is one line."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit's deprecation notices are not the user's business here
            module = torch.jit.load(str(path), map_location=device)
    except Exception as exc:  # torch.jit raises RuntimeError and others for a damaged archive
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ConfigError(f"{field}: {path} is a TorchScript archive that does not load ({type(exc).__name__}: "
                          f"{first})") from None
    module.eval()
    return module


def read_weights(path: str | Path, field: str, what: str = "a tempdistill checkpoint") -> Any:
    """The content of a weights file, loaded with ``weights_only=True`` (tensors and plain
    containers; no code runs). A file of pickled Python objects, a whole module saved with
    ``torch.save(model)`` say, is refused naming the ways that work; ``what``: what the file
    was expected to be, for the message."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{field}: file not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. a pickle protocol notice: the outcome is all that matters
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):
            raise ConfigError(f"{field}: {path} is not {what}: it holds pickled Python objects (a whole module saved "
                              f"with torch.save(model)?), which are not loaded because unpickling them runs code; "
                              f"{OWN_TEACHER_WAYS}") from None
        raise ConfigError(f"{field}: cannot read {path} as {what} (UnpicklingError); {OWN_TEACHER_WAYS}") from None
    except Exception as exc:  # torch raises several unrelated types for a bad file
        raise ConfigError(f"{field}: cannot read {path} as {what} ({type(exc).__name__}); {OWN_TEACHER_WAYS}") from None
