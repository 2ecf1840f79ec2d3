"""The HDF5 record of a run: one file per run, readable at every moment, and an epoch's commit
that costs that epoch's data, not a copy of the file.

While a run runs, its file ``NAME.h5`` holds what is known when it starts (``/config``,
``/env``, ``status=running``, the task's groups) and each finished epoch and each warning is
appended as one record to a journal next to it, ``.NAME.h5.<id>.journal``
(``tempdistill.record.journal``; ``<id>`` is random and the file names it in its root attr
``journal``). Readers (``read_run``, hence ``show``, ``compare``, ``report``) fold the journal
into an in-memory copy of the file, so a running or killed run reads as it always did: every
completed epoch, ``status=running``. ``finish`` folds it into the file for good (the one copy of
all that a run recorded), drops the attr, then the journal: a finished run is one
self-contained file, laid out exactly as before journals existed. ``write_eval`` and
``write_arrays`` still edit a copy of the file, which holds no per-epoch data until ``finish``.
An epoch's record holds its series values in one vector and its traces raw; traces are
compressed once, by ``finish``. (Committing by copying the file cost 7-11 ms per epoch for
metrics alone, growing from 20 to 50 ms over 300 epochs with traces; a journal record costs a
fraction of a millisecond, the same at epoch 300 as at epoch 1: ``benchmarks/recording.py``.)

A run killed at any instant (even SIGKILL) leaves a readable file with every completed epoch:

* between commits, or in the middle of one: the journal's complete records are the completed
  epochs; a record cut short fails its length or CRC check and is not read;
* during an edit or ``finish``: both write a private temporary copy
  (``.NAME.h5.<pid>.writing``, never read) and ``os.replace`` it onto the file only once it is
  complete; until then the old file and its journal stand;
* after ``finish`` replaced the file, before it removed the journal: the new file names no
  journal, so the stale one is never read again and no epoch counts twice (it stays behind as
  a hidden orphan). Because the id is random, a journal left by an earlier file of the same
  name is never read into a new one.

Nothing is ``fsync``-ed: a killed process is covered, a power cut is not (as before journals).

Why not HDF5's own means. HDF5 promises nothing for a file open for writing when its writer
dies: "HDF5 files written via calls to the HDF5 library are susceptible to corruption in the
event of application or system crash" [1] (the metadata journaling that RFC proposed never
shipped). Keeping the file open and calling ``flush()`` after each epoch narrows that window,
but a kill during the next write can still leave metadata pointing at unwritten space. SWMR
does promise that a file written in SWMR mode "is guaranteed to always be in a valid
(non-corrupt) state for reading ... even if the writing application crashes" [2], but: a SWMR
writer may only write to datasets that exist when SWMR writing starts [3], while a run creates
a group per traced epoch, series first seen late and a warnings attribute; a writer killed in
SWMR mode leaves the superblock marked as open for writing, so an ordinary open (``read_run``,
HDFView) refuses the file until ``h5clear -s`` is run on it [4] (HDF5 2.0 here: "file is
already open for write (may use <h5clear file> to clear file consistency flags)"); and it
needs ``libver="latest"``, which older HDF5 libraries cannot read [2]. One small HDF5 file per
epoch, replaced atomically, was measured too: creating it takes 1 ms (one packed dataset) to
7 ms (a dataset per metric), where a 10 ms epoch allows 0.3 ms.

[1] The HDF Group, RFC THG 2007-08-01.v2, "Metadata Journaling to Improve Crash Survivability",
    https://support.hdfgroup.org/archive/support/pubs/rfcs/Metadata_Journaling_RFC.pdf
[2] h5py documentation, "Single Writer Multiple Reader (SWMR)",
    https://docs.h5py.org/en/stable/swmr.html
[3] The HDF Group, "Introduction to SWMR", section "Limitations and Scope",
    https://support.hdfgroup.org/HDF5/Tutor/swmr.html
[4] HDF5 User Guide, "The HDF5 h5clear Tool",
    https://support.hdfgroup.org/documentation/hdf5/latest/_h5_t_o_o_l__c_r__u_g.html

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
``student_return_mean_best_val`` ...). 4 ties the traces to their inputs: beside each traced
epoch's spikes, ``/traces/<epoch>/probe_rows`` (the probes' validation row indices; a
multi-task run counts rows within each head's validation data) and, where the task has them,
``probe_labels`` (a classifier's class labels as the user gave them, a policy's teacher action),
one entry per probe. 5 keeps a converted run's integrate-and-fire network (``tempdistill
convert``) in its ``/student``: the balanced synapses' arrays, attrs ``backend`` ``converted``
and ``describe`` with ``kind: converted``, the step count and the layer list, so it exports as
NIR and predicts (earlier converted runs recorded figures only). Readers take every version; a field a version lacks
reads as absent (a file without ``select`` is scored by its final figure; traces without
``probe_rows`` are probes 0, 1, ... of the rows the version measured on). The
journal changes no finished file; a running file's root attr ``journal`` names its journal
(readers older than the journal see a running file's epochs only once it is finished).

Reading is checked (``tempdistill.record.checks``): a file that does not hold what its version
promises is refused with one line naming the field, before its data is read.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import itertools
import json
import os
import platform
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import h5py
import numpy as np

from tempdistill import __version__
from tempdistill.record import journal
from tempdistill.record.journal import Journal
from tempdistill.record.checks import (STATUSES, RunFileError, check_run_file, check_traces, fail, parse_config, plain,
                                 trace_epoch)
from tempdistill.text import printable

FORMAT_VERSION = 5
JOURNAL_ATTR = "journal"  # root attr of a running file: the id of its journal
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


def _series(name: str, values: Any) -> np.ndarray:
    """One commit's values of a per-epoch or per-step series: float64, 1-D (a scalar is one)."""
    values = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if values.ndim != 1:
        raise ValueError(f"{name}: a series takes a number or a 1-D array per commit, got shape {values.shape}")
    return values


