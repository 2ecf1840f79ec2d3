"""End-to-end spiking students through the real CLI: run, record, compare, export.

One module-scoped fixture runs the tiny digits config once per student backend (snnTorch
in-process through ``tempdistill.app.cli.main``, Norse as ``python -m tempdistill`` switched by
``--set student.backend=norse``) plus one dense run, and every test reads those files.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, List

import nir
import numpy as np
import pytest
import torch
import yaml

from backends import get_backend
from backends.norse_backend import load_nir
from tempdistill.app.cli import main
from tempdistill.config import config_from_mapping
from tempdistill.tasks.data import load_split
from tempdistill.record.export import load_student
from tempdistill.record.run import Run
from tempdistill.record.run_file import read_run

REPO_ROOT = Path(__file__).resolve().parents[1]
SPIKING = ("snntorch", "norse")
STEPS = 8
HIDDEN = 16
NUM_CLASSES = 10
PROBES = 4
EPOCHS = 3
SPIKE_METRICS = (
    "spikes_per_sample",
    "spikes_per_sample.hidden0",
    "spikes_per_sample.output",
    "rate.hidden0",
    "rate.output",
    "synops_per_sample",
    "energy_nj_per_sample",
)
# Every spiking run goes through these overrides: T is constant 4 and the threshold trace
# jumps (τ = 1 optimisation step), so after training θ_trace = 4·θ0 exactly.
OVERRIDES = ["--set", "distill.temperature={schedule: constant, value: 4.0}", "--set", "student.threshold_tau=1"]

CONFIG: Dict[str, Any] = {
    "name": "spk",
    "seed": 0,
    "device": "cpu",
    "task": "classification",
    "data": {"name": "digits", "test_fraction": 0.3},
    "teacher": {"backend": "dense", "hidden": [32], "epochs": 3, "lr": 0.01},
    "student": {"backend": "snntorch", "hidden": [HIDDEN], "steps": STEPS},
    "distill": {
        "epochs": EPOCHS,
        "batch_size": 64,
        "lr": 0.01,
        "alpha": 0.9,
        "temperature": {"schedule": "linear", "start": 8.0, "end": 2.0},
    },
    "record": {"dir": "runs", "traces": {"every": 1, "samples": PROBES}},
}


def _cli_inprocess(args: List[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in args])
    return rc, out.getvalue(), err.getvalue()


def _cli_subprocess(args: List[str], timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "tempdistill", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT, env=env,
    )


def _record_path(stdout: str) -> Path:
    line = [ln for ln in stdout.splitlines() if " record " in ln][-1]
    return Path(line.rsplit(" record ", 1)[1].strip())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    """Run dense, snnTorch (in-process) and Norse (subprocess) once; return their files."""
    root = tmp_path_factory.mktemp("spiking-run")
    config = root / "spiking.yaml"
    config.write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    out_dir = root / "runs"
    results: Dict[str, Any] = {"root": root, "config": config, "dir": out_dir, "rc": {}, "stdout": {}, "path": {}}

    rc, stdout, err = _cli_inprocess(["run", config, "--out", out_dir, "--quiet", *OVERRIDES])
    assert rc == 0, err
    results["rc"]["snntorch"], results["stdout"]["snntorch"] = rc, stdout
    results["path"]["snntorch"] = _record_path(stdout)

    proc = _cli_subprocess(["run", config, "--out", out_dir, "--quiet", "--set", "student.backend=norse", *OVERRIDES])
    assert proc.returncode == 0, proc.stderr
    results["rc"]["norse"], results["stdout"]["norse"] = proc.returncode, proc.stdout
    results["path"]["norse"] = _record_path(proc.stdout)

    rc, stdout, err = _cli_inprocess(["run", _dense_config(root), "--out", out_dir, "--quiet"])
    assert rc == 0, err
    results["rc"]["dense"], results["stdout"]["dense"] = rc, stdout
    results["path"]["dense"] = _record_path(stdout)
    results["run"] = {k: read_run(p) for k, p in results["path"].items()}
    return results


def _dense_config(root: Path) -> Path:
    data = json.loads(json.dumps(CONFIG))
    data["student"] = {"backend": "dense", "hidden": [HIDDEN]}
    data["distill"]["temperature"] = {"schedule": "constant", "value": 4.0}
    path = root / "dense.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _probe_labels(run: Dict[str, Any], n: int) -> np.ndarray:
    config = config_from_mapping(run["config"])
    split = load_split(config.data, config.seed)
    return split.class_labels[split.y_val[:n].numpy()]


def _probe_inputs(run: Dict[str, Any], n: int) -> torch.Tensor:
    config = config_from_mapping(run["config"])
    return load_split(config.data, config.seed).x_val[:n]  # probes are validation rows


def _theta0(run: Dict[str, Any]) -> np.ndarray:
    return np.asarray(run["student"]["thresholds.1.theta0"], dtype=np.float64)


# --- 1. run -> record ----------------------------------------------------------------------
@pytest.mark.parametrize("backend", SPIKING)
def test_run_records_traces_metrics_and_student(runs: Dict[str, Any], backend: str) -> None:
    assert runs["rc"][backend] == 0
    assert runs["path"][backend].is_file()
    assert f"-{backend}-" in runs["path"][backend].name
    run = runs["run"][backend]
    assert run["status"] == "complete"
    assert run["config"]["student"]["backend"] == backend
    assert run["config"]["distill"]["temperature"] == {"schedule": "constant", "value": 4.0}

    # Traces: every epoch (every: 1), per layer, probe samples x steps x neurons.
    assert sorted(run["traces"]) == list(range(EPOCHS))
    theta0 = _theta0(run)
    assert theta0.shape == (NUM_CLASSES,) and np.all(theta0 > 0)
    eval_t = run["config"]["distill"]["eval_temperature"]
    assert eval_t == 1.0
    for epoch, layers in run["traces"].items():
        assert set(layers) == {"hidden0", "output", "probe_rows", "probe_labels"}, (epoch, sorted(layers))
        # The probes are the first validation rows, with their labels (format 4).
        np.testing.assert_array_equal(layers["probe_rows"], np.arange(PROBES))
        np.testing.assert_array_equal(layers["probe_labels"], _probe_labels(run, PROBES))
        for layer, n in (("hidden0", HIDDEN), ("output", NUM_CLASSES)):
            group = layers[layer]
            spikes, membrane, threshold = group["spikes"], group["membrane"], group["threshold"]
            assert spikes.dtype == np.uint8 and spikes.shape == (PROBES, STEPS, n), (epoch, layer, spikes.shape)
            assert np.isin(spikes, (0, 1)).all()
            assert np.issubdtype(membrane.dtype, np.floating) and membrane.shape == (PROBES, STEPS, n)
            assert np.isfinite(membrane).all()
            assert threshold.shape == (n,)
        # Traces are captured after the epoch's evaluation, at the evaluation temperature:
        # the output thresholds are θ0·T_eval (here θ0), not the training θ0·4.
        np.testing.assert_allclose(layers["output"]["threshold"], theta0 * eval_t, rtol=1e-5)
        np.testing.assert_allclose(layers["hidden0"]["threshold"], 1.0, rtol=1e-6)  # hidden_threshold, T not on hidden
    assert sum(int(layers["hidden0"]["spikes"].sum()) for layers in run["traces"].values()) > 0

    # Per-epoch spike metrics: one finite entry per epoch, and the same keys in /eval.
    for key in SPIKE_METRICS:
        series = np.asarray(run["metrics"].get(key, []), dtype=np.float64)
        assert series.shape == (EPOCHS,), (key, series.shape)
        assert np.isfinite(series).all(), (key, series)
        assert key in run["eval"], key
        assert math.isfinite(float(run["eval"][key])), key
        assert float(run["eval"][key]) == pytest.approx(float(series[-1]))
    metrics = run["metrics"]
    np.testing.assert_allclose(
        metrics["spikes_per_sample"], metrics["spikes_per_sample.hidden0"] + metrics["spikes_per_sample.output"], rtol=1e-6
    )
    assert np.all(metrics["rate.output"] >= 0) and np.all(metrics["rate.output"] <= 1)
    np.testing.assert_allclose(metrics["temperature"], 4.0)

    describe = json.loads(run["student_attrs"]["describe"])
    assert describe["library"] == backend
    assert describe["kind"] == "spiking"
    assert describe["steps"] == STEPS and describe["widths"] == [64, HIDDEN, NUM_CLASSES]
    assert describe["threshold_tau_steps"] == 1.0
    assert describe["theta0"] == pytest.approx(float(theta0.mean()), rel=1e-5)
    assert run["student_attrs"]["backend"] == backend


# --- 2. T is carried by thresholds ---------------------------------------------------------------
@pytest.mark.parametrize("backend", SPIKING)
def test_temperature_is_carried_by_thresholds(runs: Dict[str, Any], backend: str) -> None:
    run = runs["run"][backend]
    theta0 = _theta0(run)
    # The trained student's plastic threshold trace (τ = 1, constant T = 4) sits at 4·θ0;
    # the applied θ was left at θ0·T_eval by the last evaluation.
    np.testing.assert_allclose(run["student"]["thresholds.1.trace"], 4.0 * theta0, rtol=1e-5)
    np.testing.assert_allclose(run["student"]["thresholds.1.applied"], theta0, rtol=1e-5)

    _, student = load_student(Run.read(runs["path"][backend]))
    out = student.thresholds[-1]
    assert not student.training
    np.testing.assert_allclose(out.theta0.numpy(), theta0, rtol=1e-6)
    student.train()
    student.set_temperature(4.0)
    np.testing.assert_allclose(out.theta().numpy(), 4.0 * theta0, rtol=1e-5)
    np.testing.assert_allclose(student.effective_temperature().numpy(), 4.0, rtol=1e-5)
    student.eval()
    student.set_temperature(1.0)
    np.testing.assert_allclose(out.theta().numpy(), theta0, rtol=1e-5)
    np.testing.assert_allclose(student.effective_temperature().numpy(), 1.0, rtol=1e-5)
    # And the readout softens: at T = 4 the output fires no more than at T = 1.
    x = _probe_inputs(run, 32)
    with torch.no_grad():
        at_one = student(x).tempered
        student.set_temperature(4.0)
        at_four = student(x).tempered
    assert float(at_four.sum()) <= float(at_one.sum())
    assert float(at_four.std(dim=-1).mean()) < float(at_one.std(dim=-1).mean())


# --- 3. compare ---------------------------------------------------------------------------------
def test_compare_dir_shows_spiking_columns(runs: Dict[str, Any], capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert main(["compare", str(runs["dir"])]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    header = lines[0].split()
    assert set(lines[1].replace(" ", "")) == {"-"}
    rows = [dict(zip(header, ln.split())) for ln in lines[2:]]
    assert len(rows) == 3, lines
    assert all(len(ln.split()) == len(header) for ln in lines[2:])
    by_backend = {r["backend"]: r for r in rows}
    assert set(by_backend) == {"dense", "snntorch", "norse"}
    for column in ("spikes/sample", "synops/sample", "energy_nJ(est)"):
        assert column in header
        for backend in SPIKING:
            cell = by_backend[backend][column]
            assert cell != "-" and math.isfinite(float(cell)) and float(cell) > 0, (backend, column, cell)
        assert by_backend["dense"]["spikes/sample"] == "-"
    for backend in SPIKING:
        expected = float(runs["run"][backend]["eval"]["spikes_per_sample"])
        assert float(by_backend[backend]["spikes/sample"]) == pytest.approx(expected, rel=1e-3)


# --- 4. export ------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", SPIKING)
def test_export_nir_runs_in_norse_with_same_output_spikes(
    runs: Dict[str, Any], backend: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    target = tmp_path / f"{backend}.nir"
    assert main(["export", str(runs["path"][backend]), "--format", "nir", "--out", str(target)]) == 0
    assert "exported nir" in capsys.readouterr().out
    graph = nir.read(str(target))
    kinds = {type(n).__name__ for n in graph.nodes.values()}
    assert "IF" in kinds and "Affine" in kinds, kinds  # default beta 1.0: integrate-and-fire

    run = runs["run"][backend]
    _, student = load_student(Run.read(runs["path"][backend]))
    student.set_temperature(1.0)  # eval mode: θ = θ0·T_eval, as exported
    x = _probe_inputs(run, 64)  # direct encoder: the encoded input is x at every step
    expected = student.capture_traces(x)["output/spikes"]  # (S, T, K)
    # The recorded last-epoch traces are the same student on the first probe samples.
    np.testing.assert_array_equal(expected[:PROBES], run["traces"][EPOCHS - 1]["output"]["spikes"])

    net = load_nir(str(target))
    state, outputs = None, []
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(STEPS):
            out, state = net(x, state)
            outputs.append(out)
    got = torch.stack(outputs, dim=1).numpy().astype(np.uint8)
    assert got.shape == expected.shape
    counts_nir, counts_student = got.sum(axis=1), expected.sum(axis=1)
    agreement = float((counts_nir == counts_student).mean())
    print(f"NIR {backend}: {int(counts_student.sum())} vs {int(counts_nir.sum())} output spikes, "
          f"count agreement {agreement:.4f}, spike agreement {float((got == expected).mean()):.4f}")
    assert counts_student.sum() > 0
    assert agreement == 1.0
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("backend", SPIKING)
def test_export_pt_reloads_into_identical_student(runs: Dict[str, Any], backend: str, tmp_path: Path) -> None:
    target = tmp_path / f"{backend}.pt"
    rc, stdout, err = _cli_inprocess(["export", runs["path"][backend], "--format", "pt", "--out", target])
    assert rc == 0, err
    checkpoint = torch.load(target, weights_only=False)
    assert {"backend", "options", "state_dict"} <= set(checkpoint)
    assert checkpoint["backend"] == backend
    assert checkpoint["options"]["steps"] == STEPS and checkpoint["options"]["hidden"] == [HIDDEN]

    impl = get_backend(checkpoint["backend"])
    fresh = impl.build_student(impl.validate(checkpoint["options"], "student"), 64, NUM_CLASSES)
    fresh.load_state_dict(checkpoint["state_dict"])
    fresh.eval()
    _, stored = load_student(Run.read(runs["path"][backend]))
    x = _probe_inputs(runs["run"][backend], 64)
    with torch.no_grad():
        for model in (fresh, stored):
            model.set_temperature(1.0)
        a, b = fresh(x).tempered, stored(x).tempered
    assert a.shape == (64, NUM_CLASSES)
    assert torch.equal(a, b)
    assert float(a.abs().sum()) > 0


def test_export_errors_exit_2(runs: Dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    rc = main(["export", str(runs["path"]["dense"]), "--format", "nir", "--out", str(tmp_path / "d.nir")])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and "--format" in err and "Traceback" not in err, err
    assert not (tmp_path / "d.nir").exists()

    missing = tmp_path / "nope.h5"
    rc = main(["export", str(missing), "--format", "pt", "--out", str(tmp_path / "x.pt")])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and "nope.h5" in err and "Traceback" not in err, err

    proc = _cli_subprocess(["export", missing, "--format", "nir", "--out", tmp_path / "y.nir"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


# --- 5. config switches ---------------------------------------------------------------------------
@pytest.mark.parametrize("backend", SPIKING)
def test_unknown_spiking_option_exits_2_naming_it(
    runs: Dict[str, Any], backend: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    capsys.readouterr()
    out = tmp_path / "bad"
    rc = main(["run", str(runs["config"]), "--out", str(out), "--quiet",
               "--set", f"student.backend={backend}", "--set", "student.stepz=3"])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and "student.stepz" in err and "Traceback" not in err, err
    assert not out.exists() or not list(out.rglob("*.h5"))
