"""Multi-teacher, multi-task policy distillation: several SB3 teachers into one student.

After Rusu et al. (2016), section 4.3: one student with **one output head per task**, each
head distilled from its own teacher, here each with **its own temperature schedule** (a
``PerHead`` schedule gives the student one T per output neuron, so a spiking student's output
thresholds carry each head's T). Observations of every task are zero-padded to the longest
and followed by a one-hot of the task, so one network tells the tasks apart.

Each head is a ``PolicyTask`` of its own (environment, teacher, DAgger collection, seeded
evaluation); this module only pads, routes and sums. A training batch holds an equal share of
every head's states; its objective is the sum over heads of the policy objective on the
head's rows and output columns at the head's T. Per-epoch and final figures are recorded per
head (``return_mean.<head>``, ``kl.<head>``, ``return_retained.<head>``, ...); the run's
``return_retained`` is the smallest over heads, the figure a multi-task claim must clear.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Dict, Iterator, List, Tuple

import numpy as np
import torch
from torch import nn

from tempdistill.config import ConfigError, EnvConfig, HeadConfig, RunConfig, TeacherConfig
from tempdistill.schedules import PerHead, build_schedule
from tempdistill.core.student import Student, StudentOutput
from tempdistill.tasks.actions import DiscreteActions
from tempdistill.core.task import Batch
from tempdistill.tasks.base import RecordGroup, Task
from tempdistill.tasks.policy import PolicyTask
from tempdistill.tasks.teacher import TeacherOrigin
from tempdistill.temperature import Temperature


def head_config(config: RunConfig, head: HeadConfig) -> RunConfig:
    """The single-task policy config of one head (its env and teacher, the run's other sections)."""
    return config.model_copy(update={
        "task": "policy", "heads": None,
        "env": EnvConfig(id=head.env, n_envs=head.n_envs),
        "teacher": TeacherConfig(checkpoint=head.checkpoint, trusted=head.trusted),
    })


class HeadView(nn.Module):
    """The multi-head student seen by one head's task: padded inputs in, that head's outputs out."""

    def __init__(self, student: Student, pad: Callable[[torch.Tensor], torch.Tensor], columns: slice) -> None:
        super().__init__()
        self.student = student
        self.pad = pad
        self.columns = columns

    def set_temperature(self, temperature: Temperature) -> None:
        self.student.set_temperature(temperature)

    def forward(self, x: torch.Tensor) -> StudentOutput:
        out = self.student(self.pad(x))
        return StudentOutput(out.tempered[:, self.columns], out.logits[:, self.columns], out.measured)


class MultiTeacher(nn.Module):
    """Every head's teacher behind one module: a padded input's logits in its head's columns."""

    def __init__(self, teachers: List[nn.Module], input_dims: List[int], columns: List[slice], width: int) -> None:
        super().__init__()
        self.teachers = nn.ModuleList(teachers)
        self.input_dims = input_dims
        self.columns = columns
        self.width = width
        self.offset = max(input_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x.new_zeros(x.shape[0], self.width)
        which = x[:, self.offset :].argmax(dim=-1)
        for h, (teacher, dims, columns) in enumerate(zip(self.teachers, self.input_dims, self.columns)):
            rows = which == h
            if rows.any():
                out[rows, columns] = teacher(x[rows, :dims]).float()
        return out

    def actor_parameters(self) -> int:
        return sum(teacher.actor_parameters() for teacher in self.teachers)


class MultiTask(Task):
    """Distil one teacher per head into a student with one output head per task."""

    name = "multitask"

    def __init__(self, config: RunConfig, heads: Dict[str, PolicyTask]) -> None:
        self.heads = heads
        self.device = config.device
        for name, task in heads.items():
            if not isinstance(task.head, DiscreteActions):
                raise ConfigError(f"heads.{name}.env: {task.env_id} has continuous actions; a multi-task "
                                  "student distils discrete-action heads only")
        self.features = max(task.input_dim for task in heads.values())
        self.input_dim = self.features + len(heads)
        self.columns: Dict[str, slice] = {}
        start = 0
        for name, task in heads.items():
            self.columns[name] = slice(start, start + task.num_outputs)
            start += task.num_outputs
        self.num_outputs = start
        self.teacher = MultiTeacher([t.teacher for t in heads.values()], [t.input_dim for t in heads.values()],
                                    list(self.columns.values()), self.num_outputs)

    @classmethod
    def plan_teacher(cls, config: RunConfig) -> Tuple[Any, Any]:
        assert config.heads is not None
        for head in config.heads:
            with _under_head(head.name):
                PolicyTask.plan_teacher(head_config(config, head))
                if head.temperature is not None:
                    build_schedule(head.temperature, config.distill.epochs, 1)
        return None, None

    @classmethod
    def build(cls, config: RunConfig, teacher_backend: Any, teacher_options: Any,
              log: Callable[[str], None], given: Any = None) -> Tuple["MultiTask", TeacherOrigin]:
        assert config.heads is not None
        heads: Dict[str, PolicyTask] = {}
        origins: List[TeacherOrigin] = []
        try:
            for head in config.heads:
                with _under_head(head.name):
                    single = head_config(config, head)
                    options = PolicyTask.plan_teacher(single)[1]
                    heads[head.name], origin = PolicyTask.build(single, None, options, log)
                    origins.append(origin)
            task = cls(config, heads)
        except BaseException:
            for built in heads.values():
                built.close()
            raise
        return task, TeacherOrigin(
            "checkpoint", ", ".join(str(o.file) for o in origins), ", ".join(o.sha256 for o in origins),
            ", ".join(str(o.algorithm) for o in origins),
            any(bool(o.trusted) for o in origins),  # True: some head's file was loaded by SB3's own loader
            tuple(w for o in origins for w in o.warnings))

    # --- padding and routing ------------------------------------------------------------------------
    def pad(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Observations of head ``index`` zero-padded to the common size, then its one-hot."""
        padded = x.new_zeros(x.shape[0], self.input_dim)
        padded[:, : x.shape[1]] = x
        padded[:, self.features + index] = 1.0
        return padded

    def _combined(self, parts: List[Tuple[torch.Tensor, torch.Tensor]]) -> Batch:
        """One batch from each head's (observations, teacher logits)."""
        xs, logits, groups = [], [], []
        for h, ((x, teacher), columns) in enumerate(zip(parts, self.columns.values())):
            xs.append(self.pad(h, x))
            wide = teacher.new_zeros(teacher.shape[0], self.num_outputs)
            wide[:, columns] = teacher
            logits.append(wide)
            groups.append(torch.full((x.shape[0],), h, dtype=torch.long, device=x.device))
        return Batch(torch.cat(xs), torch.cat(logits), None, torch.cat(groups))

    def views(self, student: Student) -> Dict[str, HeadView]:
        views = {name: HeadView(student, lambda x, h=h: self.pad(h, x), self.columns[name])
                 for h, name in enumerate(self.heads)}
        for view in views.values():
            view.training = student.training  # a view starts in the student's mode
        return views

    def head_temperature(self, temperature: Temperature, columns: slice) -> Temperature:
        if isinstance(temperature, torch.Tensor) and temperature.dim() == 1 and temperature.numel() == self.num_outputs:
            return temperature[columns.start]
        return temperature

    def export_facts(self) -> Dict[str, Any]:
        heads = [{"name": name, "env": task.env_id, "input_dim": task.input_dim, "actions": task.head.facts(),
                  "columns": [self.columns[name].start, self.columns[name].stop]} for name, task in self.heads.items()]
        return {"task": "multitask", "features": self.features, "heads": heads}

    # --- the Task interface ----------------------------------------------------------------------
    def build_schedule(self, config: RunConfig) -> PerHead:
        steps = self.steps_per_epoch(config.distill.batch_size)
        assert config.heads is not None
        schedules = {head.name: build_schedule(head.temperature or config.distill.temperature,
                                               config.distill.epochs, steps) for head in config.heads}
        return PerHead(schedules, {name: task.num_outputs for name, task in self.heads.items()})

    def begin_epoch(self, epoch: int, student: Student, temperature: float) -> Dict[str, float]:
        """Each head collects its states; β is the same for every head, buffers are summed."""
        figures: Dict[str, float] = {"buffer_states": 0.0}
        for (name, task), view in zip(self.heads.items(), self.views(student).values()):
            own = task.begin_epoch(epoch, view, temperature)  # type: ignore[arg-type]
            figures["dagger_beta"] = own["dagger_beta"]
            figures["buffer_states"] += own["buffer_states"]
            figures[f"buffer_states.{name}"] = own["buffer_states"]
        return figures

    def fitting_logits(self) -> torch.Tensor:
        return self._combined([(t.buffer_obs, t.buffer_logits) for t in self.heads.values()]).teacher_logits

    def steps_per_epoch(self, batch_size: int) -> int:
        return next(iter(self.heads.values())).steps_per_epoch(batch_size)

    def train_batches(self, epoch: int, batch_size: int, generator: torch.Generator,
                      teacher: bool = True) -> Iterator[Batch]:
        share = max(batch_size // len(self.heads), 1)
        for _ in range(self.steps_per_epoch(batch_size)):
            parts = []
            for task in self.heads.values():
                index = torch.randint(len(task.buffer_obs), (share,), generator=generator).to(task.buffer_obs.device)
                parts.append((task.buffer_obs[index], task.buffer_logits[index]))
            yield self._combined(parts)

    def evaluation_batch(self) -> Batch:
        return self._combined([(t.val_obs, t.val_logits) for t in self.heads.values()])

    def _per_head(self, batch: Batch) -> Iterator[Tuple[str, PolicyTask, torch.Tensor, slice]]:
        assert batch.groups is not None
        for h, (name, task) in enumerate(self.heads.items()):
            yield name, task, batch.groups == h, self.columns[name]

    def objective(self, student: Student, output: StudentOutput, batch: Batch, temperature: Temperature,
                  alpha: float, loss: str) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The policy objective of each head on its rows and columns at its T, weighted by rows."""
        total = kd = ce = output.logits.new_zeros(())
        n = batch.x.shape[0]
        for name, task, rows, columns in self._per_head(batch):
            head_out = StudentOutput(output.tempered[rows][:, columns], output.logits[rows][:, columns])
            parts = task.head.objective(student, head_out, batch.teacher_logits[rows][:, columns],
                                        self.head_temperature(temperature, columns), alpha, loss)
            weight = float(rows.sum()) / n
            total, kd, ce = total + weight * parts[0], kd + weight * parts[1], ce + weight * parts[2]
        return total, kd, ce

    def soft_label_measures(self, student: Student, tempered: torch.Tensor, logits: torch.Tensor, batch: Batch,
                            temperature: Temperature) -> Dict[str, float]:
        """Each head's information record (``<measure>.<head>``) and their means."""
        measures: Dict[str, float] = {}
        per_head: List[Dict[str, float]] = []
        for name, task, rows, columns in self._per_head(batch):
            own = task.head.measures(student, tempered[rows][:, columns], logits[rows][:, columns],
                                     batch.teacher_logits[rows][:, columns], self.head_temperature(temperature, columns))
            per_head.append(own)
            measures.update({f"{key}.{name}": value for key, value in own.items()})
        for key in per_head[0]:
            measures[key] = float(np.mean([own[key] for own in per_head]))
        return measures

    def score(self, student: Student, output: StudentOutput, batch: Batch) -> Dict[str, float]:
        figures: Dict[str, float] = {}
        for (name, task, rows, columns), view in zip(self._per_head(batch), self.views(student).values()):
            head_out = StudentOutput(output.tempered[rows][:, columns], output.logits[rows][:, columns])
            own = task.score(view, head_out, Batch(batch.x[rows], batch.teacher_logits[rows][:, columns],  # type: ignore[arg-type]
                                                   task.head.targets(batch.teacher_logits[rows][:, columns])))
            figures.update({f"{key}.{name}": value for key, value in own.items()})
        return figures

    def probe_inputs(self, count: int) -> torch.Tensor:
        share = max(count // len(self.heads), 1)
        return torch.cat([self.pad(h, task.probe_inputs(share)) for h, task in enumerate(self.heads.values())])

    def probe_facts(self, count: int) -> Dict[str, np.ndarray]:
        """Each head's probe facts in ``probe_inputs``' order: rows count within the head's own
        validation data; labels only where every head has them."""
        share = max(count // len(self.heads), 1)
        parts = [task.probe_facts(share) for task in self.heads.values()]
        facts = {"probe_rows": np.concatenate([p["probe_rows"] for p in parts])}
        if all("probe_labels" in p for p in parts):
            facts["probe_labels"] = np.concatenate([p["probe_labels"] for p in parts])
        return facts

    def teacher_parameter_count(self) -> int:
        return self.teacher.actor_parameters()

    def teacher_figures(self) -> Dict[str, Any]:
        return {f"{key}.{name}": value for name, task in self.heads.items()
                for key, value in task.teacher_figures().items()}

    def test_figures(self, student: Student, temperature: float, weights: str = "final") -> Dict[str, Any]:
        figures: Dict[str, Any] = {}
        for (name, task), view in zip(self.heads.items(), self.views(student).values()):
            own = task.test_figures(view, temperature, weights)  # type: ignore[arg-type]
            figures.update({f"{key}.{name}": value for key, value in own.items()})
        figures["return_retained"] = min(figures[f"return_retained.{name}"] for name in self.heads)
        return figures

    def final_groups(self) -> Dict[str, RecordGroup]:
        """Each head's episode returns and lengths as ``<array>.<head>`` in ``/episodes``, and
        its kept trajectories under ``/episodes/<head>/<k>``."""
        arrays: Dict[str, np.ndarray] = {}
        attrs: Dict[str, Any] = {}
        trajectories: Dict[str, RecordGroup] = {}
        for name, task in self.heads.items():
            for key, (own, own_attrs) in task.final_groups().items():
                if key == "episodes":
                    arrays.update({f"{array}.{name}": value for array, value in own.items()})
                    attrs.update({f"{attr}.{name}": value for attr, value in own_attrs.items()})
                else:
                    trajectories[f"episodes/{name}/{key.split('/', 1)[1]}"] = (own, own_attrs)
        # ``/episodes`` first: writing a group replaces it, with any groups inside it
        return {"episodes": (arrays, attrs), **trajectories} if arrays else {}

    def close(self) -> None:
        for task in self.heads.values():
            task.close()


# A single-task error's field, as the same field is spelled inside a head.
_HEAD_FIELDS = {"env.id": "env", "teacher.checkpoint": "checkpoint", "teacher.trusted": "trusted",
                "distill.temperature": "temperature"}


@contextlib.contextmanager
def _under_head(name: str) -> Iterator[None]:
    """Re-raise a single-task ConfigError under the head's own field (``heads.<name>.env``)."""
    try:
        yield
    except ConfigError as exc:
        field, _, rest = str(exc).partition(": ")
        for single, inside in _HEAD_FIELDS.items():
            if field == single or field.startswith(single + "."):
                field = inside + field[len(single):]
                break
        rest = rest.replace("teacher.trusted", f"heads.{name}.trusted")  # the advice, as spelled in a head
        raise ConfigError(f"heads.{name}.{field}: {rest}") from None
