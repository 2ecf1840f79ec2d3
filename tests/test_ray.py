"""The Ray executor: one local Ray for the whole module, the same run files as the local
executor, and nothing of Ray's left in the project."""

from __future__ import annotations

from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from tempdistill.app.cli import main  # noqa: E402
from tempdistill.record.run_file import read_run  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


FAILING_SCHEDULE = (
    "from tempdistill.schedules import Constant\n"
    "class Failing(Constant):\n"
    "    def temperature(self, step, epoch, signals=None):\n"
    "        raise RuntimeError('boom at step %d' % step)\n"
)


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """One local Ray (2 CPUs) for every test here; the executor joins it instead of starting one.
    Its workers find a user's schedule module through PYTHONPATH, as on a user's cluster."""
    import os
    import sys

    modules = tmp_path_factory.mktemp("user-modules")
    (modules / "failing_schedule.py").write_text(FAILING_SCHEDULE)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(modules), old]))
    sys.path.insert(0, str(modules))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()
    sys.path.remove(str(modules))
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


def _finals(directory: Path):
    runs = [read_run(p) for p in sorted(directory.glob("*.h5"))]
    return sorted((r["config"]["name"], r["config"]["seed"], r["status"], r["eval"]["student_accuracy"],
                   tuple(r["metrics"]["loss"])) for r in runs)


def test_ray_sweep_gives_the_local_executors_files_and_leaves_nothing_in_the_project(local_ray, make_config, tmp_path,
                                                                                      capsys):
    before = set(REPO_ROOT.iterdir())
    config = make_config({"distill": {"epochs": 2}})
    common = ["sweep", str(config), "--grid", "distill.alpha=0,0.9", "--seeds", "0-1", "--jobs", "2"]
    assert main(common + ["--executor", "ray", "--out", str(tmp_path / "ray")]) == 0
    printed = capsys.readouterr()
    assert "[4/4]" in printed.err and "Trial" not in printed.out + printed.err  # our lines, not Tune's table
    assert main(common + ["--out", str(tmp_path / "local"), "--quiet"]) == 0
    ray_runs, local_runs = _finals(tmp_path / "ray"), _finals(tmp_path / "local")
    assert len(ray_runs) == 4 and all(run[2] == "complete" for run in ray_runs)
    assert ray_runs == local_runs  # a config in, a run file out: the same numbers either way
    assert set(REPO_ROOT.iterdir()) == before
    assert not list((tmp_path / "ray").glob("**/*.json")) or [p.name for p in (tmp_path / "ray").glob("**/*.json")] == ["manifest.json"]


def test_a_failing_trial_is_listed_and_the_others_complete(local_ray, make_config, tmp_path, capsys):
    config = make_config({"distill": {"epochs": 1}})
    # a user's schedule that raises inside the run (it validates, so the sweep is planned)
    code = main(["sweep", str(config), "--grid",
                 "distill.temperature={schedule: constant, value: 2},{schedule: 'failing_schedule:Failing', value: 2}",
                 "--jobs", "2", "--executor", "ray", "--out", str(tmp_path / "ray"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 1
    assert "1 runs failed:" in out and "RuntimeError: boom at step 0" in out
    assert [read_run(p)["status"] for p in (tmp_path / "ray").glob("*.h5")] == ["complete"]


def test_ray_only_flags_need_the_ray_executor(make_config, tmp_path, capsys):
    assert main(["sweep", str(make_config()), "--cpus-per-run", "2", "--out", str(tmp_path / "x")]) == 2
    assert "--executor ray" in capsys.readouterr().err
