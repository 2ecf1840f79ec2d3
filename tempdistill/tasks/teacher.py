"""The teacher: trained with cross-entropy from its config, or loaded from a checkpoint.

A trained teacher is cached on disk under a key made of everything that determines it
(its config, the data — a user's file by its content hash —, the seed, the data's shape), so
a second run, or every run of a sweep, reuses the same teacher instead of training it again.
The cache has one place whatever the working directory: ``$TEMPDISTILL_CACHE``, else the
user's cache directory (``$XDG_CACHE_HOME`` or ``~/.cache``) under ``tempdistill``. Every run
records which file its teacher came from and that file's SHA-256. A teacher of the user's own
(TorchScript, a factory, a module, stored logits) is ``tempdistill.tasks.teacher_sources``'.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

from tempdistill.config import AugmentConfig, ConfigError, DataConfig, TeacherConfig
from tempdistill.tasks.augment import draw_transform
from tempdistill.tasks.cache import cache_dir
from tempdistill.tasks.data import Split, data_fingerprint, file_sha256
from tempdistill.tasks.teacher_files import read_weights
from tempdistill.core.training import accuracy, iterate_minibatches

CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class TeacherOrigin:
    """Where a run's teacher came from (``teacher_source``): tempdistill's own ('checkpoint',
    'cache' or 'trained'), a user's ('torchscript', 'factory', 'module' or 'logits'), or an SB3
    '.zip'; which file (None for what was given in memory) and its SHA-256 (for a factory: of
    its weights; for what was given in memory: of the state dict's or the logits' bytes).

    ``class_name``: the teacher network's class (a TorchScript archive's ``original_name``).
    An SB3 teacher also says which algorithm saved it (read from the file, whatever the config
    says) and whether it was loaded by SB3's own loader (``trusted``: code from the file may have
    run); ``warnings`` are lines for the user and the record's warnings.
    """

    kind: str
    file: Optional[str]
    sha256: str
    algorithm: Optional[str] = None
    trusted: Optional[bool] = None
    warnings: Tuple[str, ...] = ()
    class_name: Optional[str] = None

    def record(self) -> Dict[str, Any]:
        facts: Dict[str, Any] = {"teacher_source": self.kind, "teacher_sha256": self.sha256}
        if self.file is not None:
            facts["teacher_file"] = home_relative(self.file)
        if self.class_name is not None:
            facts["teacher_class"] = self.class_name
        if self.algorithm is not None:
            facts["teacher_algorithm"] = self.algorithm
        if self.trusted is not None:
            facts["teacher_trusted"] = self.trusted
        return facts


def home_relative(path: str) -> str:
    """``path`` with the user's home directory written ``~``: a run file shared with others (or
    committed beside a table) names the teacher cache without naming its maker's account."""
    try:
        return str(Path("~") / Path(path).relative_to(Path.home()))
    except (ValueError, RuntimeError):  # not under home, or no home directory
        return path


def _origin(kind: str, path: Path, network: nn.Module) -> TeacherOrigin:
    return TeacherOrigin(kind, str(Path(path).resolve()), file_sha256(path), class_name=type(network).__name__)


# TeacherConfig keys that never reach a network tempdistill trains (a user's own teacher's).
_NOT_TRAINING = {"checkpoint", "source", "factory", "kwargs", "params"}


def teacher_key(teacher: TeacherConfig, data: DataConfig, seed: int, split: Split) -> str:
    """A hash of everything that determines the trained teacher (not its checkpoint path); data
    given in memory by its fingerprint."""
    settings = teacher.model_dump(mode="json", exclude=_NOT_TRAINING)
    for key, default in (("lr_schedule", "constant"), ("label_smoothing", 0.0)):
        if settings.get(key) == default:  # a default: keys of teachers cached before it stay as they were
            settings.pop(key)
    facts = {
        "teacher": settings,
        "data": {**data_fingerprint(data), **split.fingerprint},
        "seed": seed,
        "input_dim": split.input_dim,
        "num_classes": split.num_classes,
        "format": CHECKPOINT_FORMAT,
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def train_teacher(network: nn.Module, config: TeacherConfig, split: Split, seed: int,
                  augment: Optional[AugmentConfig] = None) -> nn.Module:
    """Cross-entropy training on the training rows (labels smoothed by
    ``config.label_smoothing``), their images shifted and flipped per batch with ``augment``
    (``data.augment``, as the student's batches are); deterministic for a given seed on CPU."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    shape = split.input_shape
    steps = config.epochs * -(-split.x_train.shape[0] // config.batch_size)
    annealing = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps) if config.lr_schedule == "cosine" else None
    for _ in range(config.epochs):
        network.train()
        for index in iterate_minibatches(split.x_train.shape[0], config.batch_size, generator):
            x = split.x_train[index]
            if augment is not None and augment.changes_images:
                x = draw_transform(len(index), augment.crop, augment.flip, generator)(x.view(len(index), *shape)).flatten(1)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(network(x), split.y_train[index])
            loss.backward()
            optimizer.step()
            if annealing is not None:
                annealing.step()
    network.eval()
    return network


def save_checkpoint(network: nn.Module, path: Path, options: Dict[str, Any], split: Split, facts: Dict[str, Any]) -> None:
    """Weights plus what they fit (features, classes, options), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # unique: parallel runs may save the same key
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "state_dict": network.state_dict(),
            "options": options,
            "input_dim": split.input_dim,
            "num_classes": split.num_classes,
            **facts,
        },
        tmp,
    )
    os.replace(tmp, path)


