"""A spiking student distilled from the Pendulum SAC teacher acts like it on states it never saw.

Swinging the pendulum up takes the teacher's full torque (|μ| beyond 2.6 before the tanh
squash, on about a tenth of the states it visits); a student whose push-pull readout cannot
reach that far commands a weaker torque there, swings up late or not at all, and learns slowly
enough that its 15-epoch return was decided by rounding. These tests ask for the reach itself
and for a short distillation that follows the teacher on held-out states.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest
import torch
import yaml

from tempdistill.config import config_from_mapping
from tempdistill.record.export import load_student
from tempdistill.record.run import Run
from tempdistill.runner import execute, plan_run
from tempdistill.tasks.actions import GaussianActions
from tempdistill.tasks.envs import Collector, greedy, make_env
from tempdistill.tasks.policy import PolicyTask
from tempdistill.tasks.sb3_teacher import load_teacher

REPO_ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = REPO_ROOT / "experiments" / "pendulum.yaml"
# Episode seeds none of the run's own collections use (training 0, validation 5000, test 10000).
HELD_OUT_SEED = 20000
# The teacher commands "full torque" where its action is at least this share of the bound.
FULL_TORQUE = 0.95
# A student must reach 99% of the torque bound: tanh(μ) = 0.99.
REACH = 0.99


def pendulum_experiment(tmp_path: Path, **changes: Any) -> Dict[str, Any]:
    """experiments/pendulum.yaml with a snnTorch student, the teacher path made absolute."""
    config = yaml.safe_load(EXPERIMENT.read_text())
    config["teacher"]["checkpoint"] = str(EXPERIMENT.parent / config["teacher"]["checkpoint"])
    config["student"]["backend"] = "snntorch"
    config["record"] = {"dir": str(tmp_path / "runs"), "traces": {"every": 0, "samples": 0}}
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        config[section][key] = value
    return config


def held_out_states(count: int) -> tuple:
    """(observations, the teacher's actions) on states the teacher visits from unseen seeds."""
    env = make_env("Pendulum-v1")
    teacher = load_teacher(EXPERIMENT.parent / "teachers" / "pendulum-sac.zip", env.observation_space, env.action_space)
    head = GaussianActions(env.action_space.low, env.action_space.high, squash=True)
    env.close()
    actor = greedy(teacher, head)
    collector = Collector("Pendulum-v1", 4, HELD_OUT_SEED)
    obs = collector.collect(count, actor, actor, 1.0)
    collector.close()
    return obs, actor(obs), head


def test_spiking_pendulum_student_can_command_the_teachers_full_torque(tmp_path):
    """Before any training: the readout's bound θ0 covers the mean the squashed action needs,
    and the output layer starts at the teacher's scale (output_fit), not silent-ish."""
    config = config_from_mapping(pendulum_experiment(tmp_path))
    plan = plan_run(config)
    task, _ = PolicyTask.build(config, plan.teacher_backend, plan.teacher_options, lambda _: None)
    try:
        torch.manual_seed(0)
        student = plan.student_backend.build_student(plan.student_options, task.input_dim, task.num_outputs)
        task.prepare_student(student)
        fitting = task.fitting_logits()
        teacher_mu = task.buffer_logits[:, 0]
        assert float((teacher_mu.abs() > math.atanh(REACH)).float().mean()) > 0.02, \
            "the teacher's own states need full torque"
        states = task.buffer_obs
        fresh_mean, _ = output_current(student, states)
        student.fit_to_teacher(fitting, task.fitting_inputs())
    finally:
        task.close()
    theta0 = float(student.thresholds[-1].theta0.mean())
    # each push-pull output lies in [0, θ0]: the student's action is at most 2·tanh(θ0)
    assert 2.0 * math.tanh(theta0) >= 2.0 * REACH - 1e-6, theta0
    # output_fit: the output current has the teacher's spread and sits mid-range (θ0/2)
    mean, spread = output_current(student, states)
    assert spread == pytest.approx(float(fitting.std(dim=-1).mean()), rel=0.15)
    assert mean == pytest.approx(theta0 / 2.0, rel=0.1)
    assert abs(fresh_mean - theta0 / 2.0) > 0.25 * theta0  # PyTorch's initialisation is not there


@torch.no_grad()
def output_current(student: Any, states: torch.Tensor) -> tuple:
    """(mean, mean spread across outputs) over states of the output layer's current W·r + b."""
    rate = student._simulate(states).counts[-2] / student.options.steps
    current = torch.nn.functional.linear(rate, student.linears[-1].weight, student.linears[-1].bias)
    return float(current.mean()), float(current.std(dim=-1).mean())


def test_short_spiking_pendulum_distillation_tracks_the_teacher_on_held_out_states(tmp_path):
    """Six epochs of the experiment's own settings: the student's action follows the teacher's
    on unseen states, full-torque states included (sign and magnitude)."""
    config = pendulum_experiment(tmp_path, distill__epochs=6, eval__episodes=2, eval__val_episodes=2)
    path = execute(config_from_mapping(config), warn=lambda _: None)
    _, student = load_student(Run.read(path))
    obs, teacher_actions, head = held_out_states(1000)
    student.eval()
    student.set_temperature(1.0)
    with torch.no_grad():
        student_actions = head.student_actions(student(torch.as_tensor(obs)))
    a_t, a_s = teacher_actions[:, 0], student_actions[:, 0]
    assert np.corrcoef(a_t, a_s)[0, 1] > 0.9
    full = np.abs(a_t) >= FULL_TORQUE * 2.0
    assert full.sum() >= 50, "held-out states include the swing-up"
    assert np.mean(np.sign(a_s[full]) == np.sign(a_t[full])) > 0.9
    assert np.mean(np.abs(a_s[full])) > 0.9 * 2.0
