"""Reading a Stable-Baselines3 ``.zip`` from someone else without running code from it.

SB3 writes what JSON cannot hold (policy class, spaces, schedules, buffers, ...) into the zip's
``data`` entry as ``{":type:": ..., ":serialized:": BASE64}``, a cloudpickle, and its loader
unpickles every such field: a file can run anything when ``Algorithm.load`` opens it. SB3 skips a
field named in ``custom_objects`` and uses the object given there instead, so a teacher is loaded
here in three steps:

1. the zip is read once into memory (so what is checked is what is loaded) and ``data`` is parsed
   as plain JSON text; the algorithm comes from the policy class's readable ``__module__``;
2. every top-level ``:serialized:`` field gets a replacement built on this side (``safe_objects``):
   the algorithm's own ``MlpPolicy`` class; the environment's spaces, after the file's readable
   ``_shape``, ``n``, ``low`` and ``high`` have been checked against them; ``policy_kwargs`` from
   its readable copy, a class in it (``"<class 'torch.nn.modules.activation.ReLU'>"``) taken from
   a fixed list of torch activations and optimisers and SB3's ``FlattenExtractor`` (A2C always
   stores its RMSprop this way); schedules as constants; what a teacher never uses (buffers, last
   observations, episode infos) as ``None``. A field with no safe replacement (a class of the
   user's own in ``policy_kwargs``, a custom policy class, a field this module does not know) is
   refused with a ConfigError naming it;
3. the ``.pth`` members are read with ``torch.load(weights_only=True)``, which admits tensors and
   plain containers only, and written back with ``torch.save`` before SB3 sees them, so the
   weights SB3 unpickles are bytes made here, whatever its own ``torch.load`` settings.

A file the config marks ``trusted`` skips all this and goes to SB3's own loader.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from tempdistill.config import ConfigError

ALGORITHMS = ("ppo", "a2c", "dqn", "sac")
SERIALIZED = ":serialized:"
# The ``data`` entry is a few kB of JSON; a larger one is not a model this tool reads.
MAX_DATA_BYTES = 16 << 20

# Fields SB3 serializes that a teacher never uses for acting: SB3 rebuilds each when needed
# (buffers from their default class, exploration from the plain epsilon fields) or keeps None.
_NOT_NEEDED = ("_last_obs", "_last_episode_starts", "_last_original_obs", "ep_info_buffer",
               "ep_success_buffer", "action_noise", "replay_buffer_class", "rollout_buffer_class",
               "exploration_schedule")
_EMPTY = ("replay_buffer_kwargs", "rollout_buffer_kwargs")
# Training schedules, replaced by constants (the value of a ConstantSchedule when readable).
_SCHEDULES = {"learning_rate": 0.0, "lr_schedule": 0.0, "clip_range": 0.2, "clip_range_vf": None}
# Set whether or not the file serializes them: what SB3 would otherwise take from the file
# (a plain ``env`` string is an environment id SB3 would make).
_ALWAYS = ("policy_class", "observation_space", "action_space", "env")


@dataclass(frozen=True)
class SB3File:
    """One SB3 zip as read: its bytes, its ``data`` JSON (serialized fields left as text) and the
    algorithm that saved it."""

    path: Path
    raw: bytes
    data: Dict[str, Any]
    algorithm: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    def serialized(self) -> List[str]:
        """The top-level fields SB3's loader would unpickle."""
        return [key for key, item in self.data.items() if _is_serialized(item)]


def _is_serialized(item: Any) -> bool:
    return isinstance(item, dict) and SERIALIZED in item  # SB3's own test, json_to_data


