"""Temperature schedules: objects that say what T the next optimisation step uses.

A schedule sees (step, epoch), the run's totals and signals from the loop (the held-out
teacher-student KL of the last epoch, the last loss), so KL-driven and learned temperatures
fit the same call. ``for_batch`` lets a schedule make T depend on the batch (per-sample
temperatures); ``alpha`` lets it change the KD weight by phase. Schedules are found by name
in a registry, or by import path ``package.module:ClassName`` for a user's own; each validates
its own parameters and reports errors under ``distill.temperature.<param>``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Dict, Iterable, List, Mapping, Optional, Type

import torch
from pydantic import BaseModel, Field, model_validator

from tempdistill.config import ConfigError, Strict, TemperatureConfig, validate_section
from tempdistill.imports import import_object
from tempdistill.registry import SCHEDULES
from tempdistill.temperature import Temperature

Signals = Optional[Mapping[str, float]]
PATH = "distill.temperature"


class Schedule:
    """Base class. Subclasses set ``name`` and ``Params`` and implement ``temperature``."""

    name: ClassVar[str]
    Params: ClassVar[Type[Strict]]

    def __init__(self, params: Any, total_epochs: int, steps_per_epoch: int) -> None:
        self.params = params
        self.total_epochs = total_epochs
        self.steps_per_epoch = max(steps_per_epoch, 1)

    @property
    def total_steps(self) -> int:
        return self.total_epochs * self.steps_per_epoch

    def progress(self, step: int) -> float:
        """Fraction of training done at ``step``: 0 at the first step, 1 at the last."""
        return min(step / max(self.total_steps - 1, 1), 1.0)

    def temperature(self, step: int, epoch: int, signals: Signals = None) -> Temperature:
        raise NotImplementedError(f"schedule {type(self).__name__} must implement temperature()")

    def __call__(self, step: int, epoch: int, signals: Signals = None) -> Temperature:
        return self.temperature(step, epoch, signals)

    #: When True the loop reads the student's logits at T = 1 (no gradient) and calls
    #: ``per_sample`` to get the batch's (B, 1) temperatures.
    needs_student_logits: ClassVar[bool] = False

    def for_batch(self, temperature: Temperature, teacher_logits: torch.Tensor) -> Temperature:
        """The T applied to one batch; per-sample schedules return a (B, 1) tensor."""
        return temperature

    @property
    def varies_within_batch(self) -> bool:
        """Whether the T of a batch is set per sample or per class from the networks' logits
        (``per_sample`` or an overridden ``for_batch``), not one T for the step."""
        return self.needs_student_logits or type(self).for_batch is not Schedule.for_batch

    def per_sample(self, teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
        """Per-sample T from both networks' logits (schedules with needs_student_logits)."""
        raise NotImplementedError(f"schedule {type(self).__name__} does not predict per-sample temperatures")

    def alpha(self, epoch: int, default: float) -> float:
        """The KD weight for this epoch; schedules with phases override it."""
        return default

    def prepare(self, num_classes: int) -> None:
        """Called once the data's number of classes is known (builds learned parts)."""

    def to(self, device: str | torch.device) -> "Schedule":
        """Move learned parts to the run's device (before the optimiser is built)."""
        return self

    def parameters(self) -> Iterable[torch.nn.Parameter]:
        """Trainable parameters (learned temperatures); none for fixed schedules."""
        return ()

    def named_temperatures(self, temperature: Temperature) -> Dict[str, float]:
        """T per output group for ``/temperature`` (``class_k`` per class of a grouped T);
        empty for one shared or a per-sample T."""
        if isinstance(temperature, torch.Tensor) and temperature.dim() == 1 and temperature.numel() > 1:
            return {f"class_{k}": float(v) for k, v in enumerate(temperature.tolist())}
        return {}


def _positive(default: Optional[float] = None, **kwargs: Any) -> Any:
    if default is None:
        return Field(gt=0.0, allow_inf_nan=False, **kwargs)
    return Field(default, gt=0.0, allow_inf_nan=False, **kwargs)


class ConstantParams(Strict):
    schedule: str = "constant"
    value: float = _positive(4.0)