class RunRecorder:
    """Writes one run's file. Created with ``status=running``; ``finish`` closes it.

    ``RunRecorder(path, ...)`` claims exactly ``path`` (an existing file there is an error);
    ``RunRecorder.create(directory, stem, ...)`` claims the first free ``stem[-N].h5``.
    Epochs and warnings go to ``journal`` until ``finish`` folds it into the file.
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
        self._schema: Optional[List[List[Any]]] = None  # the series layout of the last epoch record
        journal_id = os.urandom(8).hex()
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
                f.attrs[JOURNAL_ATTR] = journal_id
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
        self.journal = Journal(_journal_path(self.path, journal_id))

    @classmethod
    def create(
        cls, directory: str | Path, stem: str, config_json: str, extra_attrs: Optional[Mapping[str, Any]] = None
    ) -> "RunRecorder":
        """A new record at ``directory/stem.h5``, or ``stem-1.h5``, ... if taken (race-free)."""
        directory = Path(directory)
        names = itertools.chain([directory / f"{stem}.h5"], (directory / f"{stem}-{i}.h5" for i in itertools.count(1)))
        return cls(directory / f"{stem}.h5", config_json, extra_attrs, _candidates=names)

    @contextlib.contextmanager
    def edit(self) -> Iterator[h5py.File]:
        """Open a copy of the run file for writing; it replaces the file only if the block
        completes. The journal is left alone: until ``finish`` the epochs are there, not here."""
        with _rewrite(self.path) as f:
            yield f

    def add_warning(self, message: str) -> None:
        """Keep a warning with the run (root attr ``warnings``, a JSON list), at once."""
        self.warnings.append(message)
        self.journal.append({"kind": "warnings", "warnings": self.warnings})

    def append_epoch(
        self,
        metrics: Mapping[str, float],
        steps: Optional[Mapping[str, np.ndarray]] = None,
        traces: Optional[Mapping[str, np.ndarray]] = None,
        groups: Optional[Mapping[str, Mapping[str, np.ndarray]]] = None,
    ) -> None:
        """Commit one finished epoch (its metrics, per-step series, optional traces and groups
        such as ``temperature``) as one journal record: the cost is this epoch's bytes.

        Every series value of the epoch goes into one float64 vector, and the list saying which
        slice is which series is written only when it differs from the previous epoch's."""
        items = [("epoch", "metrics", metrics.items()), ("step", "steps", (steps or {}).items())]
        items += [("epoch", group_name, named.items()) for group_name, named in (groups or {}).items()]
        schema: List[List[Any]] = []
        values: List[Any] = []
        for rule, group, named in items:
            for name, value in named:
                if isinstance(value, (int, float)):
                    schema.append([rule, group, name, 1])
                else:
                    value = _series(f"{group}/{name}", value)
                    schema.append([rule, group, name, value.shape[0]])
                values.append(value)
        flat = np.empty(sum(length for *_, length in schema))
        at = 0
        for (*_, length), value in zip(schema, values):
            flat[at : at + length] = value
            at += length
        entry: Dict[str, Any] = {"kind": "epoch", "epoch": self.epochs_written, "step": self.steps_written}
        if schema != self._schema:
            entry["series"] = schema
        arrays = [flat]
        if traces:
            entry["traces"] = list(traces)
            arrays += [np.asarray(array) for array in traces.values()]
        self.journal.append(entry, arrays)
        self._schema = schema
        self.epochs_written += 1
        self.steps_written += max((length for rule, *_, length in schema if rule == "step"), default=0)

    def write_epochs(self, series: Mapping[str, np.ndarray]) -> None:
        """Whole per-epoch series at once, for a run rebuilt from what was kept of it
        (``sweep.ledger``): written into /metrics as epochs appended one by one would be."""
        lengths = {np.asarray(values).shape[0] for values in series.values()}
        if len(lengths) > 1:
            raise ValueError(f"per-epoch series of different lengths: {sorted(lengths)}")
        epochs = lengths.pop() if lengths else 0
        with self.edit() as f:
            for name, values in series.items():
                _extend(f["metrics"], name, _series(f"metrics/{name}", values))
            f.attrs["epochs_completed"] = epochs
        self.epochs_written = epochs

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
        """Close the record as ``complete``, ``failed`` or ``interrupted`` (with why), with
        the journal folded in: a finished run is one file."""
        if status not in STATUSES[1:]:
            raise ValueError(f"status: got {status!r}; allowed: {', '.join(STATUSES[1:])}")
        with _rewrite(self.path, fold=True) as f:
            f.attrs["status"] = status
            f.attrs["finished"] = _utc_now()
            if error is not None:
                f.attrs["error"] = error


