"""SB3 zips from others: loading a teacher never unpickles anything from the file.

Hostile zips are built here from the committed teachers: a pickle whose ``__reduce__`` creates a
marker file is put in a ``data`` field (``ep_info_buffer``, ``policy_class``, ``policy_kwargs``,
an unknown field) or in a ``.pth`` member. Every way a teacher file is opened (``run``, ``sweep``,
a multitask head, ``teach``) either loads it safely or refuses it with one line and exit 2; the
marker never appears. ``teacher.trusted: true`` hands a file to SB3's own loader and says so in
the record.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
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
from tempdistill.runner import plan_run
from tempdistill.tasks.envs import make_env
from tempdistill.tasks.sb3_files import algorithm_class, read_sb3_file
from tempdistill.tasks.sb3_teacher import SB3Teacher, load_teacher

REPO_ROOT = Path(__file__).resolve().parents[1]
TEACHERS = REPO_ROOT / "experiments" / "teachers"
CARTPOLE_PPO = TEACHERS / "cartpole-ppo.zip"


class Swish(torch.nn.Module):
    """A user's own activation: a class SB3 pickles by reference, which only its loader reads."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


class Payload:
    """Stands for any code a file could run: unpickled, it creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> Any:
        return (open, (self.marker, "w"))


READABLE_RELU = {"activation_fn": "<class 'torch.nn.modules.activation.ReLU'>"}


def with_payload(source: Path, target: Path, marker: Path, where: str,
                 readable: Dict[str, Any] | None = None) -> Path:
    """A copy of ``source`` with the payload in ``where``: a ``data`` field (its readable
    fields kept, only the pickle swapped; ``readable`` beside a field the file held as plain
    JSON) or a ``.pth`` member."""
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(members["data"])
    blob = base64.b64encode(pickle.dumps(Payload(marker))).decode()
    if where.endswith(".pth"):
        buffer = io.BytesIO()
        torch.save({"weight": Payload(marker)}, buffer)
        members[where] = buffer.getvalue()
    elif isinstance(data.get(where), dict) and ":serialized:" in data[where]:
        data[where][":serialized:"] = blob
    else:  # a field the file holds as plain JSON (or not at all), now pickled
        data[where] = {":type:": "<class 'dict'>", ":serialized:": blob, **(readable or {})}
    members["data"] = json.dumps(data, indent=4).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return target


def policy_mapping(tmp_path: Path, checkpoint: Path, **teacher: Any) -> Dict[str, Any]:
    return {
        "name": "pole", "task": "policy",
        "env": {"id": "CartPole-v1", "n_envs": 2},
        "teacher": {"checkpoint": str(checkpoint), **teacher},
        "student": {"backend": "dense", "hidden": [8]},
        "distill": {"epochs": 1, "batch_size": 32, "lr": 0.01, "alpha": 1.0,
                    "temperature": {"schedule": "constant", "value": 1.0},
                    "dagger": {"steps_per_epoch": 50, "updates_per_epoch": 2}},
        "eval": {"episodes": 1, "val_episodes": 1},
        "record": {"dir": str(tmp_path / "runs"), "traces": {"every": 0, "samples": 0}},
    }


def write(tmp_path: Path, mapping: Dict[str, Any], name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(mapping))
    return path


def one_error_line(capsys: pytest.CaptureFixture, command: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"tempdistill {command}: error: "), err
    return lines[0]


# Where a payload goes (with readable fields beside it), and what a run does with the file: load
# it safely (0) or refuse it (2, the line naming the config field and the file's).
HOSTILE = {
    "ep_info_buffer": ("ep_info_buffer", None, 0, None),
    "_last_obs": ("_last_obs", None, 0, None),
    "policy_class": ("policy_class", None, 0, None),  # PPO's own MlpPolicy is used; the pickle is never read
    "policy_kwargs": ("policy_kwargs", READABLE_RELU, 0, None),  # rebuilt from the readable copy
    "policy_kwargs-own-class": ("policy_kwargs", {"activation_fn": "<class 'mine.Swish'>"}, 2,
                                "policy_kwargs.activation_fn"),
    "unknown-field": ("custom_field", {}, 2, "custom_field"),
    "policy.pth": ("policy.pth", None, 2, "policy.pth"),  # weights only: torch's unpickler refuses it
    "pytorch_variables.pth": ("pytorch_variables.pth", None, 2, "pytorch_variables.pth"),
}


def hostile(tmp_path: Path, case: str, marker: Path, source: Path = CARTPOLE_PPO, name: str = "hostile.zip") -> Path:
    where, readable = HOSTILE[case][:2]
    return with_payload(source, tmp_path / name, marker, where, readable)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_the_payloads_run_when_unpickled(tmp_path, case):
    """The hostile files are live: what the tests below load safely would otherwise run."""
    from stable_baselines3.common.save_util import json_to_data

    marker = tmp_path / "ran"
    path, where = hostile(tmp_path, case, marker), HOSTILE[case][0]
    with zipfile.ZipFile(path) as archive:
        if where.endswith(".pth"):
            torch.load(io.BytesIO(archive.read(where)), weights_only=False)
        else:
            json_to_data(archive.read("data").decode())  # what SB3's load does without custom_objects
    assert marker.exists()


def test_sb3_reads_pth_members_weights_only():
    """The installed SB3 already reads weights with ``weights_only=True`` (this tool no longer
    relies on it: it reads and rewrites them itself before SB3 sees them)."""
    import inspect

    from stable_baselines3.common import save_util

    assert "weights_only=True" in inspect.getsource(save_util.load_from_zip_file)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_run_never_runs_a_payload(tmp_path, capsys, case):
    marker = tmp_path / "ran"
    path = hostile(tmp_path, case, marker)
    code = main(["run", str(write(tmp_path, policy_mapping(tmp_path, CARTPOLE_PPO))), "--quiet",
                 "--set", f"teacher.checkpoint={path}"])
    assert not marker.exists()
    expected, named = HOSTILE[case][2:]
    assert code == expected
    if expected == 0:
        run = read_run(next((tmp_path / "runs").glob("*.h5")))
        assert run["status"] == "complete" and run["eval"]["teacher_trusted"] == False  # noqa: E712
    else:
        line = one_error_line(capsys, "run")
        assert line.startswith("tempdistill run: error: teacher.checkpoint: ") and named in line, line
        assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("*.h5"))


def test_a_policy_class_from_elsewhere_is_refused(tmp_path, capsys):
    """A policy class that is not SB3's MlpPolicy (another module, or another class named in its
    methods) is refused; the pickle is never read."""
    marker = tmp_path / "ran"
    for module, method in (("evil.policies", "ActorCriticPolicy"),
                           ("stable_baselines3.common.policies", "MyPolicy")):
        path = hostile(tmp_path, "policy_class", marker)
        with zipfile.ZipFile(path) as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
        data = json.loads(members["data"])
        data["policy_class"]["__module__"] = module
        data["policy_class"]["forward"] = f"<function {method}.forward at 0x7f0000000000>"
        members["data"] = json.dumps(data).encode()
        with zipfile.ZipFile(path, "w") as archive:
            for name, content in members.items():
                archive.writestr(name, content)
        config = write(tmp_path, policy_mapping(tmp_path, path))
        assert main(["run", str(config), "--quiet"]) == 2
        line = one_error_line(capsys, "run")
        assert "teacher.checkpoint" in line and ("policy module evil" in line or "MyPolicy" in line), line
    assert not marker.exists()


def test_sweep_never_runs_a_payload(tmp_path, capsys):
    marker = tmp_path / "ran"
    loaded = hostile(tmp_path, "ep_info_buffer", marker, name="loaded.zip")
    config = write(tmp_path, policy_mapping(tmp_path, loaded))
    assert main(["sweep", str(config), "--out", str(tmp_path / "sweep"), "--quiet"]) == 0
    assert len(list((tmp_path / "sweep").glob("*.h5"))) == 1
    capsys.readouterr()
    refused = hostile(tmp_path, "policy_kwargs-own-class", marker, name="refused.zip")
    config = write(tmp_path, policy_mapping(tmp_path, refused))
    assert main(["sweep", str(config), "--out", str(tmp_path / "sweep2"), "--quiet"]) == 2  # at planning
    assert "teacher.checkpoint" in one_error_line(capsys, "sweep")
    assert not marker.exists()


def multitask_mapping(tmp_path: Path, cartpole: Path, **head: Any) -> Dict[str, Any]:
    mapping = policy_mapping(tmp_path, cartpole)
    del mapping["env"], mapping["teacher"]
    mapping.update(name="two", task="multitask", heads=[
        {"name": "cartpole", "env": "CartPole-v1", "checkpoint": str(cartpole), "n_envs": 2, **head},
        {"name": "acrobot", "env": "Acrobot-v1", "checkpoint": str(TEACHERS / "acrobot-ppo.zip"), "n_envs": 2},
    ])
    return mapping


def test_a_multitask_head_never_runs_a_payload(tmp_path, capsys):
    marker = tmp_path / "ran"
    loaded = hostile(tmp_path, "ep_info_buffer", marker, name="loaded.zip")
    assert main(["run", str(write(tmp_path, multitask_mapping(tmp_path, loaded))), "--quiet"]) == 0
    capsys.readouterr()
    ev = read_run(next((tmp_path / "runs").glob("*.h5")))["eval"]
    assert (ev["teacher_algorithm"], ev["teacher_trusted"]) == ("ppo, ppo", False)
    refused = hostile(tmp_path, "policy_kwargs-own-class", marker, name="refused.zip")
    assert main(["run", str(write(tmp_path, multitask_mapping(tmp_path, refused))), "--quiet"]) == 2
    line = one_error_line(capsys, "run")
    assert line.startswith("tempdistill run: error: heads.cartpole.checkpoint: ") and "policy_kwargs" in line
    assert "heads.cartpole.trusted: true" in line, line
    assert not marker.exists()


def test_teach_reads_its_kept_file_back_safely(tmp_path, monkeypatch, capsys):
    """``teach`` with ``select_every`` reads the kept .zip back from its path; a file swapped in
    there (a shared folder) is read like any teacher's."""
    import tempdistill.tasks.teach as teach_module

    marker = tmp_path / "ran"
    real = teach_module._selection_callback

    def swapping(every, score, target, log):
        callback = real(every, score, target, log)
        step = callback._on_step

        def on_step() -> bool:
            kept = step()
            if target.exists():
                with_payload(target, target, marker, "ep_info_buffer")
            return kept

        callback._on_step = on_step
        return callback

    monkeypatch.setattr(teach_module, "_selection_callback", swapping)
    mapping = policy_mapping(tmp_path, tmp_path / "t.zip", algo="dqn", timesteps=200, n_envs=1, select_every=100,
                             hyperparams={"learning_starts": 100, "buffer_size": 1000})
    assert main(["teach", str(write(tmp_path, mapping)), "--quiet"]) == 0
    assert "teacher saved to" in capsys.readouterr().out
    assert not marker.exists()


