"""What soft labels carry: calibration, mutual information, entropy, and the per-epoch record."""

from __future__ import annotations

import copy
import math
from typing import Any, Dict

import numpy as np
import pytest
import torch

from tempdistill.config import config_from_mapping
from tempdistill.information import (
    entropy_summary,
    expected_calibration_error,
    information_metrics,
    soft_label_mutual_information,
)
from tempdistill.losses import dkd_parts, kl_per_sample
from tempdistill.record.run_file import read_run
from tempdistill.runner import execute, prepare_teacher
from tempdistill.temperature import entropy_from_logits, log_softmax, tempered_logits
from tempdistill.core.training import batched_forward

K = 10


def logits_from_probs(probs) -> torch.Tensor:
    return torch.log(torch.as_tensor(probs, dtype=torch.float64))


def one_hot_logits(labels: torch.Tensor, scale: float = 60.0) -> torch.Tensor:
    return scale * torch.nn.functional.one_hot(labels, K).double()


@pytest.fixture
def real_teacher(tiny_config_data):
    """The tiny config's teacher (cached for the session) on the held-out split."""
    config = config_from_mapping(tiny_config_data)
    split, teacher, _ = prepare_teacher(config)
    return batched_forward(teacher, split.x_test), split.y_test


# ------------------------------------------------------------------ calibration
def test_ece_zero_for_confident_and_correct():
    labels = torch.arange(K).repeat(3)
    assert expected_calibration_error(one_hot_logits(labels), labels) == pytest.approx(0.0, abs=1e-12)


def test_ece_zero_for_calibrated_constructed_case():
    # Confidence 0.8 on class 0 for ten samples of which eight are class 0: accuracy = confidence.
    logits = logits_from_probs([[0.8, 0.2]] * 10)
    labels = torch.tensor([0] * 8 + [1] * 2)
    assert expected_calibration_error(logits, labels) == pytest.approx(0.0, abs=1e-12)
    # Two calibrated groups in different bins: still zero.
    logits = logits_from_probs([[0.8, 0.2]] * 10 + [[0.4, 0.6]] * 5)
    labels = torch.tensor([0] * 8 + [1] * 2 + [1] * 3 + [0] * 2)
    assert expected_calibration_error(logits, labels) == pytest.approx(0.0, abs=1e-12)


def test_ece_hand_computed():
    # 4 samples at confidence 0.9, all correct: |1.0 - 0.9| = 0.1, weight 4/8
    # 2 samples at confidence 0.6, one correct:  |0.5 - 0.6| = 0.1, weight 2/8
    # 2 samples at confidence 0.7, none correct: |0.0 - 0.7| = 0.7, weight 2/8
    probs = [[0.9, 0.1]] * 4 + [[0.6, 0.4]] * 2 + [[0.7, 0.3]] * 2
    labels = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1])
    expected = 4 / 8 * 0.1 + 2 / 8 * 0.1 + 2 / 8 * 0.7
    assert expected_calibration_error(logits_from_probs(probs), labels) == pytest.approx(expected, abs=1e-12)
    # One bin: |overall accuracy - mean confidence|.
    mean_conf = (4 * 0.9 + 2 * 0.6 + 2 * 0.7) / 8
    assert expected_calibration_error(logits_from_probs(probs), labels, bins=1) == pytest.approx(
        abs(5 / 8 - mean_conf), abs=1e-12
    )


def test_ece_always_wrong_and_confident_is_one():
    labels = torch.arange(K)
    wrong = one_hot_logits((labels + 1) % K)
    assert expected_calibration_error(wrong, labels) == pytest.approx(1.0, abs=1e-9)


# ------------------------------------------------------------------ mutual information
def test_mi_is_log_k_for_confident_correct_labels():
    labels = torch.arange(K).repeat(5)
    assert soft_label_mutual_information(one_hot_logits(labels), labels, 1.0) == pytest.approx(math.log(K), abs=1e-9)


def test_mi_is_zero_for_constant_logits():
    labels = torch.arange(K).repeat(5)
    assert soft_label_mutual_information(torch.zeros(50, K), labels, 1.0) == pytest.approx(0.0, abs=1e-12)
    # Same distribution for every sample, not uniform: still says nothing about the class.
    row = torch.randn(1, K).expand(50, K)
    assert soft_label_mutual_information(row, labels, 2.0) == pytest.approx(0.0, abs=1e-12)


def test_mi_bounds_for_random_logits():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, K, (200,), generator=g)
    logits = torch.randn(200, K, generator=g) * 4
    mi = soft_label_mutual_information(logits, labels, 1.0)
    assert 0.0 <= mi <= math.log(K)
    # A per-sample (B, 1) and a per-class (K,) temperature are accepted.
    assert 0.0 <= soft_label_mutual_information(logits, labels, torch.full((200, 1), 3.0)) <= math.log(K)
    assert 0.0 <= soft_label_mutual_information(logits, labels, torch.linspace(1, 4, K)) <= math.log(K)