def read_sb3_file(path: str | Path, field: str = "teacher.checkpoint") -> SB3File:
    """Read ``path`` and its ``data`` JSON; ConfigError naming ``field`` if it is not an SB3 zip
    of an algorithm this tool reads."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{field}: file not found: {path}")
    not_sb3 = f"{field}: {path} is not a Stable-Baselines3 model (.zip with a 'data' entry)"
    try:
        raw = path.read_bytes()
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            if archive.getinfo("data").file_size > MAX_DATA_BYTES:
                raise ConfigError(f"{field}: {path}: its 'data' entry is over {MAX_DATA_BYTES >> 20} MiB; "
                                  "not a Stable-Baselines3 model this tool reads")
            data = json.loads(archive.read("data").decode("utf-8"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError, OSError, EOFError):
        raise ConfigError(not_sb3) from None
    if not isinstance(data, dict):
        raise ConfigError(not_sb3)
    return SB3File(path, raw, data, _algorithm(data, path, field))


def _algorithm(data: Dict[str, Any], path: Path, field: str) -> str:
    """The algorithm from readable text: the policy class's module, and PPO's ``clip_range``."""
    policy = data.get("policy_class")
    module = str(policy.get("__module__", "")) if isinstance(policy, dict) else ""
    if module.startswith("stable_baselines3.dqn"):
        return "dqn"
    if module.startswith("stable_baselines3.sac"):
        return "sac"
    if module.startswith(("stable_baselines3.common", "stable_baselines3.ppo", "stable_baselines3.a2c")):
        return "ppo" if "clip_range" in data else "a2c"
    raise ConfigError(f"{field}: {path} was saved by an SB3 algorithm this tool does not read "
                      f"(policy module {module or '?'}); allowed: {', '.join(ALGORITHMS)}")


def algorithm_class(name: str) -> Any:
    import stable_baselines3 as sb3

    return {"ppo": sb3.PPO, "a2c": sb3.A2C, "dqn": sb3.DQN, "sac": sb3.SAC}[name]


def _refuse(file: SB3File, key: str, what: str, field: str) -> ConfigError:
    return ConfigError(f"{field}: {file.path} stores {key} as a pickled Python object ({what}), which only "
                       f"SB3's own loader reads, by running code from the file; if you trust the file, "
                       f"set {field.rsplit('.', 1)[0]}.trusted: true")


def check_replaceable(file: SB3File, field: str = "teacher.checkpoint") -> None:
    """Refuse the first serialized field that has no safe replacement (before any loading)."""
    known = set(_NOT_NEEDED) | set(_EMPTY) | set(_SCHEDULES) | set(_ALWAYS) | {"train_freq"}
    for key in file.serialized():
        if key == "policy_class":
            _check_policy_class(file, field)
        elif key == "policy_kwargs":
            _policy_kwargs(file, field)
        elif key not in known:
            item = file.data[key]
            detail = str(item.get(":type:", "?"))
            names = sorted(name for name in item if not name.startswith(":"))
            if names:  # e.g. policy_kwargs: "with activation_fn, net_arch"
                detail += f" with {', '.join(names[:4])}"
            raise _refuse(file, key, detail, field)


def _check_policy_class(file: SB3File, field: str) -> None:
    """The file's policy class must be the algorithm's ``MlpPolicy``, judged from readable text:
    its module and the class named in its methods' reprs (``<function DQNPolicy._build at ..>``)."""
    expected = algorithm_class(file.algorithm).policy_aliases["MlpPolicy"]
    item = file.data.get("policy_class")
    if not isinstance(item, dict):
        return  # not serialized: SB3 would not unpickle it, and it is replaced anyway
    module = str(item.get("__module__", ""))
    owners = {match.group(1) for value in item.values() if isinstance(value, str)
              for match in re.finditer(r"<function ([\w.]+)\.\w+ at ", value)}
    if module != expected.__module__ or owners - {expected.__qualname__}:
        name = ", ".join(sorted(owners)) or "?"
        raise _refuse(file, "policy_class", f"{name} from {module or '?'}, not SB3's MlpPolicy "
                      f"{expected.__qualname__}", field)


