"""A teacher's logits computed elsewhere (``teacher: {source: logits}``): read, checked, split.

The usual setting is a large teacher run on other hardware: its logits over the data are all
a distillation needs. They sit beside the inputs they answer, row for row: ``teacher_logits``
(n, K) with ``X``, ``teacher_logits_val`` with ``X_val``, ``teacher_logits_test`` with
``X_test``, in the ``.npz`` (read without pickles) or given in memory as
``StoredLogits(train, val, test)``. Where the run carves validation or test rows out of ``X``
(seeded), their logits are the rows of ``teacher_logits`` with the same indices
(``Split.rows``), so stored logits split exactly as the data does.

What must be there: logits for the training rows (the student learns from them) and for the
validation rows (every epoch is measured against them). The test rows may come without
logits (a teacher run elsewhere may not have been shown the test data): then the teacher's
test accuracy is not recorded (``teacher_accuracy`` absent) and the run's warnings say so.
Every array is checked before any training: (rows of its data array, K) with K the number of
classes, finite numbers; an error is one line naming the array.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional

import numpy as np
import torch

from tempdistill.config import ConfigError
from tempdistill.tasks.data import PARTS, Split, arrays_sha256, file_sha256
from tempdistill.tasks.sources import StoredLogits, as_array

# The data array each logits array answers, and what it is called in a .npz / in memory.
NPZ_NAMES = {"X": "teacher_logits", "X_val": "teacher_logits_val", "X_test": "teacher_logits_test"}
MEMORY_NAMES = {"X": "StoredLogits.train", "X_val": "StoredLogits.val", "X_test": "StoredLogits.test"}
# Why each part needs logits ('' where it may go without).
NEEDED_FOR = {"train": "the student learns from them", "val": "every epoch is measured against them", "test": ""}


@dataclass(frozen=True)
class FoundLogits:
    """Logits arrays as found, by the data array they answer (``X``, ``X_val``, ``X_test``);
    ``names`` says what the user calls each, ``field`` where they came from (for messages),
    ``file``/``sha256`` what the record keeps."""

    arrays: Mapping[str, np.ndarray]
    names: Mapping[str, str]
    field: str
    file: Optional[str]
    sha256: str


def npz_logits(path: str) -> FoundLogits:
    """The ``teacher_logits*`` arrays of a ``.npz`` (no pickles), by the data array they answer."""
    file = Path(path)
    try:
        with np.load(file, allow_pickle=False) as arrays:
            found = {source: np.asarray(arrays[name]) for source, name in NPZ_NAMES.items() if name in arrays.files}
    except (OSError, ValueError, AttributeError) as exc:  # AttributeError: a single .npy has no .files
        raise ConfigError(f"data.path: cannot read the teacher's logits from {file} ({exc})") from None
    if "X" not in found:
        raise ConfigError(f"data.path: {file} has no array teacher_logits (n, K), which teacher.source 'logits' reads "
                          "beside X")
    return FoundLogits(found, NPZ_NAMES, "data.path", str(file.resolve()), file_sha256(file))


def given_logits(stored: StoredLogits) -> FoundLogits:
    """Logits given in memory, by the data array they answer; their SHA-256 over name, shape
    and bytes identifies them in the record."""
    found: Dict[str, np.ndarray] = {}
    for source, value in (("X", stored.train), ("X_val", stored.val), ("X_test", stored.test)):
        if value is not None:
            try:
                found[source] = as_array(value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"given.logits: cannot read {MEMORY_NAMES[source]} as an array ({exc})") from None
    digest = arrays_sha256((MEMORY_NAMES[source], array) for source, array in found.items())
    return FoundLogits(found, MEMORY_NAMES, "given.logits", None, digest)


def _checked(array: np.ndarray, name: str, source: str, rows: int, classes: int, field: str) -> np.ndarray:
    """One logits array: numbers, (rows, classes), finite; float32."""
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ConfigError(f"{field}: {name} must hold numbers, got dtype {array.dtype}")
    if array.shape != (rows, classes):
        raise ConfigError(f"{field}: {name} must have shape ({rows}, {classes}), one row per row of {source} and one "
                          f"column per class, got {array.shape}")
    bad = int((~np.isfinite(array)).any(axis=1).sum())
    if bad:
        raise ConfigError(f"{field}: {name} holds non-finite values (nan or inf) in {bad} of its {rows} rows; every "
                          "logit must be a finite number")
    return array.astype(np.float32)


def split_logits(found: FoundLogits, split: Split) -> Dict[str, Optional[torch.Tensor]]:
    """The logits of each part of ``split`` (train, val, test: (n, K) float32 on its device),
    taken with the part's row indices; None for a test part that came without them."""
    sizes = {rows.source: rows.size for rows in split.rows.values()}
    checked: Dict[str, np.ndarray] = {}
    for source, array in found.arrays.items():
        name = found.names[source]
        if source not in sizes:
            raise ConfigError(f"{found.field}: {name} is given but the data has no {source}; logits of rows the run "
                              f"carves out of X are rows of {found.names['X']}")
        checked[source] = _checked(array, name, source, sizes[source], split.num_classes, found.field)
    device = split.x_train.device
    parts: Dict[str, Optional[torch.Tensor]] = {}
    for part in PARTS:
        rows = split.rows[part]
        if rows.source not in checked:
            if NEEDED_FOR[part]:
                raise ConfigError(f"{found.field}: {found.names[rows.source]} is required: the {part} rows are "
                                  f"{rows.source}, and {NEEDED_FOR[part]}")
            parts[part] = None
            continue
        parts[part] = torch.as_tensor(checked[rows.source][rows.index], device=device)
    return parts