def test_mi_of_real_teacher_falls_as_t_rises(real_teacher):
    logits, labels = real_teacher
    temps = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 64.0]
    mis = [soft_label_mutual_information(logits, labels, t) for t in temps]
    assert all(a > b for a, b in zip(mis, mis[1:])), mis
    assert mis[0] < math.log(K) and mis[-1] < 0.05 * mis[0]


# ------------------------------------------------------------------ entropy summary
def test_entropy_summary_uniform_is_100_percent():
    summary = entropy_summary(torch.zeros(7, K), 3.0)
    assert summary["percent_of_max"] == pytest.approx(100.0, abs=1e-4)
    assert summary["mean"] == pytest.approx(math.log(K), abs=1e-6)
    assert summary["std"] == pytest.approx(0.0, abs=1e-6)


def test_entropy_summary_sharp_and_single_row():
    sharp = entropy_summary(one_hot_logits(torch.arange(K)).float(), 1.0)
    assert sharp["mean"] == pytest.approx(0.0, abs=1e-6) and sharp["percent_of_max"] < 1e-4
    single = entropy_summary(torch.tensor([[2.0, 0.0, -1.0]]), 1.0)
    assert single["std"] == 0.0
    p = torch.softmax(torch.tensor([2.0, 0.0, -1.0]), -1)
    assert single["mean"] == pytest.approx(float(-(p * p.log()).sum()), rel=1e-6)
    assert single["percent_of_max"] == pytest.approx(100 * single["mean"] / math.log(3), rel=1e-9)


def test_entropy_summary_rises_with_t_on_real_teacher(real_teacher):
    logits, _ = real_teacher
    means = [entropy_summary(logits, t)["mean"] for t in (1, 2, 4, 8, 16)]
    assert all(a < b for a, b in zip(means, means[1:])), means
    assert means[-1] < math.log(K)


# ------------------------------------------------------------------ information_metrics
def _pair(seed: int = 0, n: int = 64):
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(n, K, generator=g) * 3
    teacher = torch.randn(n, K, generator=g) * 6
    labels = torch.randint(0, K, (n,), generator=g)
    return student, teacher, labels


@pytest.mark.parametrize("temperature", [1.0, 4.0, "per_sample", "per_class"])
def test_information_metrics_consistent_with_losses(temperature):
    student, teacher, labels = _pair()
    if temperature == "per_sample":
        temperature = torch.linspace(1.0, 6.0, student.shape[0]).unsqueeze(1)
    elif temperature == "per_class":
        temperature = torch.linspace(1.0, 3.0, K)
    tempered = tempered_logits(student, temperature)  # what a dense student returns at T
    m = information_metrics(tempered, student, teacher, labels, temperature)
    expected_keys = {"kl", "tckd", "nckd", "teacher_entropy", "student_entropy", "teacher_entropy_t1",
                     "student_entropy_t1", "teacher_ece", "student_ece", "teacher_mi", "student_mi"}
    assert expected_keys <= set(m)
    assert all(isinstance(v, float) and math.isfinite(v) for v in m.values()), m

    kl = kl_per_sample(log_softmax(teacher, temperature), log_softmax(student, temperature))
    assert m["kl"] == pytest.approx(float(kl.mean()), rel=1e-5)
    tckd, nckd = dkd_parts(student, teacher, labels, temperature)
    assert m["tckd"] == pytest.approx(float(tckd), rel=1e-5)
    assert m["nckd"] == pytest.approx(float(nckd), rel=1e-5)
    assert m["tckd"] >= 0 and m["nckd"] >= 0
    if not (isinstance(temperature, torch.Tensor) and temperature.dim() == 1):
        # DKD identity per sample: KL = TCKD + (1 - p_teacher[target])·NCKD (per-class T mixes
        # the two parts, so the identity is only for a T shared by all classes of a sample).
        t_i, n_i = dkd_parts(student, teacher, labels, temperature, reduction="none")
        p_target = log_softmax(teacher, temperature).exp().gather(1, labels[:, None]).squeeze(1)
        assert torch.allclose(kl, t_i + (1 - p_target) * n_i, rtol=1e-4, atol=1e-6)
    assert m["teacher_entropy"] == pytest.approx(float(entropy_from_logits(teacher, temperature).mean()), rel=1e-5)
    assert m["student_entropy"] == pytest.approx(float(entropy_from_logits(tempered).mean()), rel=1e-5)
    assert m["teacher_entropy_t1"] == pytest.approx(float(entropy_from_logits(teacher).mean()), rel=1e-5)
    assert m["student_entropy_t1"] == pytest.approx(float(entropy_from_logits(student).mean()), rel=1e-5)
    assert m["teacher_ece"] == pytest.approx(expected_calibration_error(teacher, labels), abs=1e-9)
    assert m["student_ece"] == pytest.approx(expected_calibration_error(student, labels), abs=1e-9)
    assert m["teacher_mi"] == pytest.approx(soft_label_mutual_information(teacher, labels, temperature), abs=1e-9)
    assert m["student_mi"] == pytest.approx(soft_label_mutual_information(tempered, labels, 1.0), abs=1e-9)


