"""Feature distillation beside the logit term: a layer of the teacher taught to a layer of the student.

Each term of ``distill.features`` names a teacher layer (a module path in the teacher network,
``teacher.get_submodule``) and a student layer (a name of the student's ``feature_layers()``
where it has that method, else a module path in the student, ``net.1``). Their outputs are
taken with forward hooks, after torchdistill's ``ForwardHookManager``: no model's ``forward`` changes,
and the hooks exist only while the pass they read is in flight (``LayerTaps.watching``), so
every other pass (validation, test, latency, export) runs the models exactly as written. A
student's ``feature_layers()`` maps names to small modules whose forward output *is* the
feature (a conv student's post-ReLU map, a spiking one's differentiable firing rate over its
steps); the student calls them only while they are hooked, so they cost nothing otherwise.

The two losses, on a student feature S and a teacher feature T of the same rank:

- ``mse``: ``mean((A(P(S)) - P(T))²)`` over every element (so a batch mean). ``P`` pools the
  larger spatial map down to the smaller one (adaptive average pooling, either side); ``A``
  is a learned adapter from the student's channels (dim 1) to the teacher's when they differ
  (a 1×1 convolution for maps, a linear layer for vectors), trained by the run's optimiser
  and not part of the student (never exported).
- ``attention``: attention transfer (Zagoruyko & Komodakis, "Paying More Attention to
  Attention", ICLR 2017): ``a(F) = normalise(flatten(mean_c F²))`` per sample (L2), and the
  loss is the batch mean of ``||a(P(S)) - a(P(T))||₂²``. Channels need not match, so no
  adapter; it needs spatial maps (rank ≥ 3).

Shapes are learned from a dry run on two training rows before training (``FeatureTerms``),
so a layer that does not exist, returns no tensor, runs more than once per pass (a spiking
network's per-step module) or cannot be compared is refused in one line naming
``distill.features[i]`` before anything trains.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, ContextManager, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from tempdistill.config import ConfigError, FeatureConfig
from tempdistill.core.task import Batch

MAX_LISTED = 12  # layer names an error message lists before "... and N more"


# ------------------------------------------------------------------ the two losses
def pool_to(feature: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``feature`` (B, C, *spatial) adaptive-average-pooled to ``size``; unchanged if already that size."""
    if tuple(feature.shape[2:]) == tuple(size):
        return feature
    pool = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}[len(size)]
    return pool(feature, tuple(size))


