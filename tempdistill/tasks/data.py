"""Array datasets for classification distillation: scikit-learn's bundled digits, MNIST-1D as
its package generates it, or a user's .npz.

A run's data has three parts that share no row: **train** (what the teacher and the student
learn from), **validation** (``data.val_fraction`` of the training part, carved out stratified
and seeded: every per-epoch measure, the adaptive schedule's signal and the ``best_val`` choice
use it) and **test** (``data.test_fraction`` of all samples, or a dataset's own test split:
evaluated once, at the end). Normalisation statistics come from the training rows only, so
neither held-out score has seen its own rows. A user's ``.npz`` may bring its own parts
(``X_test``/``y_test``, ``X_val``/``y_val``); a part it does not bring is carved as above.

Class labels may be any integers (iris labelled 1–3, labels {0, 1, 9}, {-1, 1}): they are
mapped, in sorted order, to the indices 0…K−1 the networks use, and the mapping
(``Split.class_labels``) is recorded with the run and carried by its exports, so a
prediction is reported in the user's own labels. K is the number of distinct labels, never
``max(y) + 1``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, Tuple

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from tempdistill.config import ConfigError, DataConfig


@dataclass(frozen=True)
class Normalizer:
    """x ↦ (x − offset)/scale, fitted on the training split; exported with the student."""

    kind: str
    offset: np.ndarray
    scale: np.ndarray

    def apply(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.offset) / self.scale

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "offset": np.asarray(self.offset).tolist(),
                           "scale": np.asarray(self.scale).tolist()})

    @classmethod
    def from_json(cls, text: str) -> "Normalizer":
        data = json.loads(text)
        return cls(data["kind"], np.asarray(data["offset"], dtype=np.float64), np.asarray(data["scale"], dtype=np.float64))


IDENTITY = Normalizer("none", np.zeros(()), np.ones(()))
_TENSORS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


@dataclass(frozen=True)
class Split:
    """Train, validation and test rows (inputs (n, F) float32 normalised, class indices (n,))."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    name: str
    normalizer: Normalizer = IDENTITY
    class_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def input_dim(self) -> int:
        return int(self.x_train.shape[1])

    def to(self, device: str) -> "Split":
        return replace(self, **{name: getattr(self, name).to(device) for name in _TENSORS})

    def record(self) -> Dict[str, Any]:
        """What a run keeps of its data (``/data``): enough to feed and read its student later."""
        return {
            "name": self.name,
            "class_labels": np.asarray(self.class_labels, dtype=np.int64),
            "normalization": self.normalizer.to_json(),
            "n_train": int(self.x_train.shape[0]),
            "n_val": int(self.x_val.shape[0]),
            "n_test": int(self.x_test.shape[0]),
            "input_dim": self.input_dim,
        }


def _load_digits() -> Tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data.astype(np.float64), bunch.target.astype(np.int64)


