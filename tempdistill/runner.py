"""Composition root: turns a validated config into a recorded run.

This is the one place that looks backends up in the registry; everything it needs from the
user (config, output directory, what a Python caller gave in memory) is checked before the
teacher is trained or the run file is created, so a bad input never costs minutes or leaves a
file behind.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from backends import get_backend
from tempdistill.config import ConfigError, RunConfig
from tempdistill.tasks.data import Split
from tempdistill.core.callbacks import ActivityAlarms, BestEpoch, Callback, StopOnRequest
from tempdistill.core.distiller import Distiller
from tempdistill.core.interrupt import NEVER, Interrupted, StopRequest
from tempdistill.core.latency import inference_latency_ms, latency_conditions
from tempdistill.core.memory import Part, available_bytes, check_fits, held_parts, network_size, training_parts
from tempdistill.record.recording import RecordEpochs
from tempdistill.record.run_file import RunRecorder
from tempdistill.schedules import Schedule, build_schedule
from tempdistill.tasks.sources import InMemory, check_given
from tempdistill.core.student import Backend, Student
from tempdistill.tasks import classification, get_task_class
from tempdistill.tasks.base import Task
from tempdistill.tasks.teacher import TeacherOrigin
from tempdistill.tasks.teacher_sources import ClassifierTeacher
from tempdistill.core.training import parameter_count


@dataclass
class Plan:
    """Everything resolved from a config before any work starts."""

    config: RunConfig
    teacher_backend: Backend
    teacher_options: Any
    student_backend: Backend
    student_options: Any


def plan_run(config: RunConfig, given: InMemory = InMemory()) -> Plan:
    """Resolve backends and their options, and check what was given in memory against the
    config; raises ConfigError naming the field."""
    task_class = get_task_class(config.task)  # an unknown task fails here, naming the known ones
    check_given(config, given, task_class.accepts_in_memory)
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' requested but no CUDA device is available; allowed here: 'cpu'")
    if config.distill.select == "best_val" and task_class.validation_score is None:
        raise ConfigError(f"distill.select: 'best_val' needs one validation score per epoch, which task "
                          f"{config.task!r} does not have; allowed here: 'final'")
    teacher_backend, teacher_options = task_class.plan_teacher(config)
    student_backend = get_backend(config.student.backend, "student.backend")
    student_options = student_backend.validate(config.student.backend_options(), "student")
    # Validate schedule parameters now, with placeholder totals, so errors come before any work.
    build_schedule(config.distill.temperature, config.distill.epochs, 1)
    plan = Plan(config, teacher_backend, teacher_options, student_backend, student_options)
    check_memory(plan)
    return plan


def memory_phases(plan: Plan, input_dim: int = 1, num_outputs: int = 1,
                  input_shape: Optional[Tuple[int, ...]] = None) -> List[List[Part]]:
    """What a run holds at its two peaks: the teacher training (unless loaded from the user's
    file; an SB3 teacher and a teacher of the user's own are not sized), then the teacher held
    while the student trains."""
    config = plan.config
    student = network_size(plan.student_backend, plan.student_options, input_dim, num_outputs, input_shape)
    distilling = training_parts(student, "student", "distill.batch_size", config.distill.batch_size)
    if plan.teacher_backend is None:
        return [distilling]
    teacher = network_size(plan.teacher_backend, plan.teacher_options, input_dim, num_outputs)
    phases = [held_parts(teacher, "teacher") + distilling]
    if not config.teacher.checkpoint:
        phases.append(training_parts(teacher, "teacher", "teacher.batch_size", config.teacher.batch_size))
    return phases


def check_memory(plan: Plan, input_dim: int = 1, num_outputs: int = 1,
                 input_shape: Optional[Tuple[int, ...]] = None) -> None:
    """Refuse a run whose networks cannot fit the memory available now, before any is built.

    Planning knows no data yet and sizes the networks with one input and one output (a floor
    that widths, steps and batch sizes alone exceed); the runner checks again with the real
    sizes once the task has them, before the student is built."""
    device = plan.config.device
    check_fits(memory_phases(plan, input_dim, num_outputs, input_shape), available_bytes(device), device)


def check_student_input(plan: Plan, input_shape: Optional[Tuple[int, ...]]) -> None:
    """Refuse a student that cannot read the task's samples (a conv student on flat data, an
    image too small for its poolings), asking the backend that knows (``check_input_shape``)."""
    check = getattr(plan.student_backend, "check_input_shape", None)
    if check is not None:
        check(plan.student_options, input_shape)


def output_directory(config: RunConfig, out_dir: Optional[str]) -> Path:
    """The directory run files go to (created now), checked before any work starts."""
    directory = Path(out_dir or config.record.dir)
    field = "--out" if out_dir else "record.dir"
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{field}: {directory} exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{field}: cannot create directory {directory} ({exc.strerror or exc})") from None
    return directory


def run_file_stem(config: RunConfig) -> str:
    """name, backend (unless the name already says it), seed and UTC time; a clash gets -N."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    backend = config.student.backend
    named = backend in re.split(r"[-_=.+]", config.name)  # 'digits-norse-kd', 'x-backend=norse'
    parts = [config.name] if named else [config.name, backend]
    return "-".join([*parts, f"s{config.seed}", stamp])