def safe_objects(file: SB3File, observation_space: Any, action_space: Any,
                 field: str = "teacher.checkpoint") -> Dict[str, Any]:
    """``custom_objects`` for SB3's ``load`` that replace every serialized field of ``file``,
    so nothing from it is unpickled; the spaces are the environment's, after the file's readable
    shapes and bounds have been checked against them."""
    import copy

    from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit

    check_replaceable(file, field)
    _check_spaces(file, observation_space, action_space, field)
    objects: Dict[str, Any] = {
        "policy_class": algorithm_class(file.algorithm).policy_aliases["MlpPolicy"],
        # copies: SB3 seeds the action space it is given
        "observation_space": copy.deepcopy(observation_space),
        "action_space": copy.deepcopy(action_space),
        "env": None,
    }
    for key in file.serialized():
        if key in objects:
            continue
        if key in _SCHEDULES:
            objects[key] = _constant(file.data, key)
        elif key == "policy_kwargs":
            objects[key] = _policy_kwargs(file, field)
        elif key == "train_freq":
            objects[key] = TrainFreq(1, TrainFrequencyUnit.STEP)
        elif key in _EMPTY:
            objects[key] = {}
        else:
            objects[key] = None  # _NOT_NEEDED (check_replaceable refused the rest)
    missing = [key for key in file.serialized() if key not in objects]
    assert not missing, f"serialized fields left for SB3 to unpickle: {missing}"
    return objects


def _allowed_classes() -> Dict[str, Dict[str, type]]:
    """The classes a ``policy_kwargs`` key may name, by the name ``str(cls)`` shows: parameter-free
    torch activations, torch optimisers (a teacher never steps one) and SB3's flattening extractor."""
    from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
    from stable_baselines3.common.torch_layers import FlattenExtractor
    from torch import nn, optim

    activations = [nn.ReLU, nn.Tanh, nn.ELU, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Softplus, nn.SELU,
                   nn.Mish, nn.Identity, nn.ReLU6, nn.Hardtanh, nn.Hardswish, nn.CELU]
    optimizers = [optim.Adam, optim.AdamW, optim.RMSprop, optim.SGD, optim.Adamax, optim.NAdam, optim.RAdam,
                  optim.Adagrad, optim.Adadelta, RMSpropTFLike]
    named = lambda classes: {f"{c.__module__}.{c.__qualname__}": c for c in classes}  # noqa: E731
    return {"activation_fn": named(activations), "optimizer_class": named(optimizers),
            "features_extractor_class": named([FlattenExtractor])}


def _policy_kwargs(file: SB3File, field: str) -> Dict[str, Any]:
    """``policy_kwargs`` rebuilt from the readable copy SB3 writes beside the pickle: JSON values
    as they are, a class only from ``_allowed_classes``; anything else is refused."""
    allowed = _allowed_classes()
    rebuilt: Dict[str, Any] = {}
    for key, value in file.data["policy_kwargs"].items():
        if key.startswith(":"):
            continue
        if isinstance(value, str):  # a str() of what JSON could not hold: it must name an allowed class
            match = re.fullmatch(r"<class '([\w.]+)'>", value)
            cls = allowed.get(key, {}).get(match.group(1)) if match else None
            if cls is None:
                raise _refuse(file, f"policy_kwargs.{key}", value, field)
            value = cls
        rebuilt[key] = value
    return rebuilt


def _constant(data: Dict[str, Any], key: str) -> Optional[float]:
    """A schedule's value if the file shows a ConstantSchedule, else the plain learning rate or
    a default: the teacher never trains, SB3 only needs a number to build its optimiser."""
    shown = " ".join(str(value) for value in data[key].values() if isinstance(value, (str, int, float)))
    match = re.search(r"ConstantSchedule\(val=([-+0-9.eE]+)\)", shown)
    if match:
        try:
            return float(match.group(1))
        except ValueError:
            pass
    plain = data.get("learning_rate")
    if key in ("learning_rate", "lr_schedule") and isinstance(plain, (int, float)) and not isinstance(plain, bool):
        return float(plain)
    return _SCHEDULES[key]


