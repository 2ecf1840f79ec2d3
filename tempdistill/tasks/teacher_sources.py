"""Where a classification run's teacher comes from, and that teacher bound to the run's data.

- tempdistill's own (``teacher_source`` trained, cache or checkpoint): its network, on the
  normalised inputs;
- ``torchscript`` (``teacher.checkpoint`` holds a TorchScript archive): the archive's
  TorchScript code, on the inputs as given;
- ``factory`` (``teacher.factory`` + the state dict at ``teacher.checkpoint``): the user's
  module, imported, and what its factory returns, on the inputs as given;
- ``module`` (``teacher.source: module``): the ``nn.Module`` given in memory, on the inputs as
  given;
- ``logits`` (``teacher.source: logits``): no network; logits stored elsewhere
  (``tempdistill.tasks.stored_logits``).

**Which inputs a teacher reads is one property of its source** (``TeacherSource.inputs_as_given``),
decided once: tempdistill's own teacher was trained on the normalised inputs the student reads,
and keeps reading them; a user's teacher was trained on the user's own preprocessing, so it
reads the features exactly as the user gave them (float32), and the normalisation tempdistill
fits is for the student only. Everything that runs a teacher (its logits on each part, its test
accuracy, its latency) asks the bound teacher, which feeds what its source says.

Before any training a user's network is checked against the data: it takes two training rows
(n, F) and returns a tensor (n, K) with K the number of classes, else one line names what it
did; its logits on every part must be finite.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Optional, Tuple

import torch
from torch import nn

from tempdistill.config import ConfigError, RunConfig, TeacherConfig
from tempdistill.tasks.data import Split, file_sha256
from tempdistill.imports import import_object
from tempdistill.core.latency import inference_latency_ms
from tempdistill.tasks.sources import InMemory
from tempdistill.tasks.stored_logits import given_logits, npz_logits, split_logits
from tempdistill.core.student import Backend
from tempdistill.tasks.teacher import TeacherOrigin, obtain_teacher, state_dict_mismatch
from tempdistill.tasks.teacher_files import is_torchscript, load_torchscript, read_weights
from tempdistill.core.training import batched_forward, parameter_count

Log = Callable[[str], None]


# ------------------------------------------------------------------ the teacher, bound to a split
class ClassifierTeacher(ABC):
    """A classification run's teacher bound to its split: its logits (n, K) on each part
    (``train``, ``val``, ``test``), its size and speed where it has a network, and ``origin``,
    what the record says of it. ``network`` is None for stored logits."""

    origin: TeacherOrigin
    network: Optional[nn.Module] = None

    @abstractmethod
    def logits(self, part: str) -> Optional[torch.Tensor]:
        """The teacher's logits on ``part``'s rows; None where it has none (a test part that
        stored logits do not cover)."""

    @abstractmethod
    def parameter_count(self) -> Optional[int]:
        """The teacher's parameters; None where unknown."""

    @abstractmethod
    def latency_ms(self) -> Optional[float]:
        """Milliseconds per sample of the teacher's forward on validation rows; None without a network."""


class NetworkTeacher(ClassifierTeacher):
    """A teacher network fed the inputs its source says it reads (normalised or as given)."""

    def __init__(self, network: nn.Module, split: Split, origin: TeacherOrigin, inputs_as_given: bool) -> None:
        self.network, self.split, self.origin, self.inputs_as_given = network, split, origin, inputs_as_given

    def inputs(self, part: str) -> torch.Tensor:
        """What the network reads: tempdistill's own network the flat normalised rows (it views
        images itself); a user's the rows as given, (n, C, H, W) for images."""
        return teacher_view(self.split, part, self.inputs_as_given)

    def logits(self, part: str) -> torch.Tensor:
        return self.logits_of(self.inputs(part), part)

    def logits_of(self, inputs: torch.Tensor, part: str = "train") -> torch.Tensor:
        """Logits for inputs the network reads (a batch of augmented images), checked finite."""
        out = batched_forward(self.network, inputs)
        bad = int((~torch.isfinite(out)).any(dim=-1).sum())
        if bad:
            raise ConfigError(f"teacher: {self.origin.class_name} returned non-finite logits (nan or inf) for {bad} of "
                              f"{out.shape[0]} {part} rows")
        return out

    def parameter_count(self) -> int:
        return parameter_count(self.network)

    def latency_ms(self) -> float:
        return inference_latency_ms(self.network, self.inputs("val"))


