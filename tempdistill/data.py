"""Array datasets for classification distillation: scikit-learn's bundled digits, or a user's .npz.

Splits are stratified and seeded; normalisation statistics come from the training split only
so the held-out score is honest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Tuple

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from tempdistill.config import ConfigError, DataConfig


@dataclass(frozen=True)
class Split:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    name: str

    @property
    def input_dim(self) -> int:
        return int(self.x_train.shape[1])

    def to(self, device: str) -> "Split":
        return Split(
            self.x_train.to(device), self.y_train.to(device), self.x_test.to(device), self.y_test.to(device),
            self.num_classes, self.name,
        )


def _load_digits() -> Tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data.astype(np.float64), bunch.target.astype(np.int64)


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
    if y.min() < 0:
        raise ConfigError("data.path: y labels must be >= 0")
    return x.astype(np.float64), y.astype(np.int64)


def _normalize(x_train: np.ndarray, x_test: np.ndarray, how: str) -> Tuple[np.ndarray, np.ndarray]:
    if how == "minmax":
        low, high = x_train.min(), x_train.max()
        scale = (high - low) or 1.0
        return (x_train - low) / scale, (x_test - low) / scale
    if how == "standard":
        mean, std = x_train.mean(axis=0), x_train.std(axis=0)
        std[std == 0] = 1.0
        return (x_train - mean) / std, (x_test - mean) / std
    return x_train, x_test


def load_split(config: DataConfig, seed: int) -> Split:
    """The train/held-out split named by the config, as float32/int64 tensors."""
    x, y = _load_digits() if config.name == "digits" else _load_npz(config.path)
    num_classes = int(y.max()) + 1
    counts = np.bincount(y, minlength=num_classes)
    stratify = y if counts[counts > 0].min() >= 2 else None
    try:
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, test_size=config.test_fraction, random_state=seed, stratify=stratify
        )
    except ValueError as exc:
        raise ConfigError(f"data.test_fraction: cannot split {len(y)} samples ({exc})") from None
    x_train, x_test = _normalize(x_train, x_test, config.normalize)
    as_x = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    as_y = lambda a: torch.as_tensor(a, dtype=torch.long)  # noqa: E731
    return Split(as_x(x_train), as_y(y_train), as_x(x_test), as_y(y_test), num_classes, config.name)
