"""Policy distillation: SB3 teachers' distributions, seeded collection, DAgger, a real run, bad input."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest
import torch
import yaml

from tempdistill.app.cli import main
from tempdistill.config import ConfigError, config_from_mapping
from tempdistill.record.run_file import read_run
from tempdistill.runner import execute
from tempdistill.tasks.actions import DiscreteActions
from tempdistill.tasks.envs import Collector, greedy, make_env, run_episodes
from tempdistill.tasks.sb3_teacher import load_teacher, read_algorithm

REPO_ROOT = Path(__file__).resolve().parents[1]
CARTPOLE_TEACHER = REPO_ROOT / "experiments" / "teachers" / "cartpole-ppo.zip"


def policy_config(tmp_path: Path, **changes: Any) -> Dict[str, Any]:
    mapping: Dict[str, Any] = {
        "name": "pole",
        "task": "policy",
        "env": {"id": "CartPole-v1", "n_envs": 4},
        "teacher": {"checkpoint": str(CARTPOLE_TEACHER)},
        "student": {"backend": "dense", "hidden": [16]},
        "distill": {"epochs": 2, "batch_size": 64, "lr": 0.01, "alpha": 1.0,
                    "temperature": {"schedule": "constant", "value": 1.0},
                    "dagger": {"steps_per_epoch": 200, "updates_per_epoch": 20}},
        "eval": {"episodes": 5, "val_episodes": 2},
        "record": {"dir": str(tmp_path / "runs"), "traces": {"every": 1, "samples": 4}},
    }
    for key, value in changes.items():
        mapping[key] = value
    return mapping


@pytest.fixture(scope="module")
def sb3_models(tmp_path_factory) -> Dict[str, Path]:
    """Untrained PPO, A2C and DQN models for CartPole, saved as users would save them."""
    from stable_baselines3 import A2C, DQN, PPO

    folder = tmp_path_factory.mktemp("sb3")
    paths = {}
    for name, cls in (("ppo", PPO), ("a2c", A2C), ("dqn", DQN)):
        model = cls("MlpPolicy", "CartPole-v1", seed=0, device="cpu")
        paths[name] = folder / f"{name}.zip"
        model.save(str(paths[name]))
    return paths


@pytest.mark.parametrize("algorithm", ["ppo", "a2c", "dqn"])
def test_teacher_distribution_at_t1_equals_sb3s_own(sb3_models, algorithm):
    from stable_baselines3 import A2C, DQN, PPO

    path = sb3_models[algorithm]
    assert read_algorithm(path) == algorithm  # read from the file, never asked for
    env = make_env("CartPole-v1")
    teacher = load_teacher(path, env.observation_space, env.action_space)
    obs = torch.as_tensor(np.stack([env.observation_space.sample() for _ in range(64)]), dtype=torch.float32)
    ours = torch.softmax(teacher(obs), dim=-1)
    model = {"ppo": PPO, "a2c": A2C, "dqn": DQN}[algorithm].load(str(path), device="cpu")
    with torch.no_grad():
        if algorithm == "dqn":  # DQN-as-softmax: the Boltzmann policy over Q-values at τ = 1
            reference = torch.softmax(model.policy.q_net(obs), dim=-1)
        else:
            reference = model.policy.get_distribution(obs).distribution.probs
    torch.testing.assert_close(ours.detach(), reference, atol=1e-6, rtol=0)


def test_seeded_collection_and_episodes_repeat_exactly():
    env = make_env("CartPole-v1")
    teacher = greedy(load_teacher(CARTPOLE_TEACHER, env.observation_space, env.action_space), DiscreteActions(2))
    runs = [Collector("CartPole-v1", 3, seed=7).collect(300, teacher, teacher, 1.0) for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert runs[0].shape == (300, 4)
    other = Collector("CartPole-v1", 3, seed=8).collect(300, teacher, teacher, 1.0)
    assert not np.array_equal(runs[0], other)
    coin = np.random.default_rng(0)
    student = lambda obs: coin.integers(2, size=len(obs))  # noqa: E731
    mixed = [Collector("CartPole-v1", 3, seed=7).collect(300, teacher, student, 0.5) for _ in range(1)]
    assert not np.array_equal(mixed[0], runs[0])
    a = run_episodes("CartPole-v1", teacher, 6, seed=100, lockstep=4)
    b = run_episodes("CartPole-v1", teacher, 6, seed=100, lockstep=6)
    np.testing.assert_array_equal(a.returns, b.returns)  # episode i always has seed 100 + i
    assert a.mean == 500.0  # the committed teacher balances the pole for the full 500 steps


def test_dagger_with_beta_one_is_teacher_rollouts():
    env = make_env("CartPole-v1")
    teacher = greedy(load_teacher(CARTPOLE_TEACHER, env.observation_space, env.action_space), DiscreteActions(2))

    def never(_obs):
        raise AssertionError("the student acted although beta = 1")

    dagger = Collector("CartPole-v1", 4, seed=3).collect(400, teacher, never, 1.0)
    rollouts = Collector("CartPole-v1", 4, seed=3).collect(400, teacher, teacher, 1.0)
    np.testing.assert_array_equal(dagger, rollouts)


@pytest.mark.parametrize("backend", ["dense", "snntorch"])
def test_policy_run_records_returns_episodes_and_per_decision_spikes(tmp_path, backend):
    student = {"backend": backend, "hidden": [16]} if backend == "dense" else {"backend": backend, "hidden": [16], "steps": 8}
    config = config_from_mapping(policy_config(tmp_path, student=student, eval={"episodes": 5, "val_episodes": 2,
                                                                                 "rollouts": 2}))
    run = read_run(execute(config, warn=lambda _: None))
    assert run["status"] == "complete"
    ev = run["eval"]
    assert ev["teacher_return_mean"] == 500.0
    assert 0 < ev["random_return_mean"] < 100
    expected = (ev["student_return_mean"] - ev["random_return_mean"]) / (ev["teacher_return_mean"] - ev["random_return_mean"])
    assert ev["return_retained"] == pytest.approx(expected)
    assert ev["teacher_params"] == 4610  # the PPO actor: 4·64+64 + 64·64+64 + 64·2+2, not the value head
    for who in ("student", "teacher", "random"):
        assert run["episodes"][f"{who}_returns"].shape == (5,)
    np.testing.assert_allclose(run["episodes"]["student_returns"].mean(), ev["student_return_mean"])
    for k in range(2):  # Minari's layout: one more observation than actions, rewards, flags
        rollout = run["episodes"][str(k)]
        length = run["episodes"]["student_lengths"][k]
        assert rollout["observations"].shape == (length + 1, 4) and rollout["actions"].shape == (length,)
        assert rollout["rewards"].sum() == run["episodes"]["student_returns"][k]
        assert bool(rollout["terminations"][-1] or rollout["truncations"][-1]) and not rollout["terminations"][:-1].any()
    assert "2" not in run["episodes"]
    assert len(run["metrics"]["return_mean"]) == 2 and len(run["metrics"]["dagger_beta"]) == 2
    assert run["metrics"]["dagger_beta"][0] == 1.0
    assert run["metrics"]["buffer_states"][1] == 400
    if backend != "dense":
        assert ev["spikes_per_sample"] > 0 and ev["synops_per_sample"] > 0  # per decision
        assert run["traces"]
        probes = run["traces"][max(run["traces"])]  # the first validation observations, the teacher's action
        np.testing.assert_array_equal(probes["probe_rows"], np.arange(4))
        assert probes["probe_labels"].shape == (4,) and set(probes["probe_labels"]) <= {0, 1}


def test_policy_best_val_tests_the_best_validation_epoch_once_more(tmp_path):
    """Epochs are chosen by validation return (its own seeds); the final student and the chosen
    weights each play the test episodes once, both recorded; the run is scored by the chosen."""
    from tempdistill.analysis.statistics import score_of
    from tempdistill.record.run import Run

    mapping = policy_config(tmp_path, eval={"episodes": 4, "val_episodes": 2, "rollouts": 1})
    mapping["distill"] = dict(mapping["distill"], epochs=3, select="best_val")
    run = Run.read(execute(config_from_mapping(mapping), warn=lambda _: None))
    ev, episodes = run.eval, run.episodes
    validation = np.asarray(run.series["return_mean"])
    assert ev["select"] == "best_val" and ev["best_val_epoch"] == int(np.argmax(validation))  # first of ties
    assert ev["best_val_score"] == validation.max()
    for who in ("student", "student_best_val"):
        assert episodes[f"{who}_returns"].shape == (4,)
    np.testing.assert_allclose(episodes["student_best_val_returns"].mean(), ev["student_return_mean_best_val"])
    np.testing.assert_allclose(episodes["student_returns"].mean(), ev["student_return_mean"])
    assert "return_retained_best_val" in ev and "0" in episodes and "1" not in episodes  # rollouts: final only
    assert score_of(run) == ("return", ev["student_return_mean_best_val"])
    assert run.student_attrs["weights"] == "best_val"


def test_losses_nll_and_mse_train_a_policy(tmp_path):
    for loss in ("nll", "mse"):
        mapping = policy_config(tmp_path)
        mapping["distill"] = {**mapping["distill"], "loss": loss, "epochs": 3,
                              "dagger": {"steps_per_epoch": 400, "updates_per_epoch": 80}}
        run = read_run(execute(config_from_mapping(mapping), warn=lambda _: None))
        assert run["status"] == "complete" and run["config"]["distill"]["loss"] == loss
        assert run["metrics"]["action_agreement"][-1] > 0.7, (loss, run["metrics"]["action_agreement"])


def _write(tmp_path: Path, mapping: Dict[str, Any]) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(mapping))
    return path


def _corrupt(tmp_path: Path) -> Path:
    path = tmp_path / "corrupt.zip"
    path.write_bytes(CARTPOLE_TEACHER.read_bytes()[:5000])
    return path


def _not_sb3(tmp_path: Path) -> Path:
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not a model")
    return path


BAD_POLICY_INPUTS = {
    "unknown-env": (lambda tmp: {"env": {"id": "NoSuchEnv-v0"}}, "env.id"),
    "env-needs-mujoco": (lambda tmp: {"env": {"id": "HalfCheetah-v5"}}, "env.id"),  # gymnasium[mujoco] is not a dependency
    "discrete-teacher-on-continuous-env": (lambda tmp: {"env": {"id": "Pendulum-v1"}}, "teacher.checkpoint"),
    "teacher-for-other-spaces": (lambda tmp: {"env": {"id": "Acrobot-v1"}}, "teacher.checkpoint"),
    "corrupt-zip": (lambda tmp: {"teacher": {"checkpoint": str(_corrupt(tmp))}}, "teacher.checkpoint"),
    "not-sb3-zip": (lambda tmp: {"teacher": {"checkpoint": str(_not_sb3(tmp))}}, "teacher.checkpoint"),
    "no-checkpoint": (lambda tmp: {"teacher": {"algo": "ppo"}}, "teacher.checkpoint"),
    "policy-without-env": (lambda tmp: {"env": None}, "env"),
    "env-with-classification": (lambda tmp: {"task": "classification"}, "env"),
    "dagger-with-classification": (lambda tmp: {"task": "classification", "env": None,
                                                "teacher": {"hidden": [16], "epochs": 1}}, "distill.dagger"),
}


@pytest.mark.parametrize("case", list(BAD_POLICY_INPUTS))
def test_bad_policy_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, case):
    changes, field = BAD_POLICY_INPUTS[case]
    mapping = policy_config(tmp_path)
    for key, value in changes(tmp_path).items():
        if value is None:
            mapping.pop(key)
        else:
            mapping[key] = value
    assert main(["run", str(_write(tmp_path, mapping)), "--quiet"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"tempdistill run: error: {field}"), err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("*.h5"))


def test_teach_rejects_a_classification_config(make_config, capsys):
    assert main(["teach", str(make_config())]) == 2
    assert "task" in capsys.readouterr().err


def test_teach_trains_and_saves_an_sb3_zip(tmp_path, capsys):
    mapping = policy_config(tmp_path)
    mapping["teacher"] = {"checkpoint": str(tmp_path / "t" / "tiny.zip"), "algo": "dqn", "timesteps": 300,
                          "n_envs": 1, "select_every": 100, "hyperparams": {"learning_starts": 100, "buffer_size": 1000}}
    assert main(["teach", str(_write(tmp_path, mapping))]) == 0
    printed = capsys.readouterr()
    assert "validation return" in printed.err  # scored on validation episodes, the best kept
    assert "teacher saved to" in printed.out
    assert read_algorithm(tmp_path / "t" / "tiny.zip") == "dqn"
    with pytest.raises(ConfigError, match="teacher.checkpoint"):
        read_algorithm(tmp_path / "missing.zip")


def test_demo_prints_the_classifier_and_the_policy_tables(tmp_path, make_config, capsys):
    from tempdistill.app.demo import main as demo_main

    policy = _write(tmp_path, policy_config(tmp_path))
    code = demo_main(["--config", str(make_config()), "--policy-config", str(policy), "--backends", "dense",
                      "--out", str(tmp_path / "demo"), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "acc with KD" in out and "policy teacher: cartpole-ppo.zip on CartPole-v1, return 500.0" in out
    assert "retained" in out and "(3 files)" in out


def test_a_policy_sweep_summarises_returns(tmp_path, capsys):
    config = _write(tmp_path, policy_config(tmp_path))
    out = tmp_path / "sweep"
    assert main(["sweep", str(config), "--grid", "distill.loss=kl,nll", "--out", str(out), "--quiet",
                 "--jobs", "2"]) == 0
    printed = capsys.readouterr().out
    header = printed.splitlines()[0].split()
    assert "return" in header and "accuracy" not in header
    assert "pole-loss=kl " in printed and "pole-loss=nll " in printed


def test_the_demos_default_configs_are_the_shipped_ones():
    """``make demo`` runs ``tempdistill.app.demo`` without --config: its defaults must name the
    committed experiment files wherever the module lives in the package."""
    from tempdistill.app.demo import DEFAULT_CONFIG, POLICY_CONFIG

    repo = Path(__file__).resolve().parents[1]
    assert DEFAULT_CONFIG == repo / "experiments" / "digits.yaml" and DEFAULT_CONFIG.is_file()
    assert POLICY_CONFIG == repo / "experiments" / "cartpole.yaml" and POLICY_CONFIG.is_file()


def test_the_committed_lunarlander_teacher_lands_and_a_student_follows(tmp_path):
    """experiments/lunarlander.yaml (gymnasium[box2d]): the committed PPO teacher beats a random
    policy by far and a short distillation gives a student that keeps part of its return."""
    mapping = yaml.safe_load((REPO_ROOT / "experiments" / "lunarlander.yaml").read_text())
    mapping["teacher"]["checkpoint"] = str(REPO_ROOT / "experiments" / "teachers" / "lunarlander-ppo.zip")
    mapping["distill"].update(epochs=2, dagger={**mapping["distill"]["dagger"], "steps_per_epoch": 1000,
                                                 "updates_per_epoch": 100})
    mapping["eval"] = {"episodes": 3, "seed": 10000, "val_episodes": 2, "val_seed": 5000}
    mapping["record"] = {"dir": str(tmp_path), "traces": {"every": 0, "samples": 0}}
    run = read_run(execute(config_from_mapping(mapping), warn=lambda _: None))
    ev = run["eval"]
    assert run["status"] == "complete"
    assert ev["teacher_return_mean"] > 100 > 0 > ev["random_return_mean"]
    assert ev["return_retained"] > 0.3