def student_arrays(student: torch.nn.Module) -> Dict[str, np.ndarray]:
    """The state dict as numpy arrays (buffers included: thresholds are state)."""
    return {name: t.detach().cpu().numpy() for name, t in student.state_dict().items()}


def prepare_classifier(
    config: RunConfig, plan: Optional[Plan] = None, log: Callable[[str], None] = lambda _: None,
    given: InMemory = InMemory(),
) -> tuple[Split, ClassifierTeacher]:
    """A classification config's data split and its teacher bound to it (any source: its
    logits on each part come from ``ClassifierTeacher.logits``)."""
    plan = plan or plan_run(config, given)
    return classification.prepare_teacher(config, plan.teacher_backend, plan.teacher_options, log, given)


def prepare_teacher(
    config: RunConfig, plan: Optional[Plan] = None, log: Callable[[str], None] = lambda _: None
) -> tuple[Split, Optional[torch.nn.Module], TeacherOrigin]:
    """A classification config's data split, teacher network (from checkpoint, cache, or
    trained now; a user's, or None for stored logits) and its origin. The network of a user's
    teacher reads ``split.inputs(part, as_given=True)``: ``prepare_classifier`` gives logits
    without that choice."""
    split, teacher = prepare_classifier(config, plan, log)
    return split, teacher.network, teacher.origin


