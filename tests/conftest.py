"""Shared fixtures: an isolated teacher cache, a tiny fast run config, a CLI runner, a loader
for the project's scripts (examples/, experiments/)."""

from __future__ import annotations

import copy
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]

# Keep every test (and every subprocess it starts) on one thread: the CPUs are shared.
os.environ["OMP_NUM_THREADS"] = "1"

TINY_CONFIG: Dict[str, Any] = {
    "name": "tiny",
    "seed": 0,
    "device": "cpu",
    "task": "classification",
    "data": {"name": "digits", "test_fraction": 0.3},
    "teacher": {"backend": "dense", "hidden": [32], "epochs": 3, "lr": 0.01},
    "student": {"backend": "dense", "hidden": [16]},
    "distill": {
        "epochs": 3,
        "batch_size": 64,
        "lr": 0.01,
        "alpha": 0.9,
        "temperature": {"schedule": "constant", "value": 4.0},
    },
    "record": {"dir": "runs", "traces": {"every": 0, "samples": 0}},
}


def _merge(base: Dict[str, Any], changes: Dict[str, Any]) -> Dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@pytest.fixture
def load_script() -> Callable[[str], Any]:
    """Import a script of the repository by its path from the root ('examples/x.py'): the
    scripts are run as files, not installed as modules."""
    def load(relative: str) -> Any:
        path = REPO_ROOT / relative
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Point TEMPDISTILL_CACHE at a per-session tmp dir so tests never touch the repo's .cache."""
    cache = tmp_path_factory.mktemp("tempdistill-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("TEMPDISTILL_CACHE", str(cache))
    mp.setenv("OMP_NUM_THREADS", "1")
    yield cache
    mp.undo()


@pytest.fixture
def tiny_config_data(tmp_path: Path) -> Dict[str, Any]:
    """The tiny config as a mapping, recording under tmp_path/runs."""
    return _merge(TINY_CONFIG, {"record": {"dir": str(tmp_path / "runs")}})


@pytest.fixture
def make_config(tmp_path: Path, tiny_config_data: Dict[str, Any]) -> Callable[..., Path]:
    """make_config(changes=None, name='config.yaml', raw=None) -> a YAML file on disk.

    ``changes`` is deep-merged into the tiny config; ``raw`` (text) is written verbatim.
    """

    def make(changes: Dict[str, Any] | None = None, name: str = "config.yaml", raw: str | None = None) -> Path:
        path = tmp_path / name
        if raw is not None:
            path.write_text(raw)
        else:
            path.write_text(yaml.safe_dump(_merge(tiny_config_data, changes or {}), sort_keys=False))
        return path

    return make


@pytest.fixture
def tiny_config(make_config: Callable[..., Path]) -> Path:
    """A tiny YAML config on disk (teacher [32] x3 epochs, student [16], distill 3 epochs, no traces)."""
    return make_config(name="tiny.yaml")


def _run_cli(args: List[str], timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "tempdistill", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT, env=env,
    )


@pytest.fixture
def cli_subprocess() -> Callable[..., subprocess.CompletedProcess]:
    """cli_subprocess(args) runs ``python -m tempdistill ARGS`` in a child process."""
    return _run_cli
