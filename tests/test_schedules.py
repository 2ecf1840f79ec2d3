"""Temperature schedules as first-class objects.

Three layers of evidence:

* every schedule (built-in, per-group, and a user's own by import path) runs end to end from
  a config on the dense student and on both spiking students, and the T series written to the
  HDF5 record has the schedule's defining property;
* the Schedule objects themselves, with synthetic signals: endpoints and monotonicity, the
  adaptive rule's direction and bounds, gradient reversal for learned temperatures, per-sample
  temperatures;
* bad schedule sections are user errors: exit 2, one line naming ``distill.temperature...``,
  no run file left behind.
"""

from __future__ import annotations

import copy
import math
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import pytest
import torch

from tempdistill.app.cli import main
from tempdistill.config import ConfigError, TemperatureConfig, config_from_mapping
from tempdistill.losses import kd_loss, kl_per_sample
from tempdistill.record.run_file import read_run
from tempdistill.runner import execute, plan_run, prepare_teacher
from tempdistill.schedules import (
    Adaptive,
    Cosine,
    Exponential,
    GradientReversal,
    Grouped,
    Instance,
    Learnable,
    Linear,
    LogitStd,
    Schedule,
    Step,
    TwoPhase,
    build_schedule,
    ctkd_reversal,
    known_schedules,
    reversal_strength,
    schedule_class,
)
from tempdistill.temperature import log_softmax
from tempdistill.core.training import batched_forward

EPOCHS = 4
BACKENDS = ["dense", "snntorch", "norse"]
CUSTOM_MODULE = "tdtest_custom_schedules"

# Every schedule the issue names, as the ``distill.temperature`` section a user would write.
SCHEDULES: Dict[str, Dict[str, Any]] = {
    "constant": {"schedule": "constant", "value": 3.0},
    "linear": {"schedule": "linear", "start": 8.0, "end": 1.0},
    "cosine": {"schedule": "cosine", "start": 8.0, "end": 1.0},
    "exponential": {"schedule": "exponential", "start": 8.0, "end": 1.0},
    "two_phase": {"schedule": "two_phase", "high": 6.0, "low": 1.5, "switch_epoch": 2, "alpha_phase2": 0.3},
    "step": {"schedule": "step", "high": 6.0, "low": 1.5, "switch_epoch": 2},
    "adaptive": {"schedule": "adaptive", "start": 4.0, "target_kl": 0.05, "rate": 0.5, "min": 1.0, "max": 20.0},
    "learnable": {"schedule": "learnable", "init": 4.0, "t_min": 1.0, "t_range": 9.0},
    "ctkd": {"schedule": "ctkd", "cosine_decay_epochs": 2},
    "instance": {"schedule": "instance", "init": 4.0, "t_min": 1.0, "t_range": 9.0, "hidden": 8},
    "logit_std": {"schedule": "logit_std", "base": 0.5},
    "grouped_cosine": {
        "schedule": "cosine", "start": 8.0, "end": 1.0,
        "groups": {"classes": [[0, 1, 2, 3, 4]], "factors": [2.0]},
    },
    "custom": {"schedule": f"{CUSTOM_MODULE}:Halving", "start": 6.0},
}

# A user's own schedule, importable as package.module:ClassName (written into tmp_path).
CUSTOM_SOURCE = textwrap.dedent(
    """
    from pydantic import Field

    from tempdistill.config import Strict
    from tempdistill.schedules import Schedule


    class HalvingParams(Strict):
        schedule: str
        start: float = Field(6.0, gt=0.0)


    class Halving(Schedule):
        '''T halves every epoch: start, start/2, start/4, ...'''

        name = "halving"
        Params = HalvingParams

        def temperature(self, step, epoch, signals=None):
            return self.params.start / 2 ** epoch


    class NotASchedule:
        pass
    """
)


# Custom schedules a user may get wrong: each must still be a one-line user error.
BROKEN_MODULES = {
    "tdtest_syntax_error": "def oops(:\n",
    "tdtest_raises_on_import": "raise RuntimeError('boom while importing')\n",
    "tdtest_no_params": textwrap.dedent(
        """
        from tempdistill.schedules import Schedule


        class NoParams(Schedule):
            name = "no_params"

            def temperature(self, step, epoch, signals=None):
                return 2.0
        """
    ),
}


@pytest.fixture
def custom_schedule_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Write the user's schedule module into tmp_path and make it importable."""
    folder = tmp_path / "user_code"
    folder.mkdir()
    (folder / f"{CUSTOM_MODULE}.py").write_text(CUSTOM_SOURCE)
    for name, source in BROKEN_MODULES.items():
        (folder / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(folder))
    for name in (CUSTOM_MODULE, *BROKEN_MODULES):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield CUSTOM_MODULE
    for name in (CUSTOM_MODULE, *BROKEN_MODULES):
        sys.modules.pop(name, None)


def config_data(base: Dict[str, Any], temperature: Dict[str, Any], backend: str = "dense",
                epochs: int = EPOCHS) -> Dict[str, Any]:
    """The tiny config with the temperature section *replaced* (not merged) and a student."""
    data = copy.deepcopy(base)
    data["distill"]["temperature"] = copy.deepcopy(temperature)
    data["distill"]["epochs"] = epochs
    student: Dict[str, Any] = {"backend": backend, "hidden": [16]}
    if backend != "dense":
        student["steps"] = 8
    data["student"] = student
    return data