def _space(item: Any) -> Tuple[str, Any]:
    """(kind, size) of a space from its readable fields: ('Box', shape) or ('Discrete', n)."""
    if not isinstance(item, dict):
        return "?", "?"
    kind = re.sub(r"^<class '(?:[\w]+\.)*(\w+)'>$", r"\1", str(item.get(":type:", "?")))
    shape = item.get("_shape")
    if kind == "Discrete":
        try:
            return kind, int(str(item.get("n")))
        except ValueError:
            return kind, "?"
    if isinstance(shape, list) and all(isinstance(d, int) for d in shape):
        return kind, tuple(shape)
    return kind, "?"


def _describe(kind: str, size: Any, box_or_discrete: str) -> str:
    return str(size) if kind == box_or_discrete else f"{kind} {size}"


def _check_spaces(file: SB3File, observation_space: Any, action_space: Any, field: str) -> None:
    obs_kind, obs = _space(file.data.get("observation_space"))
    act_kind, act = _space(file.data.get("action_space"))
    continuous = not hasattr(action_space, "n")
    expected = (tuple(observation_space.shape), tuple(action_space.shape) if continuous else int(action_space.n))
    found_kinds = (obs_kind, act_kind)
    if (obs, act) != expected or found_kinds != ("Box", "Box" if continuous else "Discrete"):
        found_obs = _describe(obs_kind, obs, "Box")
        found_act = _describe(act_kind, act, "Box" if continuous else "Discrete")
        raise ConfigError(f"{field}: {file.path} was trained on observations {found_obs} with {found_act} actions; "
                          f"the environment has observations {expected[0]} with {expected[1]} actions")
    spaces = [("observations", file.data["observation_space"], observation_space)]
    if continuous:
        spaces.append(("actions", file.data["action_space"], action_space))
    for what, item, space in spaces:
        for bound in ("low", "high"):
            saved = _array(item.get(bound), space.shape)
            if saved is not None and not np.allclose(saved, np.asarray(getattr(space, bound), dtype=np.float64),
                                                     rtol=1e-6, atol=1e-12):
                raise ConfigError(f"{field}: {file.path} was trained on {what} with {bound} {_short(saved)}; "
                                  f"the environment's {bound} is {_short(getattr(space, bound))}")


def _array(text: Any, shape: Tuple[int, ...]) -> Optional[np.ndarray]:
    """A numpy array printed by ``str`` ('[-4.8  -inf  0.4]'), or None when it cannot be read
    whole (summarised with '...', or not of ``shape``): then it is not checked."""
    if not isinstance(text, str) or "..." in text:
        return None
    try:
        values = np.array([float(v) for v in text.replace("[", " ").replace("]", " ").replace(",", " ").split()])
    except ValueError:
        return None
    return values.reshape(shape) if values.size == int(np.prod(shape)) else None


def _short(values: Any) -> str:
    return "[" + " ".join(f"{v:g}" for v in np.asarray(values, dtype=np.float64).ravel()[:8]) + "]"


def weights_only_archive(file: SB3File, field: str = "teacher.checkpoint") -> io.BytesIO:
    """The zip SB3 is given: ``data`` as in the file, each ``.pth`` member read with
    ``weights_only=True`` and saved again here, nothing else."""
    import torch

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(file.raw)) as archive, zipfile.ZipFile(out, "w") as rebuilt:
        rebuilt.writestr("data", archive.read("data"))
        for name in archive.namelist():
            if not name.endswith(".pth"):
                continue
            try:
                weights = torch.load(io.BytesIO(archive.read(name)), map_location="cpu", weights_only=True)
            except Exception as exc:  # the weights-only unpickler refuses anything but tensors
                raise ConfigError(f"{field}: {file.path}: member {name} is not plain weights "
                                  f"({type(exc).__name__}); refused") from None
            buffer = io.BytesIO()
            torch.save(weights, buffer)
            rebuilt.writestr(name, buffer.getvalue())
    out.seek(0)
    return out
