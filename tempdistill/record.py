"""The HDF5 record of a run: one file per run, readable at every moment.

Every write goes to a copy of the file that atomically replaces the original once it is
closed, so a run killed at any instant (even SIGKILL mid-write) leaves the last complete
state: every finished epoch and ``status=running``. Reading never assumes a group exists.

Parallel runs into one directory never share a file: the first state of a run is written to
a temporary file of this process and *linked* to its final name, which the operating system
refuses if the name exists (the next free ``-N`` name is tried), so choosing a name and
creating the file is one atomic step and a run file holds its ``/config`` from its first
byte. Temporary copies carry the process id, so two processes never write the same one.

Format history: 1, the first layout; 2 adds ``/data`` (class labels, input normalisation),
``status=interrupted``, the root attrs ``overrides`` and ``warnings``, per-epoch
``silent.<layer>``/``saturated.<layer>`` flags, ``/eval`` teacher file and hash and
``/eval/test_predictions``. 3 separates validation from test: per-epoch measures
(``/metrics/val_accuracy``, ``kl``, ..., and the spike traces' probe inputs) are on validation
rows (``data.val_fraction`` of the training part; ``/data`` attr ``n_val``), where 1 and 2
measured a classifier's epochs on its test rows; ``/eval`` holds the test figures of the final
student (``student_accuracy``, now from the same seeded pass as ``test_predictions``), the last
epoch's validation figures under their per-epoch names (``val_accuracy``), ``select``
(``final`` or ``best_val``: which figure is the run's score and which weights ``/student``
holds, its attr ``weights`` says the same) and, with ``best_val``, ``best_val_epoch``
(0-based, as ``/metrics/epoch``), ``best_val_score`` and the best-validation weights' test
figures suffixed ``_best_val`` (``student_accuracy_best_val``, ``test_predictions_best_val``;
``student_return_mean_best_val`` ...). Readers take every version; a field a version lacks
reads as absent (a file without ``select`` is scored by its final figure).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import itertools
import json
import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

import h5py
import numpy as np

from tempdistill import __version__

FORMAT_VERSION = 3
STATUSES = ("running", "complete", "failed", "interrupted")
_ENV_PACKAGES = ("torch", "snntorch", "norse", "gymnasium", "numpy", "h5py", "nir")


def environment() -> Dict[str, str]:
    """Versions that decide whether a run can be repeated; 'absent' when not installed."""
    env = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _ENV_PACKAGES:
        try:
            env[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            env[name] = "absent"
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        if sha.returncode == 0:
            env["git_sha"] = sha.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return env


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _append(group: h5py.Group, name: str, values: np.ndarray, fill_to: int) -> None:
    """Append to a resizable 1-D series; a series first seen late is NaN-padded in front."""
    values = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if name not in group:
        group.create_dataset(name, shape=(0,), maxshape=(None,), dtype=np.float64, chunks=(256,))
    data = group[name]
    start = data.shape[0]
    pad = max(fill_to - start, 0)
    data.resize((start + pad + values.shape[0],))
    if pad:
        data[start : start + pad] = np.nan
    data[start + pad :] = values


class RunRecorder:
    """Writes one run's file. Created with ``status=running``; ``finish`` closes it.

    ``RunRecorder(path, ...)`` claims exactly ``path`` (an existing file there is an error);
    ``RunRecorder.create(directory, stem, ...)`` claims the first free ``stem[-N].h5``.
    """

    def __init__(
        self, path: str | Path, config_json: str, extra_attrs: Optional[Mapping[str, Any]] = None,
        *, _candidates: Optional[Iterator[Path]] = None,
    ) -> None:
        if not config_json or not json.loads(config_json):
            raise ValueError("a run record needs its config (got an empty one)")
        self.epochs_written = 0
        self.steps_written = 0
        self.warnings: List[str] = []
        candidates = _candidates or iter([Path(path)])
        first = next(candidates)
        first.parent.mkdir(parents=True, exist_ok=True)
        tmp = _private_tmp(first)
        try:
            with h5py.File(tmp, "w") as f:
                f.attrs["format_version"] = FORMAT_VERSION
                f.attrs["tempdistill_version"] = __version__
                f.attrs["created"] = _utc_now()
                f.attrs["status"] = "running"
                for key, value in (extra_attrs or {}).items():
                    f.attrs[key] = value
                f.create_dataset("config", data=config_json, dtype=h5py.string_dtype())
                env = f.create_group("env")
                for key, value in environment().items():
                    env.attrs[key] = value
                for group in ("metrics", "steps", "eval"):
                    f.create_group(group)
            self.path = _claim(tmp, itertools.chain([first], candidates))
        finally:
            if tmp.exists():
                tmp.unlink()

    @classmethod
    def create(
        cls, directory: str | Path, stem: str, config_json: str, extra_attrs: Optional[Mapping[str, Any]] = None
    ) -> "RunRecorder":
        """A new record at ``directory/stem.h5``, or ``stem-1.h5``, ... if taken (race-free)."""
        directory = Path(directory)
        names = itertools.chain([directory / f"{stem}.h5"], (directory / f"{stem}-{i}.h5" for i in itertools.count(1)))
        return cls(directory / f"{stem}.h5", config_json, extra_attrs, _candidates=names)

    def _tmp_path(self) -> Path:
        return _private_tmp(self.path)

    @contextlib.contextmanager
    def edit(self) -> Iterator[h5py.File]:
        """Open a copy for writing; it replaces the file only if the block completes."""
        tmp = self._tmp_path()
        shutil.copyfile(self.path, tmp)
        try:
            with h5py.File(tmp, "a") as f:
                yield f
            os.replace(tmp, self.path)
        finally:
            if tmp.exists():
                tmp.unlink()

    def add_warning(self, message: str) -> None:
        """Keep a warning with the run (root attr ``warnings``, a JSON list), at once."""
        self.warnings.append(message)
        with self.edit() as f:
            f.attrs["warnings"] = json.dumps(self.warnings)

    def append_epoch(
        self,
        metrics: Mapping[str, float],
        steps: Optional[Mapping[str, np.ndarray]] = None,
        traces: Optional[Mapping[str, np.ndarray]] = None,
        groups: Optional[Mapping[str, Mapping[str, np.ndarray]]] = None,
    ) -> None:
        """Commit one finished epoch: its metrics, per-step series and optional traces."""
        with self.edit() as f:
            for name, value in metrics.items():
                _append(f["metrics"], name, np.asarray(value), self.epochs_written)
            steps = steps or {}
            n_steps = max((np.atleast_1d(v).shape[0] for v in steps.values()), default=0)
            for name, values in steps.items():
                _append(f["steps"], name, values, self.steps_written)
            if traces:
                group = f.require_group("traces").require_group(str(self.epochs_written))
                for name, array in traces.items():
                    _write_array(group, name, array)
            for group_name, arrays in (groups or {}).items():
                group = f.require_group(group_name)
                for name, values in arrays.items():
                    _append(group, name, values, self.epochs_written)
            f.attrs["epochs_completed"] = self.epochs_written + 1
        self.epochs_written += 1
        self.steps_written += n_steps

    def write_eval(self, values: Mapping[str, Any]) -> None:
        """Final evaluation: scalars become attrs of /eval, arrays datasets under it."""
        with self.edit() as f:
            group = f["eval"]
            for key, value in values.items():
                if np.ndim(value) == 0:
                    group.attrs[key] = value
                else:
                    _write_array(group, key, np.asarray(value))

    def write_arrays(self, group_name: str, arrays: Mapping[str, np.ndarray], attrs: Optional[Mapping[str, Any]] = None) -> None:
        """Store named arrays (e.g. the trained student's weights) under one group."""
        with self.edit() as f:
            if group_name in f:
                del f[group_name]
            group = f.create_group(group_name)
            for name, array in arrays.items():
                _write_array(group, name, np.asarray(array))
            for key, value in (attrs or {}).items():
                group.attrs[key] = value

    def finish(self, status: str = "complete", error: Optional[str] = None) -> None:
        """Close the record as ``complete``, ``failed`` or ``interrupted`` (with why)."""
        if status not in STATUSES[1:]:
            raise ValueError(f"status: got {status!r}; allowed: {', '.join(STATUSES[1:])}")
        with self.edit() as f:
            f.attrs["status"] = status
            f.attrs["finished"] = _utc_now()
            if error is not None:
                f.attrs["error"] = error


def _private_tmp(path: Path) -> Path:
    """A temporary name next to ``path`` that no other process uses."""
    return path.with_name(f".{path.name}.{os.getpid()}.writing")


def _claim(tmp: Path, candidates: Iterable[Path]) -> Path:
    """Give ``tmp`` the first free name among ``candidates``, atomically; returns that name.

    ``os.link`` fails if the name exists, so two processes can never claim the same one.
    Where a file system has no hard links, an exclusive create reserves the name first.
    """
    tried: List[Path] = []
    for candidate in candidates:
        tried.append(candidate)
        try:
            os.link(tmp, candidate)
            return candidate
        except FileExistsError:
            continue
        except OSError:
            try:
                fd = os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                continue
            os.close(fd)
            os.replace(tmp, candidate)
            return candidate
    raise FileExistsError(f"a run file already exists at {tried[-1]}")


def _write_array(group: h5py.Group, name: str, array: np.ndarray) -> None:
    if name in group:
        del group[name]
    if array.ndim >= 2 and array.size >= 1024:
        group.create_dataset(name, data=array, chunks=True, compression="gzip", compression_opts=4)
    else:
        group.create_dataset(name, data=array)


def _attrs(obj: h5py.HLObject) -> Dict[str, Any]:
    return {k: _plain(v) for k, v in obj.attrs.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _arrays(group: h5py.Group) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for name, item in group.items():
        if isinstance(item, h5py.Dataset):
            value = item[()]
            out[name] = value.decode() if isinstance(value, bytes) else value
        else:
            out[name] = _arrays(item)
    return out


def is_run_file(f: h5py.File) -> bool:
    """Whether an open HDF5 file was written by ``RunRecorder`` (any format version).

    Every version writes ``format_version``, ``status`` and ``/config`` in the file's first
    state, so a file with none of them (an exported NIR graph, a user's data) is not a run.
    """
    return any(key in f.attrs for key in ("format_version", "status")) or "config" in f


def read_run(path: str | Path) -> Dict[str, Any]:
    """The run as plain Python/numpy objects. Missing groups come back empty, never raise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"run file not found: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path} is not a readable HDF5 run file ({exc})") from None
    with f:
        if not is_run_file(f):
            raise ValueError(f"{path} is an HDF5 file but not a tempdistill run (no run status, format version or config)")
        run: Dict[str, Any] = {"path": str(path), "attrs": _attrs(f)}
        run["status"] = run["attrs"].get("status", "unknown")
        run["format_version"] = int(run["attrs"].get("format_version", 1))
        try:
            run["warnings"] = json.loads(run["attrs"].get("warnings", "[]"))
        except (TypeError, json.JSONDecodeError):
            run["warnings"] = []
        config_text = f["config"][()] if "config" in f else b"{}"
        config_text = config_text.decode() if isinstance(config_text, bytes) else config_text
        try:
            run["config"] = json.loads(config_text)
        except json.JSONDecodeError:
            run["config"] = {}
        run["env"] = _attrs(f["env"]) if "env" in f else {}
        for group in ("metrics", "steps", "temperature", "episodes", "student", "data"):
            run[group] = _arrays(f[group]) if group in f else {}
        run["student_attrs"] = _attrs(f["student"]) if "student" in f else {}
        run["data_attrs"] = _attrs(f["data"]) if "data" in f else {}
        run["eval"] = {**_attrs(f["eval"]), **_arrays(f["eval"])} if "eval" in f else {}
        traces = f["traces"] if "traces" in f else {}
        run["traces"] = {int(k): _arrays(v) for k, v in traces.items()} if traces else {}
    return run


def run_identity(path: str | Path) -> Optional[Tuple[str, Dict[str, Any]]]:
    """(status, config) of a run file, read without its arrays; None if it is not a readable run
    (a sweep resuming over a directory of hundreds of files opens each once)."""
    try:
        with h5py.File(path, "r") as f:
            if not is_run_file(f):
                return None
            text = f["config"][()] if "config" in f else b"{}"
            status = _plain(f.attrs.get("status", "unknown"))
        return str(status), json.loads(text.decode() if isinstance(text, bytes) else text)
    except (OSError, ValueError, KeyError):
        return None


def place_run_file(source: str | Path, directory: str | Path) -> Path:
    """Copy a finished run file into ``directory`` under its own name (``-1``, ``-2``, ... on a
    clash), atomically, as a run recorded there would have been named; returns the new path."""
    import shutil

    source, directory = Path(source), Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    first = directory / source.name
    tmp = _private_tmp(first)
    try:
        shutil.copyfile(source, tmp)
        stem = first.stem
        candidates = itertools.chain([first], (directory / f"{stem}-{n}.h5" for n in itertools.count(1)))
        return _claim(tmp, itertools.islice(candidates, 1000))
    finally:
        if tmp.exists():
            tmp.unlink()