def run_files(directory: Path) -> List[Path]:
    return sorted(directory.rglob("*.h5")) if directory.exists() else []


def teacher_val_logits(config) -> torch.Tensor:
    """The run's teacher (from the session cache) on the validation split (per-epoch measures')."""
    split, teacher, _ = prepare_teacher(config)
    return batched_forward(teacher, split.x_val)


# ------------------------------------------------------------------ defining properties
def _series(run: Dict[str, Any]) -> tuple:
    steps = np.asarray(run["steps"]["temperature"], dtype=np.float64)
    epochs = len(run["metrics"]["epoch"])
    per_epoch = steps.reshape(epochs, -1)
    return steps, per_epoch


def _assert_start_end_curve(steps: np.ndarray, start: float, end: float, curve: Callable[[np.ndarray], np.ndarray]) -> None:
    p = np.arange(len(steps)) / (len(steps) - 1)
    assert abs(steps[0] - start) <= 1e-9, steps[:3]
    assert abs(steps[-1] - end) <= 1e-9, steps[-3:]
    assert np.all(np.diff(steps) <= 1e-12), "T must be monotone non-increasing for start > end"
    np.testing.assert_allclose(steps, curve(p), rtol=0, atol=1e-9)


def check_constant(run, section, config) -> None:
    steps, _ = _series(run)
    np.testing.assert_allclose(steps, section["value"], atol=1e-12)
    np.testing.assert_allclose(run["metrics"]["temperature"], section["value"], atol=1e-12)
    np.testing.assert_allclose(run["metrics"]["effective_temperature_mean"], section["value"], atol=1e-6)


def check_linear(run, section, config) -> None:
    s, e = section["start"], section["end"]
    _assert_start_end_curve(_series(run)[0], s, e, lambda p: s + (e - s) * p)


def check_cosine(run, section, config) -> None:
    s, e = section["start"], section["end"]
    _assert_start_end_curve(_series(run)[0], s, e, lambda p: e + (s - e) * (1 + np.cos(np.pi * p)) / 2)


def check_exponential(run, section, config) -> None:
    s, e = section["start"], section["end"]
    steps = _series(run)[0]
    _assert_start_end_curve(steps, s, e, lambda p: s * (e / s) ** p)
    ratios = steps[1:] / steps[:-1]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-9)  # geometric: equal ratios per step


def check_two_phase(run, section, config) -> None:
    _, per_epoch = _series(run)
    switch = section["switch_epoch"]
    assert np.all(per_epoch[:switch] == section["high"]), per_epoch[:, 0]
    assert np.all(per_epoch[switch:] == section["low"]), per_epoch[:, 0]
    alpha = np.asarray(run["metrics"]["alpha"])
    expected = [config.distill.alpha] * switch + [section["alpha_phase2"]] * (len(alpha) - switch)
    np.testing.assert_allclose(alpha, expected, atol=1e-12)


def check_step(run, section, config) -> None:
    _, per_epoch = _series(run)
    switch = section["switch_epoch"]
    assert np.all(per_epoch[:switch] == section["high"]) and np.all(per_epoch[switch:] == section["low"])
    np.testing.assert_allclose(run["metrics"]["alpha"], config.distill.alpha, atol=1e-12)  # alpha held


def check_ctkd(run, section, config) -> None:
    steps, per_epoch = _series(run)
    assert np.all((per_epoch > 1.0) & (per_epoch < 21.0))  # T = 1 + 20·sigmoid(θ)
    assert steps[0] == pytest.approx(1 + 20 / (1 + math.exp(-1)), rel=1e-6)  # θ starts at 1: T ≈ 15.6
    assert np.ptp(steps) > 1e-6  # trained from the first epoch on (λ > 0 there)


def check_adaptive(run, section, config) -> None:
    """One T per epoch; each epoch's T is the rule applied to the KL recorded for the last."""
    _, per_epoch = _series(run)
    assert np.all(per_epoch == per_epoch[:, :1]), "adaptive T moves once per epoch"
    t = per_epoch[:, 0]
    kl = np.asarray(run["metrics"]["kl"])
    assert t[0] == section["start"]
    for e in range(1, len(t)):
        ratio = math.log(max(kl[e - 1], 1e-12) / section["target_kl"])
        expected = min(max(t[e - 1] * math.exp(section["rate"] * math.tanh(ratio)), section["min"]), section["max"])
        assert t[e] == pytest.approx(expected, rel=1e-9, abs=1e-12)
        direction = np.sign(kl[e - 1] - section["target_kl"])
        if section["min"] < t[e - 1] < section["max"]:
            assert np.sign(t[e] - t[e - 1]) == direction, (e, t, kl)
    assert np.all((t >= section["min"]) & (t <= section["max"]))


def check_learnable(run, section, config) -> None:
    _, per_epoch = _series(run)
    lo, hi = section["t_min"], section["t_min"] + section["t_range"]
    assert np.all((per_epoch > lo) & (per_epoch < hi))
    # Reversal strength is 0 in the first epoch: θ gets exactly zero gradient, T stays at init.
    np.testing.assert_allclose(per_epoch[0], section["init"], rtol=1e-6)
    # Later it is trained (adversarially): it moves.
    assert np.ptp(per_epoch[1:]) > 1e-6, per_epoch[:, [0, -1]]


