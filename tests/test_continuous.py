"""Continuous actions: Gaussian SB3 teachers (SAC, PPO), tempered N(μ, T·σ²), push-pull students."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest
import torch
import yaml

from tempdistill.app.cli import main
from tempdistill.config import config_from_mapping
from tempdistill.record.export import export_run, load_predictor, load_student
from tempdistill.record.run import Run
from tempdistill.record.run_file import read_run
from tempdistill.runner import execute
from tempdistill.tasks.actions import GaussianActions, gaussian_kl, tempered_log_std
from tempdistill.tasks.envs import make_env
from tempdistill.tasks.sb3_teacher import load_teacher, read_algorithm

REPO_ROOT = Path(__file__).resolve().parents[1]
PENDULUM_TEACHER = REPO_ROOT / "experiments" / "teachers" / "pendulum-sac.zip"


def pendulum_config(tmp_path: Path, backend: str = "dense", **distill: Any) -> Dict[str, Any]:
    student: Dict[str, Any] = {"backend": backend, "hidden": [16]}
    if backend != "dense":
        student["steps"] = 8
    return {
        "name": "pend",
        "task": "policy",
        "env": {"id": "Pendulum-v1", "n_envs": 4},
        "teacher": {"checkpoint": str(PENDULUM_TEACHER)},
        "student": student,
        "distill": {"epochs": 2, "batch_size": 64, "lr": 0.01, "alpha": 1.0,
                    "temperature": {"schedule": "constant", "value": 2.0},
                    "dagger": {"steps_per_epoch": 400, "updates_per_epoch": 30}, **distill},
        "eval": {"episodes": 3, "val_episodes": 1},
        "record": {"dir": str(tmp_path / "runs"), "traces": {"every": 1, "samples": 4}},
    }


@pytest.fixture(scope="module")
def gaussian_models(tmp_path_factory) -> Dict[str, Path]:
    """Untrained SAC and PPO models for Pendulum, saved as users would save them."""
    from stable_baselines3 import PPO, SAC

    folder = tmp_path_factory.mktemp("sb3-box")
    paths = {}
    for name, cls in (("sac", SAC), ("ppo", PPO)):
        model = cls("MlpPolicy", "Pendulum-v1", seed=0, device="cpu", policy_kwargs={"net_arch": [16]})
        paths[name] = folder / f"{name}.zip"
        model.save(str(paths[name]))
    return paths


@pytest.mark.parametrize("algorithm", ["sac", "ppo"])
def test_gaussian_teacher_at_t1_equals_sb3s_own_distribution(gaussian_models, algorithm):
    from stable_baselines3 import PPO, SAC

    path = gaussian_models[algorithm]
    assert read_algorithm(path) == algorithm
    env = make_env("Pendulum-v1")
    teacher = load_teacher(path, env.observation_space, env.action_space)
    obs = torch.as_tensor(np.stack([env.observation_space.sample() for _ in range(64)]), dtype=torch.float32)
    with torch.no_grad():
        mu, log_std = teacher(obs).split(1, dim=-1)
        model = {"sac": SAC, "ppo": PPO}[algorithm].load(str(path), device="cpu")
        if algorithm == "sac":  # SAC's own Gaussian before the tanh squash
            mean, ref_log_std, _ = model.policy.actor.get_action_dist_params(obs)
            reference = model.policy.actor.action_dist.proba_distribution(mean, ref_log_std).distribution
        else:
            reference = model.policy.get_distribution(obs).distribution
    torch.testing.assert_close(mu, reference.mean, atol=1e-6, rtol=0)
    torch.testing.assert_close(log_std.exp(), reference.stddev, atol=1e-6, rtol=0)


def test_tempered_gaussian_is_the_density_to_the_power_one_over_t():
    mu, log_std, t = torch.tensor([[0.3]]), torch.tensor([[-0.7]]), 3.0
    a = torch.linspace(-4, 4, 2001).reshape(-1, 1)
    base = torch.distributions.Normal(mu, log_std.exp())
    powered = base.log_prob(a) / t
    powered = powered - torch.logsumexp(powered, dim=0) - torch.log(a[1] - a[0])  # renormalise on the grid
    tempered = torch.distributions.Normal(mu, tempered_log_std(log_std, t).exp()).log_prob(a)
    torch.testing.assert_close(powered, tempered, atol=1e-4, rtol=0)
    # and the KL the objective uses is torch's own KL between the two Gaussians
    p = torch.distributions.Normal(torch.tensor([[0.1, -1.0]]), torch.tensor([[0.5, 2.0]]))
    q = torch.distributions.Normal(torch.tensor([[0.4, 0.0]]), torch.tensor([[1.5, 0.3]]))
    ours = gaussian_kl(p.mean, p.stddev.log(), q.mean, q.stddev.log())
    torch.testing.assert_close(ours, torch.distributions.kl_divergence(p, q).sum(dim=-1))


def test_push_pull_readout_commands_negative_actions_and_squashes_like_the_teacher():
    head = GaussianActions(np.array([-2.0]), np.array([2.0]), squash=True)
    counts_like = torch.tensor([[0.0, 1.5], [2.0, 0.0]])  # never negative, as a count readout
    mean = head.student_mean(counts_like)
    assert mean.tolist() == [[-1.5], [2.0]]
    np.testing.assert_allclose(head.to_env(mean), 2.0 * np.tanh([[-1.5], [2.0]]), rtol=1e-6)
    clipped = GaussianActions(np.array([-2.0]), np.array([2.0]), squash=False)
    assert clipped.to_env(torch.tensor([[-5.0], [1.0]])).tolist() == [[-2.0], [1.0]]


@pytest.mark.parametrize("backend", ["dense", "snntorch"])
def test_a_pendulum_run_distils_the_gaussian_and_exports_its_log_std(tmp_path, backend):
    path = execute(config_from_mapping(pendulum_config(tmp_path, backend)), warn=lambda _: None)
    run = read_run(path)
    assert run["status"] == "complete"
    ev = run["eval"]
    assert ev["teacher_return_mean"] > -300 and ev["random_return_mean"] < -900
    assert np.isfinite(ev["return_retained"]) and "action_abs_error" in run["metrics"]
    assert run["metrics"]["teacher_entropy"][0] > run["metrics"]["teacher_entropy_t1"][0]  # T = 2 widens it
    _, student = load_student(Run.read(path))
    assert student.log_std.shape == (1,)
    torch.testing.assert_close(student.log_std.detach(), torch.as_tensor(run["student"]["log_std"]))
    # an exported student acts as the run's student did: the squashed Gaussian mean
    obs = np.stack([make_env("Pendulum-v1").observation_space.sample() for _ in range(32)]).astype(np.float32)
    head = GaussianActions(np.array([-2.0]), np.array([2.0]), squash=True)
    student.set_temperature(1.0)
    with torch.no_grad():
        expected = head.student_actions(student(torch.as_tensor(obs)))
    predictor = load_predictor(export_run(Run.read(path), "pt", tmp_path / "pend.pt"))
    actions = predictor.predict(obs)
    assert actions.shape == (32, 1) and np.all(np.abs(actions) <= 2.0)
    np.testing.assert_allclose(actions, expected, atol=1e-5)
    if backend != "dense":
        assert ev["spikes_per_sample"] > 0


BAD_CONTINUOUS = {
    "nll-on-continuous": ({"loss": "nll"}, "distill.loss"),
    "per-sample-schedule": ({"temperature": {"schedule": "logit_std", "base": 1.0}}, "distill.temperature"),
}


@pytest.mark.parametrize("case", list(BAD_CONTINUOUS))
def test_bad_continuous_input_is_one_line_exit_2(tmp_path, capsys, case):
    distill, field = BAD_CONTINUOUS[case]
    path = tmp_path / "pend.yaml"
    path.write_text(yaml.safe_dump(pendulum_config(tmp_path, **distill)))
    assert main(["run", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"tempdistill run: error: {field}"), err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("*.h5"))


def test_teach_refuses_an_algorithm_that_cannot_act_in_the_env(tmp_path, capsys):
    mapping = pendulum_config(tmp_path)
    mapping["teacher"] = {"checkpoint": str(tmp_path / "t.zip"), "algo": "dqn"}
    path = tmp_path / "teach.yaml"
    path.write_text(yaml.safe_dump(mapping))
    assert main(["teach", str(path), "--quiet"]) == 2
    assert "teacher.algo: 'dqn'" in capsys.readouterr().err


def test_a_gaussian_head_asks_the_student_to_reach_its_action_bounds():
    """θ0 bounds a spiking student's push-pull mean: auto θ0 covers the mean at which the action
    reaches the box (the clip bound; 99% of the half-range through tanh), a configured θ0 stays."""
    from backends import get_backend

    squashed = GaussianActions(np.array([-2.0]), np.array([2.0]), squash=True)
    clipped = GaussianActions(np.array([-1.0, 0.0]), np.array([1.0, 3.0]), squash=False)
    assert np.tanh(squashed.reach) == pytest.approx(0.99)
    assert clipped.reach == 3.0
    narrow_teacher = torch.tensor([[0.4, 0.0], [0.0, 0.3]])  # push-pull pairs with a small spread
    backend = get_backend("snntorch")
    for theta0, expected in (("auto", squashed.reach), (1.5, 1.5)):
        student = backend.build_student(backend.validate({"backend": "snntorch", "theta0": theta0}, "student"), 3, 2)
        squashed.prepare_student(student)
        student.fit_to_teacher(narrow_teacher)
        assert float(student.thresholds[-1].theta0.mean()) == pytest.approx(expected)
    dense = get_backend("dense")
    student = dense.build_student(dense.validate({"backend": "dense"}, "student"), 3, 2)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    squashed.prepare_student(student)
    student.fit_to_teacher(narrow_teacher)
    assert all(torch.equal(before[k], v) for k, v in student.state_dict().items() if k in before)