def consolidate(path: str | Path) -> None:
    """Fold a run file's journal into it, so that the file stands alone (before it is moved or
    shared); a file without a journal is left as it is. Only for a run whose writer is gone (a
    killed run): a live writer's later epochs would go to a journal the file no longer names."""
    path = Path(path)
    if _names_journal(path):
        with _rewrite(path, fold=True):
            pass


@contextlib.contextmanager
def _rewrite(path: Path, fold: bool = False) -> Iterator[h5py.File]:
    """A private copy of ``path`` open for writing (its journal folded in if ``fold``), put in
    place of ``path`` by an atomic rename only once the block completes; a folded journal is
    removed after that rename (before it, the file and its journal are still each other's)."""
    tmp = _private_tmp(path)
    folded: Optional[Path] = None
    try:
        shutil.copyfile(path, tmp)
        with h5py.File(tmp, "a") as f:
            if fold:
                folded = _fold(f, path, compress=True)
            yield f
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    if folded is not None:
        folded.unlink(missing_ok=True)


def _journal_path(path: Path, journal_id: str) -> Path:
    """Hidden, and not ``*.h5``: no listing of run files (``show``, ``compare``, a sweep) sees it."""
    return path.with_name(f".{path.name}.{journal_id}.journal")


def _names_journal(path: Path) -> bool:
    try:
        with h5py.File(path, "r") as f:
            return JOURNAL_ATTR in f.attrs
    except OSError:
        return False


def _fold(f: h5py.File, path: Path, compress: bool) -> Optional[Path]:
    """Apply the journal that the open copy ``f`` of the run file ``path`` names, and drop the
    name; returns the journal's path (None if ``f`` names none).

    Epoch records are placed exactly as appending them to the file one by one would have:
    a series first seen late, or missing from some epochs, is NaN-padded up to the epoch (or
    step) it belongs to. An epoch already in ``f`` (below its ``epochs_completed``) is skipped.
    """
    if JOURNAL_ATTR not in f.attrs:
        return None
    journal_id = plain(f.attrs[JOURNAL_ATTR])
    if not isinstance(journal_id, str) or not re.fullmatch(r"[0-9a-f]{1,64}", journal_id):
        raise fail(path, JOURNAL_ATTR, f"expected the hexadecimal id of a journal, got {journal_id!r}")
    journal_path = _journal_path(path, journal_id)
    try:
        return _apply_journal(f, path, journal_path, compress)
    except (TypeError, ValueError, KeyError, OSError) as exc:
        if isinstance(exc, RunFileError):
            raise
        raise fail(path, f"journal {journal_path.name}", f"does not apply to the file ({exc})") from None


