"""Array datasets for classification distillation: scikit-learn's bundled digits, MNIST-1D as
its package generates it, Fashion-MNIST from its four IDX files, or a user's .npz.

A run's data has three parts that share no row: **train** (what the teacher and the student
learn from), **validation** (``data.val_fraction`` of the training part, carved out stratified
and seeded: every per-epoch measure, the adaptive schedule's signal and the ``best_val`` choice
use it) and **test** (``data.test_fraction`` of all samples, or a dataset's own test split:
evaluated once, at the end). Normalisation statistics come from the training rows only, so
neither held-out score has seen its own rows. A user's ``.npz`` may bring its own parts
(``X_test``/``y_test``, ``X_val``/``y_val``); a part it does not bring is carved as above.

Arrays given from Python (``data.name: arrays``, ``tempdistill.tasks.sources.ArrayData``) are checked
like a ``.npz`` and split the same way; the run records their SHA-256 and shapes in ``/data``
(``arrays_sha256``, ``arrays_shapes``), since no path names them.

Every part remembers where its rows came from (``Split.rows``: the array, ``X``, ``X_val`` or
``X_test``, and the row indices in it), so arrays aligned with the user's (a teacher's stored
logits) are split with the same indices. A teacher of the user's own reads the inputs as the
user gave them (``Split.inputs(part, as_given=True)``, kept only when asked for); the
normalisation is fitted for the student.

Class labels may be any integers (iris labelled 1–3, labels {0, 1, 9}, {-1, 1}): they are
mapped, in sorted order, to the indices 0…K−1 the networks use, and the mapping
(``Split.class_labels``) is recorded with the run and carried by its exports, so a
prediction is reported in the user's own labels. K is the number of distinct labels, never
``max(y) + 1``.

**Layout.** ``data.layout: flat`` (the default) reads every sample as a vector of F features,
as always. ``data.layout: image`` reads samples as images of shape (C, H, W): digits as 1×8×8,
Fashion-MNIST as 1×28×28, a user's ``X`` of shape (n, C, H, W). A ``.npz`` whose ``X`` has
four axes is refused under ``flat`` (one line saying to set ``layout: image``) rather than
flattened silently, so ``flat`` always means "X is (n, F)". A split knows its samples'
``input_shape`` ((F,) or (C, H, W)) and records it in ``/data``; its tensors hold the samples
flattened, (n, prod(input_shape)), which is what the MLP students read, and
``Split.shaped(part)`` gives them back as (n, C, H, W).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Collection, Dict, Iterable, Mapping, Optional, Tuple

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from tempdistill.config import ConfigError, DataConfig
from tempdistill.tasks.sources import ArrayData, as_array


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
PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class PartRows:
    """Where one part's rows come from: ``source``, the array of the data they were taken from
    (``X``, ``X_val`` or ``X_test``), which has ``size`` rows, and ``index``, the rows taken, in
    the part's order."""

    source: str
    size: int
    index: np.ndarray


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
    # train/val/test -> where the part's rows came from (aligns arrays given beside the data)
    rows: Mapping[str, PartRows] = field(default_factory=dict)
    # The train, val and test inputs as the user gave them (float32), kept only for a teacher
    # that reads them (a user's own); None otherwise.
    as_given: Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None
    # What identifies data given in memory (``arrays_sha256``, ``arrays_shapes``): recorded in
    # /data and part of a trained teacher's cache key; empty for data a config names.
    fingerprint: Mapping[str, Any] = field(default_factory=dict)

    # One sample's shape: (F,) for flat data, (C, H, W) for images; the tensors hold the samples
    # flattened, (n, prod(input_shape)).
    input_shape: Tuple[int, ...] = ()
    layout: str = "flat"

    @property
    def input_dim(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_shape(self) -> Optional[Tuple[int, ...]]:
        """(C, H, W) for ``layout: image``, the shape image networks view the rows in; None for flat data."""
        return tuple(self.input_shape) if self.layout == "image" else None

    def shaped(self, part: str) -> torch.Tensor:
        """The normalised inputs of ``part`` with each sample in its own shape, (n, *input_shape)."""
        x = self.inputs(part)
        return x.reshape(x.shape[0], *(self.input_shape or (self.input_dim,)))

    def inputs(self, part: str, as_given: bool = False) -> torch.Tensor:
        """The inputs of ``part`` (train, val or test): normalised, as the student reads them,
        or with ``as_given`` as the user gave them, as a user's own teacher reads them."""
        if not as_given:
            return getattr(self, f"x_{part}")
        if self.as_given is None:
            raise ValueError("this split keeps no inputs as given; load it with load_split(..., keep_as_given=True)")
        return self.as_given[PARTS.index(part)]

    def to(self, device: str) -> "Split":
        moved: Dict[str, Any] = {name: getattr(self, name).to(device) for name in _TENSORS}
        if self.as_given is not None:
            moved["as_given"] = tuple(x.to(device) for x in self.as_given)
        return replace(self, **moved)

    def record(self) -> Dict[str, Any]:
        """What a run keeps of its data (``/data``): enough to feed and read its student later."""
        return {
            **self.fingerprint,
            "name": self.name,
            "class_labels": np.asarray(self.class_labels, dtype=np.int64),
            "normalization": self.normalizer.to_json(),
            "n_train": int(self.x_train.shape[0]),
            "n_val": int(self.x_val.shape[0]),
            "n_test": int(self.x_test.shape[0]),
            "input_dim": self.input_dim,
            "input_shape": np.asarray(self.input_shape or (self.input_dim,), dtype=np.int64),
            "layout": self.layout,
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


# Where Debian's ``dataset-fashion-mnist`` package puts the four IDX files (its file list:
# ``dpkg-deb -c dataset-fashion-mnist_*.deb``), the default of ``data.root``.
FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                       "t10k-labels-idx1-ubyte")
FASHION_MNIST_HINT = ("install them with `sudo apt-get install dataset-fashion-mnist` (or `make fashion-mnist`), "
                      "or set data.root to a directory holding the four IDX files")


def fashion_mnist_files(root: Optional[str]) -> Tuple[Path, ...]:
    """The four IDX files in ``root`` (``FASHION_MNIST_ROOT`` when None), each as ``NAME.gz`` or
    ``NAME``, in ``FASHION_MNIST_FILES``' order; a missing directory or file is one line."""
    folder = Path(root or FASHION_MNIST_ROOT)
    if not folder.is_dir():
        raise ConfigError(f"data.root: no Fashion-MNIST directory at {folder}; {FASHION_MNIST_HINT}")
    found, missing = [], []
    for name in FASHION_MNIST_FILES:
        candidates = [folder / f"{name}.gz", folder / name]
        present = [c for c in candidates if c.is_file()]
        if present:
            found.append(present[0])
        else:
            missing.append(f"{name}.gz")
    if missing:
        raise ConfigError(f"data.root: {folder} lacks {', '.join(missing)}; {FASHION_MNIST_HINT}")
    return tuple(found)


def fashion_mnist_sha256(files: Tuple[Path, ...]) -> str:
    """One SHA-256 over the four files' contents, in order: the data's identity."""
    return hashlib.sha256("".join(file_sha256(f) for f in files).encode()).hexdigest()


def load_fashion_mnist(root: Optional[str]) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fashion-MNIST (Xiao et al. 2017) from its four IDX files in ``root``, with its own split:
    train images (n, H, W) and labels, test images and labels (60,000 and 10,000 of 28×28 in
    the published files); images as float32 pixel values 0…255, labels int64 0…9. Read by
    ``tempdistill.tasks.idx`` (strict: a damaged file is one line naming it); never downloaded.
    The arrays are kept in the cache directory, keyed by the files' SHA-256, after the first read."""
    from tempdistill.tasks.cache import cache_dir
    from tempdistill.tasks.idx import IdxError, read_idx

    files = fashion_mnist_files(root)
    key = fashion_mnist_sha256(files)[:16]
    cached = cache_dir().parent / "data" / f"fashion-mnist-{key}.npz"
    if cached.is_file():
        with np.load(cached, allow_pickle=False) as saved:
            arrays = [saved[k] for k in ("x", "y", "x_test", "y_test")]
    else:
        try:
            arrays = [read_idx(f) for f in files]
        except IdxError as exc:
            raise ConfigError(f"data.root: {exc}") from None
        for (images, labels), (image_file, label_file) in zip((arrays[:2], arrays[2:]), (files[:2], files[2:])):
            if images.ndim != 3 or images.dtype != np.uint8:
                raise ConfigError(f"data.root: {image_file}: expected uint8 images (n, H, W), got {images.dtype} "
                                  f"{images.shape}")
            if labels.ndim != 1 or labels.dtype != np.uint8 or labels.shape[0] != images.shape[0]:
                raise ConfigError(f"data.root: {label_file}: expected {images.shape[0]} uint8 labels, one per image "
                                  f"of {image_file.name}, got {labels.dtype} {labels.shape}")
            if labels.size and labels.max() > 9:
                raise ConfigError(f"data.root: {label_file}: labels must be 0…9, found {int(labels.max())}")
        if arrays[0].shape[1:] != arrays[2].shape[1:]:
            raise ConfigError(f"data.root: {files[2]}: images of {arrays[2].shape[1:]}, the training images are "
                              f"{arrays[0].shape[1:]}")
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f"{cached.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, x=arrays[0], y=arrays[1], x_test=arrays[2], y_test=arrays[3])
        os.replace(tmp, cached)
    x, y, x_test, y_test = arrays
    # (n, 1, H, W): one channel
    return (x[:, None].astype(np.float32), y.astype(np.int64), x_test[:, None].astype(np.float32),
            y_test.astype(np.int64))


# The arrays a user's .npz may hold: the samples, and optionally its own test and validation parts.
NPZ_PARTS = (("X", "y"), ("X_test", "y_test"), ("X_val", "y_val"))


def _load_npz(path: str, layout: str = "flat") -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
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
    with arrays:
        return _paired_parts(arrays.files, lambda name: np.asarray(arrays[name]), "data.path", str(file), layout)


GIVEN_ARRAYS = "the ArrayData given"


def _given_parts(data: ArrayData, layout: str = "flat") -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """Arrays given from Python, in ``_load_npz``'s form and checked by the same rules."""
    return _paired_parts(data.names(), lambda name: as_array(getattr(data, name)), "data", GIVEN_ARRAYS, layout)


def _paired_parts(names: Collection[str], read: Callable[[str], np.ndarray], field: str,
                  where: str, layout: str = "flat") -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """The (inputs, labels) pairs among the arrays ``names`` (read with ``read``): X and y
    required, each optional part given whole, every part checked, one sample shape."""
    parts: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}
    missing = [k for k in ("X", "y") if k not in names]
    if missing:
        raise ConfigError(f"{field}: {where} lacks array(s) {', '.join(missing)}; it has {list(names)}")
    for x_name, y_name in NPZ_PARTS:
        present = [k for k in (x_name, y_name) if k in names]
        if not present:
            continue
        if len(present) == 1:
            absent = y_name if present[0] == x_name else x_name
            raise ConfigError(f"{field}: {where} has array {present[0]} but not {absent}; "
                              f"give both or neither")
        try:
            x, y = read(x_name), read(y_name)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"{field}: cannot read arrays {x_name} and {y_name} from {where} ({exc})") from None
        parts[x_name] = _checked_part(x, y, x_name, y_name, field, layout)
    sample = parts["X"][0].shape[1:]
    for x_name, (x, _) in parts.items():
        if x.shape[1:] != sample:
            what = "features per sample" if layout == "flat" else "as each sample's (C, H, W)"
            theirs, ours = (x.shape[1], sample[0]) if layout == "flat" else (x.shape[1:], sample)
            raise ConfigError(f"{field}: {x_name} has {theirs} {what}, X has {ours}; they must match")
    return parts