def _load_mnist1d() -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST-1D (Greydanus 2020) as its package generates it offline, with its own split
    (4000 train / 1000 test, 40 features, 10 classes); never downloaded. Generating takes a
    few seconds, so the arrays are kept in the cache directory after the first time."""
    from mnist1d.data import get_dataset_args, make_dataset

    from tempdistill.tasks.cache import cache_dir

    args = get_dataset_args()
    key = hashlib.sha256(json.dumps(vars(args), sort_keys=True, default=str).encode()).hexdigest()[:16]
    cached = cache_dir().parent / "data" / f"mnist1d-{key}.npz"
    if cached.is_file():
        with np.load(cached) as saved:
            return saved["x"], saved["y"], saved["x_test"], saved["y_test"]
    data = make_dataset(args)
    arrays = {k: np.asarray(data[k], dtype=np.float64 if k.startswith("x") else np.int64)
              for k in ("x", "y", "x_test", "y_test")}
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f"{cached.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, cached)
    return arrays["x"], arrays["y"], arrays["x_test"], arrays["y_test"]


# The arrays a user's .npz may hold: the samples, and optionally its own test and validation parts.
NPZ_PARTS = (("X", "y"), ("X_test", "y_test"), ("X_val", "y_val"))


def _load_npz(path: str) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """A user's arrays as {"X": (X, y), "X_test": (X_test, y_test), "X_val": (X_val, y_val)},
    the optional parts only where the file has them; labels as given (integers)."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"data.path: file not found: {file}")
    try:
        arrays = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"data.path: cannot read {file} as .npz ({exc})") from None
    if not isinstance(arrays, np.lib.npyio.NpzFile):
        raise ConfigError(f"data.path: {file} is a single array (.npy); expected a .npz with arrays X and y")
    parts: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}
    with arrays:
        missing = [k for k in ("X", "y") if k not in arrays.files]
        if missing:
            raise ConfigError(f"data.path: {file} lacks array(s) {', '.join(missing)}; it has {arrays.files}")
        for x_name, y_name in NPZ_PARTS:
            present = [k for k in (x_name, y_name) if k in arrays.files]
            if not present:
                continue
            if len(present) == 1:
                absent = y_name if present[0] == x_name else x_name
                raise ConfigError(f"data.path: {file} has array {present[0]} but not {absent}; "
                                  f"give both or neither")
            try:
                x, y = np.asarray(arrays[x_name]), np.asarray(arrays[y_name])
            except (OSError, ValueError) as exc:
                raise ConfigError(f"data.path: cannot read arrays {x_name} and {y_name} from {file} ({exc})") from None
            parts[x_name] = _checked_part(x, y, x_name, y_name)
    features = parts["X"][0].shape[1]
    for x_name, (x, _) in parts.items():
        if x.shape[1] != features:
            raise ConfigError(f"data.path: {x_name} has {x.shape[1]} features per sample, X has {features}; "
                              "they must match")
    return parts


def _checked_part(x: np.ndarray, y: np.ndarray, x_name: str, y_name: str) -> Tuple[np.ndarray, np.ndarray]:
    """One (inputs, labels) pair of a user's file, checked: float64 (n, F) and int64 (n,)."""
    if x.ndim != 2:
        raise ConfigError(f"data.path: {x_name} must have shape (n, features), got {x.shape}")
    if x.shape[0] == 0:
        raise ConfigError(f"data.path: {x_name} holds no samples")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ConfigError(f"data.path: {y_name} must have shape ({x.shape[0]},) to match {x_name}, got {y.shape}")
    if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
        raise ConfigError(f"data.path: {x_name} must hold finite numbers")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise ConfigError(f"data.path: {y_name} must hold integer class labels, got dtype {y.dtype}")
    return x.astype(np.float64), y.astype(np.int64)


# What ``normalize: auto`` means per dataset: one global min–max for the bundled images (every
# pixel shares a scale), per-feature standardisation for MNIST-1D and a user's arrays. For a
# user's features the scales may differ by orders of magnitude (one global min–max squashes the
# small ones toward 0); for MNIST-1D it was chosen on validation rows: the conv teacher of
# experiments/mnist1d.yaml reached 0.945 validation accuracy standardised, 0.673 min–max.
AUTO_NORMALIZATION = {"digits": "minmax", "mnist1d": "standard", "npz": "standard"}


def resolved_normalization(config: DataConfig) -> str:
    """The normalisation a data config asks for, with ``auto`` resolved for its dataset."""
    return AUTO_NORMALIZATION[config.name] if config.normalize == "auto" else config.normalize


def fit_normalizer(x_train: np.ndarray, how: str) -> Normalizer:
    """Normalisation statistics from the training split only."""
    if how == "minmax":
        low, high = float(x_train.min()), float(x_train.max())
        return Normalizer(how, np.asarray(low), np.asarray((high - low) or 1.0))
    if how == "standard":
        mean, std = x_train.mean(axis=0), x_train.std(axis=0)
        std[std == 0] = 1.0
        return Normalizer(how, mean, std)
    return IDENTITY