def execute(
    config: RunConfig,
    out_dir: Optional[str] = None,
    log: Callable[[str], None] = lambda _: None,
    stop: StopRequest = NEVER,
    overrides: Sequence[str] = (),
    warn: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
    callbacks: Sequence[Callback] = (),
    given: InMemory = InMemory(),
) -> Path:
    """Run one distillation from a config; returns the path of its HDF5 record.

    The record ends ``complete``; ``interrupted`` when ``stop`` was requested (after the epoch
    in flight, with the student so far saved) or a KeyboardInterrupt cut an epoch short (then
    ``Interrupted`` is raised, carrying the path); ``failed`` with the error otherwise.
    ``callbacks`` see every epoch after it is recorded (``tempdistill.core.callbacks``); one that
    asks the loop to stop ends the run ``interrupted`` with its reason, like a stop request.

    :param given: objects a Python caller hands over beside the config (arrays, a teacher
        module, stored logits; ``tempdistill.tasks.sources``); the config names each one it uses.
    """
    plan = plan_run(config, given)
    directory = output_directory(config, out_dir)
    if stop.requested():
        raise Interrupted(f"{stop.reason}; run not started")
    task, origin = get_task_class(config.task).build(config, plan.teacher_backend, plan.teacher_options, log, given)
    teacher_figures = task.teacher_figures()
    log(f"teacher ({origin.kind}): " + "  ".join(f"{k} {v:.4f}" for k, v in teacher_figures.items()))

    try:
        check_student_input(plan, task.input_shape)
        check_memory(plan, task.input_dim, task.num_outputs, task.input_shape)
    except ConfigError:
        task.close()
        raise
    torch.manual_seed(config.seed)
    student = plan.student_backend.build_student(plan.student_options, task.input_dim, task.num_outputs,
                                                 task.input_shape)
    task.prepare_student(student)
    student.to(config.device)
    try:
        schedule: Schedule = task.build_schedule(config).to(config.device)
        task.check_schedule(schedule)
    except ConfigError:
        task.close()
        raise

    attrs = {"name": config.name, "student_backend": config.student.backend, "overrides": json.dumps(list(overrides))}
    recorder = RunRecorder.create(directory, run_file_stem(config), config.to_json(), attrs)
    for group, (arrays, group_attrs) in task.record_groups().items():
        recorder.write_arrays(group, arrays, group_attrs)
    log(f"record: {recorder.path}")

    def warn_and_record(message: str) -> None:
        warn(message)
        recorder.add_warning(message)

    for message in origin.warnings:
        warn_and_record(message)
    started = time.perf_counter()
    distiller: Optional[Distiller] = None
    measure = task.validation_score
    best = BestEpoch(measure) if config.distill.select == "best_val" and measure else None
    try:
        with stop.deferring():
            loop_callbacks = [
                *([best] if best is not None else []),
                RecordEpochs(recorder, config.record.traces),
                ActivityAlarms(warn_and_record),
                *callbacks,
                StopOnRequest(stop),
            ]
            distiller = Distiller(student, task, schedule, config.distill, config.seed, loop_callbacks)
            final = distiller.run()
        validation = task.evaluation_batch().x
        eval_values: Dict[str, Any] = {
            **teacher_figures,
            **origin.record(),
            "student_params": parameter_count(student),
            "wall_seconds": time.perf_counter() - started,
            "eval_temperature": config.distill.eval_temperature,
            "epochs_trained": len(distiller.history),
        }
        # A teacher without a network (stored logits) has no latency, and a size only if stated:
        # absent from the record rather than a made-up number.
        teacher_params = task.teacher_parameter_count()
        if teacher_params is not None:
            eval_values["teacher_params"] = teacher_params
            eval_values["param_ratio"] = eval_values["student_params"] / teacher_params
        eval_values["student_latency_ms_per_sample"] = inference_latency_ms(student, validation, config.distill.eval_temperature)
        teacher_latency = task.teacher_latency_ms()
        if teacher_latency is not None:
            eval_values["teacher_latency_ms_per_sample"] = teacher_latency
        eval_values.update(latency_conditions())
        eval_values.update({k: v for k, v in final.items() if k not in ("epoch", "wall_seconds")})
        eval_values.update(evaluate_on_test(task, student, best, config))
        recorder.write_eval(eval_values)
        for group, (arrays, group_attrs) in task.final_groups().items():
            recorder.write_arrays(group, arrays, group_attrs)
        if config.record.save_student:
            save_student(recorder, student, plan, task, config, weights_held(best))
        if distiller.stopped_early:
            recorder.finish("interrupted", error=f"{distiller.stop_reason} after epoch {len(distiller.history)} of "
                                                 f"{config.distill.epochs}")
        else:
            recorder.finish("complete")
    except KeyboardInterrupt as exc:
        done = len(distiller.history) if distiller is not None else 0
        reason = f"interrupted by {exc}" if str(exc) else "interrupted"
        with contextlib.suppress(Exception):  # keep what can be kept; the status must be written
            save_student(recorder, student, plan, task, config, weights_held(best))
        recorder.finish("interrupted", error=f"{reason} during epoch {done + 1} of {config.distill.epochs}")
        raise Interrupted(f"{reason}; {done} of {config.distill.epochs} epochs recorded", recorder.path) from None
    except Exception as exc:
        recorder.finish("failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        task.close()
    return recorder.path


def evaluate_on_test(task: Task, student: Student, best: Optional[BestEpoch], config: RunConfig) -> Dict[str, Any]:
    """The run's test figures: the only time its students see the test data.

    The rule: one test pass (``Task.test_figures``) per weight set the run reports — the final
    student always; with ``distill.select: best_val`` also the best-validation epoch's weights,
    whose figures get the suffix ``_best_val`` and which ``student`` holds afterwards (so they
    are what is saved and exported). ``select`` says which figure is the run's score.
    """
    temperature = config.distill.eval_temperature
    figures: Dict[str, Any] = {"select": config.distill.select}
    figures.update(task.test_figures(student, temperature, "final"))
    if best is not None and best.epoch is not None:
        best.restore(student)
        figures.update({f"{key}_best_val": value for key, value in task.test_figures(student, temperature, "best_val").items()})
        figures["best_val_epoch"] = best.epoch
        figures["best_val_score"] = best.score
    return figures


def weights_held(best: Optional[BestEpoch]) -> str:
    """Which weights the student holds: the best-validation epoch's once restored, else the last."""
    return "best_val" if best is not None and best.restored else "final"


def save_student(recorder: RunRecorder, student: Student, plan: Plan, task: Task, config: RunConfig,
                 weights: str = "final") -> None:
    """The trained student's state and everything needed to rebuild and feed it (``/student``);
    ``weights`` says which: the last epoch's (``final``) or the best-validation epoch's."""
    recorder.write_arrays(
        "student",
        student_arrays(student),
        {
            "weights": weights,
            "backend": config.student.backend,
            "options": json.dumps(plan.student_options.model_dump(mode="json")),
            "describe": json.dumps(student.describe()),
            "input_dim": task.input_dim,
            "num_classes": task.num_outputs,
            "task_facts": json.dumps(task.export_facts()),
        },
    )


def echo(message: str) -> None:
    print(message, file=sys.stderr)