def _checked_part(x: np.ndarray, y: np.ndarray, x_name: str, y_name: str,
                  field: str = "data.path", layout: str = "flat") -> Tuple[np.ndarray, np.ndarray]:
    """One (inputs, labels) pair of a user's data, checked: float64 (n, F) for ``layout: flat``,
    (n, C, H, W) for ``layout: image``, and int64 (n,)."""
    if layout == "image" and (x.ndim != 4 or 0 in x.shape[1:]):
        raise ConfigError(f"{field}: {x_name} must have shape (n, C, H, W) with data.layout 'image', got {x.shape}"
                          + ("; set data.layout=flat for (n, features) data" if x.ndim == 2 else ""))
    if layout == "flat" and x.ndim == 4:
        raise ConfigError(f"{field}: {x_name} has shape {x.shape}, images (n, C, H, W); set data.layout=image "
                          "to read them as images (students that read vectors see them flattened)")
    if layout == "flat" and x.ndim != 2:
        raise ConfigError(f"{field}: {x_name} must have shape (n, features), got {x.shape}")
    if x.shape[0] == 0:
        raise ConfigError(f"{field}: {x_name} holds no samples")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ConfigError(f"{field}: {y_name} must have shape ({x.shape[0]},) to match {x_name}, got {y.shape}")
    if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
        raise ConfigError(f"{field}: {x_name} must hold finite numbers")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise ConfigError(f"{field}: {y_name} must hold integer class labels, got dtype {y.dtype}")
    return x.astype(np.float64), y.astype(np.int64)


