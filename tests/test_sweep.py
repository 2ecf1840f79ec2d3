"""The sweep command: planning (grid x variants x seeds), validation before any run, summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tempdistill.app.cli import main
from tempdistill.config import ConfigError
from tempdistill.record.run_file import read_run
from tempdistill.sweep.plan import parse_grid, parse_seeds, plan_sweep, split_top_level
from tempdistill.sweep.summary import epochs_to_fraction


def test_seed_ranges_and_lists() -> None:
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("3,1,7") == [3, 1, 7]
    with pytest.raises(ConfigError, match="^--seeds"):
        parse_seeds("a-b")


def test_grid_values_may_be_yaml_sections() -> None:
    assert split_top_level("{schedule: cosine, start: 8},{schedule: constant}") == [
        "{schedule: cosine, start: 8}",
        "{schedule: constant}",
    ]
    grid = parse_grid(["distill.alpha=0.9,0", "distill.temperature={schedule: constant, value: 2},{schedule: linear}"])
    assert grid["distill.alpha"] == [0.9, 0]
    assert grid["distill.temperature"] == [{"schedule": "constant", "value": 2}, {"schedule": "linear"}]


def test_plan_crosses_variants_grid_and_seeds(tiny_config_data: dict) -> None:
    raw = dict(tiny_config_data)
    raw["sweep"] = {
        "seeds": [0, 1],
        "grid": {"distill.alpha": [0.9, 0.0]},
        "variants": {"const": {"distill.temperature": {"schedule": "constant", "value": 2.0}},
                     "lin": {"distill.temperature": {"schedule": "linear", "start": 4.0, "end": 1.0}}},
    }
    jobs = plan_sweep(raw, {}, None)
    assert len(jobs) == 2 * 2 * 2
    assert {job.name for job in jobs} == {
        "tiny-const-alpha=0.9", "tiny-const-alpha=0.0", "tiny-lin-alpha=0.9", "tiny-lin-alpha=0.0"}
    assert {job.seed for job in jobs} == {0, 1}
    lin = next(job for job in jobs if job.name == "tiny-lin-alpha=0.0")
    assert lin.overrides == ["variant=lin", "distill.alpha=0.0"]
    assert lin.mapping["distill"]["temperature"]["schedule"] == "linear" and lin.mapping["distill"]["alpha"] == 0.0


def test_a_grid_key_inside_a_variants_section_sets_each_job_alone(tiny_config_data: dict) -> None:
    raw = dict(tiny_config_data)
    arm = {"schedule": "linear", "start": 8.0, "end": 1.0}
    raw["sweep"] = {"seeds": [0], "grid": {"distill.temperature.start": [4.0, 16.0]}, "variants": {"lin": {"distill.temperature": arm}}}
    jobs = plan_sweep(raw, {}, None)
    assert {job.name: job.mapping["distill"]["temperature"]["start"] for job in jobs} == {
        "tiny-lin-start=4.0": 4.0, "tiny-lin-start=16.0": 16.0}
    assert arm["start"] == 8.0                                     # the variant's own section is left alone


def test_a_bad_variant_fails_before_any_run(tiny_config_data: dict) -> None:
    raw = dict(tiny_config_data)
    raw["sweep"] = {"variants": {"bad": {"distill.temperature": {"schedule": "cosine", "start": -1}}}}
    with pytest.raises(ConfigError, match=r"^distill\.temperature\.start"):
        plan_sweep(raw, {}, [0])


def test_epochs_to_fraction() -> None:
    assert epochs_to_fraction(np.array([0.1, 0.5, 0.96, 0.9, 1.0])) == 3.0
    assert epochs_to_fraction(np.array([0.9])) == 1.0
    assert np.isnan(epochs_to_fraction(np.array([])))
    assert epochs_to_fraction(np.array([-500.0, -120.0, -83.0, -80.0])) == 3.0  # returns below zero


def test_sweep_command_runs_and_summarizes(make_config, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = make_config({"distill": {"epochs": 2}})
    out = tmp_path / "sweep"
    code = main(["sweep", str(config), "--grid", "distill.alpha=0.9,0", "--seeds", "0-1", "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert len(list(out.glob("*.h5"))) == 4
    assert "tiny-alpha=0.9 " in printed and "tiny-alpha=0 " in printed
    assert " ± " in printed
    names = sorted(p.name for p in out.glob("*.h5"))
    assert all(n.startswith(("tiny-alpha=0.9-dense-s", "tiny-alpha=0-dense-s")) for n in names), names
    assert (out / "summary.txt").read_text().startswith("run")
    # the paired difference of the two-level factor, over the two matching seeds, with a verdict
    assert "paired differences over matching seeds" in printed
    line = next(line for line in printed.splitlines() if line.startswith("distill.alpha"))
    assert "alpha=0.0 -> alpha=0.9" in line and (line.split()[-1] in ("helped", "hurt") or line.endswith("no clear difference"))
    assert "paired differences" in (out / "summary.txt").read_text()


def test_sweep_bad_input_exits_2(make_config, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = make_config()
    out = tmp_path / "sweep"
    assert main(["sweep", str(config), "--grid", "distill.alpha=2", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "distill.alpha" in err and len(err.splitlines()) == 1
    assert main(["sweep", str(config), "--executor", "dask", "--out", str(out), "--quiet"]) == 2
    assert "--executor" in capsys.readouterr().err
    assert not list(out.glob("*.h5"))


def test_sweep_section_is_validated(tiny_config_data: dict) -> None:
    raw = dict(tiny_config_data)
    raw["sweep"] = {"sedds": [0, 1]}
    with pytest.raises(ConfigError, match=r"^sweep\.sedds: unknown key"):
        plan_sweep(raw, {}, None)
    raw["sweep"] = {"variants": {"a": 3}}
    with pytest.raises(ConfigError, match=r"^sweep\.variants\.a"):
        plan_sweep(raw, {}, None)


def test_grid_sections_get_distinct_names_and_clashes_are_refused(tiny_config_data: dict) -> None:
    grid = parse_grid(["distill.temperature={schedule: constant, value: 2},{schedule: constant, value: 4}"])
    names = {job.name for job in plan_sweep(dict(tiny_config_data), grid, [0])}
    assert len(names) == 2
    raw = dict(tiny_config_data)
    raw["sweep"] = {"variants": {"a": {}, "b": {}}, "grid": {"distill.alpha": [0.5]}}
    assert len(plan_sweep(raw, {}, [0])) == 2
    clash = parse_grid(["distill.alpha=0.5,0.50"])
    with pytest.raises(ConfigError, match="^sweep: two runs"):
        plan_sweep(dict(tiny_config_data), clash, [0])


def test_a_sweep_resumes_keeping_complete_runs_and_redoing_the_rest(make_config, tmp_path: Path, capsys) -> None:
    import h5py

    config = make_config({"distill": {"epochs": 1}})
    out = tmp_path / "sweep"
    command = ["sweep", str(config), "--grid", "distill.alpha=0,0.9", "--seeds", "0-1", "--out", str(out)]
    assert main(command) == 0
    first = sorted(out.glob("*.h5"))
    assert len(first) == 4 and (out / "manifest.json").is_file()
    # a killed sweep leaves a run 'running'; another run's file is lost
    with h5py.File(first[0], "a") as f:
        f.attrs["status"] = "running"
    first[1].unlink()
    capsys.readouterr()
    assert main(command) == 0
    err = capsys.readouterr().err
    assert "sweep: resuming (2 complete, 1 running, 1 missing); 2 to run" in err
    assert len(list(out.glob("*.h5"))) == 4 and all(read_run(p)["status"] == "complete" for p in out.glob("*.h5"))
    assert [p.name for p in (out / "superseded").iterdir()] == [first[0].name]
    # the same command once more runs nothing; more seeds run only the new ones
    assert main(command) == 0
    assert "4 complete); 0 to run" in capsys.readouterr().err
    assert main(command[:-4] + ["--seeds", "0-2", "--out", str(out), "--quiet"]) == 0
    assert len(list(out.glob("*.h5"))) == 6
    # another config into the same directory is refused, naming --out
    assert main(command + ["--set", "distill.lr=0.1"]) == 2
    assert "--out" in capsys.readouterr().err.strip().splitlines()[-1]


def test_resuming_moves_a_killed_run_aside_with_its_epochs(tiny_config_data: dict, tmp_path: Path) -> None:
    import json

    from tempdistill.record.run_file import RunRecorder
    from tempdistill.sweep.resume import resume_plan

    [job] = plan_sweep(dict(tiny_config_data), {}, [0])
    out = tmp_path / "sweep"
    killed = RunRecorder(out / "killed.h5", json.dumps({"name": job.name, "seed": job.seed}))
    for epoch in range(3):
        killed.append_epoch({"epoch": float(epoch)})
    plan = resume_plan([job], out)
    assert plan.counts["running"] == 1 and plan.todo == [job]
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "superseded"]  # no journal left behind
    run = read_run(out / "superseded" / "killed.h5")
    assert run["status"] == "running"
    np.testing.assert_array_equal(run["metrics"]["epoch"], [0.0, 1.0, 2.0])


def test_epochs_to_a_target_score_and_its_summary_column():
    from tempdistill.sweep.summary import epochs_to_value, summary_table

    assert epochs_to_value(np.array([0.5, 0.96, 0.94, 0.97]), 0.95) == 2.0
    assert np.isnan(epochs_to_value(np.array([0.5, 0.9]), 0.95))
    row = {"name": "a", "backend": "snntorch", "schedule": "constant", "seeds": 3, "accuracy": (0.9, 0.01),
           "score_name": "accuracy", "final_kl": (0.1, 0.0), "final_kl_t1": (0.2, 0.0), "epochs_to_95": (5.0, 1.0),
           "target": 0.95, "epochs_to_target": [4.0, 6.0, float("nan")]}
    text = summary_table([row])
    assert "epochs to val 0.95" in text and "5.0 ± 1.4 (1 of 3 never)" in text


def test_a_sweep_resumes_on_another_device_but_not_with_another_config(tiny_config_data: dict, tmp_path: Path) -> None:
    """The device is where a run runs, not what it is: a sweep begun on a CPU may be finished on
    a GPU, including from a manifest written when the digest still covered the device."""
    import json

    from tempdistill.sweep.plan import Job, legacy_job_digest
    from tempdistill.sweep.resume import MANIFEST, resume_plan

    out = tmp_path / "sweep"
    [job] = plan_sweep({**tiny_config_data, "device": "cpu"}, {}, [0])
    assert resume_plan([job], out).todo == [job]
    on_gpu = Job(job.name, job.seed, {**job.mapping, "device": "cuda"}, job.overrides)  # as planned on a GPU machine
    assert resume_plan([on_gpu], out).todo == [on_gpu]
    other = Job(job.name, job.seed, {**job.mapping, "distill": {**job.mapping["distill"], "lr": 0.123}}, job.overrides)
    with pytest.raises(ConfigError, match="--out"):
        resume_plan([other], out)
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / MANIFEST).write_text(json.dumps({"format": 1, "runs": [
        {"name": job.name, "seed": job.seed, "digest": legacy_job_digest(job)}]}))
    assert resume_plan([job], legacy).todo == [job]


def test_the_committed_fashion_mnist_runs_still_belong_to_their_config() -> None:
    """``make fashion-mnist-table`` resumes the run files committed beside the table: an edit of
    experiments/fashion-mnist-conv.yaml that changed a run would make the command refuse them."""
    import json

    import yaml

    from tempdistill.record.run_file import run_identity
    from tempdistill.sweep.plan import job_digest, legacy_job_digest

    root = Path(__file__).resolve().parents[1]
    results = root / "experiments" / "results" / "fashion-mnist-conv"
    jobs = {(job.name, job.seed): job
            for job in plan_sweep(yaml.safe_load((root / "experiments" / "fashion-mnist-conv.yaml").read_text()), {}, None)}
    manifest = json.loads((results / "manifest.json").read_text())["runs"]
    for entry in manifest:
        job = jobs[(entry["name"], entry["seed"])]
        assert entry["digest"] in (job_digest(job), legacy_job_digest(job)), entry["name"]
    files = sorted(results.glob("*.h5"))
    assert files
    for path in files:
        status, config = run_identity(path)
        assert status == "complete", path.name
        source = config.get("conversion", {}).get("source")
        name = config["name"].split("-converted-")[0] if source else config["name"]
        assert (name, config["seed"]) in jobs, path.name
        if source:  # a conversion names its source by a path inside the repository
            assert (root / source).is_file(), source