class Constant(Schedule):
    """The same T at every step: the reference every other schedule is compared with."""

    name = "constant"
    Params = ConstantParams

    def temperature(self, step: int, epoch: int, signals: Signals = None) -> Temperature:
        return self.params.value


class StartEndParams(Strict):
    schedule: str
    start: float = _positive(8.0)
    end: float = _positive(1.0)


class Linear(Schedule):
    """T moves in a straight line from ``start`` to ``end`` over all steps."""

    name = "linear"
    Params = StartEndParams

    def temperature(self, step: int, epoch: int, signals: Signals = None) -> Temperature:
        p = self.progress(step)
        return self.params.start + (self.params.end - self.params.start) * p


class Cosine(Schedule):
    """Curriculum T_end + (T_start - T_end)(1 + cos(π·p))/2, p the fraction of steps done."""

    name = "cosine"
    Params = StartEndParams

    def temperature(self, step: int, epoch: int, signals: Signals = None) -> Temperature:
        p = self.progress(step)
        return self.params.end + (self.params.start - self.params.end) * (1 + math.cos(math.pi * p)) / 2


class Exponential(Schedule):
    """Geometric decay start·(end/start)^p: equal ratios per step, so never reaches 0."""

    name = "exponential"
    Params = StartEndParams

    def temperature(self, step: int, epoch: int, signals: Signals = None) -> Temperature:
        p = self.progress(step)
        return self.params.start * (self.params.end / self.params.start) ** p


class StepParams(Strict):
    schedule: str = "step"
    high: float = _positive(8.0)
    low: float = _positive(1.0)
    switch_epoch: Optional[int] = Field(None, ge=1)  # default: half of distill.epochs