@dataclass(frozen=True)
class RawSplit:
    """A run's train, validation and test rows before normalisation (inputs float64 (n, F),
    class indices 0…K−1 (n,)), and the user's label of each index."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_labels: np.ndarray


def _carve(x: np.ndarray, y: np.ndarray, fraction: float, seed: int, field: str) -> Tuple[np.ndarray, ...]:
    """(x_kept, y_kept, x_carved, y_carved): ``fraction`` of the rows carved out, seeded, and
    stratified by class where every class has at least two rows."""
    stratify = y if np.unique(y, return_counts=True)[1].min() >= 2 else None
    try:
        x_kept, x_carved, y_kept, y_carved = train_test_split(x, y, test_size=fraction, random_state=seed,
                                                              stratify=stratify)
    except ValueError as exc:
        raise ConfigError(f"{field}: cannot split {len(y)} samples ({exc})") from None
    return x_kept, y_kept, x_carved, y_carved


def _as_indices(parts: Dict[str, Tuple[np.ndarray, np.ndarray]]) -> Tuple[Dict[str, Tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Every part's labels mapped, in sorted order over all parts, to indices 0…K−1."""
    class_labels = np.unique(np.concatenate([y for _, y in parts.values()]))
    if class_labels.size < 2:
        raise ConfigError(f"data.path: y holds a single class label {class_labels.tolist()}; classification needs at least 2")
    indexed = {name: (x, np.searchsorted(class_labels, y).astype(np.int64)) for name, (x, y) in parts.items()}
    return indexed, class_labels.astype(np.int64)


def raw_split(config: DataConfig, seed: int) -> RawSplit:
    """The run's train/validation/test rows before normalisation, as the run splits them.

    Test: the dataset's own test part (MNIST-1D's, a user's ``X_test``), else
    ``data.test_fraction`` of all samples. Validation: a user's ``X_val``, else
    ``data.val_fraction`` of what is left for training. Both carvings are stratified and
    seeded by the run's seed, so one seed always gives the same three parts.
    """
    if config.name == "mnist1d":  # the dataset's own split, the one its published figures use
        x, y, x_test, y_test = _load_mnist1d()
        parts, class_labels = {"X": (x, y), "X_test": (x_test, y_test)}, np.arange(10, dtype=np.int64)
    elif config.name == "digits":
        parts, class_labels = _as_indices({"X": _load_digits()})
    else:
        parts, class_labels = _as_indices(_load_npz(config.path or ""))
    x, y = parts["X"]
    if "X_test" in parts:
        x_test, y_test = parts["X_test"]
    else:
        x, y, x_test, y_test = _carve(x, y, config.test_fraction, seed, "data.test_fraction")
    if "X_val" in parts:
        x_val, y_val = parts["X_val"]
    else:
        x, y, x_val, y_val = _carve(x, y, config.val_fraction, seed, "data.val_fraction")
    return RawSplit(x, y, x_val, y_val, x_test, y_test, class_labels)


def load_split(config: DataConfig, seed: int) -> Split:
    """The train/validation/test split named by the config, as float32/int64 tensors,
    normalised with statistics of the training rows only."""
    raw = raw_split(config, seed)
    normalizer = fit_normalizer(raw.x_train, resolved_normalization(config))
    as_x = lambda a: torch.as_tensor(normalizer.apply(a), dtype=torch.float32)  # noqa: E731
    as_y = lambda a: torch.as_tensor(a, dtype=torch.long)  # noqa: E731
    return Split(as_x(raw.x_train), as_y(raw.y_train), as_x(raw.x_val), as_y(raw.y_val), as_x(raw.x_test),
                 as_y(raw.y_test), int(raw.class_labels.size), config.name, normalizer, raw.class_labels)


def data_fingerprint(config: DataConfig) -> Dict[str, Any]:
    """What identifies the data (for the teacher cache): the config, and a user file's content
    hash instead of its path, so a moved file still hits the cache and an edited one does not."""
    facts = config.model_dump(mode="json", exclude={"path"})
    if config.path:
        facts["sha256"] = file_sha256(config.path)
    return facts


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