class StoredTeacher(ClassifierTeacher):
    """Logits computed elsewhere: no network, so no latency, and a parameter count only if the
    config states one (``teacher.params``)."""

    def __init__(self, logits: Mapping[str, Optional[torch.Tensor]], origin: TeacherOrigin, params: Optional[int]) -> None:
        self._logits, self.origin, self.params = dict(logits), origin, params

    def logits(self, part: str) -> Optional[torch.Tensor]:
        return self._logits[part]

    def parameter_count(self) -> Optional[int]:
        return self.params

    def latency_ms(self) -> None:
        return None


def teacher_view(split: Split, part: str, as_given: bool) -> torch.Tensor:
    """The inputs of ``part`` as a teacher of that kind reads them: a user's teacher (``as_given``)
    gets each sample in its own shape, (n, C, H, W) for images, as a model of theirs expects."""
    x = split.inputs(part, as_given=as_given)
    if as_given and split.image_shape is not None:
        return x.reshape(x.shape[0], *split.image_shape)
    return x


def check_fits(network: nn.Module, split: Split, inputs_as_given: bool, what: str) -> None:
    """Refuse, in one line naming what it returned, a network that does not take the data's
    inputs or does not return (n, K) logits; run on two training rows, in eval mode."""
    x = teacher_view(split, "train", inputs_as_given)[:2]
    classes = split.num_classes
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            out = network(x)
    except Exception as exc:  # the user's code may raise anything
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise ConfigError(f"teacher: {what} fails on inputs of shape {tuple(x.shape)} ({type(exc).__name__}: {first}); "
                          f"it must take (n, {', '.join(str(d) for d in x.shape[1:])}) float32 inputs as the data gives them") from None
    finally:
        network.train(was_training)
    if not isinstance(out, torch.Tensor):
        raise ConfigError(f"teacher: {what} returned {type(out).__name__} for inputs of shape {tuple(x.shape)}; it must "
                          f"return a tensor of logits ({len(x)}, {classes})")
    if tuple(out.shape) != (len(x), classes):
        raise ConfigError(f"teacher: {what} returned shape {tuple(out.shape)} for inputs of shape {tuple(x.shape)}; the "
                          f"data has {classes} classes, so it must return logits ({len(x)}, {classes})")


def class_name(network: nn.Module) -> str:
    """What the record calls a network's class: its Python class, or for TorchScript the
    ``original_name`` of the class it was compiled from."""
    return str(getattr(network, "original_name", None) or type(network).__name__)


def state_dict_sha256(network: nn.Module) -> str:
    """SHA-256 of a module's state dict: every entry's name, dtype, shape and bytes, in order."""
    digest = hashlib.sha256()
    for name, value in network.state_dict().items():
        if isinstance(value, torch.Tensor):
            flat = value.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{name}:{value.dtype}:{tuple(value.shape)};".encode())
            digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()


