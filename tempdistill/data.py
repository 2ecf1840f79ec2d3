"""Array datasets for classification distillation: scikit-learn's bundled digits, MNIST-1D as
its package generates it, or a user's .npz.

Splits are stratified and seeded; normalisation statistics come from the training split only
so the held-out score is honest.

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
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Split:
    x_train: torch.Tensor
    y_train: torch.Tensor
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
        return Split(
            self.x_train.to(device), self.y_train.to(device), self.x_test.to(device), self.y_test.to(device),
            self.num_classes, self.name, self.normalizer, self.class_labels,
        )

    def record(self) -> Dict[str, Any]:
        """What a run keeps of its data (``/data``): enough to feed and read its student later."""
        return {
            "name": self.name,
            "class_labels": np.asarray(self.class_labels, dtype=np.int64),
            "normalization": self.normalizer.to_json(),
            "n_train": int(self.x_train.shape[0]),
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

    from tempdistill.teacher import cache_dir

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


def _load_npz(path: str) -> Tuple[np.ndarray, np.ndarray]:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"data.path: file not found: {file}")
    try:
        arrays = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"data.path: cannot read {file} as .npz ({exc})") from None
    if not isinstance(arrays, np.lib.npyio.NpzFile):
        raise ConfigError(f"data.path: {file} is a single array (.npy); expected a .npz with arrays X and y")
    with arrays:
        missing = [k for k in ("X", "y") if k not in arrays.files]
        if missing:
            raise ConfigError(f"data.path: {file} lacks array(s) {', '.join(missing)}; it has {arrays.files}")
        try:
            x, y = np.asarray(arrays["X"]), np.asarray(arrays["y"])
        except (OSError, ValueError) as exc:
            raise ConfigError(f"data.path: cannot read arrays X and y from {file} ({exc})") from None
    if x.ndim != 2:
        raise ConfigError(f"data.path: X must have shape (n, features), got {x.shape}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ConfigError(f"data.path: y must have shape ({x.shape[0]},) to match X, got {y.shape}")
    if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
        raise ConfigError("data.path: X must hold finite numbers")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise ConfigError(f"data.path: y must hold integer class labels, got dtype {y.dtype}")
    return x.astype(np.float64), y.astype(np.int64)


# What ``normalize: auto`` means per dataset: one global min–max for the bundled images and
# MNIST-1D's signals (every pixel or time step shares a scale), per-feature standardisation for a user's arrays, whose features may
# have very different scales (one global min–max squashes the small ones toward 0).
AUTO_NORMALIZATION = {"digits": "minmax", "mnist1d": "minmax", "npz": "standard"}


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


def load_arrays(config: DataConfig) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All samples as (X, class indices 0…K−1, the user's label of each index)."""
    x, y = _load_digits() if config.name == "digits" else _load_npz(config.path)
    class_labels, indices = np.unique(y, return_inverse=True)
    if class_labels.size < 2:
        raise ConfigError(f"data.path: y holds a single class label {class_labels.tolist()}; classification needs at least 2")
    return x, indices.astype(np.int64), class_labels.astype(np.int64)


def raw_split(config: DataConfig, seed: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test, class_labels) before normalisation, as the run splits them."""
    if config.name == "mnist1d":  # the dataset's own split, the one its published figures use
        x_train, y_train, x_test, y_test = _load_mnist1d()
        return x_train, y_train, x_test, y_test, np.arange(10, dtype=np.int64)
    x, y, class_labels = load_arrays(config)
    counts = np.bincount(y, minlength=class_labels.size)
    stratify = y if counts.min() >= 2 else None
    try:
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, test_size=config.test_fraction, random_state=seed, stratify=stratify
        )
    except ValueError as exc:
        raise ConfigError(f"data.test_fraction: cannot split {len(y)} samples ({exc})") from None
    return x_train, y_train, x_test, y_test, class_labels


def load_split(config: DataConfig, seed: int) -> Split:
    """The train/held-out split named by the config, as float32/int64 tensors."""
    x_train, y_train, x_test, y_test, class_labels = raw_split(config, seed)
    normalizer = fit_normalizer(x_train, resolved_normalization(config))
    as_x = lambda a: torch.as_tensor(normalizer.apply(a), dtype=torch.float32)  # noqa: E731
    as_y = lambda a: torch.as_tensor(a, dtype=torch.long)  # noqa: E731
    return Split(as_x(x_train), as_y(y_train), as_x(x_test), as_y(y_test), int(class_labels.size), config.name,
                 normalizer, class_labels)


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