def arrays_sha256(named: Iterable[Tuple[str, np.ndarray]]) -> str:
    """SHA-256 of arrays given in memory, each by its name, dtype, shape and bytes, in order:
    what identifies them where no file path does."""
    digest = hashlib.sha256()
    for name, array in named:
        contiguous = np.ascontiguousarray(array)
        digest.update(f"{name}:{contiguous.dtype.str}:{contiguous.shape};".encode())
        digest.update(contiguous.tobytes())
    return digest.hexdigest()


def arrays_fingerprint(parts: Mapping[str, Tuple[np.ndarray, np.ndarray]]) -> Dict[str, Any]:
    """What identifies arrays given in memory: the SHA-256 of every array's name, shape and
    checked values (float64 inputs, int64 labels as given), and the shapes as JSON text."""
    named = [(name, array) for x_name, y_name in NPZ_PARTS if x_name in parts
             for name, array in zip((x_name, y_name), parts[x_name])]
    shapes = {name: list(np.shape(array)) for name, array in named}
    return {"arrays_sha256": arrays_sha256(named), "arrays_shapes": json.dumps(shapes)}


# What ``normalize: auto`` means per dataset: one global min–max for the bundled images (every
# pixel shares a scale), per-feature standardisation for MNIST-1D and a user's arrays. For a
# user's features the scales may differ by orders of magnitude (one global min–max squashes the
# small ones toward 0); for MNIST-1D it was chosen on validation rows: the conv teacher of
# experiments/mnist1d.yaml reached 0.945 validation accuracy standardised, 0.673 min–max.
# With ``layout: image`` every dataset's ``auto`` is the global min–max: pixels share a scale.
AUTO_NORMALIZATION = {"digits": "minmax", "mnist1d": "standard", "fashion_mnist": "minmax", "npz": "standard",
                      "arrays": "standard"}