# ------------------------------------------------------------------ sources
class TeacherSource(ABC):
    """One way a classification run gets its teacher. ``kind`` names it in messages;
    ``inputs_as_given``: whether its network reads the inputs as the user gave them (a user's
    own teacher, trained on its own preprocessing) or the normalised ones the student reads."""

    kind: ClassVar[str]
    inputs_as_given: ClassVar[bool] = True
    # Keys of tempdistill's own network the config sets beside a user's teacher (unused)
    unused_keys: Tuple[str, ...] = ()

    def bind(self, config: RunConfig, split: Split, given: InMemory, log: Log) -> ClassifierTeacher:
        """The teacher for this run's split, checked against it; the record's warnings name
        the config's keys that it leaves unused."""
        teacher = self.bound(config, split, given, log)
        if self.unused_keys:
            keys = ", ".join(f"teacher.{key}" for key in self.unused_keys)
            note = f"teacher: {keys} not used: {self.kind} is a teacher of your own, which tempdistill neither builds nor trains"
            teacher.origin = replace(teacher.origin, warnings=(*teacher.origin.warnings, note))
        return teacher

    @abstractmethod
    def bound(self, config: RunConfig, split: Split, given: InMemory, log: Log) -> ClassifierTeacher:
        """The teacher for this run's split, checked against it."""

    def network_teacher(self, network: nn.Module, split: Split, origin: TeacherOrigin, what: str) -> NetworkTeacher:
        """A user's network, checked against the data and fed the inputs as given."""
        check_fits(network, split, self.inputs_as_given, what)
        return NetworkTeacher(network, split, origin, self.inputs_as_given)


class OwnTeacher(TeacherSource):
    """tempdistill's own network: trained now, from the cache, or from its ``.pt``."""

    kind = "tempdistill"
    inputs_as_given = False  # trained by tempdistill on the normalised inputs, as the student reads them

    def __init__(self, backend: Backend, options: Any) -> None:
        self.backend, self.options = backend, options

    def bound(self, config: RunConfig, split: Split, given: InMemory, log: Log) -> ClassifierTeacher:
        network = self.backend.build_teacher(self.options, split.input_dim, split.num_classes,
                                             input_shape=split.image_shape)
        teacher, origin = obtain_teacher(network.to(config.device), self.options.model_dump(mode="json"), config.teacher,
                                         config.data, split, config.seed, log)
        return NetworkTeacher(teacher.eval(), split, origin, self.inputs_as_given)


class TorchScriptFile(TeacherSource):
    """A TorchScript archive at ``teacher.checkpoint``, recognised by its content."""

    kind = "a TorchScript teacher"

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def bound(self, config: RunConfig, split: Split, given: InMemory, log: Log) -> ClassifierTeacher:
        module = load_torchscript(self.path, config.device)
        name = class_name(module)
        origin = TeacherOrigin("torchscript", str(self.path.resolve()), file_sha256(self.path), class_name=name)
        log(f"teacher: TorchScript {name} from {self.path}")
        return self.network_teacher(module, split, origin, f"the TorchScript teacher {name}")


class FactoryTeacher(TeacherSource):
    """``teacher.factory(**teacher.kwargs)``, with the state dict at ``teacher.checkpoint``."""

    kind = "teacher.factory"

    def __init__(self, config: TeacherConfig) -> None:
        assert config.factory is not None and config.checkpoint is not None
        self.target, self.kwargs, self.weights = config.factory, dict(config.kwargs), Path(config.checkpoint)
        if not self.weights.is_file():
            raise ConfigError(f"teacher.checkpoint: file not found: {self.weights}")
        self.make = import_object(self.target, "teacher.factory")  # runs the module's code, by design
        if not callable(self.make):
            raise ConfigError(f"teacher.factory: {self.target!r} is a {type(self.make).__name__}, not a callable "
                              "that returns the teacher network")

    def build(self) -> nn.Module:
        try:
            network = self.make(**self.kwargs)
        except Exception as exc:  # the user's code may raise anything
            first = (str(exc).strip().splitlines() or [""])[0][:160]
            raise ConfigError(f"teacher.factory: {self.target!r} failed when called with teacher.kwargs {self.kwargs} "
                              f"({type(exc).__name__}: {first})") from None
        if not isinstance(network, nn.Module):
            raise ConfigError(f"teacher.factory: {self.target!r} returned {type(network).__name__}, not a torch.nn.Module")
        saved = read_weights(self.weights, "teacher.checkpoint", "a state dict")
        if isinstance(saved, Mapping) and isinstance(saved.get("state_dict"), Mapping):
            saved = saved["state_dict"]  # a tempdistill-style {"state_dict": ...} file
        if not isinstance(saved, Mapping):
            raise ConfigError(f"teacher.checkpoint: {self.weights} holds a {type(saved).__name__}, not a state dict "
                              "(torch.save(model.state_dict(), path))")
        mismatch = state_dict_mismatch(network.state_dict(), saved,
                                       resize="set teacher.kwargs so that teacher.factory builds the file's shapes")
        if mismatch:
            raise ConfigError(f"teacher.checkpoint: the weights do not fit the network of teacher.factory: {mismatch}")
        try:
            network.load_state_dict(saved)
        except (RuntimeError, TypeError, AttributeError) as exc:
            raise ConfigError(f"teacher.checkpoint: the weights do not load ({str(exc).splitlines()[0]})") from None
        return network

    def bound(self, config: RunConfig, split: Split, given: InMemory, log: Log) -> ClassifierTeacher:
        network = self.build().to(config.device).eval()
        name = class_name(network)
        origin = TeacherOrigin("factory", str(self.weights.resolve()), file_sha256(self.weights), class_name=name)
        log(f"teacher: {name} from {self.target} with {self.weights}")
        return self.network_teacher(network, split, origin, f"the network of teacher.factory ({name})")