@pytest.fixture(scope="module")
def own_class_teacher(tmp_path_factory) -> Path:
    """A benign PPO whose policy_kwargs name the user's own activation class."""
    from stable_baselines3 import PPO

    path = tmp_path_factory.mktemp("own") / "swish-ppo.zip"
    PPO("MlpPolicy", "CartPole-v1", seed=0, device="cpu", policy_kwargs={"activation_fn": Swish}).save(str(path))
    return path


def test_trusted_uses_sb3s_loader_and_the_record_says_so(tmp_path, capsys, monkeypatch, own_class_teacher):
    config = write(tmp_path, policy_mapping(tmp_path, own_class_teacher))
    assert main(["run", str(config), "--quiet"]) == 2
    line = one_error_line(capsys, "run")
    assert "policy_kwargs.activation_fn" in line and "Swish" in line and "teacher.trusted: true" in line, line

    import tempdistill.tasks.sb3_teacher as sb3_teacher

    def never(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the safe loader was used for a trusted file")

    monkeypatch.setattr(sb3_teacher, "safe_objects", never)
    assert main(["run", str(config), "--quiet", "--set", "teacher.trusted=true"]) == 0
    run = read_run(next((tmp_path / "runs").glob("*.h5")))
    assert run["eval"]["teacher_trusted"] == True and run["config"]["teacher"]["trusted"] is True  # noqa: E712
    env = make_env("CartPole-v1")
    teacher = load_teacher(own_class_teacher, env.observation_space, env.action_space, trusted=True)
    assert isinstance(teacher.policy.mlp_extractor.policy_net[1], Swish)  # the file's own class


def test_trusted_is_per_head_in_a_multitask_config(tmp_path, own_class_teacher):
    with pytest.raises(ConfigError, match=r"^heads\.cartpole\.checkpoint: .*policy_kwargs"):
        plan_run(config_from_mapping(multitask_mapping(tmp_path, own_class_teacher)))
    plan_run(config_from_mapping(multitask_mapping(tmp_path, own_class_teacher, trusted=True)))


ENVS = {"cartpole": "CartPole-v1", "acrobot": "Acrobot-v1", "pendulum": "Pendulum-v1"}
COMMITTED = ["cartpole-ppo", "cartpole-dqn", "acrobot-ppo", "acrobot-dqn", "pendulum-sac"]


@pytest.fixture(scope="module")
def built_teachers(tmp_path_factory) -> Dict[str, Path]:
    """Files whose policy_kwargs SB3 pickles: A2C always (its RMSprop), an RL-Zoo-style PPO."""
    from stable_baselines3 import A2C, PPO

    folder = tmp_path_factory.mktemp("built")
    models = {"cartpole-a2c": A2C("MlpPolicy", "CartPole-v1", seed=0, device="cpu"),
              "cartpole-zoo": PPO("MlpPolicy", "CartPole-v1", seed=0, device="cpu", policy_kwargs={
                  "activation_fn": torch.nn.ReLU, "net_arch": {"pi": [16], "vf": [8]}, "ortho_init": False})}
    for name, model in models.items():
        model.save(str(folder / f"{name}.zip"))
    return {name: folder / f"{name}.zip" for name in models}


@pytest.mark.parametrize("name", COMMITTED + ["cartpole-a2c", "cartpole-zoo"])
def test_the_safe_loader_gives_sb3s_own_outputs(name, monkeypatch, built_teachers):
    """Logits, Q-values or [μ, log σ] on a batch of observations equal those of SB3's own
    loader, with SB3's unpickling of ``:serialized:`` fields made to fail."""
    import hashlib

    from stable_baselines3.common import save_util

    path = built_teachers.get(name) or TEACHERS / f"{name}.zip"
    env = make_env(ENVS[name.split("-")[0]])
    file = read_sb3_file(path)
    reference = SB3Teacher(algorithm_class(file.algorithm).load(str(path), device="cpu"), file.algorithm)

    class NoUnpickling:
        @staticmethod
        def loads(_blob: bytes) -> None:
            raise AssertionError("a :serialized: field was unpickled")

    monkeypatch.setattr(save_util, "cloudpickle", NoUnpickling)
    assert "policy_class" in file.serialized() and "observation_space" in file.serialized()
    teacher = load_teacher(path, env.observation_space, env.action_space)
    env.observation_space.seed(0)
    obs = torch.as_tensor(np.stack([env.observation_space.sample() for _ in range(256)]), dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(teacher(obs), reference(obs))
    assert teacher.actor_parameters() == reference.actor_parameters()
    assert [type(m) for m in teacher.modules()] == [type(m) for m in reference.modules()]  # ReLU stays ReLU
    assert teacher.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_spaces_are_checked_from_the_files_readable_fields(tmp_path):
    """Shapes (the existing message) and bounds are read from the JSON text before loading."""
    env = make_env("CartPole-v1")
    with pytest.raises(ConfigError, match=r"^teacher\.checkpoint: .*observations \(6,\) with 3 actions; the "
                                          r"environment has observations \(4,\) with 2 actions"):
        load_teacher(TEACHERS / "acrobot-ppo.zip", env.observation_space, env.action_space)
    with zipfile.ZipFile(CARTPOLE_PPO) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(members["data"])
    data["observation_space"]["high"] = "[9.6  inf  0.41887903  inf]"
    members["data"] = json.dumps(data).encode()
    edited = tmp_path / "bounds.zip"
    with zipfile.ZipFile(edited, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    with pytest.raises(ConfigError, match=r"^teacher\.checkpoint: .*observations with high \[9\.6 inf"):
        load_teacher(edited, env.observation_space, env.action_space)


def test_an_algorithm_other_than_the_configs_is_recorded_and_warned(tmp_path, capsys):
    config = write(tmp_path, policy_mapping(tmp_path, TEACHERS / "cartpole-dqn.zip", algo="ppo"))
    assert main(["run", str(config), "--quiet"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "teacher.algo" in line]
    assert warnings == ["warning: teacher.algo: the config says 'ppo' but cartpole-dqn.zip was saved by DQN; "
                        "it is loaded and recorded as 'dqn'"]
    run = read_run(next((tmp_path / "runs").glob("*.h5")))
    assert run["eval"]["teacher_algorithm"] == "dqn" and run["warnings"] == warnings