def check_instance(run, section, config) -> None:
    steps, _ = _series(run)
    lo, hi = section["t_min"], section["t_min"] + section["t_range"]
    assert np.all((steps >= lo) & (steps <= hi))
    mean = np.asarray(run["metrics"]["effective_temperature_mean"])
    std = np.asarray(run["metrics"]["effective_temperature_std"])
    assert np.all((mean >= lo) & (mean <= hi))
    assert np.all(std >= 0) and np.all(std < section["t_range"])


def check_logit_std(run, section, config) -> None:
    """Effective T on the validation split = base · per-sample std of the teacher's logits."""
    logits = teacher_val_logits(config)
    expected = section["base"] * logits.std(dim=-1, keepdim=True).clamp_min(1e-6)
    mean = np.asarray(run["metrics"]["effective_temperature_mean"])
    std = np.asarray(run["metrics"]["effective_temperature_std"])
    np.testing.assert_allclose(mean, float(expected.mean()), rtol=1e-5)
    np.testing.assert_allclose(std, float(expected.std()), rtol=1e-4)
    # Each training step's T is a batch mean of base·std over training samples: within their range.
    split, teacher, _ = prepare_teacher(config)
    train_t = section["base"] * batched_forward(teacher, split.x_train).std(dim=-1)
    steps = _series(run)[0]
    assert float(train_t.min()) - 1e-5 <= steps.min() and steps.max() <= float(train_t.max()) + 1e-5


def check_grouped_cosine(run, section, config) -> None:
    """Classes in the group get factor·T, the rest T; the step series is the mean over classes."""
    groups = run["temperature"]
    k = 10
    assert sorted(groups) == sorted(f"class_{c}" for c in range(k))
    epochs = len(run["metrics"]["epoch"])
    factor = section["groups"]["factors"][0]
    members = section["groups"]["classes"][0]
    per_class = np.stack([np.asarray(groups[f"class_{c}"]) for c in range(k)])  # (K, epochs)
    assert per_class.shape == (k, epochs)
    outside = [c for c in range(k) if c not in members]
    for c in members:
        np.testing.assert_allclose(per_class[c], factor * per_class[outside[0]], rtol=1e-6)
    for c in outside:
        np.testing.assert_allclose(per_class[c], per_class[outside[0]], rtol=0, atol=0)
    steps, per_epoch = _series(run)
    mean_factor = (factor * len(members) + len(outside)) / k
    # The base (ungrouped) T of each epoch's last step is the cosine value: groups keep it exactly.
    np.testing.assert_allclose(per_class[outside[0]], per_epoch[:, -1] / mean_factor, rtol=1e-6)
    s, e = section["start"], section["end"]
    base = steps / mean_factor
    assert abs(base[0] - s) < 1e-5 and abs(base[-1] - e) < 1e-5
    assert np.all(np.diff(base) <= 1e-6)


def check_custom(run, section, config) -> None:
    _, per_epoch = _series(run)
    for e, row in enumerate(per_epoch):
        np.testing.assert_allclose(row, section["start"] / 2**e, atol=1e-12)


CHECKS: Dict[str, Callable] = {name: globals()[f"check_{name}"] for name in SCHEDULES}

INFORMATION_KEYS = (
    "kl", "tckd", "nckd", "teacher_entropy", "student_entropy", "teacher_entropy_t1", "student_entropy_t1",
    "teacher_ece", "student_ece", "teacher_mi", "student_mi", "effective_temperature_mean",
)


# ------------------------------------------------------------------ end to end
def _run_and_check(tiny_config_data, tmp_path, name: str, backend: str) -> None:
    section = SCHEDULES[name]
    config = config_from_mapping(config_data(tiny_config_data, section, backend))
    path = execute(config, out_dir=str(tmp_path / "runs"))
    run = read_run(path)
    assert run["status"] == "complete", run["attrs"].get("error")
    metrics = run["metrics"]
    assert all(len(v) == EPOCHS for v in metrics.values()), {k: len(v) for k, v in metrics.items()}
    for key in ("temperature", "alpha", "val_accuracy", *INFORMATION_KEYS):
        assert key in metrics, key
        assert np.all(np.isfinite(metrics[key])), (key, metrics[key])
    steps = np.asarray(run["steps"]["temperature"])
    assert len(steps) > 0 and len(steps) % EPOCHS == 0
    np.testing.assert_array_equal(run["steps"]["step"], np.arange(len(steps)))
    assert np.all(np.isfinite(steps)) and np.all(steps > 0)
    # The per-epoch T is the mean of that epoch's step Ts.
    np.testing.assert_allclose(metrics["temperature"], steps.reshape(EPOCHS, -1).mean(axis=1), rtol=1e-12)
    assert run["config"]["distill"]["temperature"]["schedule"] == section["schedule"]
    CHECKS[name](run, section, config)


