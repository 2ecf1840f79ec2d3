"""Multi-teacher, multi-task distillation: padding, routing, one temperature per head."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import pytest
import torch

from tempdistill.app.cli import main
from tempdistill.config import config_from_mapping
from tempdistill.losses import distillation_objective
from tempdistill.record.run_file import read_run
from tempdistill.runner import execute, plan_run
from tempdistill.tasks import get_task_class

REPO_ROOT = Path(__file__).resolve().parents[1]
TEACHERS = REPO_ROOT / "experiments" / "teachers"


def multitask_config(tmp_path: Path, backend: str = "dense", **changes: Any) -> Dict[str, Any]:
    student: Dict[str, Any] = {"backend": backend, "hidden": [16]}
    if backend != "dense":
        student["steps"] = 6
    mapping: Dict[str, Any] = {
        "name": "two",
        "task": "multitask",
        "heads": [
            {"name": "cartpole", "env": "CartPole-v1", "checkpoint": str(TEACHERS / "cartpole-ppo.zip"), "n_envs": 2,
             "temperature": {"schedule": "constant", "value": 0.5}},
            {"name": "acrobot", "env": "Acrobot-v1", "checkpoint": str(TEACHERS / "acrobot-ppo.zip"), "n_envs": 2,
             "temperature": {"schedule": "linear", "start": 3.0, "end": 2.0}},
        ],
        "student": student,
        "distill": {"epochs": 2, "batch_size": 32, "lr": 0.01, "alpha": 1.0,
                    "dagger": {"steps_per_epoch": 100, "updates_per_epoch": 10}},
        "eval": {"episodes": 2, "val_episodes": 1},
        "record": {"dir": str(tmp_path / "runs"), "traces": {"every": 1, "samples": 4}},
    }
    mapping.update(changes)
    return mapping


def build_task(tmp_path: Path, backend: str = "dense"):
    config = config_from_mapping(multitask_config(tmp_path, backend))
    plan = plan_run(config)
    task, _ = get_task_class("multitask").build(config, None, None, lambda _: None)
    student = plan.student_backend.build_student(plan.student_options, task.input_dim, task.num_outputs)
    return config, task, student


def test_observations_are_padded_with_a_task_one_hot_and_teachers_routed(tmp_path):
    _, task, _ = build_task(tmp_path)
    try:
        assert (task.input_dim, task.num_outputs) == (6 + 2, 2 + 3)
        batch = task.evaluation_batch()
        cart = batch.groups == 0
        assert torch.all(batch.x[cart, 4:6] == 0) and torch.all(batch.x[cart, 6] == 1) and torch.all(batch.x[cart, 7] == 0)
        assert torch.all(batch.x[~cart, 6] == 0) and torch.all(batch.x[~cart, 7] == 1)
        # the combined teacher gives each row its own teacher's logits, in its head's columns
        routed = task.teacher(batch.x)
        torch.testing.assert_close(routed[cart][:, :2], task.heads["cartpole"].teacher(batch.x[cart, :4]))
        torch.testing.assert_close(routed[~cart][:, 2:], task.heads["acrobot"].teacher(batch.x[~cart, :6]))
        assert torch.all(routed[cart][:, 2:] == 0) and torch.all(routed[~cart][:, :2] == 0)
    finally:
        task.close()


@pytest.mark.parametrize("backend", ["dense", "norse"])
def test_each_head_gets_its_own_temperature(tmp_path, backend):
    config, task, student = build_task(tmp_path, backend)
    try:
        schedule = task.build_schedule(config)
        t = schedule(0, 0, {})
        torch.testing.assert_close(t, torch.tensor([0.5, 0.5, 3.0, 3.0, 3.0]))
        assert schedule.named_temperatures(t) == {"cartpole": 0.5, "acrobot": 3.0}
        student.fit_to_teacher(task.fitting_logits())
        student.eval()
        student.set_temperature(t)
        # the T each output neuron applies: z/T for dense, θ/θ0 of its output threshold for spiking
        torch.testing.assert_close(torch.as_tensor(student.effective_temperature()).expand(5).float(), t)
        batch = task.evaluation_batch()
        out = student(batch.x)
        total, _, _ = task.objective(student, out, batch, t, 1.0, "kl")
        expected = 0.0
        for h, columns, temperature in ((0, slice(0, 2), 0.5), (1, slice(2, 5), 3.0)):
            rows = batch.groups == h
            part, _, _ = distillation_objective(torch.log_softmax(out.tempered[rows][:, columns], -1),
                                                out.logits[rows][:, columns], batch.teacher_logits[rows][:, columns],
                                                temperature, None, 1.0)
            expected = expected + part * float(rows.float().mean())
        torch.testing.assert_close(total, expected)
    finally:
        task.close()


def test_multitask_probe_facts_follow_the_probe_inputs_head_by_head(tmp_path):
    _, task, _ = build_task(tmp_path)
    facts = task.probe_facts(4)
    inputs = task.probe_inputs(4)
    assert facts["probe_rows"].tolist() == [0, 1, 0, 1]  # rows within each head's validation data
    assert facts["probe_labels"].shape == (len(inputs),)
    for h, head in enumerate(task.heads.values()):  # each head's labels are its teacher's greedy actions
        assert facts["probe_labels"][2 * h : 2 * h + 2].tolist() == head.probe_facts(2)["probe_labels"].tolist()


def test_a_multitask_run_records_per_head_temperature_returns_and_episodes(tmp_path):
    run = read_run(execute(config_from_mapping(multitask_config(tmp_path)), warn=lambda _: None))
    assert run["status"] == "complete"
    assert run["temperature"]["cartpole"].tolist() == [0.5, 0.5]
    assert run["temperature"]["acrobot"][0] == pytest.approx(3.0 - 1.0 * 9 / 19)  # linear, last step of epoch 1
    ev = run["eval"]
    assert ev["teacher_return_mean.cartpole"] == 500.0 and ev["teacher_return_mean.acrobot"] < -60
    assert ev["return_retained"] == min(ev["return_retained.cartpole"], ev["return_retained.acrobot"])
    for head in ("cartpole", "acrobot"):
        assert run["episodes"][f"student_returns.{head}"].shape == (2,)
        assert len(run["metrics"][f"return_mean.{head}"]) == 2 and len(run["metrics"][f"kl.{head}"]) == 2
    assert run["metrics"]["buffer_states"][-1] == 400
    # the exported student acts per head, from that head's own observations
    from tempdistill.record.export import export_run, load_predictor, load_student
    from tempdistill.record.run import Run

    _, student = load_student(Run.from_record(run))
    acrobot_obs = torch.randn(20, 6)
    padded = torch.cat([acrobot_obs, torch.tensor([[0.0, 1.0]]).expand(20, 2)], dim=1)
    student.set_temperature(1.0)
    with torch.no_grad():
        expected = student(padded).tempered[:, 2:].argmax(dim=-1).numpy()
    predictor = load_predictor(export_run(Run.from_record(run), "pt", tmp_path / "two.pt"))
    assert (predictor.predict(acrobot_obs.numpy(), head="acrobot") == expected).all()
    with pytest.raises(ValueError, match="head: got None; this multi-task student's heads: cartpole, acrobot"):
        predictor.predict(acrobot_obs.numpy())


MULTITASK_ERRORS = {
    "one-head": (lambda m: m["heads"].pop(), "heads"),
    "same-names": (lambda m: m["heads"][1].update(name="cartpole"), "heads"),
    "unknown-env": (lambda m: m["heads"][1].update(env="NoSuchEnv-v0"), "heads.acrobot.env"),
    "wrong-teacher": (lambda m: m["heads"][1].update(checkpoint=m["heads"][0]["checkpoint"]), "heads.acrobot.checkpoint"),
    "bad-schedule": (lambda m: m["heads"][0].update(temperature={"schedule": "constant", "value": -1}),
                     "heads.cartpole.temperature.value"),
    "env-beside-heads": (lambda m: m.update(env={"id": "CartPole-v1"}), "env"),
}


@pytest.mark.parametrize("case", list(MULTITASK_ERRORS))
def test_bad_multitask_input_is_one_line_exit_2(tmp_path, capsys, case):
    import yaml

    mapping = multitask_config(tmp_path)
    change, field = MULTITASK_ERRORS[case]
    change(mapping)
    path = tmp_path / "multi.yaml"
    path.write_text(yaml.safe_dump(mapping))
    assert main(["run", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"tempdistill run: error: {field}"), err
    assert not list((tmp_path / "runs").glob("*.h5")) if (tmp_path / "runs").exists() else True


def test_an_adaptive_head_follows_its_own_heads_kl():
    from tempdistill.config import TemperatureConfig
    from tempdistill.schedules import PerHead, build_schedule

    adaptive = TemperatureConfig(schedule="adaptive", start=2.0, target_kl=0.1, rate=0.5)
    schedule = PerHead({"a": build_schedule(adaptive, 4, 1), "b": build_schedule(adaptive, 4, 1)}, {"a": 2, "b": 3})
    first = schedule(0, 0, {})
    later = schedule(1, 1, {"kl": 0.1, "kl.a": 1.0, "kl.b": 0.01})  # a far from its teacher, b close
    assert first.tolist() == [2.0] * 5
    assert later[0] > 2.0 and later[2] < 2.0  # KL above target raises T, below lowers it
    assert schedule.named_temperatures(later) == {"a": float(later[0]), "b": float(later[2])}