def load_checkpoint(network: nn.Module, path: str | Path, split: Split, field: str = "teacher.checkpoint") -> nn.Module:
    """Load weights saved by ``save_checkpoint`` into ``network``, checking they fit the data.

    A file made by hand is accepted too: ``{"state_dict": ...}`` without the data's sizes, or a
    bare state dict; weights that do not fit are refused naming the keys that differ."""
    path = Path(path)
    saved = read_weights(path, field)
    if isinstance(saved, dict) and saved and all(isinstance(v, torch.Tensor) for v in saved.values()):
        saved = {"state_dict": saved}  # torch.save(model.state_dict(), path)
    if not isinstance(saved, dict) or "state_dict" not in saved:
        raise ConfigError(f"{field}: {path} is not a tempdistill checkpoint (no state_dict)")
    sizes = (saved.get("input_dim"), saved.get("num_classes"))
    if sizes != (None, None) and sizes != (split.input_dim, split.num_classes):
        raise ConfigError(
            f"{field}: checkpoint expects {saved.get('input_dim')} features and {saved.get('num_classes')} "
            f"classes, data has {split.input_dim} and {split.num_classes}"
        )
    mismatch = state_dict_mismatch(network.state_dict(), saved["state_dict"])
    if mismatch:
        raise ConfigError(f"{field}: checkpoint weights do not fit the configured teacher: {mismatch}")
    try:
        network.load_state_dict(saved["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as exc:  # a value that is no tensor
        raise ConfigError(f"{field}: checkpoint weights do not load ({str(exc).splitlines()[0]})") from None
    network.eval()
    return network


def _some(names: List[str], limit: int = 3, sep: str = ", ") -> str:
    shown = sep.join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


RESIZE_OWN = "set teacher.hidden (and its other options) to match"


def state_dict_mismatch(expected: Mapping[str, torch.Tensor], saved: Mapping[str, Any], resize: str = RESIZE_OWN) -> str:
    """Why ``saved`` does not load into a network whose state dict is ``expected``, naming the
    keys (missing, unexpected, different shapes) and what to change; '' when it fits.

    Shapes alone differ: the widths are wrong, so ``resize`` (``teacher.hidden``, or a
    factory's ``teacher.kwargs``) is the fix. Names differ:
    the file's network was built differently (its own layer names, a wrapper's prefix), which
    no width fixes."""
    missing = [key for key in expected if key not in saved]
    unexpected = [key for key in saved if key not in expected]
    shapes = [f"{key} is {tuple(getattr(saved[key], 'shape', ()))} in the file, {tuple(value.shape)} here"
              for key, value in expected.items()
              if key in saved and tuple(getattr(saved[key], "shape", ())) != tuple(value.shape)]
    parts = []
    if missing:
        parts.append(f"missing keys {_some(missing)}")
    if unexpected:
        parts.append(f"unexpected keys {_some(unexpected)}")
    if shapes:
        parts.append(_some(shapes, 2, sep="; "))
    if not parts:
        return ""
    if not missing and not unexpected:
        hint = resize
    else:
        prefix = _common_prefix(missing, unexpected)
        hint = (f"the file's keys carry the prefix {prefix!r}; save the network's state_dict without it" if prefix
                else f"the teacher's keys are {_some(list(expected), 4)}: save a state dict with those names")
    return "; ".join(parts) + f"; {hint}"


def _common_prefix(missing: List[str], unexpected: List[str]) -> str:
    """A prefix (``module.``, ``net.``) that, stripped from every unexpected key, gives the missing ones."""
    if not unexpected or len(missing) != len(unexpected) or "." not in unexpected[0]:
        return ""
    prefix = unexpected[0][: unexpected[0].index(".") + 1]
    stripped = sorted(key[len(prefix):] for key in unexpected if key.startswith(prefix))
    return prefix if stripped == sorted(missing) else ""


def obtain_teacher(
    network: nn.Module,
    options: Dict[str, Any],
    config: TeacherConfig,
    data: DataConfig,
    split: Split,
    seed: int,
    log: Callable[[str], None] = lambda _: None,
) -> tuple[nn.Module, TeacherOrigin]:
    """The teacher for this run and where it came from."""
    if config.checkpoint:
        loaded = load_checkpoint(network, config.checkpoint, split)
        return loaded, _origin("checkpoint", Path(config.checkpoint), loaded)
    path = cache_dir() / f"{teacher_key(config, data, seed, split)}.pt"
    if path.is_file():
        log(f"teacher: reusing cached {path}")
        return load_checkpoint(network, path, split, field="teacher (cache)"), _origin("cache", path, network)
    log(f"teacher: training {config.hidden} for {config.epochs} epochs")
    train_teacher(network, config, split, seed, data.augment)
    save_checkpoint(network, path, options, split, {"val_accuracy": accuracy(network, split.x_val, split.y_val)})
    return network, _origin("trained", path, network)