def resolved_normalization(config: DataConfig) -> str:
    """The normalisation a data config asks for, with ``auto`` resolved for its dataset and layout."""
    if config.normalize != "auto":
        return config.normalize
    return "minmax" if config.layout == "image" else AUTO_NORMALIZATION[config.name]


def fit_normalizer(x_train: np.ndarray, how: str, image_shape: Optional[Tuple[int, ...]] = None) -> Normalizer:
    """Normalisation statistics from the training split only (rows flattened, (n, F)).

    ``minmax``: one global minimum and maximum. ``standard``: per feature, or, for images
    (``image_shape`` (C, H, W)), per channel over all its pixels, the statistics repeated over
    each channel's H·W features so that the normaliser still maps flat rows."""
    if how == "minmax":
        low, high = float(x_train.min()), float(x_train.max())
        return Normalizer(how, np.asarray(low), np.asarray((high - low) or 1.0))
    if how == "standard" and image_shape is not None:
        channels = np.asarray(x_train, dtype=np.float64).reshape(x_train.shape[0], image_shape[0], -1)
        mean, std = channels.mean(axis=(0, 2)), channels.std(axis=(0, 2))
        std[std == 0] = 1.0
        pixels = int(np.prod(image_shape[1:]))
        return Normalizer(how, np.repeat(mean, pixels), np.repeat(std, pixels))
    if how == "standard":
        mean, std = x_train.mean(axis=0), x_train.std(axis=0)
        std[std == 0] = 1.0
        return Normalizer(how, mean, std)
    return IDENTITY