# Every schedule on the dense student and on both spiking students (the full cross product is
# ~33 tiny runs: a few tenths of a second each with the teacher cached for the session).
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_end_to_end(name, backend, tiny_config_data, tmp_path, custom_schedule_module):
    _run_and_check(tiny_config_data, tmp_path, name, backend)


def test_every_registered_schedule_is_exercised():
    covered = {section["schedule"] for section in SCHEDULES.values()}
    assert set(known_schedules()) <= covered, set(known_schedules()) - covered


def test_custom_schedule_by_import_path(custom_schedule_module):
    cls = schedule_class(f"{custom_schedule_module}:Halving")
    assert issubclass(cls, Schedule) and cls.__name__ == "Halving"
    schedule = build_schedule(TemperatureConfig(schedule=f"{custom_schedule_module}:Halving", start=8.0), 3, 5)
    assert [schedule(0, e) for e in range(3)] == [8.0, 4.0, 2.0]


# ------------------------------------------------------------------ schedule objects
def _build(section: Dict[str, Any], epochs: int = 5, steps_per_epoch: int = 7, num_classes: Optional[int] = None):
    return build_schedule(TemperatureConfig(**section), epochs, steps_per_epoch, num_classes)


@pytest.mark.parametrize("cls_name", ["linear", "cosine", "exponential"])
@pytest.mark.parametrize("start,end", [(8.0, 1.0), (20.0, 0.5), (1.0, 6.0), (3.0, 3.0)])
@pytest.mark.parametrize("epochs,spe", [(1, 2), (3, 1), (5, 7)])
def test_start_end_schedules_endpoints_and_monotone(cls_name, start, end, epochs, spe):
    schedule = _build({"schedule": cls_name, "start": start, "end": end}, epochs, spe)
    ts = np.array([schedule(step, step // spe) for step in range(epochs * spe)], dtype=np.float64)
    assert abs(ts[0] - start) <= 1e-9 and abs(ts[-1] - end) <= 1e-9, ts
    sign = np.sign(end - start)
    assert np.all(sign * np.diff(ts) >= -1e-12), ts
    assert np.all(ts >= min(start, end) - 1e-12) and np.all(ts <= max(start, end) + 1e-12)


def test_cosine_and_exponential_shapes():
    cos = _build({"schedule": "cosine", "start": 9.0, "end": 1.0}, 1, 101)
    assert cos(50, 0) == pytest.approx(5.0, abs=1e-12)  # halfway: the mean of the endpoints
    # Cosine is flat near both ends: the first and last moves are much smaller than the middle one.
    assert cos(0, 0) - cos(1, 0) < (cos(49, 0) - cos(51, 0)) / 2 / 10
    exp = _build({"schedule": "exponential", "start": 16.0, "end": 1.0}, 1, 5)
    assert [exp(s, 0) for s in range(5)] == pytest.approx([16.0, 8.0, 4.0, 2.0, 1.0], abs=1e-12)


def test_step_changes_t_only():
    schedule = _build({"schedule": "step", "high": 8.0, "low": 1.0}, 6, 4)
    assert isinstance(schedule, Step) and schedule.switch_epoch == 3  # half of the epochs by default
    assert [schedule(e * 4, e) for e in range(6)] == [8.0, 8.0, 8.0, 1.0, 1.0, 1.0]
    assert [schedule.alpha(e, 0.7) for e in range(6)] == [0.7] * 6
    with pytest.raises(ConfigError, match="alpha_phase2: unknown key"):
        _build({"schedule": "step", "alpha_phase2": 0.5}, 6, 4)


def test_ctkd_published_range_initialisation_and_curriculum():
    schedule = _build({"schedule": "ctkd"}, 40, 3)
    assert schedule.params.t_start == 1.0 and schedule.params.t_range == 20.0  # --t_start 1, --t_end 20
    assert float(schedule.theta.detach()) == 1.0                                # torch.ones(1)
    assert float(schedule.value().detach()) == pytest.approx(1 + 20 * torch.sigmoid(torch.tensor(1.0)).item())
    # λ: CTKD's CosineDecay(max 0, min -1, loops 10) at epochs 1..40, sign taken by the reversal
    published = [-((math.cos(min(e, 10) * math.pi / 10) + 1) * 0.5 * (0 - (-1)) + (-1)) for e in range(1, 41)]
    ours = [schedule.reversal(e) for e in range(40)]
    assert ours == pytest.approx(published, abs=1e-12)
    assert ours[0] == pytest.approx((1 - math.cos(math.pi / 10)) / 2) and ours[9:] == [1.0] * 31
    assert all(a < b for a, b in zip(ours[:10], ours[1:10]))
    assert ctkd_reversal(1, 4, 0.5) == pytest.approx(0.25) and ctkd_reversal(3, 4, 0.5) == 0.5  # maximum 0.5
    # the reversal: θ's gradient is −λ times the loss's, so the optimiser raises the loss via T
    theta_t = schedule.temperature(0, 20)
    theta_t.backward()
    plain = torch.sigmoid(torch.tensor(1.0)) * (1 - torch.sigmoid(torch.tensor(1.0))) * 20
    assert float(schedule.theta.grad) == pytest.approx(-float(plain), rel=1e-6)


def test_two_phase_object():
    schedule = _build({"schedule": "two_phase", "high": 8.0, "low": 2.0, "switch_epoch": 3, "alpha_phase2": 0.2}, 5, 4)
    assert [schedule(e * 4, e) for e in range(5)] == [8.0, 8.0, 8.0, 2.0, 2.0]
    assert [schedule.alpha(e, 0.9) for e in range(5)] == [0.9, 0.9, 0.9, 0.2, 0.2]


# --- adaptive: synthetic signals
ADAPTIVE = {"schedule": "adaptive", "start": 4.0, "target_kl": 0.1, "rate": 0.5, "min": 1.0, "max": 20.0}


def _adaptive(**changes) -> Adaptive:
    schedule = _build({**ADAPTIVE, **changes}, 50, 3)
    assert isinstance(schedule, Adaptive)
    return schedule


def test_adaptive_kl_above_target_raises_t():
    schedule = _adaptive()
    assert schedule(0, 0) == 4.0
    t1 = schedule(3, 1, {"kl": 0.5})
    assert t1 > 4.0
    assert t1 == pytest.approx(4.0 * math.exp(0.5 * math.tanh(math.log(5.0))))


def test_adaptive_kl_below_target_lowers_t():
    schedule = _adaptive()
    assert schedule(3, 1, {"kl": 0.01}) < 4.0


def test_adaptive_kl_at_target_holds_t():
    schedule = _adaptive()
    assert schedule(3, 1, {"kl": 0.1}) == pytest.approx(4.0, abs=1e-12)


def test_adaptive_moves_once_per_epoch_and_only_with_a_signal():
    schedule = _adaptive()
    assert schedule(0, 0, {"kl": 5.0}) == 4.0  # epoch 0 uses start
    assert schedule(1, 0) == 4.0
    t1 = schedule(3, 1, {"kl": 5.0})
    assert schedule(4, 1, {"kl": 5.0}) == t1 and schedule(5, 1, {"kl": 0.0001}) == t1
    # Each move is bounded by a factor e^rate.
    assert t1 <= 4.0 * math.exp(0.5) + 1e-12
    schedule2 = _adaptive()
    assert schedule2(3, 1, None) == 4.0 and schedule2(3, 1, {"loss": 1.0}) == 4.0


def test_adaptive_is_bounded_by_min_and_max():
    high = _adaptive(start=18.0)
    ts = [high(3 * e, e, {"kl": 100.0}) for e in range(1, 10)]
    assert ts[-1] == 20.0 and all(t <= 20.0 for t in ts)
    low = _adaptive(start=1.5)
    ts = [low(3 * e, e, {"kl": 1e-6}) for e in range(1, 10)]
    assert ts[-1] == 1.0 and all(t >= 1.0 for t in ts)
    zero = _adaptive()
    assert zero(3, 1, {"kl": 0.0}) >= 1.0  # KL = 0 is clipped, not log(0)


@pytest.fixture
def short_dense_run(tiny_config_data):
    """A dense student after a short constant-T distillation, with the teacher, on validation data."""
    from tempdistill.core.distiller import Distiller
    from tempdistill.tasks.classification import ClassificationTask

    config = config_from_mapping(config_data(tiny_config_data, {"schedule": "constant", "value": 4.0}, epochs=2))
    plan = plan_run(config)
    split, teacher, _ = prepare_teacher(config, plan)
    torch.manual_seed(0)
    student = plan.student_backend.build_student(plan.student_options, split.input_dim, split.num_classes)
    schedule = build_schedule(config.distill.temperature, 2, 20, split.num_classes)
    Distiller(student, ClassificationTask(split, teacher), schedule, config.distill, 0).run()
    student.eval()
    student.set_temperature(1.0)
    with torch.no_grad():
        student_logits = student(split.x_val).tempered
    return batched_forward(teacher, split.x_val), student_logits, split


def _held_out_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor, t: float) -> float:
    return float(kl_per_sample(log_softmax(teacher_logits, t), log_softmax(student_logits, t)).mean())


def test_adaptive_direction_is_right_with_real_logits(short_dense_run):
    """A higher T gives a lower held-out KL, so raising T when KL > target moves KL toward it."""
    teacher_logits, student_logits, _ = short_dense_run
    temps = [1.0, 2.0, 4.0, 8.0, 16.0]
    kls = [_held_out_kl(teacher_logits, student_logits, t) for t in temps]
    assert all(a > b for a, b in zip(kls, kls[1:])), kls
    # Closed loop against the fixed pair: the rule drives the KL toward the target from either side.
    target = _held_out_kl(teacher_logits, student_logits, 5.0)
    for start in (1.0, 19.0):
        schedule = _adaptive(start=start, target_kl=target, rate=0.3)
        t = schedule(0, 0)
        first_gap = abs(_held_out_kl(teacher_logits, student_logits, t) - target)
        for epoch in range(1, 40):
            t = schedule(epoch, epoch, {"kl": _held_out_kl(teacher_logits, student_logits, t)})
        last_gap = abs(_held_out_kl(teacher_logits, student_logits, t) - target)
        assert last_gap < 0.05 * first_gap, (start, t, first_gap, last_gap)
        assert t == pytest.approx(5.0, rel=0.05)


# --- learned temperatures: gradient reversal
def test_reversal_strength_curriculum():
    total, top = 9, 2.5
    values = [reversal_strength(e, total, top) for e in range(total)]
    assert values[0] == 0.0 and values[-1] == pytest.approx(top, abs=1e-12)
    assert all(a < b for a, b in zip(values, values[1:]))
    for e, v in enumerate(values):
        assert v == pytest.approx(top * (1 - math.cos(math.pi * e / (total - 1))) / 2, abs=1e-12)
    assert values[4] == pytest.approx(top / 2)  # halfway
    assert reversal_strength(0, 1, top) == 0.0


def test_gradient_reversal_layer():
    x = torch.tensor([1.5, -2.0], requires_grad=True)
    y = GradientReversal.apply(x, 0.7)
    assert torch.equal(y, x)
    (y * torch.tensor([3.0, 5.0])).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([-2.1, -3.5]))


def _loss_pair(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(16, 10, generator=g) * 3
    teacher = torch.randn(16, 10, generator=g) * 5
    labels = torch.randint(0, 10, (16,), generator=g)
    return student, teacher, labels


@pytest.mark.parametrize("epoch", [2, 3, 5])
def test_learnable_t_gets_reversed_gradient(epoch):
    section = {"schedule": "learnable", "init": 4.0, "t_min": 1.0, "t_range": 19.0, "max_reversal": 1.5}
    schedule = _build(section, epochs=6, steps_per_epoch=3)
    assert isinstance(schedule, Learnable)
    assert float(schedule.value().detach()) == pytest.approx(4.0, rel=1e-6)
    assert list(schedule.parameters()) == [schedule.theta]
    student, teacher, labels = _loss_pair()

    def grad(reversed_: bool) -> float:
        schedule.theta.grad = None
        t = schedule(epoch * 3, epoch) if reversed_ else schedule.value()
        kd_loss(student, teacher, t, labels, alpha=0.9).backward()
        return float(schedule.theta.grad)

    plain, reversed_ = grad(False), grad(True)
    strength = reversal_strength(epoch, 6, 1.5)
    assert plain != 0.0
    assert np.sign(reversed_) == -np.sign(plain)
    assert reversed_ / plain == pytest.approx(-strength, rel=1e-5)


def test_learnable_first_epoch_has_no_gradient_and_last_has_max():
    section = {"schedule": "learnable", "init": 4.0, "t_min": 1.0, "t_range": 19.0, "max_reversal": 2.0}
    schedule = _build(section, epochs=4, steps_per_epoch=2)
    student, teacher, labels = _loss_pair(1)
    grads = []
    for epoch in (0, 3):
        schedule.theta.grad = None
        kd_loss(student, teacher, schedule(epoch * 2, epoch), labels).backward()
        grads.append(float(schedule.theta.grad))
    schedule.theta.grad = None
    kd_loss(student, teacher, schedule.value(), labels).backward()
    plain = float(schedule.theta.grad)
    assert grads[0] == 0.0
    assert grads[1] == pytest.approx(-2.0 * plain, rel=1e-5)


def test_learnable_optimiser_step_raises_the_loss():
    """Adversarial: one descent step on the reversed loss moves T so that the KD loss grows."""
    schedule = _build({"schedule": "learnable", "init": 4.0, "t_min": 1.0, "t_range": 19.0}, 3, 1)
    student, teacher, labels = _loss_pair(2)
    optimiser = torch.optim.SGD(schedule.parameters(), lr=0.5)
    before = float(kd_loss(student, teacher, schedule.value().detach(), labels))
    optimiser.zero_grad()
    kd_loss(student, teacher, schedule(2, 2), labels).backward()
    optimiser.step()
    after = float(kd_loss(student, teacher, schedule.value().detach(), labels))
    assert after > before


def test_instance_per_sample_temperatures():
    section = {"schedule": "instance", "init": 4.0, "t_min": 1.0, "t_range": 9.0, "hidden": 8}
    schedule = _build(section, epochs=5, steps_per_epoch=2, num_classes=10)
    assert isinstance(schedule, Instance) and schedule.needs_student_logits
    student, teacher, labels = _loss_pair(3)
    schedule(0, 2)
    t = schedule.per_sample(teacher, student)
    assert t.shape == (16, 1)
    assert torch.all(t >= 1.0) and torch.all(t <= 10.0)
    assert torch.allclose(t, torch.full_like(t, 4.0), atol=0.5)  # starts near init
    assert float(t.detach().std()) > 0  # depends on the sample
    extreme = schedule.per_sample(teacher * 1e4, -student * 1e4)
    assert torch.all(extreme >= 1.0) and torch.all(extreme <= 10.0)
    # Works as a (B, 1) temperature in the loss.
    assert torch.isfinite(kd_loss(student, teacher, t, labels))


@pytest.mark.parametrize("epoch", [1, 4])
def test_instance_predictor_gets_reversed_gradient(epoch):
    section = {"schedule": "instance", "init": 4.0, "t_min": 1.0, "t_range": 9.0, "hidden": 8, "max_reversal": 1.0}
    schedule = _build(section, epochs=5, steps_per_epoch=2, num_classes=10)
    student, teacher, labels = _loss_pair(4)
    params = list(schedule.parameters())
    assert params and all(p.requires_grad for p in params)

    def grads(reversed_: bool) -> List[torch.Tensor]:
        for p in params:
            p.grad = None
        schedule(epoch * 2, epoch)
        if reversed_:
            t = schedule.per_sample(teacher, student)
        else:
            features = torch.cat([teacher, student], dim=-1)
            t = 1.0 + 9.0 * torch.sigmoid(schedule.net(features))
        kd_loss(student, teacher, t, labels).backward()
        return [p.grad.clone() for p in params]

    plain, reversed_ = grads(False), grads(True)
    strength = reversal_strength(epoch, 5, 1.0)
    for a, b in zip(plain, reversed_):
        assert torch.allclose(b, -strength * a, rtol=1e-4, atol=1e-7)
    assert any(float(a.abs().max()) > 0 for a in plain)


def test_logit_std_for_batch():
    schedule = _build({"schedule": "logit_std", "base": 2.0})
    assert isinstance(schedule, LogitStd)
    _, teacher, _ = _loss_pair(5)
    base = schedule(0, 0)
    assert base == 2.0
    t = schedule.for_batch(base, teacher)
    assert t.shape == (16, 1)
    assert torch.allclose(t, 2.0 * teacher.std(dim=-1, keepdim=True))
    # Standardised teacher: z / T has unit-std rows scaled by 1/base.
    assert torch.allclose((teacher / t).std(dim=-1), torch.full((16,), 0.5), atol=1e-5)
    # Constant rows do not divide by zero.
    flat = schedule.for_batch(base, torch.ones(2, 10))
    assert torch.all(torch.isfinite(flat)) and torch.all(flat > 0)


def test_logit_std_on_real_teacher_logits(tiny_config_data):
    config = config_from_mapping(config_data(tiny_config_data, {"schedule": "logit_std", "base": 1.0}))
    logits = teacher_val_logits(config)
    schedule = _build({"schedule": "logit_std", "base": 1.0})
    t = schedule.for_batch(schedule(0, 0), logits)
    assert t.shape == (logits.shape[0], 1)
    np.testing.assert_allclose(t.squeeze(1).numpy(), logits.std(dim=-1).numpy(), rtol=1e-6)


def test_grouped_schedule_object():
    section = {"schedule": "cosine", "start": 8.0, "end": 2.0, "groups": {"classes": [[0, 1, 2, 3, 4]], "factors": [2.0]}}
    schedule = _build(section, epochs=2, steps_per_epoch=3, num_classes=10)
    assert isinstance(schedule, Grouped) and isinstance(schedule.inner, Cosine)
    t0 = schedule(0, 0)
    assert t0.shape == (10,)
    assert torch.equal(t0, torch.tensor([16.0] * 5 + [8.0] * 5))
    assert torch.allclose(schedule(5, 1), torch.tensor([4.0] * 5 + [2.0] * 5))
    # Per-group over a per-sample schedule: (B, 1) x (K,) -> (B, K).
    inst = _build({"schedule": "instance", "groups": {"classes": [[9]], "factors": [0.5]}}, 2, 3, num_classes=10)
    assert inst.needs_student_logits
    student, teacher, _ = _loss_pair(6)
    t = inst.per_sample(teacher, student)
    assert t.shape == (16, 10) and torch.allclose(t[:, 9], 0.5 * t[:, 0])
    # Without knowing the classes yet (plan time), groups are validated only.
    assert not isinstance(_build(section, 2, 3, None), Grouped)


def test_grouped_learnable_t_still_gets_the_reversed_gradient():
    section = {"schedule": "learnable", "init": 4.0, "max_reversal": 0.6,
               "groups": {"classes": [[0, 1, 2, 3, 4]], "factors": [2.0]}}
    schedule = _build(section, epochs=3, steps_per_epoch=1, num_classes=10)
    assert isinstance(schedule, Grouped) and list(schedule.parameters()) == [schedule.inner.theta]
    student, teacher, labels = _loss_pair(7)
    theta = schedule.inner.theta
    t = schedule(2, 2)
    assert t.shape == (10,) and torch.allclose(t[:5], 2 * t[5:])
    kd_loss(student, teacher, t, labels).backward()
    reversed_ = float(theta.grad)
    theta.grad = None
    kd_loss(student, teacher, schedule.inner.value() * schedule.factors, labels).backward()
    assert reversed_ == pytest.approx(-float(theta.grad) * reversal_strength(2, 3, 0.6), rel=1e-5)


def test_schedule_classes_are_registered_by_name():
    for cls in (Linear, Cosine, Exponential, TwoPhase, Adaptive, Learnable, Instance, LogitStd):
        assert schedule_class(cls.name) is cls


# ------------------------------------------------------------------ user errors
BAD_SECTIONS = [
    ({"schedule": "coolest"}, "distill.temperature.schedule", "coolest"),
    ({"schedule": "cosine", "start": -1.0, "end": 1.0}, "distill.temperature.start", None),
    ({"schedule": "cosine", "start": 8.0, "end": 0.0}, "distill.temperature.end", None),
    ({"schedule": "cosine", "start": 8.0, "end": 1.0, "bogus": 3}, "distill.temperature.bogus", None),
    ({"schedule": "constant", "value": "hot"}, "distill.temperature.value", None),
    ({"schedule": "two_phase", "high": 8.0, "low": 1.0, "switch_epoch": EPOCHS}, "distill.temperature.switch_epoch", None),
    ({"schedule": "two_phase", "switch_epoch": 1, "alpha_phase2": 1.5}, "distill.temperature.alpha_phase2", None),
    ({"schedule": "adaptive", "start": 4.0, "min": 10.0, "max": 2.0}, "distill.temperature", "min"),
    ({"schedule": "adaptive", "target_kl": -0.1}, "distill.temperature.target_kl", None),
    ({"schedule": "learnable", "init": 30.0, "t_min": 1.0, "t_range": 19.0}, "distill.temperature", "init"),
    ({"schedule": "learnable", "init": 1.0, "t_min": 1.0, "t_range": 19.0}, "distill.temperature", "init"),
    ({"schedule": "instance", "init": 0.5}, "distill.temperature", "init"),
    ({"schedule": "logit_std", "base": 0}, "distill.temperature.base", None),
    ({"schedule": "cosine", "groups": {"classes": [[0, 1], [2]], "factors": [2.0]}}, "distill.temperature.groups", "factors"),
    ({"schedule": "cosine", "groups": {"classes": [[0]], "factors": [-2.0]}}, "distill.temperature.groups", "factor"),
    ({"schedule": "cosine", "groups": {"classes": [[0, 1], [1]], "factors": [2.0, 3.0]}}, "distill.temperature.groups", None),
    ({"schedule": "cosine", "groups": {"classes": [[0, 10]], "factors": [2.0]}}, "distill.temperature.groups.classes", "10"),
    ({"schedule": "nosuchmodule_xyz.sub:Thing"}, "distill.temperature.schedule", "nosuchmodule_xyz"),
    ({"schedule": "tempdistill.schedules:NoSuchClass"}, "distill.temperature.schedule", "NoSuchClass"),
    ({"schedule": "json:JSONDecoder"}, "distill.temperature.schedule", "Schedule subclass"),
    ({"schedule": f"{CUSTOM_MODULE}:NotASchedule"}, "distill.temperature.schedule", "NotASchedule"),
    ({"schedule": f"{CUSTOM_MODULE}:Halving", "start": -2.0}, "distill.temperature.start", None),
    # Unimportable in other ways than a missing module: the user's code is at fault, not ours.
    ({"schedule": "tdtest_syntax_error:Anything"}, "distill.temperature.schedule", "tdtest_syntax_error"),
    ({"schedule": "tdtest_raises_on_import:Anything"}, "distill.temperature.schedule", "tdtest_raises_on_import"),
    ({"schedule": "tdtest_no_params:NoParams"}, "distill.temperature.schedule", "NoParams"),
    ({"schedule": "tempdistill.schedules:Schedule"}, "distill.temperature.schedule", "Schedule"),
    ({"schedule": ":Halving"}, "distill.temperature.schedule", None),
]


def _bad_id(section: Dict[str, Any]) -> str:
    extra = "-".join(f"{k}={v}" for k, v in section.items() if k != "schedule")
    return f"{section['schedule']}-{extra}" if extra else section["schedule"]


@pytest.mark.parametrize("section,field,mentions", BAD_SECTIONS, ids=[_bad_id(s) for s, _, _ in BAD_SECTIONS])
def test_bad_schedule_is_a_one_line_user_error(section, field, mentions, tmp_path, capsys,
                                               custom_schedule_module, tiny_config_data):
    import yaml

    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(config_data(tiny_config_data, section), sort_keys=False))
    out = tmp_path / "out"
    capsys.readouterr()
    rc = main(["run", str(config), "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert rc == 2, captured.err
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    assert field in lines[0], lines[0]
    if mentions:
        assert mentions in lines[0], lines[0]
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())
    assert run_files(tmp_path) == []


@pytest.mark.parametrize("override,field", [
    ("distill.temperature.start=-1", "distill.temperature.start"),
    ("distill.temperature.start=.nan", "distill.temperature.start"),
])
def test_bad_schedule_through_set(override, field, tmp_path, capsys, tiny_config_data):
    import yaml

    config = tmp_path / "cos.yaml"
    config.write_text(yaml.safe_dump(config_data(tiny_config_data, SCHEDULES["cosine"])))
    rc = main(["run", str(config), "--set", override, "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and field in err, err
    assert run_files(tmp_path) == []


@pytest.mark.parametrize("section,field", [
    ({"schedule": "two_phase", "high": 8.0, "low": 1.0, "switch_epoch": 9}, "distill.temperature.switch_epoch"),
    ({"schedule": "no_such_pkg_q:Cls"}, "distill.temperature.schedule"),
])
def test_bad_schedule_subprocess_has_no_traceback(section, field, tmp_path, cli_subprocess, tiny_config_data):
    import yaml

    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(config_data(tiny_config_data, section)))
    out = tmp_path / "out"
    proc = cli_subprocess(["run", str(config), "--out", str(out), "--quiet"])
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert run_files(tmp_path) == []


def test_config_error_from_build_schedule_directly():
    with pytest.raises(ConfigError, match=r"distill\.temperature\.schedule: unknown schedule 'warm'.*cosine"):
        build_schedule(TemperatureConfig(schedule="warm"), 3, 1)