def _apply_journal(f: h5py.File, path: Path, journal_path: Path, compress: bool) -> Path:
    done = start = int(f.attrs.get("epochs_completed", 0))
    series: Dict[Tuple[str, str], List[np.ndarray]] = {}
    lengths: Dict[Tuple[str, str], int] = {}
    warnings: Optional[List[str]] = None
    schema: List[List[Any]] = []
    for entry, arrays in _journal_records(path, journal_path):
        if entry["kind"] == "warnings":
            warnings = entry["warnings"]
            continue
        schema = entry.get("series", schema)
        if entry["epoch"] != done:
            if entry["epoch"] > done:
                break  # a gap: cannot happen with one writer appending in order
            continue
        at = 0
        for rule, group, name, length in schema:
            key = (group, name)
            if key not in lengths:
                lengths[key] = f[group][name].shape[0] if group in f and name in f[group] else 0
                series[key] = []
            pad = (done if rule == "epoch" else entry["step"]) - lengths[key]
            if pad > 0:
                series[key].append(np.full(pad, np.nan))
                lengths[key] += pad
            series[key].append(arrays[0][at : at + length])
            lengths[key] += length
            at += length
        if entry.get("traces"):
            group = f.require_group("traces").require_group(str(done))
            for name, array in zip(entry["traces"], arrays[1:]):
                _write_array(group, name, array, compress)
        done += 1
    for (group, name), parts in series.items():
        _extend(f.require_group(group), name, np.concatenate(parts))
    if done != start:
        f.attrs["epochs_completed"] = done
    if warnings is not None:
        f.attrs["warnings"] = json.dumps(warnings)
    del f.attrs[JOURNAL_ATTR]
    return journal_path


def _journal_records(path: Path, journal_path: Path) -> Iterator[journal.Record]:
    """The records of the run file ``path``'s journal, each checked to be one the recorder
    writes: an epoch (its series layout matching its values, its traces named) or the run's
    warnings."""
    try:
        records = journal.read(journal_path)
    except ValueError as exc:
        raise RunFileError(printable(f"{path}: {exc}")) from None
    schema: Optional[List[Any]] = None
    for number, (entry, arrays) in enumerate(records, 1):
        where = f"journal {journal_path.name} record {number}"
        kind = entry.get("kind") if isinstance(entry, dict) else None
        if kind == "warnings":
            if not isinstance(entry.get("warnings"), list) or not all(isinstance(w, str) for w in entry["warnings"]):
                raise fail(path, where, "expected warnings as a list of strings")
        elif kind == "epoch":
            schema = entry.get("series", schema)
            _check_epoch_record(entry, schema, arrays, path, where)
        else:
            raise fail(path, where, f"expected kind 'epoch' or 'warnings', got {printable(repr(kind))[:40]}")
        yield entry, arrays


def _check_epoch_record(entry: Dict[str, Any], schema: Any, arrays: List[np.ndarray], path: Path,
                        where: str) -> None:
    for key in ("epoch", "step"):
        if not isinstance(entry.get(key), int) or isinstance(entry[key], bool) or entry[key] < 0:
            raise fail(path, where, f"expected {key} as a non-negative integer")
    if not isinstance(schema, list) or not all(
        isinstance(item, list) and len(item) == 4 and item[0] in ("epoch", "step") and _plain_name(item[1])
        and _plain_name(item[2]) and isinstance(item[3], int) and item[3] >= 0 for item in schema
    ):
        raise fail(path, where, "expected its series layout as [rule, group, name, length] entries")
    if not arrays or arrays[0].ndim != 1 or arrays[0].shape[0] != sum(item[3] for item in schema):
        raise fail(path, where, "its values do not match its series layout")
    traces = entry.get("traces") or []
    if not isinstance(traces, list) or len(traces) != len(arrays) - 1 or not all(
        isinstance(name, str) and all(_plain_name(part) for part in name.split("/")) for name in traces
    ):
        raise fail(path, where, "expected one trace name per trace array")


