"""The task layer: the loop knows no task, a student answers with one object, tasks are looked up."""

from __future__ import annotations

import inspect
import io
import tokenize

import pytest
import torch

import tempdistill.core.distiller as distiller_module
from tempdistill.config import ConfigError, config_from_mapping
from tempdistill.runner import plan_run, prepare_teacher
from tempdistill.core.student import StudentOutput
from tempdistill.tasks import get_task_class, known_tasks
from tempdistill.tasks.classification import ClassificationTask


def test_the_distiller_has_no_task_or_label_code():
    tokens = tokenize.generate_tokens(io.StringIO(inspect.getsource(distiller_module)).readline)
    names = {t.string for t in tokens if t.type == tokenize.NAME}  # code only: no docstrings, comments
    for word in ("argmax", "x_train", "x_test", "y_train", "y_test", "Split", "accuracy", "classification", "env"):
        assert word not in names, word


def test_unknown_task_names_the_known_ones():
    assert known_tasks() == ["classification", "multitask", "policy"]
    with pytest.raises(ConfigError, match=r"^task: unknown task 'bandit'; allowed: classification, multitask, policy$"):
        get_task_class("bandit")


@pytest.mark.parametrize("backend", ["dense", "snntorch", "norse"])
def test_a_student_answers_with_tempered_logits_their_t1_form_and_measurements(backend, tiny_config_data):
    config = config_from_mapping({**tiny_config_data, "student": {"backend": backend, "hidden": [8], "steps": 5}}
                                 if backend != "dense" else {**tiny_config_data, "student": {"backend": "dense"}})
    plan = plan_run(config)
    split, teacher, _ = prepare_teacher(config, plan)
    task = ClassificationTask(split, teacher)
    student = plan.student_backend.build_student(plan.student_options, task.input_dim, task.num_outputs)
    student.fit_to_teacher(task.fitting_logits())
    student.eval()
    student.set_temperature(4.0)
    batch = task.evaluation_batch()
    with torch.no_grad():
        out = student(batch.x[:32])
    assert isinstance(out, StudentOutput)
    assert out.tempered.shape == out.logits.shape == (32, task.num_outputs)
    torch.testing.assert_close(out.logits, out.tempered * 4.0)
    assert float(out.measured["energy_nj_per_sample"]) > 0
    if backend != "dense":
        assert {"spikes_per_sample", "synops_per_sample", "rate.output"} <= set(out.measured)
    score = task.score(student, out, type(batch)(batch.x[:32], batch.teacher_logits[:32], batch.targets[:32]))
    assert score["val_accuracy"] == pytest.approx(float((out.logits.argmax(-1) == batch.targets[:32]).float().mean()))


def test_classification_batches_cover_the_training_split_once_per_epoch(tiny_config_data):
    config = config_from_mapping(tiny_config_data)
    split, teacher, _ = prepare_teacher(config)
    task = ClassificationTask(split, teacher)
    batches = list(task.train_batches(0, 64, torch.Generator().manual_seed(0)))
    assert len(batches) == task.steps_per_epoch(64)
    seen = torch.cat([b.x for b in batches])
    assert seen.shape == split.x_train.shape
    assert torch.equal(seen.sum(0), split.x_train.sum(0)) or torch.allclose(seen.sum(0), split.x_train.sum(0))
    first = batches[0]
    torch.testing.assert_close(first.teacher_logits, teacher(first.x))