@dataclass(frozen=True)
class RawSplit:
    """A run's train, validation and test rows before normalisation (inputs (n, F), samples
    flattened: float64, or float32 for Fashion-MNIST's 8-bit pixels, which it holds exactly;
    class indices 0…K−1 (n,)), the user's label of each index, and one sample's shape."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_labels: np.ndarray
    rows: Mapping[str, PartRows] = field(default_factory=dict)  # train/val/test -> where from
    fingerprint: Mapping[str, Any] = field(default_factory=dict)  # arrays given in memory
    input_shape: Tuple[int, ...] = ()  # one sample's: (F,), or (C, H, W) with data.layout image


def _carve(rows: np.ndarray, y: np.ndarray, fraction: float, seed: int, field: str) -> Tuple[np.ndarray, np.ndarray]:
    """(kept, carved): ``fraction`` of ``rows`` (indices into ``y``) carved out, seeded, and
    stratified by class where every class has at least two rows. The indices are split, not
    the arrays: scikit-learn draws the same split for any array of the same length, so the rows
    are those an array split would give, and arrays aligned with them can follow."""
    labels = y[rows]
    stratify = labels if np.unique(labels, return_counts=True)[1].min() >= 2 else None
    try:
        kept, carved = train_test_split(rows, test_size=fraction, random_state=seed, stratify=stratify)
    except ValueError as exc:
        raise ConfigError(f"{field}: cannot split {len(labels)} samples ({exc})") from None
    return kept, carved


def _as_indices(parts: Dict[str, Tuple[np.ndarray, np.ndarray]]) -> Tuple[Dict[str, Tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Every part's labels mapped, in sorted order over all parts, to indices 0…K−1."""
    class_labels = np.unique(np.concatenate([y for _, y in parts.values()]))
    if class_labels.size < 2:
        raise ConfigError(f"data.path: y holds a single class label {class_labels.tolist()}; classification needs at least 2")
    indexed = {name: (x, np.searchsorted(class_labels, y).astype(np.int64)) for name, (x, y) in parts.items()}
    return indexed, class_labels.astype(np.int64)