class Step(Schedule):
    """A step change of T: ``high`` until ``switch_epoch``, then ``low``; the KD weight (alpha)
    stays the run's throughout, so only T changes at the switch."""

    name = "step"
    Params = StepParams

    def __init__(self, params: Any, total_epochs: int, steps_per_epoch: int) -> None:
        super().__init__(params, total_epochs, steps_per_epoch)
        given = params.switch_epoch is not None
        self.switch_epoch = params.switch_epoch if given else max(total_epochs // 2, 1)
        if self.switch_epoch >= total_epochs:
            raise ConfigError(
                f"{PATH}.switch_epoch: must be < distill.epochs ({total_epochs}), got {self.switch_epoch}"
                + ("" if given else " (half of distill.epochs, the default); two phases need distill.epochs >= 2")
            )

    def temperature(self, step: int, epoch: int, signals: Signals = None) -> Temperature:
        return self.params.high if epoch < self.switch_epoch else self.params.low


class TwoPhaseParams(StepParams):
    schedule: str = "two_phase"
    alpha_phase2: float = Field(0.5, ge=0.0, le=1.0)


class TwoPhase(Step):
    """High-T distillation until ``switch_epoch``, then low-T fine-tuning with its own alpha
    (``alpha_phase2``); ``step`` is the same change of T with the run's alpha kept."""

    name = "two_phase"
    Params = TwoPhaseParams

    def alpha(self, epoch: int, default: float) -> float:
        return default if epoch < self.switch_epoch else self.params.alpha_phase2


class AdaptiveParams(Strict):
    schedule: str = "adaptive"
    start: float = _positive(4.0)
    target_kl: float = _positive(0.05)
    rate: float = _positive(0.5)
    min: float = _positive(1.0)
    max: float = _positive(20.0)

    @model_validator(mode="after")
    def _ordered(self) -> "AdaptiveParams":
        if not self.min <= self.start <= self.max:
            raise ValueError(f"need min <= start <= max, got min={self.min}, start={self.start}, max={self.max}")
        return self


class Adaptive(Schedule):
    """KL-driven: once per epoch, T ← clip(T·exp(rate·tanh(ln(KL/target))), min, max).

    KL is the held-out teacher-student KL at the current T measured after the previous
    epoch. A softer pair of distributions (higher T) has a smaller KL, so T rises while the
    KL is above target and falls while it is below; tanh bounds each move to a factor of
    e^±rate, and T holds when KL equals the target.
    """

    name = "adaptive"
    Params = AdaptiveParams

    def __init__(self, params: Any, total_epochs: int, steps_per_epoch: int) -> None:
        super().__init__(params, total_epochs, steps_per_epoch)
        self.current = params.start
        self.updated_for_epoch = 0

    def temperature(self, step: int, epoch: int, signals: Signals = None) -> Temperature:
        if epoch > self.updated_for_epoch and signals and "kl" in signals:
            kl = max(float(signals["kl"]), 1e-12)
            move = math.exp(self.params.rate * math.tanh(math.log(kl / self.params.target_kl)))
            self.current = min(max(self.current * move, self.params.min), self.params.max)
            self.updated_for_epoch = epoch
        return self.current


class GradientReversal(torch.autograd.Function):
    """Identity forward; multiplies the gradient by -strength backward (adversarial T)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, strength: float) -> torch.Tensor:
        ctx.strength = strength
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        return -ctx.strength * grad, None


def reversal_strength(epoch: int, total_epochs: int, maximum: float) -> float:
    """CTKD's cosine curriculum: 0 at the first epoch rising to ``maximum`` at the last."""
    p = epoch / max(total_epochs - 1, 1)
    return maximum * (1 - math.cos(math.pi * p)) / 2


class LearnableParams(Strict):
    schedule: str = "learnable"
    init: float = _positive(4.0)
    t_min: float = _positive(1.0)
    t_range: float = _positive(19.0)
    max_reversal: float = Field(1.0, ge=0.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _inside(self) -> "LearnableParams":
        if not self.t_min < self.init < self.t_min + self.t_range:
            raise ValueError(f"init must lie strictly between t_min and t_min + t_range, got {self.init}")
        return self


class Learnable(Schedule):
    """Global learned T = t_min + t_range·sigmoid(θ), trained adversarially (CTKD, Li et al. 2023).

    θ gets the gradient of the distillation loss through a gradient-reversal layer, so the
    optimiser that minimises the loss for the student *maximises* it for T: the temperature
    makes the task harder, with a reversal strength that grows on a cosine curriculum.
    """

    name = "learnable"
    Params = LearnableParams

    def __init__(self, params: Any, total_epochs: int, steps_per_epoch: int) -> None:
        super().__init__(params, total_epochs, steps_per_epoch)
        fraction = (params.init - params.t_min) / params.t_range
        self.theta = torch.nn.Parameter(torch.tensor(math.log(fraction / (1 - fraction))))

    def value(self) -> torch.Tensor:
        return self.params.t_min + self.params.t_range * torch.sigmoid(self.theta)

    def to(self, device: str | torch.device) -> "Schedule":
        self.theta.data = self.theta.data.to(device)
        return self

    def temperature(self, step: int, epoch: int, signals: Signals = None) -> Temperature:
        strength = reversal_strength(epoch, self.total_epochs, self.params.max_reversal)
        return GradientReversal.apply(self.value(), strength)

    def parameters(self) -> Iterable[torch.nn.Parameter]:
        return (self.theta,)


class CtkdParams(Strict):
    schedule: str = "ctkd"
    t_start: float = _positive(1.0)
    t_range: float = _positive(20.0)
    init_param: float = Field(1.0, allow_inf_nan=False)
    cosine_decay_epochs: int = Field(10, ge=1)
    max_reversal: float = Field(1.0, ge=0.0, allow_inf_nan=False)


def ctkd_reversal(epoch: int, decay_epochs: int, maximum: float = 1.0) -> float:
    """CTKD's λ in epoch ``epoch`` (0-based here; CTKD counts epochs from 1): a cosine rise from
    0 over the first ``decay_epochs`` epochs, then ``maximum`` for the rest of training."""
    done = min(epoch + 1, decay_epochs)
    return maximum * (1 - math.cos(math.pi * done / decay_epochs)) / 2


class Ctkd(Schedule):
    """Curriculum Temperature for KD, global T, as published (Li et al., AAAI 2023; the authors'
    code, github.com/zhengli97/CTKD).

    - T = t_start + t_range·sigmoid(θ): ``helper/loops.py``, ``temp = opt.t_start + opt.t_end *
      torch.sigmoid(temp)``, with ``--t_start 1`` and ``--t_end 20`` the defaults of
      ``train_student.py`` (``t_end`` is a range there, not an end: T lies in (1, 21)).
    - θ starts at 1 (``models/temp_global.py``: ``nn.Parameter(torch.ones(1))``), so T starts
      at 1 + 20·sigmoid(1) ≈ 15.6.
    - The gradient reversal multiplies θ's gradient by −λ, λ following CTKD's ``CosineDecay``
      with ``--decay_max 0 --decay_min -1 --decay_loops 10`` (``scripts/run_cifar_distill.sh``):
      λ_e = (1 − cos(π·min(e, 10)/10))/2 in epoch e counted from 1, so it rises from 0.02 to 1
      over the first 10 epochs and stays at 1 (``cosine_decay_epochs``, ``max_reversal``).
    - θ is trained by the student's optimiser (CTKD puts the temperature module in the student's
      SGD, momentum 0.9, weight decay 5e-4); here that optimiser is the run's Adam with its lr
      and weight decay: the one deliberate difference.

    The gradient reaches θ through the teacher's softened targets and the student's tempered
    logits. A spiking student applies T through its firing thresholds without gradient, so there
    θ learns from the teacher side only: not CTKD (``learnable`` keeps our earlier variant).
    """

    name = "ctkd"
    Params = CtkdParams

    def __init__(self, params: Any, total_epochs: int, steps_per_epoch: int) -> None:
        super().__init__(params, total_epochs, steps_per_epoch)
        self.theta = torch.nn.Parameter(torch.tensor(float(params.init_param)))

    def value(self) -> torch.Tensor:
        return self.params.t_start + self.params.t_range * torch.sigmoid(self.theta)

    def reversal(self, epoch: int) -> float:
        return ctkd_reversal(epoch, self.params.cosine_decay_epochs, self.params.max_reversal)

    def to(self, device: str | torch.device) -> "Schedule":
        self.theta.data = self.theta.data.to(device)
        return self

    def temperature(self, step: int, epoch: int, signals: Signals = None) -> Temperature:
        return GradientReversal.apply(self.value(), self.reversal(epoch))

    def parameters(self) -> Iterable[torch.nn.Parameter]:
        return (self.theta,)


class InstanceParams(LearnableParams):
    schedule: str = "instance"
    hidden: int = Field(32, ge=1)


class Instance(Schedule):
    """Per-sample learned T from a small network over (teacher, student) logits, adversarial.

    T_i = t_min + t_range·sigmoid(f([z_teacher_i, z_student_i])), trained through the same
    gradient reversal and cosine curriculum as ``learnable`` (the instance-wise variant of
    CTKD). The student's logits are read at T = 1 without gradient in an extra forward pass,
    which costs one more forward per step for this schedule only.
    """

    name = "instance"
    Params = InstanceParams
    needs_student_logits = True

    def __init__(self, params: Any, total_epochs: int, steps_per_epoch: int) -> None:
        super().__init__(params, total_epochs, steps_per_epoch)
        self.net: Optional[torch.nn.Module] = None
        self.epoch = 0

    def prepare(self, num_classes: int) -> None:
        """Create the predictor once the number of classes is known; starts near T = init."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.net = torch.nn.Sequential(
                torch.nn.Linear(2 * num_classes, self.params.hidden),
                torch.nn.ReLU(),
                torch.nn.Linear(self.params.hidden, 1),
            )
        fraction = (self.params.init - self.params.t_min) / self.params.t_range
        with torch.no_grad():
            self.net[-1].weight.mul_(0.01)
            self.net[-1].bias.fill_(math.log(fraction / (1 - fraction)))

    def temperature(self, step: int, epoch: int, signals: Signals = None) -> Temperature:
        self.epoch = epoch
        return self.params.init

    def to(self, device: str | torch.device) -> "Schedule":
        if self.net is not None:
            self.net.to(device)
        return self

    def per_sample(self, teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
        if self.net is None:
            raise RuntimeError("instance schedule used before prepare(num_classes)")
        features = torch.cat([teacher_logits.detach(), student_logits.detach()], dim=-1)
        t = self.params.t_min + self.params.t_range * torch.sigmoid(self.net(features))
        strength = reversal_strength(self.epoch, self.total_epochs, self.params.max_reversal)
        return GradientReversal.apply(t, strength)

    def parameters(self) -> Iterable[torch.nn.Parameter]:
        return () if self.net is None else self.net.parameters()


class LogitStdParams(Strict):
    schedule: str = "logit_std"
    base: float = _positive(2.0)


class LogitStd(Schedule):
    """Per-sample T = base·std(teacher logits of that sample) (after Sun et al. 2024).

    Dividing by base·std is z-scoring the teacher's logits before a base T (softmax ignores
    the mean shift). The student's tempered logits use the same per-sample T: a spiking
    student's readout cannot be z-scored before its thresholds, so this is the teacher-side
    half of logit standardisation, and the effective T is recorded per sample.
    """

    name = "logit_std"
    Params = LogitStdParams

    def temperature(self, step: int, epoch: int, signals: Signals = None) -> Temperature:
        return self.params.base

    def for_batch(self, temperature: Temperature, teacher_logits: torch.Tensor) -> Temperature:
        std = teacher_logits.detach().std(dim=-1, keepdim=True).clamp_min(1e-6)
        return temperature * std


def register_schedule(cls: Type[Schedule]) -> Type[Schedule]:
    """Make a schedule selectable by its ``name`` (also usable as a class decorator)."""
    SCHEDULES.register(cls.name, f"{cls.__module__}:{cls.__qualname__}")
    return cls


def known_schedules() -> List[str]:
    """Built-in schedule names, as listed in error messages."""
    return SCHEDULES.names()


def _import_schedule(target: str) -> Type[Schedule]:
    cls = import_object(target, f"{PATH}.schedule")
    if not (isinstance(cls, type) and issubclass(cls, Schedule)):
        raise ConfigError(f"{PATH}.schedule: {target!r} is not a tempdistill.schedules.Schedule subclass")
    params = getattr(cls, "Params", None)
    if not (isinstance(params, type) and issubclass(params, BaseModel)):
        raise ConfigError(f"{PATH}.schedule: {target!r} has no Params (a pydantic model of its parameters)")
    return cls


def schedule_class(name: str) -> Type[Schedule]:
    """A registered schedule by name, or a user's by import path 'package.module:ClassName'."""
    if name in SCHEDULES:
        return SCHEDULES.load(name, f"{PATH}.schedule")
    if ":" in name:
        return _import_schedule(name)
    raise ConfigError(
        f"{PATH}.schedule: unknown schedule {name!r}; known: {', '.join(known_schedules())}, "
        "or your own as 'package.module:ClassName'"
    )


class GroupSpec(Strict):
    """A T per group of output classes: each group's T is the schedule's T times its factor."""

    classes: List[List[int]]
    factors: List[float]

    @model_validator(mode="after")
    def _consistent(self) -> "GroupSpec":
        if len(self.classes) != len(self.factors):
            raise ValueError(f"classes has {len(self.classes)} groups but factors has {len(self.factors)}")
        if any(not math.isfinite(f) or f <= 0 for f in self.factors):
            raise ValueError("every factor must be a finite number > 0")
        flat = [c for group in self.classes for c in group]
        if len(flat) != len(set(flat)) or any(c < 0 for c in flat):
            raise ValueError("each class may appear in one group only, with indices >= 0")
        return self


class Grouped(Schedule):
    """Wraps any schedule: class k gets T·factor[group(k)]; classes in no group get T."""

    def __init__(self, inner: Schedule, spec: GroupSpec, num_classes: int) -> None:
        super().__init__(inner.params, inner.total_epochs, inner.steps_per_epoch)
        self.inner = inner
        self.name = inner.name
        flat = [c for group in spec.classes for c in group]
        if flat and max(flat) >= num_classes:
            raise ConfigError(f"{PATH}.groups.classes: class {max(flat)} does not exist (the data has {num_classes})")
        factors = torch.ones(num_classes)
        for group, factor in zip(spec.classes, spec.factors):
            factors[group] = factor
        self.factors = factors
        self.spec = spec

    def temperature(self, step: int, epoch: int, signals: Signals = None) -> Temperature:
        return torch.as_tensor(self.inner(step, epoch, signals), device=self.factors.device) * self.factors

    def to(self, device: str | torch.device) -> "Schedule":
        self.inner.to(device)
        self.factors = self.factors.to(device)
        return self

    def for_batch(self, temperature: Temperature, teacher_logits: torch.Tensor) -> Temperature:
        return self.inner.for_batch(temperature, teacher_logits)

    @property
    def needs_student_logits(self) -> bool:  # type: ignore[override]
        return self.inner.needs_student_logits

    def per_sample(self, teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
        return self.inner.per_sample(teacher_logits, student_logits) * self.factors

    def alpha(self, epoch: int, default: float) -> float:
        return self.inner.alpha(epoch, default)

    def parameters(self) -> Iterable[torch.nn.Parameter]:
        return self.inner.parameters()


class PerHead(Schedule):
    """One schedule per head of a multi-head student: the outputs of head h get head h's T.

    Each head's schedule sees the run's signals with ``kl`` replaced by its own head's
    held-out KL (``kl.<head>``), so an adaptive head follows its own task. Phased KD weights
    (two_phase's alpha) follow the first head.
    """

    name = "per_head"

    def __init__(self, heads: Dict[str, Schedule], widths: Dict[str, int]) -> None:
        first = next(iter(heads.values()))
        super().__init__(first.params, first.total_epochs, first.steps_per_epoch)
        for head, schedule in heads.items():
            if schedule.varies_within_batch or isinstance(schedule, Grouped):
                raise ConfigError(f"heads.{head}.temperature: a head takes one T per step; per-sample and "
                                  "per-class schedules do not apply")
        self.heads = heads
        self.widths = widths

    def temperature(self, step: int, epoch: int, signals: Signals = None) -> Temperature:
        parts = []
        for head, schedule in self.heads.items():
            own = dict(signals or {})
            if f"kl.{head}" in own:
                own["kl"] = own[f"kl.{head}"]
            t = torch.as_tensor(schedule(step, epoch, own), dtype=torch.float32)
            parts.append(t.reshape(1).expand(self.widths[head]))
        return torch.cat(parts)

    def alpha(self, epoch: int, default: float) -> float:
        return next(iter(self.heads.values())).alpha(epoch, default)

    def to(self, device: str | torch.device) -> "Schedule":
        for schedule in self.heads.values():
            schedule.to(device)
        return self

    def parameters(self) -> Iterable[torch.nn.Parameter]:
        return [p for schedule in self.heads.values() for p in schedule.parameters()]

    def named_temperatures(self, temperature: Temperature) -> Dict[str, float]:
        values = torch.as_tensor(temperature).detach().reshape(-1).tolist()
        names, start = {}, 0
        for head, width in self.widths.items():
            names[head] = float(values[start])
            start += width
        return names


def _with_section_hint(message: str, name: str, cls: Type[Schedule]) -> str:
    """An unknown key in a schedule's section usually means the schedule was switched with
    ``--set distill.temperature.schedule=...`` while the old schedule's keys stayed: say which
    keys this schedule takes and how to replace the whole section."""
    if not message.endswith(": unknown key"):
        return message
    fields = [f for f in cls.Params.model_fields if f != "schedule"]
    example = ", ".join(f"{f}: ..." for f in fields if cls.Params.model_fields[f].is_required()) or \
        ", ".join(f"{f}: ..." for f in fields[:2])
    return (f"{message} for schedule {name!r} (it takes: {', '.join(fields) or 'no parameters'}); to switch "
            f"schedules, replace the whole section: --set '{PATH}={{schedule: {name}{', ' + example if example else ''}}}'")


def build_schedule(
    section: TemperatureConfig, total_epochs: int, steps_per_epoch: int, num_classes: Optional[int] = None
) -> Schedule:
    """The schedule a ``distill.temperature`` section names, with validated parameters."""
    raw: Dict[str, Any] = section.model_dump()
    groups = raw.pop("groups", None)
    cls = schedule_class(section.schedule)
    try:
        params = validate_section(cls.Params, raw, PATH)
    except ConfigError as exc:
        raise ConfigError(_with_section_hint(str(exc), section.schedule, cls)) from None
    schedule = cls(params, total_epochs, steps_per_epoch)
    if num_classes is not None:
        schedule.prepare(num_classes)
    if groups is None:
        return schedule
    spec = validate_section(GroupSpec, groups if isinstance(groups, dict) else {"classes": groups}, f"{PATH}.groups")
    if num_classes is None:
        return schedule  # validated only; the caller builds again once the data is known
    return Grouped(schedule, spec, num_classes)