def test_information_metrics_identical_pair():
    _, teacher, labels = _pair(1)
    m = information_metrics(teacher / 3.0, teacher, teacher, labels, 3.0)
    assert m["kl"] == pytest.approx(0.0, abs=1e-6)
    assert m["tckd"] == pytest.approx(0.0, abs=1e-6) and m["nckd"] == pytest.approx(0.0, abs=1e-6)
    assert m["teacher_entropy"] == pytest.approx(m["student_entropy"], rel=1e-5)
    assert m["teacher_mi"] == pytest.approx(m["student_mi"], rel=1e-5)


def test_information_metrics_accepts_a_learned_temperature():
    student, teacher, labels = _pair(2)
    t = torch.tensor(2.5, requires_grad=True)
    m = information_metrics(student / t.detach(), student, teacher, labels, t * 1.0)
    assert all(math.isfinite(v) for v in m.values())


# ------------------------------------------------------------------ recorded per epoch
INFO_KEYS = ("kl", "tckd", "nckd", "teacher_entropy", "student_entropy", "teacher_entropy_t1",
             "student_entropy_t1", "teacher_ece", "student_ece", "teacher_mi", "student_mi",
             "effective_temperature_mean")


def _config(base: Dict[str, Any], temperature: Dict[str, Any], epochs: int = 4):
    data = copy.deepcopy(base)
    data["distill"]["temperature"] = temperature
    data["distill"]["epochs"] = epochs
    return config_from_mapping(data)


def test_information_recorded_per_epoch(tiny_config_data, tmp_path):
    config = _config(tiny_config_data, {"schedule": "cosine", "start": 8.0, "end": 1.0})
    run = read_run(execute(config, out_dir=str(tmp_path / "runs")))
    assert run["status"] == "complete"
    metrics = run["metrics"]
    for key in INFO_KEYS:
        assert key in metrics, key
        values = np.asarray(metrics[key])
        assert values.shape == (4,), (key, values.shape)
        assert np.all(np.isfinite(values)), (key, values)

    # Recompute from the cached teacher: the information is measured on the validation rows at
    # the T of the epoch's last step; the teacher's own T = 1 numbers do not change between epochs.
    split, teacher, _ = prepare_teacher(config)
    logits, labels = batched_forward(teacher, split.x_val), split.y_val
    last_t = np.asarray(run["steps"]["temperature"]).reshape(4, -1)[:, -1]
    np.testing.assert_allclose(metrics["effective_temperature_mean"], last_t, rtol=1e-6)
    for e, t in enumerate(last_t):
        t = float(t)
        assert metrics["teacher_entropy"][e] == pytest.approx(float(entropy_from_logits(logits, t).mean()), rel=1e-5)
        assert metrics["teacher_mi"][e] == pytest.approx(soft_label_mutual_information(logits, labels, t), rel=1e-6)
    assert metrics["teacher_entropy_t1"] == pytest.approx(float(entropy_from_logits(logits).mean()), rel=1e-5)
    np.testing.assert_allclose(metrics["teacher_ece"], expected_calibration_error(logits, labels), atol=1e-9)
    # T falls over the cosine curriculum: the teacher's soft labels sharpen and carry more label information.
    assert np.all(np.diff(metrics["teacher_entropy"]) < 0)
    assert np.all(np.diff(metrics["teacher_mi"]) > 0)
    assert np.all(np.asarray(metrics["student_ece"]) >= 0) and np.all(np.asarray(metrics["student_ece"]) <= 1)
    assert np.all(np.asarray(metrics["tckd"]) >= 0) and np.all(np.asarray(metrics["nckd"]) >= 0)


def test_information_recorded_for_per_sample_temperature(tiny_config_data, tmp_path):
    config = _config(tiny_config_data, {"schedule": "logit_std", "base": 0.5}, epochs=2)
    run = read_run(execute(config, out_dir=str(tmp_path / "runs")))
    for key in (*INFO_KEYS, "effective_temperature_std"):
        values = np.asarray(run["metrics"][key])
        assert values.shape == (2,) and np.all(np.isfinite(values)), (key, values)
    assert np.all(np.asarray(run["metrics"]["effective_temperature_std"]) > 0)
