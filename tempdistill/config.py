"""Typed run configuration: YAML in, a validated object out, one-line errors that name the field.

Sections that belong to a pluggable part (a student's backend options, a schedule's
parameters) are kept as open mappings here and validated by that part through
``validate_section``, so this module never imports a concrete backend.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, Dict, Iterable, List, Literal, Mapping, Optional, Sequence, Type, TypeVar, get_args

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tempdistill.errors import ConfigError
from tempdistill.registry import TASKS

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


# Upper bounds on the sizes a config may ask for. They are generous sanity bounds against a
# typo's extra zeros (``distill.epochs: 100000000`` was accepted and its progress bar
# estimated 20,000 hours; ``eval.episodes: 1e9`` allocated 7.45 GiB before anything was
# checked), far above any run this project makes; whether a network fits the machine's memory
# is checked separately, before it is built (``tempdistill.core.memory``).
MAX_EPOCHS = 100_000
MAX_WIDTH = 65_536  # neurons in one hidden layer
MAX_LAYERS = 64
MAX_BATCH = 1_048_576
MAX_EPISODES = 100_000
MAX_TRACE_SAMPLES = 10_000
MAX_TIMESTEPS = 1_000_000_000  # environment steps of `tempdistill teach`
MAX_ENVS = 256
MAX_STATES = 10_000_000  # environment steps per epoch, states in a buffer, updates per epoch


def within(low: int, high: int) -> AfterValidator:
    """An integer range whose message names both ends, so a user learns what is allowed
    (pydantic's own ``ge``/``le`` messages name only the end that was crossed)."""

    def check(value: int) -> int:
        if not low <= value <= high:
            raise ValueError(f"must be from {low:,} to {high:,}")
        return value

    return AfterValidator(check)


Epochs = Annotated[int, within(1, MAX_EPOCHS)]
BatchSize = Annotated[int, within(1, MAX_BATCH)]
Episodes = Annotated[int, within(1, MAX_EPISODES)]
EnvCount = Annotated[int, within(1, MAX_ENVS)]
States = Annotated[int, within(1, MAX_STATES)]


class AugmentConfig(Strict):
    """Training-time augmentation of images (``tempdistill.tasks.augment``): shift by up to
    ``crop`` pixels (pad and random crop), mirror left-right with ``flip``."""

    crop: int = Field(0, ge=0, le=64)
    flip: bool = False

    @property
    def changes_images(self) -> bool:
        """False for ``{crop: 0, flip: false}``: the batches are then the plain ones, logits cached."""
        return self.crop > 0 or self.flip


class DataConfig(Strict):
    # mnist1d: generated offline, its own 4000/1000 split; fashion_mnist: the four IDX files in
    # ``root`` (Debian's dataset-fashion-mnist by default), its own 60,000/10,000 split; arrays:
    # given in memory from Python (tempdistill.tasks.sources.ArrayData), checked and split like a .npz
    name: Literal["digits", "mnist1d", "fashion_mnist", "npz", "arrays"] = "digits"
    path: Optional[str] = None
    # fashion_mnist only: the directory holding the IDX files (None: FASHION_MNIST_ROOT)
    root: Optional[str] = None
    # flat: every sample a vector (n, F), as always; image: samples keep their (C, H, W) shape
    # (digits as 1x8x8, Fashion-MNIST as 1x28x28, a .npz whose X is (n, C, H, W))
    layout: Literal["flat", "image"] = "flat"
    test_fraction: float = Field(0.3, gt=0.0, lt=1.0)  # of all samples, when the data has no test part of its own
    # Of the training part, held out for per-epoch measures and choices (schedule signals,
    # ``distill.select: best_val``); a share in (0, 1): validation is never empty.
    val_fraction: float = 0.15
    # auto: minmax for the bundled image data, per-feature standard for a user's arrays
    normalize: Literal["auto", "minmax", "standard", "none"] = "auto"
    # image layout only: the training batches are augmented (the teacher's logits then come per
    # batch, on the augmented images); validation and test never are
    augment: Optional[AugmentConfig] = None

    @field_validator("val_fraction")
    @classmethod
    def _val_fraction_is_a_share(cls, value: float) -> float:
        if not 0.0 < value < 1.0:
            raise ValueError("must be > 0 and < 1: the share of the training part held out for "
                             "validation, which every run needs")
        return value

    @model_validator(mode="after")
    def _path_only_for_npz(self) -> "DataConfig":
        if self.name == "npz" and not self.path:
            raise ValueError("data.path: required when data.name is 'npz' (a .npz file with arrays X and y)")
        if self.name != "npz" and self.path:
            raise ValueError(
                f"data.path: only read when data.name is 'npz', but data.name is {self.name!r}; "
                "set data.name=npz to train on the file, or drop data.path"
            )
        if self.name != "fashion_mnist" and self.root:
            raise ValueError(f"data.root: only read when data.name is 'fashion_mnist', but data.name is {self.name!r}; "
                             "drop data.root")
        if self.augment is not None and self.layout != "image":
            raise ValueError("data.augment: shifts and flips need images; set data.layout: image (digits, "
                             "fashion_mnist, or a .npz whose X is (n, C, H, W)) or drop data.augment")
        if self.layout == "image" and self.name == "mnist1d":
            raise ValueError("data.layout: 'image' needs image data (digits, fashion_mnist, or a .npz whose X is "
                             "(n, C, H, W)); mnist1d's samples are 40-feature signals, use layout 'flat'")
        return self


class EnvConfig(Strict):
    """A gymnasium environment for ``task: policy``; ``n_envs`` copies collect in lockstep."""

    id: str = Field(min_length=1)
    n_envs: EnvCount = 8


class HeadConfig(Strict):
    """One task of ``task: multitask``: an environment, its SB3 teacher, and the temperature
    schedule of its head (``distill.temperature`` when not given)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    env: str = Field(min_length=1)
    checkpoint: str = Field(min_length=1)
    # SB3's own loader for this head's checkpoint (runs the file's pickles); see teacher.trusted.
    trusted: bool = False
    n_envs: EnvCount = 8
    temperature: Optional["TemperatureConfig"] = None


class DaggerConfig(Strict):
    """How a policy task gathers states: each epoch ``steps_per_epoch`` environment steps in
    which the teacher acts with probability β (linear from ``beta_start`` to ``beta_end`` over
    the epochs) and the student otherwise; the teacher labels every visited state, and the
    states accumulate in a buffer of ``buffer_size`` (oldest dropped). β = 1 throughout is
    plain teacher-rollout distillation (Rusu et al. 2016)."""

    beta_start: float = Field(1.0, ge=0.0, le=1.0)
    beta_end: float = Field(0.0, ge=0.0, le=1.0)
    steps_per_epoch: States = 2000
    buffer_size: States = 100_000
    updates_per_epoch: States = 100


class EvalConfig(Strict):
    """Policy evaluation: ``episodes`` test episodes seeded ``seed``, ``seed + 1``, ... at the
    end; ``val_episodes`` validation episodes (seeds from ``val_seed``) after every epoch."""

    episodes: Episodes = 100
    seed: int = Field(10_000, ge=0)
    val_episodes: Episodes = 10
    val_seed: int = Field(5_000, ge=0)
    # The first ``rollouts`` test episodes of the final student are written whole to
    # /episodes/<k>/ (observations, actions, rewards, terminations, truncations; Minari's layout).
    rollouts: Annotated[int, within(0, MAX_EPISODES)] = 0

    @model_validator(mode="after")
    def _validation_is_not_test(self) -> "EvalConfig":
        val_end, test_end = self.val_seed + self.val_episodes, self.seed + self.episodes
        if self.val_seed < test_end and self.seed < val_end:
            raise ValueError(
                f"eval.val_seed: validation episodes (seeds {self.val_seed}–{val_end - 1}) overlap the test "
                f"episodes (seeds {self.seed}–{test_end - 1}); choose seed ranges that do not meet"
            )
        return self


def _positive_widths(widths: List[int]) -> List[int]:
    if any(w < 1 for w in widths):
        raise ValueError("every hidden width must be an integer >= 1")
    if any(w > MAX_WIDTH for w in widths):
        raise ValueError(f"every hidden width must be from 1 to {MAX_WIDTH:,}")
    if len(widths) > MAX_LAYERS:
        raise ValueError(f"at most {MAX_LAYERS} hidden layers, got {len(widths)}")
    return widths


class NetworkSection(BaseModel):
    """A section naming a backend; the keys it does not declare belong to that backend."""

    model_config = ConfigDict(extra="allow")
    backend: str = "dense"

    def backend_options(self) -> Dict[str, Any]:
        """What the backend validates: its name, the widths and its own extra keys."""
        return {"backend": self.backend, "hidden": list(getattr(self, "hidden")), **(self.model_extra or {})}


_IMPORT_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")
# The keys that describe a network tempdistill builds and trains; a user's own teacher has none.
TEACHER_NETWORK_KEYS = ("backend", "hidden", "epochs", "lr", "batch_size", "weight_decay", "lr_schedule",
                        "label_smoothing")


class TeacherConfig(NetworkSection):
    """The teacher: tempdistill's own network (backend-specific keys are validated by the
    backend), or a user's own (docs/your-teacher.md).

    ``source: auto`` tells the kinds apart by the other keys: ``factory`` (a user's factory +
    the state dict at ``checkpoint``), else ``checkpoint`` by its content (a TorchScript
    archive, or tempdistill's own ``.pt``), else a network tempdistill trains and caches.
    ``module`` is a ``torch.nn.Module`` given in memory; ``logits`` are stored logits (no
    network at all), ``teacher_logits`` beside ``X`` in the ``.npz`` or given in memory.
    """

    hidden: List[int] = Field(default_factory=lambda: [512, 512])
    epochs: Epochs = 40
    lr: float = Field(0.001, gt=0.0)
    batch_size: BatchSize = 64
    weight_decay: float = Field(0.0, ge=0.0)
    # Adam's learning rate held ("constant") or annealed to 0 over the epochs ("cosine")
    lr_schedule: Literal["constant", "cosine"] = "constant"
    # The cross-entropy's label smoothing while training tempdistill's own teacher (0: none):
    # a smoothed teacher keeps softer soft labels at T = 1 (the premise of some claims, C1)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    checkpoint: Optional[str] = None
    source: Literal["auto", "module", "logits"] = "auto"
    # 'package.module:callable' returning the teacher network; importing it runs that module
    factory: Optional[str] = None
    kwargs: Dict[str, Any] = Field(default_factory=dict)  # keyword arguments the factory is called with
    # Stored logits only: the teacher's parameter count when known (recorded as teacher_params)
    params: Optional[int] = Field(None, ge=1)

    _check_hidden = field_validator("hidden")(_positive_widths)

    @field_validator("source", mode="before")
    @classmethod
    def _file_kinds_are_auto(cls, value: Any) -> Any:
        if value in ("torchscript", "factory", "tempdistill", "checkpoint"):
            raise ValueError("allowed: 'auto', 'module' or 'logits'; a TorchScript file, a factory + state dict and "
                             "tempdistill's own teacher are all 'auto', told apart by teacher.factory and the content "
                             "of teacher.checkpoint")
        return value

    @field_validator("kwargs", mode="before")
    @classmethod
    def _kwargs_is_a_mapping(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise ValueError("must be a mapping of the factory's keyword arguments, e.g. {width: 64}")
        return value

    @field_validator("factory")
    @classmethod
    def _factory_is_an_import_path(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not _IMPORT_PATH.fullmatch(value):
            raise ValueError("expected an import path 'package.module:callable'")
        return value

    @model_validator(mode="after")
    def _one_kind_of_teacher(self) -> "TeacherConfig":
        if self.kwargs and not self.factory:
            raise ValueError("teacher.kwargs: only used with teacher.factory (they are the factory's arguments)")
        if self.params is not None and self.source != "logits":
            raise ValueError(f"teacher.params: only used when teacher.source is 'logits' (a network's parameters "
                             f"are counted), but teacher.source is {self.source!r}")
        if self.source in ("module", "logits"):
            for key in ("factory", "checkpoint"):
                if getattr(self, key):
                    raise ValueError(f"teacher.{key}: not used when teacher.source is {self.source!r}; drop it, "
                                     "or set teacher.source: auto")
        elif self.factory and not self.checkpoint:
            raise ValueError("teacher.checkpoint: required with teacher.factory: the state dict "
                             "(torch.save(model.state_dict(), path)) loaded into the factory's network")
        return self

    def user_network_keys(self) -> List[str]:
        """The keys of tempdistill's own network that the config sets (its defaults aside)."""
        return [key for key in TEACHER_NETWORK_KEYS if key in self.model_fields_set] + list(self.model_extra or {})


class StudentConfig(NetworkSection):
    """The student network; backend-specific keys are validated by the backend."""

    hidden: List[int] = Field(default_factory=lambda: [64])

    _check_hidden = field_validator("hidden")(_positive_widths)


class TemperatureConfig(BaseModel):
    """The schedule's name; its parameters are validated by the schedule."""

    model_config = ConfigDict(extra="allow")
    schedule: str = "constant"


class FeatureConfig(Strict):
    """One feature-distillation term beside the logit term (``tempdistill.core.features``):
    the output of the teacher's layer ``teacher`` (a module path in the teacher network, e.g.
    ``features.3``) against the student's layer ``student`` (a name of the student's
    ``feature_layers()``, else a module path in the student), compared by ``loss`` and added to
    the objective times ``weight``."""

    teacher: str = Field(min_length=1)
    student: str = Field(min_length=1)
    # mse: mean squared error (a learned adapter maps the student's channels to the teacher's
    # when they differ); attention: attention transfer (Zagoruyko & Komodakis 2017), no adapter
    loss: Literal["mse", "attention"] = "mse"
    weight: float = Field(1.0, ge=0.0)


class DistillConfig(Strict):
    epochs: Epochs = 40
    batch_size: BatchSize = 64
    lr: float = Field(0.002, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    # Adam's learning rate held ("constant") or annealed to 0 by a cosine over the student's
    # steps ("cosine"), as teacher.lr_schedule does for the teacher
    lr_schedule: Literal["constant", "cosine"] = "constant"
    alpha: float = Field(0.9, ge=0.0, le=1.0)
    temperature: TemperatureConfig = Field(default_factory=lambda: TemperatureConfig(schedule="constant", value=4.0))
    eval_temperature: float = Field(1.0, gt=0.0, allow_inf_nan=False)
    loss: Literal["kl", "nll", "mse"] = "kl"
    dagger: Optional[DaggerConfig] = None
    # Which student the run reports and exports: the last epoch's ("final"), or the weights of
    # the epoch with the best validation score ("best_val"; the final one is tested too).
    select: Literal["final", "best_val"] = "final"
    # Feature terms beside the logit term; empty: logits only (classification with a teacher network)
    features: List[FeatureConfig] = Field(default_factory=list)


HeadConfig.model_rebuild()


class TracesConfig(Strict):
    every: Annotated[int, within(0, MAX_EPOCHS)] = 10
    samples: Annotated[int, within(0, MAX_TRACE_SAMPLES)] = 16


class RecordConfig(Strict):
    dir: str = "runs"
    traces: TracesConfig = Field(default_factory=TracesConfig)
    save_student: bool = True


class SweepConfig(Strict):
    """What ``tempdistill sweep`` varies; ``tempdistill run`` ignores this section.

    ``grid`` crosses dotted keys with lists of values; ``variants`` are named sets of
    overrides (for keys whose values are whole sections, such as a schedule); every
    combination runs once per seed.
    """

    seeds: List[int] = Field(default_factory=lambda: [0])
    grid: Dict[str, List[Any]] = Field(default_factory=dict)
    variants: Dict[str, Dict[str, Any]] = Field(default_factory=dict)
    # A per-epoch validation score (accuracy, or return); the summary adds the epochs each
    # run needed to first reach it.
    target: Optional[float] = Field(None, allow_inf_nan=False)


RUN_NAME_CHARACTERS = "letters, digits and . _ - + ="
_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*")
MAX_SEED = 2**32 - 1  # NumPy's seeding range


class RunConfig(Strict):
    name: str = Field("run", min_length=1)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    device: Literal["cpu", "cuda"] = "cpu"
    task: str = "classification"  # a name in tempdistill.registry.TASKS
    data: DataConfig = Field(default_factory=DataConfig)
    env: Optional[EnvConfig] = None
    heads: Optional[List[HeadConfig]] = None
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    student: StudentConfig = Field(default_factory=StudentConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    record: RecordConfig = Field(default_factory=RecordConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    sweep: Optional[SweepConfig] = None

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        if value not in TASKS:
            raise ValueError(f"got {value!r}; allowed: {', '.join(repr(n) for n in TASKS.names())}")
        return value

    @model_validator(mode="after")
    def _sections_fit_the_task(self) -> "RunConfig":
        if self.task == "policy" and self.env is None:
            raise ValueError("env: required when task is 'policy', e.g. env: {id: CartPole-v1}")
        if self.task != "policy" and self.env is not None:
            where = " (a multitask config names each head's env under heads)" if self.task == "multitask" else ""
            raise ValueError(f"env: only used when task is 'policy', but task is {self.task!r}{where}")
        if self.task == "multitask":
            if not self.heads or len(self.heads) < 2:
                raise ValueError("heads: task 'multitask' needs a list of at least two heads, e.g. "
                                 "[{name: cartpole, env: CartPole-v1, checkpoint: cartpole-ppo.zip}, ...]")
            names = [head.name for head in self.heads]
            if len(set(names)) != len(names):
                raise ValueError(f"heads: each head needs its own name, got {names}")
        elif self.heads is not None:
            raise ValueError(f"heads: only used when task is 'multitask', but task is {self.task!r}")
        if self.task == "classification" and self.distill.dagger is not None:
            raise ValueError(f"distill.dagger: only used when task is 'policy' or 'multitask', but task is {self.task!r}")
        self._teacher_fits_the_task()
        return self

    def _teacher_fits_the_task(self) -> None:
        """A user's teacher network or stored logits are for classification; a policy's
        teacher is an SB3 .zip, and stored logits need the data they answer."""
        own = [key for key in ("source", "factory", "kwargs", "params") if key in self.teacher.model_fields_set]
        if self.task != "classification" and own:
            where = "each head's heads[].checkpoint" if self.task == "multitask" else "teacher.checkpoint"
            raise ValueError(f"teacher.{own[0]}: only used when task is 'classification'; a {self.task} teacher is "
                             f"an SB3 .zip ({where})")
        if self.teacher.source == "logits" and self.data.name not in ("npz", "arrays"):
            raise ValueError(f"teacher.source: 'logits' needs data.name 'npz' (teacher_logits beside X in the file) "
                             f"or 'arrays' (logits given in memory), but data.name is {self.data.name!r}")

    @field_validator("name")
    @classmethod
    def _name_is_a_file_name(cls, name: str) -> str:
        # The name starts the run file's name: a '/' would silently create a subdirectory.
        if not _RUN_NAME.fullmatch(name):
            raise ValueError(f"may only hold {RUN_NAME_CHARACTERS}, starting with a letter or digit (it names the run file)")
        return name

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)


def _section_model(model: Type[BaseModel], loc: Sequence[Any]) -> Optional[Type[BaseModel]]:
    """The model of the section at ``loc`` inside ``model`` (list indices and optional
    sections looked through), or None where the section is an open mapping."""
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        candidates = [field.annotation]
        found = None
        while candidates:
            kind = candidates.pop()
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                found = kind
                break
            candidates.extend(get_args(kind))
        if found is None:
            return None
        model = found
    return model


def _nearest_key(key: Any, model: Optional[Type[BaseModel]]) -> str:
    """'; did you mean X?' for a misspelt key of a declared section, else ''."""
    if model is None:
        return ""
    close = difflib.get_close_matches(str(key), list(model.model_fields), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _describe(error: Mapping[str, Any], root: str, model: Optional[Type[BaseModel]] = None) -> str:
    path = ".".join(str(p) for p in (root, *error.get("loc", ())) if p != "")
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        loc = tuple(error.get("loc", ()))
        section = _section_model(model, loc[:-1]) if model is not None and loc else None
        return f"{path}: unknown key" + (_nearest_key(loc[-1], section) if loc else "")
    if kind == "literal_error" and "expected" in ctx:
        return f"{path}: got {error.get('input')!r}; allowed: {ctx['expected']}"
    if kind == "missing":
        return f"{path}: required field is missing"
    msg = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if msg.startswith("got "):
        return f"{path}: {msg}"  # the validator named the value and the allowed ones
    if path and msg.startswith(path + "."):
        return msg  # a section's validator already named the field inside it
    if not error.get("loc"):
        if not path and re.match(r"^[a-z_][a-z0-9_.]*: ", msg):
            return msg  # a whole-config validator already named the field
        return f"{path or 'config'}: {msg}"
    return f"{path}: {msg} (got {error.get('input')!r})"


def validate_section(model: Type[M], data: Mapping[str, Any], path: str) -> M:
    """Validate one config section against a model; errors name ``path.field``."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(_describe(first, path, model)) from None


def refuse_foreign_keys(options: Mapping[str, Any], model: Type[BaseModel], foreign: Iterable[str], path: str,
                        belongs_to: str) -> None:
    """Refuse a key that ``model`` does not take but another kind of backend does, saying whose
    it is: ``student.steps`` on a dense student is not a typo but a spiking option, and "unknown
    key" would send the user looking for a misspelling."""
    for key in options:
        if key not in model.model_fields and key in foreign:
            raise ConfigError(f"{path}.{key}: applies to {belongs_to} only, but {path}.backend is "
                              f"{options.get('backend')!r}")


def parse_override(text: str) -> tuple[str, Any]:
    """'a.b=VALUE' -> ('a.b', value) with YAML typing (numbers, booleans, lists)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. distill.epochs=10")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(part == "" for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE with a dotted key, e.g. student.backend=norse")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def set_path(data: Dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested mapping, creating sections on the way."""
    node = data
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise ConfigError(f"--set {key}: {where} is not a section (it holds {child!r})")
        node = child
    node[parts[-1]] = value


def apply_overrides(data: Dict[str, Any], overrides: Sequence[str]) -> Dict[str, Any]:
    """Apply --set overrides to a raw config mapping (a new mapping is returned)."""
    result = copy.deepcopy(data)
    for text in overrides:
        key, value = parse_override(text)
        set_path(result, key, value)
    return result


# Keys whose values are file system paths; in a config file they are relative to that file.
PATH_KEYS = ("data.path", "data.root", "teacher.checkpoint", "record.dir")


def read_yaml(path: str | Path) -> Dict[str, Any]:
    """A config file's raw mapping; errors name the file (and line for bad YAML).

    Relative paths written in the file (``PATH_KEYS``) are resolved against the file's own
    directory, so a config means the same thing from any working directory. Paths given on
    the command line (``--set``, ``--out``) stay relative to the shell's directory.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config: {path} is a directory; expected a YAML config file")
    if not path.is_file():
        raise ConfigError(f"config: file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config: {path} is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config: {path} is not valid YAML{where}") from None
    if data is None:
        raise ConfigError(f"config: {path} is empty; it needs at least a name and a student section")
    if not isinstance(data, dict):
        raise ConfigError(f"config: {path} must hold a mapping of sections, got {type(data).__name__}")
    return resolve_paths(data, path.resolve().parent)


def resolve_paths(data: Dict[str, Any], base: Path) -> Dict[str, Any]:
    """Make the relative ``PATH_KEYS`` (and each multitask head's checkpoint) of a raw mapping
    absolute against ``base``."""
    heads = data.get("heads")
    nodes = [(key.partition(".")[2], data.get(key.partition(".")[0])) for key in PATH_KEYS]
    if isinstance(heads, list):
        nodes += [("checkpoint", head) for head in heads]
    for leaf, node in nodes:
        if isinstance(node, dict) and isinstance(node.get(leaf), str) and node[leaf]:
            value = Path(node[leaf]).expanduser()
            node[leaf] = os.path.normpath(value if value.is_absolute() else base / value)
    return data


def _reject_non_finite(node: Any, path: str) -> None:
    if isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(f"{path}: must be a finite number, got {node}")
    if isinstance(node, dict):
        for key, value in node.items():
            _reject_non_finite(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _reject_non_finite(value, f"{path}[{i}]")


def config_from_mapping(data: Mapping[str, Any], overrides: Sequence[str] = ()) -> RunConfig:
    """Validate a raw mapping (as read from YAML) after applying overrides."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"config: expected a mapping of sections, got {type(data).__name__}")
    raw = apply_overrides(dict(data), overrides)
    _reject_non_finite(raw, "")
    return validate_section(RunConfig, raw, "")


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """Read a YAML config file, apply --set overrides, validate."""
    return config_from_mapping(read_yaml(path), overrides)