def raw_split(config: DataConfig, seed: int, arrays: Optional[ArrayData] = None) -> RawSplit:
    """The run's train/validation/test rows before normalisation, as the run splits them.

    Test: the dataset's own test part (MNIST-1D's, Fashion-MNIST's, a user's ``X_test``), else
    ``data.test_fraction`` of all samples. Validation: a user's ``X_val``, else
    ``data.val_fraction`` of what is left for training. Both carvings are stratified and
    seeded by the run's seed, so one seed always gives the same three parts. ``arrays``: the
    arrays a ``data.name: arrays`` config reads (given in memory).
    """
    fingerprint: Dict[str, Any] = {}
    if config.name == "mnist1d":  # the dataset's own split, the one its published figures use
        x, y, x_test, y_test = _load_mnist1d()
        parts, class_labels = {"X": (x, y), "X_test": (x_test, y_test)}, np.arange(10, dtype=np.int64)
    elif config.name == "fashion_mnist":  # its own 60,000/10,000 split
        x, y, x_test, y_test = load_fashion_mnist(config.root)
        parts, class_labels = {"X": (x, y), "X_test": (x_test, y_test)}, np.arange(10, dtype=np.int64)
    elif config.name == "digits":
        x, y = _load_digits()
        parts, class_labels = _as_indices({"X": (x.reshape(-1, 1, 8, 8) if config.layout == "image" else x, y)})
    elif config.name == "arrays":
        if arrays is None:
            raise ConfigError("data.name: 'arrays' reads arrays given in memory, and none were given")
        given = _given_parts(arrays, config.layout)
        fingerprint = arrays_fingerprint(given)
        parts, class_labels = _as_indices(given)
    else:
        parts, class_labels = _as_indices(_load_npz(config.path or "", config.layout))
    # One sample's shape; the rows are kept flattened, (n, prod(shape)).
    input_shape = tuple(int(d) for d in parts["X"][0].shape[1:])
    if config.layout == "flat":
        input_shape = (int(np.prod(input_shape)),)
    parts = {name: (x.reshape(x.shape[0], -1), y) for name, (x, y) in parts.items()}
    x, y = parts["X"]
    train = np.arange(len(y))
    rows: Dict[str, PartRows] = {}
    for part, own, fraction, setting in (("test", "X_test", config.test_fraction, "data.test_fraction"),
                                         ("val", "X_val", config.val_fraction, "data.val_fraction")):
        if own in parts:
            rows[part] = PartRows(own, len(parts[own][1]), np.arange(len(parts[own][1])))
        else:
            train, carved = _carve(train, y, fraction, seed, setting)
            rows[part] = PartRows("X", len(y), carved)
    rows["train"] = PartRows("X", len(y), train)
    taken = {part: (parts[r.source][0][r.index], parts[r.source][1][r.index]) for part, r in rows.items()}
    return RawSplit(*taken["train"], *taken["val"], *taken["test"], class_labels,
                    {part: rows[part] for part in PARTS}, fingerprint, input_shape)


def load_split(config: DataConfig, seed: int, arrays: Optional[ArrayData] = None,
               keep_as_given: bool = False) -> Split:
    """The train/validation/test split named by the config, as float32/int64 tensors,
    normalised with statistics of the training rows only.

    :param arrays: the arrays a ``data.name: arrays`` config reads (given in memory).
    :param keep_as_given: also keep the inputs as the user gave them (``Split.inputs(part,
        as_given=True)``), for a teacher of the user's own, which does its own preprocessing.
    """
    raw = raw_split(config, seed, arrays)
    image_shape = raw.input_shape if config.layout == "image" else None
    normalizer = fit_normalizer(raw.x_train, resolved_normalization(config), image_shape)
    as_x = lambda a: torch.as_tensor(normalizer.apply(a), dtype=torch.float32)  # noqa: E731
    as_y = lambda a: torch.as_tensor(a, dtype=torch.long)  # noqa: E731
    given = None
    if keep_as_given:
        given = tuple(torch.as_tensor(x, dtype=torch.float32) for x in (raw.x_train, raw.x_val, raw.x_test))
    return Split(as_x(raw.x_train), as_y(raw.y_train), as_x(raw.x_val), as_y(raw.y_val), as_x(raw.x_test),
                 as_y(raw.y_test), int(raw.class_labels.size), config.name, normalizer, raw.class_labels,
                 raw.rows, given, raw.fingerprint, raw.input_shape, config.layout)


def data_fingerprint(config: DataConfig) -> Dict[str, Any]:
    """What identifies the data (for the teacher cache): the config, and a user file's content
    hash instead of its path, so a moved file still hits the cache and an edited one does not."""
    facts = config.model_dump(mode="json", exclude={"path", "root"})
    if config.layout == "flat":  # the default: keys of runs made before layouts stay as they were
        facts.pop("layout")
    if config.augment is None:  # likewise for runs made before augmentation
        facts.pop("augment")
    if config.path:
        facts["sha256"] = file_sha256(config.path)
    if config.name == "fashion_mnist":
        facts["sha256"] = fashion_mnist_sha256(fashion_mnist_files(config.root))
    return facts


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