def match_spatial(student: torch.Tensor, teacher: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Both features pooled to the smaller spatial size, dimension by dimension (either side
    may be the larger one); vectors (B, C) pass through."""
    if student.dim() <= 2:
        return student, teacher
    size = [min(s, t) for s, t in zip(student.shape[2:], teacher.shape[2:])]
    return pool_to(student, size), pool_to(teacher, size)


def mse_feature_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all elements of two features of one shape (already adapted and pooled)."""
    return F.mse_loss(student, teacher)


def attention_map(feature: torch.Tensor) -> torch.Tensor:
    """Attention transfer's spatial map of ``feature`` (B, C, *spatial): the mean over channels
    of F², flattened to (B, prod(spatial)) and L2-normalised per sample."""
    return F.normalize(feature.pow(2).mean(dim=1).flatten(1), p=2, dim=1)


def attention_transfer_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Batch mean of ``||a(S) - a(T)||₂²`` (Zagoruyko & Komodakis 2017), spatial sizes matched
    by adaptive average pooling; the channel counts may differ."""
    student, teacher = match_spatial(student, teacher)
    return (attention_map(student) - attention_map(teacher)).pow(2).sum(dim=1).mean()


def make_adapter(student_shape: Sequence[int], teacher_shape: Sequence[int]) -> Optional[nn.Module]:
    """The learned map from the student's channels (dim 1) to the teacher's, None where they
    agree: a linear layer for vectors (B, C), a 1-D or 2-D 1×1 convolution for maps."""
    cs, ct = int(student_shape[1]), int(teacher_shape[1])
    if cs == ct:
        return None
    rank = len(student_shape)
    if rank == 2:
        return nn.Linear(cs, ct)
    if rank == 3:
        return nn.Conv1d(cs, ct, kernel_size=1)
    if rank == 4:
        return nn.Conv2d(cs, ct, kernel_size=1)
    raise ValueError(f"no adapter for rank {rank}")


# ------------------------------------------------------------------ the hooks
class LayerTaps:
    """Forward hooks on named modules, present only inside ``watching()``: each module's
    outputs of the pass in flight are kept, in call order, in the dict it yields."""

    def __init__(self, modules: Mapping[str, nn.Module]) -> None:
        self.modules = dict(modules)

    @contextmanager
    def watching(self) -> Iterator[Dict[str, List[object]]]:
        """Hooks on every module for the duration of the block; removed however it ends."""
        seen: Dict[str, List[object]] = {name: [] for name in self.modules}
        handles = [module.register_forward_hook(self._keeper(seen[name])) for name, module in self.modules.items()]
        try:
            yield seen
        finally:
            for handle in handles:
                handle.remove()

    @staticmethod
    def _keeper(outputs: List[object]) -> Callable[[nn.Module, object, object], None]:
        def keep(module: nn.Module, inputs: object, output: object) -> None:
            outputs.append(output)

        return keep


def listed(names: Sequence[str]) -> str:
    """Names for an error message: all of them, or the first ``MAX_LISTED`` and how many more."""
    shown = ", ".join(repr(name) for name in names[:MAX_LISTED])
    more = len(names) - MAX_LISTED
    return shown + (f", ... and {more} more" if more > 0 else "") if names else "(none)"


def teacher_layer(network: nn.Module, name: str, field: str) -> nn.Module:
    """The teacher's module at path ``name``; a ConfigError naming ``field`` and the teacher's
    module paths otherwise. A TorchScript teacher is refused: its compiled forward calls no
    Python hook."""
    if isinstance(network, torch.jit.ScriptModule):
        raise ConfigError(f"{field}: the teacher is TorchScript, whose compiled code runs no forward hooks, so none of "
                          "its layers can be read; give the teacher as a Python module (teacher.factory with its "
                          "state dict, or teacher.source: module)")
    try:
        return network.get_submodule(name)
    except AttributeError:
        names = [path for path, _ in network.named_modules() if path]
        raise ConfigError(f"{field}: no layer {name!r} in the teacher ({type(network).__name__}); available module "
                          f"paths: {listed(names)}") from None


def feature_layers(student: nn.Module) -> Dict[str, nn.Module]:
    """The layers a student offers by name (``feature_layers()``: a conv student's ``conv0``,
    ``conv1``, ...), none where it has no such method."""
    offered = getattr(student, "feature_layers", None)
    return dict(offered()) if callable(offered) else {}


def student_layer(student: nn.Module, name: str, field: str) -> nn.Module:
    """The student's layer ``name``: one of its ``feature_layers()``, else a module path in it
    (``net.1``); a ConfigError naming ``field`` and the names there are otherwise."""
    offered = feature_layers(student)
    if name in offered:
        return offered[name]
    paths = {path: module for path, module in student.named_modules() if path}
    if name in paths:
        return paths[name]
    named = f"feature layers (feature_layers()): {listed(list(offered))}; or module paths: " if offered else "module paths: "
    raise ConfigError(f"{field}: no layer {name!r} in the student ({type(student).__name__}); available {named}"
                      f"{listed(list(paths))}")


# ------------------------------------------------------------------ the configured terms
@dataclass(frozen=True)
class FeatureTerm:
    """One configured term: where it reads, how it compares, and the shapes the dry run saw."""

    index: int
    spec: FeatureConfig
    student_shape: Tuple[int, ...]
    teacher_shape: Tuple[int, ...]

    @property
    def metric(self) -> str:
        """The per-epoch record's name of this term's (unweighted) mean: ``feature_loss.<i>``."""
        return f"feature_loss.{self.index}"


def one_output(outputs: List[object], field: str, side: str, name: str) -> torch.Tensor:
    """The single tensor a hooked layer gave in one pass; a ConfigError naming ``field`` for a
    layer that did not run, ran more than once, or gave something else."""
    if not outputs:
        raise ConfigError(f"{field}: the {side}'s layer {name!r} did not run in a forward pass on two training "
                          "rows, so it has no output to read; name a layer the forward calls")
    if len(outputs) > 1:
        raise ConfigError(f"{field}: the {side}'s layer {name!r} runs {len(outputs)} times in one forward pass (once "
                          "per time step?); name a layer that runs once, e.g. one of the student's feature_layers()")
    output = outputs[0]
    if not isinstance(output, torch.Tensor):
        raise ConfigError(f"{field}: the {side}'s layer {name!r} returns a {type(output).__name__}, not a tensor")
    return output


def check_comparable(field: str, loss: str, student: Tuple[int, ...], teacher: Tuple[int, ...]) -> None:
    """Refuse, in one line, a pair of feature shapes the term's loss cannot compare."""
    if len(student) != len(teacher):
        raise ConfigError(f"{field}: the student's feature has shape {student} and the teacher's {teacher}; they need "
                          "the same rank ((B, C) vectors or (B, C, H, W) maps on both sides)")
    if len(student) not in (2, 3, 4):
        raise ConfigError(f"{field}: features of shape {student} and {teacher}; supported are (B, C), (B, C, L) "
                          "and (B, C, H, W)")
    if loss == "attention" and len(student) < 3:
        raise ConfigError(f"{field}.loss: 'attention' compares spatial maps, but the features are vectors {student} "
                          f"and {teacher}; use loss 'mse' for vectors")


class FeatureTerms:
    """The run's feature terms: the teacher network and the student's layers they read, the
    adapters ``mse`` needs, and per training batch the weighted sum to add to the objective.

    Built before training (``runner.execute``): a dry run on two training rows (``student_rows``
    as the student reads them, ``teacher_rows`` as the teacher reads them) checks every layer
    and fixes the shapes, and the adapters are made from them (on the student's device, from
    the global RNG, so a seeded run makes the same ones). The dry run forks the RNG and runs
    both networks in eval mode, so it changes nothing a run later draws or counts.
    """

    def __init__(self, specs: Sequence[FeatureConfig], teacher: nn.Module, student: nn.Module,
                 student_rows: torch.Tensor, teacher_rows: torch.Tensor) -> None:
        self.teacher = teacher
        fields = [f"distill.features[{i}]" for i in range(len(specs))]
        teacher_modules = {str(i): teacher_layer(teacher, spec.teacher, f"{fields[i]}.teacher")
                           for i, spec in enumerate(specs)}
        student_modules = {str(i): student_layer(student, spec.student, f"{fields[i]}.student")
                           for i, spec in enumerate(specs)}
        self.teacher_taps, self.student_taps = LayerTaps(teacher_modules), LayerTaps(student_modules)
        # (the rows, the features) of the teacher's latest pass inside ``watching_teacher``
        self._teacher_pass: Optional[Tuple[Optional[torch.Tensor], Dict[str, List[object]]]] = None
        student_seen, teacher_seen = self._dry_run(student, student_rows, teacher_rows)
        self.terms: List[FeatureTerm] = []
        for i, spec in enumerate(specs):
            s = one_output(student_seen[str(i)], f"{fields[i]}.student", "student", spec.student)
            t = one_output(teacher_seen[str(i)], f"{fields[i]}.teacher", "teacher", spec.teacher)
            check_comparable(fields[i], spec.loss, tuple(s.shape), tuple(t.shape))
            self.terms.append(FeatureTerm(i, spec, tuple(s.shape), tuple(t.shape)))
        device = next((p.device for p in student.parameters()), student_rows.device)
        self.adapters = nn.ModuleDict()
        for term in self.terms:
            adapter = make_adapter(term.student_shape, term.teacher_shape) if term.spec.loss == "mse" else None
            if adapter is not None:
                self.adapters[str(term.index)] = adapter.to(device)

    def _dry_run(self, student: nn.Module, student_rows: torch.Tensor,
                 teacher_rows: torch.Tensor) -> Tuple[Dict[str, List[object]], Dict[str, List[object]]]:
        modes = student.training, self.teacher.training
        student.eval()
        self.teacher.eval()
        try:
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                with self.student_taps.watching() as student_seen:
                    student(student_rows)
                with self.teacher_taps.watching() as teacher_seen:
                    self.teacher(teacher_rows)
        finally:
            student.train(modes[0])
            self.teacher.train(modes[1])
        return student_seen, teacher_seen

    def parameters(self) -> Iterator[nn.Parameter]:
        """The adapters' parameters, for the run's optimiser (they are not the student's)."""
        return self.adapters.parameters()

    def describe(self) -> List[str]:
        """One line per term: the layers, their shapes (batch dimension aside) and any adapter."""
        lines = []
        for term in self.terms:
            adapter = self.adapters[str(term.index)] if str(term.index) in self.adapters else None
            through = f" via {type(adapter).__name__} {term.student_shape[1]}->{term.teacher_shape[1]}" if adapter else ""
            lines.append(f"distill.features[{term.index}]: student {term.spec.student!r} {term.student_shape[1:]}{through} "
                         f"vs teacher {term.spec.teacher!r} {term.teacher_shape[1:]}, {term.spec.loss}, "
                         f"weight {term.spec.weight:g}")
        return lines

    def watching_student(self) -> ContextManager[Dict[str, List[object]]]:
        """Hooks on the student's layers for one training forward pass; yields what they saw."""
        return self.student_taps.watching()

    @contextmanager
    def watching_teacher(self) -> Iterator[None]:
        """Hooks on the teacher's layers for a whole training epoch: when the task itself runs
        the teacher on a batch (its logits per batch on augmented images), the features of that
        pass are kept, and ``loss`` takes them instead of running the teacher a second time on
        the same rows. Only the latest pass is kept; ``loss`` uses it once."""
        def begin(module: nn.Module, args: Tuple[object, ...]) -> None:
            for outputs in seen.values():
                outputs.clear()
            self._teacher_pass = (args[0] if args and isinstance(args[0], torch.Tensor) else None, seen)

        with self.teacher_taps.watching() as seen:
            handle = self.teacher.register_forward_pre_hook(begin)
            try:
                yield
            finally:
                handle.remove()
                self._teacher_pass = None

    def _teacher_features(self, inputs: torch.Tensor) -> Dict[str, List[object]]:
        """The teacher's features on ``inputs``: those of the task's own pass on these very rows
        (same storage and shape, run in eval mode) where ``watching_teacher`` kept one, else
        from a pass run here (no grad, eval mode)."""
        kept, self._teacher_pass = self._teacher_pass, None
        if kept is not None and kept[0] is not None and kept[0].shape == inputs.shape \
                and kept[0].data_ptr() == inputs.data_ptr() and all(len(v) == 1 for v in kept[1].values()):
            seen = {key: [output.detach().clone() for output in outputs] for key, outputs in kept[1].items()}
            for outputs in kept[1].values():
                outputs.clear()
            return seen  # type: ignore[return-value]
        was_training = self.teacher.training
        self.teacher.eval()
        try:
            with torch.no_grad(), self.teacher_taps.watching() as seen:
                self.teacher(inputs)
        finally:
            self.teacher.train(was_training)
        return seen

    def loss(self, student_seen: Mapping[str, List[object]], batch: Batch) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """(Σ weight_i · term_i, {``feature_loss.<i>``: term_i}) for one training batch, from
        the student features of its forward pass and the teacher's on ``batch.teacher_inputs``
        (``_teacher_features``: the task's own pass where there was one, else one run now)."""
        if batch.teacher_inputs is None:
            raise ValueError("feature distillation needs batches that carry the teacher's inputs (Batch.teacher_inputs)")
        teacher_seen = self._teacher_features(batch.teacher_inputs)
        total: Optional[torch.Tensor] = None
        parts: Dict[str, torch.Tensor] = {}
        for term in self.terms:
            key = str(term.index)
            value = self.term_value(term, student_seen[key][-1], teacher_seen[key][-1])  # type: ignore[arg-type]
            parts[term.metric] = value
            weighted = term.spec.weight * value
            total = weighted if total is None else total + weighted
        assert total is not None
        return total, parts

    def term_value(self, term: FeatureTerm, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """One term's unweighted loss on one batch's features."""
        if term.spec.loss == "attention":
            return attention_transfer_loss(student, teacher)
        student, teacher = match_spatial(student, teacher)
        key = str(term.index)
        if key in self.adapters:
            student = self.adapters[key](student)
        return mse_feature_loss(student, teacher.to(student.dtype))