def _plain_name(name: Any) -> bool:
    """A name that is one HDF5 link, inside its group: text, no '/', not '.' or '..'."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name


def _extend(group: h5py.Group, name: str, values: np.ndarray) -> None:
    """Append to a resizable 1-D float64 series, created on first use. Compressed: a per-step
    series (the step counter, a constant or slowly moving T) shrinks to a few percent."""
    if name not in group:
        group.create_dataset(name, shape=(0,), maxshape=(None,), dtype=np.float64, chunks=(256,),
                             shuffle=True, compression="gzip", compression_opts=4)
    data = group[name]
    start = data.shape[0]
    data.resize((start + values.shape[0],))
    data[start:] = values


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


def _write_array(group: h5py.Group, name: str, array: np.ndarray, compress: bool = True) -> None:
    """Arrays of 1024 values or more are compressed (test predictions, of a few distinct class
    indices, take a tenth of their raw size); HDF5 readers decompress them unasked."""
    if name in group:
        del group[name]
    if compress and array.size >= 1024 and array.dtype.kind in "biuf":
        group.create_dataset(name, data=array, chunks=True, shuffle=True, compression="gzip", compression_opts=4)
    else:
        group.create_dataset(name, data=array)


def _attrs(obj: h5py.HLObject) -> Dict[str, Any]:
    return {k: plain(v) for k, v in obj.attrs.items()}


def _arrays(group: h5py.Group) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for name, item in group.items():
        if isinstance(item, h5py.Dataset):
            value = item[()]
            out[name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        else:
            out[name] = _arrays(item)
    return out


def is_run_file(f: h5py.File) -> bool:
    """Whether an open HDF5 file was written by ``RunRecorder`` (any format version).

    Every version writes ``format_version``, ``status`` and ``/config`` in the file's first
    state, so a file with none of them (an exported NIR graph, a user's data) is not a run.
    """
    return any(key in f.attrs for key in ("format_version", "status")) or "config" in f


def _open_run(path: Path) -> h5py.File:
    """The run file open for reading, with its journal (if it names one) folded into an
    in-memory copy: a running or killed run reads as the file ``finish`` would write.

    The copy is taken again if the file was replaced while it and its journal were read (an
    edit, or ``finish`` folding the journal in and then removing it), so a reader never pairs
    an old file with a journal that is already gone.
    """
    f = h5py.File(path, "r")
    if JOURNAL_ATTR not in f.attrs:
        return f
    f.close()
    for _ in range(2):
        before = os.stat(path)
        view = _folded_copy(path)
        after = os.stat(path)
        if (before.st_ino, before.st_size, before.st_mtime_ns) == (after.st_ino, after.st_size, after.st_mtime_ns):
            return view
        view.close()
    return _folded_copy(path)


def _folded_copy(path: Path) -> h5py.File:
    """An in-memory copy of the run file with its journal applied (traces uncompressed: it is
    read once and dropped); opening it takes no lock on the file, which is never written."""
    view = h5py.File(io.BytesIO(path.read_bytes()), "r+")
    try:
        _fold(view, path, compress=False)
    except BaseException:
        view.close()
        raise
    return view


def read_run(path: str | Path) -> Dict[str, Any]:
    """The run as plain Python/numpy objects. Missing groups come back empty, never raise; a
    file that does not hold what its format promises raises ``RunFileError`` (one line, before
    its data is read). ``traces`` is read an epoch at a time, when asked (``Traces``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"run file not found: {path}")
    try:
        f = _open_run(path)
    except OSError as exc:
        raise RunFileError(printable(f"{path} is not a readable HDF5 run file ({exc})")) from None
    try:
        with f:
            if not is_run_file(f):
                raise RunFileError(f"{path} is an HDF5 file but not a tempdistill run (no run status, format version or config)")
            check_run_file(f, path)
            return _read_checked(f, path)
    except (OSError, KeyError) as exc:  # HDF5 failing on a damaged object that declared itself well
        raise fail(path, "file", printable(f"cannot be read ({exc})")) from None


def _read_checked(f: h5py.File, path: Path) -> Dict[str, Any]:
    """Everything but the traces' data, from a file ``check_run_file`` passed."""
    run: Dict[str, Any] = {"path": str(path), "attrs": _attrs(f)}
    run["status"] = run["attrs"].get("status", "unknown")
    run["format_version"] = int(run["attrs"].get("format_version", 1))
    run["warnings"] = json.loads(run["attrs"].get("warnings", "[]"))
    run["config"] = parse_config(f, path)
    run["env"] = _attrs(f["env"]) if "env" in f else {}
    for group in ("metrics", "steps", "temperature", "episodes", "student", "data"):
        run[group] = _arrays(f[group]) if group in f else {}
    run["student_attrs"] = _attrs(f["student"]) if "student" in f else {}
    run["data_attrs"] = _attrs(f["data"]) if "data" in f else {}
    run["eval"] = {**_attrs(f["eval"]), **_arrays(f["eval"])} if "eval" in f else {}
    run["traces"] = Traces(path, [trace_epoch(f, name, path) for name in f["traces"]] if "traces" in f else [])
    return run


class Traces(Mapping[int, Dict[str, Any]]):
    """A run's ``/traces``: epoch -> that epoch's arrays (``{layer: {spikes, membrane, ...}}``,
    and from format 4 ``probe_rows``/``probe_labels``), read from the file when an epoch is
    asked for and not kept: traces can be most of a file, and most readers never look."""

    def __init__(self, path: Path, epochs: Iterable[int]) -> None:
        self.path = path
        self.epochs = sorted(epochs)

    def __getitem__(self, epoch: int) -> Dict[str, Any]:
        if epoch not in self.epochs:
            raise KeyError(epoch)
        try:
            with _open_run(self.path) as f:
                group = f.get(f"traces/{epoch}")
                if group is None:
                    raise fail(self.path, f"/traces/{epoch}", "gone (the file changed since it was opened)")
                check_traces(group, self.path)
                return _arrays(group)
        except (OSError, KeyError) as exc:
            raise fail(self.path, f"/traces/{epoch}", printable(f"cannot be read ({exc})")) from None

    def __iter__(self) -> Iterator[int]:
        return iter(self.epochs)

    def __len__(self) -> int:
        return len(self.epochs)

    def __repr__(self) -> str:
        return f"Traces({str(self.path)!r}, epochs={self.epochs})"


def run_identity(path: str | Path) -> Optional[Tuple[str, Dict[str, Any]]]:
    """(status, config) of a run file, read without its arrays; None if it is not a readable run
    (a sweep resuming over a directory of hundreds of files opens each once). Neither is in the
    journal, so it is not read."""
    try:
        with h5py.File(path, "r") as f:
            if not is_run_file(f):
                return None
            text = f["config"][()] if "config" in f else b"{}"
            status = plain(f.attrs.get("status", "unknown"))
        return str(status), json.loads(text.decode() if isinstance(text, bytes) else text)
    except (OSError, ValueError, KeyError):
        return None


def place_run_file(source: str | Path, directory: str | Path) -> Path:
    """Copy a run file into ``directory`` under its own name (``-1``, ``-2``, ... on a clash),
    atomically, as a run recorded there would have been named; returns the new path. A running
    file's journal is folded into the copy, which stands alone (the source is left as it is)."""
    source, directory = Path(source), Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    first = directory / source.name
    tmp = _private_tmp(first)
    try:
        shutil.copyfile(source, tmp)
        if _names_journal(tmp):
            with h5py.File(tmp, "a") as f:
                _fold(f, source, compress=True)
        stem = first.stem
        candidates = itertools.chain([first], (directory / f"{stem}-{n}.h5" for n in itertools.count(1)))
        return _claim(tmp, itertools.islice(candidates, 1000))
    finally:
        if tmp.exists():
            tmp.unlink()


def find_runs(paths: Sequence[str | Path]) -> List[Path]:
    """Run files named directly or found (recursively) in directories, in a stable order.

    A directory's ``.h5`` files that are not runs (a user's data, an export) are passed over;
    a file named directly must be a run (``read_run`` says why not).
    """
    found: List[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(q for q in p.rglob("*.h5") if not q.name.startswith(".") and _looks_like_run(q)))
        elif p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"no run file or directory at {p}")
    return found


def _looks_like_run(path: Path) -> bool:
    try:
        with h5py.File(path, "r") as f:
            return is_run_file(f)
    except OSError:
        return False
