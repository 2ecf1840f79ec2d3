"""Feature distillation beside the logit term (``distill.features``, ``tempdistill.core.features``):
the adapter that ``mse`` learns, attention transfer against a hand computation, hooks that leave
no trace, the per-epoch ``feature_loss.<i>`` record, and the one-line refusals."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
import torch
from torch import nn

import tempdistill as td
from backends.dense import DenseOptions, DenseStudent
from tempdistill.config import ConfigError, DataConfig, DistillConfig, FeatureConfig, config_from_mapping
from tempdistill.core.distiller import Distiller
from tempdistill.core.task import Batch
from tempdistill.core.features import FeatureTerms, attention_transfer_loss, match_spatial, mse_feature_loss
from tempdistill.record.run_file import read_run
from tempdistill.runner import build_features, execute
from tempdistill.schedules import build_schedule
from tempdistill.tasks.classification import ClassificationTask
from tempdistill.tasks.data import load_split

MSE_TERM = {"teacher": "1", "student": "net.1", "loss": "mse", "weight": 1.0}


def features_config(data: Dict[str, Any], features: List[Dict[str, Any]], epochs: int = 3) -> Dict[str, Any]:
    config = copy.deepcopy(data)
    config["distill"].update({"epochs": epochs, "features": features})
    return config


@pytest.fixture(scope="module")
def digits_task() -> ClassificationTask:
    """Digits (seed 0's split) with an untrained MLP teacher of width 32 read on the normalised
    inputs, as tempdistill's own teacher is: enough to test the mechanics."""
    split = load_split(DataConfig(name="digits"), 0)
    torch.manual_seed(1)
    teacher = nn.Sequential(nn.Linear(split.input_dim, 32), nn.ReLU(), nn.Linear(32, split.num_classes))
    return ClassificationTask(split, teacher)


def dense_student(task: ClassificationTask, seed: int = 0) -> DenseStudent:
    torch.manual_seed(seed)
    return DenseStudent(DenseOptions(hidden=[16]), task.input_dim, task.num_outputs)


def hooks_on(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


# ------------------------------------------------------------------ the losses by hand
def test_attention_transfer_matches_a_hand_computation() -> None:
    """a(F) = mean_c F², flattened, L2-normalised; loss = batch mean of ||a_s - a_t||²; the
    student's 6x6 map is pooled to the teacher's 3x3 (2x2 block means) and channels differ."""
    gen = torch.Generator().manual_seed(0)
    student = torch.randn(3, 4, 6, 6, generator=gen, dtype=torch.float64)
    teacher = torch.randn(3, 8, 3, 3, generator=gen, dtype=torch.float64)

    s = student.numpy().reshape(3, 4, 3, 2, 3, 2).mean(axis=(3, 5))  # 2x2 blocks
    t = teacher.numpy()

    def attention(f: np.ndarray) -> np.ndarray:
        a = (f ** 2).mean(axis=1).reshape(f.shape[0], -1)
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    expected = ((attention(s) - attention(t)) ** 2).sum(axis=1).mean()
    assert float(attention_transfer_loss(student, teacher)) == pytest.approx(expected, rel=1e-12)
    # Either side may be the larger: the pooling is symmetric.
    assert float(attention_transfer_loss(teacher, student)) == pytest.approx(expected, rel=1e-12)
    # Identical maps up to a positive scale (normalised away) cost nothing.
    assert float(attention_transfer_loss(teacher, 3.0 * teacher)) == pytest.approx(0.0, abs=1e-12)


def test_mse_pools_the_larger_map_and_averages_every_element() -> None:
    gen = torch.Generator().manual_seed(1)
    student = torch.randn(2, 5, 4, 4, generator=gen, dtype=torch.float64)
    teacher = torch.randn(2, 5, 2, 2, generator=gen, dtype=torch.float64)
    pooled, same = match_spatial(student, teacher)
    assert pooled.shape == (2, 5, 2, 2) and same is teacher
    by_hand = ((student.numpy().reshape(2, 5, 2, 2, 2, 2).mean(axis=(3, 5)) - teacher.numpy()) ** 2).mean()
    assert float(mse_feature_loss(pooled, same)) == pytest.approx(by_hand, rel=1e-12)


# ------------------------------------------------------------------ the adapter
def test_mse_adapter_maps_student_width_to_teacher_width_and_is_trained(digits_task: ClassificationTask) -> None:
    student = dense_student(digits_task)
    config = config_from_mapping({"distill": {"epochs": 2, "lr": 0.01, "features": [MSE_TERM]}})
    features = build_features(config, digits_task, student)
    assert features is not None
    try:
        adapter = features.adapters["0"]
        assert isinstance(adapter, nn.Linear) and (adapter.in_features, adapter.out_features) == (16, 32)
        assert features.terms[0].student_shape == (2, 16) and features.terms[0].teacher_shape == (2, 32)
        before = adapter.weight.detach().clone()
        schedule = build_schedule(config.distill.temperature, config.distill.epochs,
                                  digits_task.steps_per_epoch(config.distill.batch_size))
        distiller = Distiller(student, digits_task, schedule, config.distill, 0, extra=features)
        optimised = {id(p) for group in distiller.optimizer.param_groups for p in group["params"]}
        assert {id(adapter.weight), id(adapter.bias)} <= optimised
        distiller.run()
        assert not torch.equal(adapter.weight, before)
        # The adapter is the run's, not the student's: nothing of it is in the student's state.
        assert set(student.state_dict()) == {"net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"}
    finally:
        digits_task.teacher_inputs_in_batches = False


def test_equal_widths_need_no_adapter(digits_task: ClassificationTask) -> None:
    torch.manual_seed(0)
    student = DenseStudent(DenseOptions(hidden=[32]), digits_task.input_dim, digits_task.num_outputs)
    network, rows, teacher_rows = digits_task.feature_teacher()
    features = FeatureTerms([FeatureConfig(**MSE_TERM)], network, student, rows, teacher_rows)
    assert len(features.adapters) == 0 and list(features.parameters()) == []


# ------------------------------------------------------------------ no trace left
def test_hooks_leave_no_trace(digits_task: ClassificationTask) -> None:
    """After the dry run and a training batch's term, no hook remains on either network; the
    teacher gives the same logits, and the student the same logits as an untouched copy of it
    at the same weights, inside the watched pass and outside it."""
    teacher = digits_task.teacher
    assert teacher is not None
    x = digits_task.split.x_val[:32]
    with torch.no_grad():
        teacher_before = teacher(x).clone()
    student, untouched = dense_student(digits_task), dense_student(digits_task)
    network, rows, teacher_rows = digits_task.feature_teacher()
    features = FeatureTerms([FeatureConfig(**MSE_TERM), FeatureConfig(teacher="0", student="net.0", weight=0.5)],
                            network, student, rows, teacher_rows)
    assert hooks_on(teacher) == 0 and hooks_on(student) == 0
    batch = digits_task.evaluation_batch()
    batch.teacher_inputs = batch.x
    with features.watching_student() as seen:
        assert hooks_on(student) == 2
        watched = student(batch.x).logits
    total, parts = features.loss(seen, batch)
    assert sorted(parts) == ["feature_loss.0", "feature_loss.1"]
    expected = parts["feature_loss.0"].detach() + 0.5 * parts["feature_loss.1"].detach()
    assert float(total.detach()) == pytest.approx(float(expected))
    assert hooks_on(teacher) == 0 and hooks_on(student) == 0
    with torch.no_grad():
        assert torch.equal(teacher(x), teacher_before)
        assert torch.equal(student(batch.x).logits, untouched(batch.x).logits)
        assert torch.equal(watched.detach(), untouched(batch.x).logits)


def test_a_hook_that_raises_is_still_removed(digits_task: ClassificationTask) -> None:
    student = dense_student(digits_task)
    network, rows, teacher_rows = digits_task.feature_teacher()
    features = FeatureTerms([FeatureConfig(**MSE_TERM)], network, student, rows, teacher_rows)
    with pytest.raises(RuntimeError):
        with features.watching_student():
            student(torch.zeros(2, 3))  # the wrong width fails inside the pass
    assert hooks_on(student) == 0


# ------------------------------------------------------------------ a recorded run
def test_a_run_records_each_feature_term_per_epoch(tiny_config_data: Dict[str, Any]) -> None:
    """``feature_loss.0`` has one entry per epoch and falls; ``loss`` is the total: the task's
    objective (α·kd + (1-α)·ce) plus weight × the term, epoch mean for epoch mean."""
    weight = 0.5
    config = features_config(tiny_config_data, [{**MSE_TERM, "weight": weight}], epochs=5)
    run = read_run(execute(config_from_mapping(config)))
    metrics = run["metrics"]
    term = np.asarray(metrics["feature_loss.0"])
    assert term.shape == (5,) and np.all(np.diff(term) < 0)
    alpha = config["distill"]["alpha"]
    objective = alpha * np.asarray(metrics["kd_loss"]) + (1 - alpha) * np.asarray(metrics["ce_loss"])
    np.testing.assert_allclose(metrics["loss"], objective + weight * term, rtol=1e-6)


def test_a_weightless_term_leaves_the_run_as_it_was(tiny_config_data: Dict[str, Any]) -> None:
    """Weight 0: the adapter is made and the teacher runs, yet the student trains exactly as
    without the term (the dry run forks the RNG and changes no mode or count)."""
    plain = read_run(execute(config_from_mapping(features_config(tiny_config_data, []))))
    zero = read_run(execute(config_from_mapping(features_config(tiny_config_data, [{**MSE_TERM, "weight": 0.0}]))))
    for name in ("loss", "kd_loss", "ce_loss", "val_accuracy", "kl"):
        np.testing.assert_array_equal(zero["metrics"][name], plain["metrics"][name])
    assert "feature_loss.0" in zero["metrics"] and "feature_loss.0" not in plain["metrics"]
    for name, value in plain["student"].items():
        np.testing.assert_array_equal(zero["student"][name], value)


# ------------------------------------------------------------------ refusals
@pytest.mark.parametrize("side, name, listed", [
    ("teacher", "net.1", "available module paths: '0', '1', '2'"),
    ("student", "1", "module paths: 'net', 'net.0', 'net.1', 'net.2'"),
])
def test_unknown_layer_names_are_refused_with_the_names_there_are(tiny_config_data: Dict[str, Any], tmp_path: Path,
                                                                  side: str, name: str, listed: str) -> None:
    term = {**MSE_TERM, side: name}
    config = features_config(tiny_config_data, [MSE_TERM, term])
    with pytest.raises(ConfigError) as caught:
        execute(config_from_mapping(config))
    message = str(caught.value)
    assert message.startswith(f"distill.features[1].{side}: no layer {name!r} in the {side}")
    assert listed in message and "\n" not in message
    assert not list(Path(config["record"]["dir"]).glob("*.h5"))  # refused before the run file exists


def test_long_lists_of_names_are_cut_short() -> None:
    teacher = nn.Sequential(*[nn.Linear(4, 4) for _ in range(30)])
    student = nn.Sequential(nn.Linear(4, 4))
    with pytest.raises(ConfigError, match=r"'11', \.\.\. and 18 more$"):
        FeatureTerms([FeatureConfig(teacher="x", student="0")], teacher, student, torch.zeros(2, 4), torch.zeros(2, 4))


class Tapped(nn.Module):
    """A student that offers a feature layer by name (``feature_layers()``) beside its modules."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 6), nn.ReLU())
        self.head = nn.Linear(6, 3)

    def feature_layers(self) -> Dict[str, nn.Module]:
        return {"hidden0": self.body[1]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def test_student_layers_by_feature_name_or_module_path() -> None:
    teacher = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    rows = torch.randn(2, 4)
    for name in ("hidden0", "body.1", "head"):
        features = FeatureTerms([FeatureConfig(teacher="1", student=name)], teacher, Tapped(), rows, rows)
        assert features.terms[0].student_shape == ((2, 6) if name != "head" else (2, 3))
    with pytest.raises(ConfigError) as caught:
        FeatureTerms([FeatureConfig(teacher="1", student="hidden1")], teacher, Tapped(), rows, rows)
    assert str(caught.value) == ("distill.features[0].student: no layer 'hidden1' in the student (Tapped); available "
                                 "feature layers (feature_layers()): 'hidden0'; or module paths: 'body', 'body.0', "
                                 "'body.1', 'head'")


def test_a_layer_that_runs_once_per_time_step_is_refused(digits_task: ClassificationTask) -> None:
    """A spiking MLP's first linear layer runs at every step when its input spikes (Poisson):
    which step's output would be the feature? Refused, pointing at ``feature_layers()``."""
    from backends import get_backend

    backend = get_backend("snntorch", "student.backend")
    options = backend.validate({"backend": "snntorch", "hidden": [16], "steps": 4, "encoder": "poisson",
                                "engine": "loop"}, "student")
    student = backend.build_student(options, digits_task.input_dim, digits_task.num_outputs)
    network, rows, teacher_rows = digits_task.feature_teacher()
    with pytest.raises(ConfigError, match=r"^distill\.features\[0\]\.student: the student's layer 'linears.0' runs 4 "
                                          r"times in one forward pass"):
        FeatureTerms([FeatureConfig(teacher="1", student="linears.0")], network, student, rows, teacher_rows)


def test_vectors_cannot_take_attention(digits_task: ClassificationTask) -> None:
    network, rows, teacher_rows = digits_task.feature_teacher()
    with pytest.raises(ConfigError, match=r"^distill\.features\[0\]\.loss: 'attention' compares spatial maps"):
        FeatureTerms([FeatureConfig(teacher="1", student="net.1", loss="attention")], network,
                     dense_student(digits_task), rows, teacher_rows)


def test_stored_logits_have_no_layers(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(60, 5)).astype(np.float32)
    y = np.arange(60) % 3
    with pytest.raises(ConfigError, match=r"^distill\.features: needs a teacher network to take features from, but "
                                          r"teacher\.source is 'logits'"):
        td.distill(teacher=td.StoredLogits(np.eye(3, dtype=np.float32)[y]), data=(x, y), epochs=1, out=tmp_path,
                   **{"distill.features": [MSE_TERM]})
    assert not list(tmp_path.glob("*.h5"))


def test_policy_tasks_take_no_features() -> None:
    from tempdistill.runner import plan_run

    config = config_from_mapping({"task": "policy", "env": {"id": "CartPole-v1"},
                                  "teacher": {"checkpoint": "teacher.zip"},
                                  "distill": {"features": [MSE_TERM]}})
    with pytest.raises(ConfigError, match=r"^distill\.features: only used when task is 'classification'.*'policy'"):
        plan_run(config)


def test_feature_terms_are_validated_by_field() -> None:
    with pytest.raises(ConfigError, match=r"^distill\.features\.0\.loss: got 'l1'; allowed: 'mse' or 'attention'"):
        config_from_mapping({"distill": {"features": [{**MSE_TERM, "loss": "l1"}]}})
    with pytest.raises(ConfigError, match=r"^distill\.features\.0\.weight"):
        config_from_mapping({"distill": {"features": [{**MSE_TERM, "weight": -1}]}})
    assert DistillConfig().features == []


def test_a_torchscript_teacher_is_refused(digits_task: ClassificationTask) -> None:
    """Compiled code calls no Python hook: refused in one line, not a feature silently missing."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script's deprecation notice
        scripted = torch.jit.script(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)))
    with pytest.raises(ConfigError, match=r"^distill\.features\[0\]\.teacher: the teacher is TorchScript"):
        FeatureTerms([FeatureConfig(**MSE_TERM)], scripted, dense_student(digits_task), torch.zeros(2, 64),
                     torch.zeros(2, 64))


# ------------------------------------------------------------------ the teacher's inputs
def test_batches_carry_the_teacher_inputs_only_when_asked_and_as_the_teacher_reads_them() -> None:
    """A user's teacher reads the inputs as given (raw digits, 0 to 16): each batch's
    ``teacher_inputs`` are those rows, the same rows as the student's normalised ``x``."""
    from tempdistill.tasks.teacher import TeacherOrigin
    from tempdistill.tasks.teacher_sources import NetworkTeacher

    split = load_split(DataConfig(name="digits"), 0, keep_as_given=True)
    network = nn.Sequential(nn.Linear(64, 10))
    task = ClassificationTask(split, NetworkTeacher(network, split, TeacherOrigin("module", None, ""), True))
    assert all(batch.teacher_inputs is None for batch in task.train_batches(0, 256, torch.Generator().manual_seed(0)))
    task.teacher_inputs_in_batches = True
    for batch in task.train_batches(0, 256, torch.Generator().manual_seed(0)):
        assert batch.teacher_inputs is not None and batch.teacher_inputs.shape == batch.x.shape
        assert float(batch.teacher_inputs.max()) > 1.0  # raw pixel counts, not the normalised features
        normalised = torch.as_tensor(split.normalizer.apply(batch.teacher_inputs.numpy()), dtype=torch.float32)
        torch.testing.assert_close(normalised, batch.x)


# ------------------------------------------------------------------ conv students on digits as 1x8x8 images
class SmallCNN(nn.Module):
    """A user's teacher for digits as 1×8×8 images, reading the raw pixels (0 to 16), flat or
    shaped: two conv stages (8×8 then 4×4 maps) and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(16 * 4 * 4, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.reshape(x.shape[0], 1, 8, 8) / 16.0))


IMAGE_DATA = {"name": "digits", "layout": "image"}
# conv1: 4x4 maps, the student's 8 channels through a 1x1 adapter to the teacher's 16; conv0: 8x8 maps.
# (Attention transfer on a spiking layer that is still silent has no gradient: a(F) holds F², and
# F = 0 there; so the attention term reads the first stage, which fires from the start.)
CONV_TERMS = [{"teacher": "features.4", "student": "conv1", "loss": "mse", "weight": 1.0},
              {"teacher": "features.1", "student": "conv0", "loss": "attention", "weight": 10.0}]


@pytest.fixture(scope="module")
def cnn_teacher() -> SmallCNN:
    """SmallCNN trained briefly (full batch) on seed 0's raw digits training rows."""
    from tempdistill.tasks.data import raw_split

    raw = raw_split(DataConfig(**IMAGE_DATA), 0)
    x, y = torch.as_tensor(raw.x_train, dtype=torch.float32), torch.as_tensor(raw.y_train)
    torch.manual_seed(0)
    model = SmallCNN()
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()
    return model.eval()


def conv_student(backend: str) -> Dict[str, Any]:
    extra = {"steps": 4} if backend != "dense" else {}
    return {"backend": backend, "arch": "conv", "channels": [4, 8], "hidden": [16], **extra}


@pytest.mark.parametrize("backend", ["dense", "snntorch"])
def test_conv_students_learn_a_cnn_teachers_maps(cnn_teacher: SmallCNN, tmp_path: Path, backend: str) -> None:
    """Digits as 1×8×8 images, the user's CNN as teacher: an ``mse`` term (conv1's 8 channels
    through a 1×1 adapter to the teacher's 16) and an ``attention`` term on the 8×8 maps are
    recorded per epoch and fall, for a dense and a spiking conv student alike."""
    run = td.distill(teacher=cnn_teacher, data=dict(IMAGE_DATA), student=conv_student(backend), epochs=4,
                     out=tmp_path, **{"distill.lr": 0.01, "distill.features": CONV_TERMS})
    for name in ("feature_loss.0", "feature_loss.1"):
        values = np.asarray(run.metrics[name])
        assert values.shape == (4,) and np.all(np.isfinite(values))
        assert values[-1] < values[0], (name, values)


@pytest.mark.parametrize("term, shapes, stages", [
    (CONV_TERMS[0], ((2, 8, 4, 4), (2, 16, 4, 4)), [0, 1]),  # mse on conv1, through the 8 -> 16 adapter
    (CONV_TERMS[1], ((2, 4, 8, 8), (2, 8, 8, 8)), [0]),  # attention on conv0
])
def test_gradients_reach_the_spiking_conv_weights_through_the_rate_feature(
        cnn_teacher: SmallCNN, term: Dict[str, Any], shapes: tuple, stages: List[int]) -> None:
    """The spiking student's tap gives its firing rate over the steps (B, C, H, W), with a
    graph: a feature term alone (no logit term) sends gradient through the rate's surrogate
    to the conv weights of its stage and of every stage before it."""
    from backends import get_backend

    split = load_split(DataConfig(**IMAGE_DATA), 0, keep_as_given=True)
    backend = get_backend("snntorch", "student.backend")
    options = backend.validate(conv_student("snntorch"), "student")
    torch.manual_seed(0)
    student = backend.build_student(options, split.input_dim, split.num_classes, split.input_shape)
    student.train()
    conv_weights = [p for p in student.parameters() if p.dim() == 4]
    assert len(conv_weights) == 2
    rows, teacher_rows = split.x_train[:64], split.inputs("train", as_given=True)[:64]
    features = FeatureTerms([FeatureConfig(**term)], cnn_teacher, student, rows[:2], teacher_rows[:2])
    assert (features.terms[0].student_shape, features.terms[0].teacher_shape) == shapes
    with features.watching_student() as seen:
        student(rows)
    rate = seen["0"][0]
    assert isinstance(rate, torch.Tensor) and rate.requires_grad
    assert 0.0 <= float(rate.detach().min()) <= float(rate.detach().max()) <= 1.0  # spikes per step
    total, _ = features.loss(seen, Batch(rows, torch.zeros(64, 10), teacher_inputs=teacher_rows))
    total.backward()
    for stage in stages:
        grad = conv_weights[stage].grad
        assert grad is not None and torch.isfinite(grad).all() and float(grad.abs().sum()) > 0.0, stage


def test_with_augmentation_the_teacher_runs_once_per_batch_and_gives_the_same_run(
        cnn_teacher: SmallCNN, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The task runs the teacher on each augmented batch for its logits; the feature terms take
    the teacher's features from that pass instead of a second one, and the run is the same."""
    from contextlib import contextmanager

    from tempdistill.core.features import FeatureTerms

    def distil(name: str):
        calls: List[int] = []
        handle = cnn_teacher.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
        try:
            run = td.distill(teacher=cnn_teacher, data={**IMAGE_DATA, "augment": {"crop": 1, "flip": True}},
                             student=conv_student("dense"), epochs=2, out=tmp_path / name,
                             **{"distill.lr": 0.01, "distill.features": CONV_TERMS})
        finally:
            handle.remove()
        return run, calls

    shared, shared_calls = distil("shared")

    @contextmanager
    def not_watching(self):  # the teacher's features from a pass of their own, as before
        yield

    monkeypatch.setattr(FeatureTerms, "watching_teacher", not_watching)
    separate, separate_calls = distil("separate")
    steps = len(np.asarray(shared.step_series["step"]))   # one entry per optimisation step
    assert steps > 0 and len(separate_calls) - len(shared_calls) == steps   # one teacher pass fewer per batch
    for name in ("loss", "feature_loss.0", "feature_loss.1", "val_accuracy"):
        np.testing.assert_array_equal(np.asarray(shared.metrics[name]), np.asarray(separate.metrics[name]))