class GivenModule(TeacherSource):
    """A ``torch.nn.Module`` given in memory (``InMemory.teacher``), used as it is, on the
    run's device, in eval mode while it runs."""

    kind = "teacher.source 'module'"

    def bound(self, config: RunConfig, split: Split, given: InMemory, log: Log) -> ClassifierTeacher:
        if given.teacher is None:
            raise ConfigError("teacher.source: 'module' uses a torch.nn.Module given in memory, and none was given")
        network = given.teacher.to(config.device)
        name = class_name(network)
        origin = TeacherOrigin("module", None, state_dict_sha256(network), class_name=name)
        return self.network_teacher(network, split, origin, f"the module given ({name})")


class StoredLogitsSource(TeacherSource):
    """Logits computed elsewhere (``tempdistill.tasks.stored_logits``): no network."""

    kind = "teacher.source 'logits'"

    def __init__(self, params: Optional[int]) -> None:
        self.params = params

    def bound(self, config: RunConfig, split: Split, given: InMemory, log: Log) -> ClassifierTeacher:
        found = given_logits(given.logits) if given.logits is not None else npz_logits(config.data.path or "")
        logits = split_logits(found, split)
        notes: Tuple[str, ...] = ()
        if logits["test"] is None:
            notes = ((f"teacher: no {found.names[split.rows['test'].source]} was given, so the teacher's test "
                      "accuracy (teacher_accuracy) is not recorded"),)
        origin = TeacherOrigin("logits", found.file, found.sha256, warnings=notes)
        return StoredTeacher(logits, origin, self.params)


def user_source(config: TeacherConfig) -> Optional[TeacherSource]:
    """The user's own teacher a config names, checked as far as it can be before any work (a
    factory is imported now); None for tempdistill's own. Keys of tempdistill's own network
    beside a user's teacher are not read, and the run's warnings say so (a config switched to
    a user's teacher with ``--set`` keeps them)."""
    source: TeacherSource
    if config.source == "logits":
        source = StoredLogitsSource(config.params)
    elif config.source == "module":
        source = GivenModule()
    elif config.factory:
        source = FactoryTeacher(config)
    elif config.checkpoint and is_torchscript(config.checkpoint):
        source = TorchScriptFile(config.checkpoint)
    else:
        return None
    source.unused_keys = tuple(config.user_network_keys())
    return source


def source_of(teacher_backend: Optional[Backend], teacher_options: Any) -> TeacherSource:
    """The source a planned run's (backend, options) stand for (``ClassificationTask.plan_teacher``)."""
    if isinstance(teacher_options, TeacherSource):
        return teacher_options
    assert teacher_backend is not None
    return OwnTeacher(teacher_backend, teacher_options)

