"""A sweep's ledger: what a committed folder keeps of every complete run, so that a sweep too
long for one sitting lands in pieces and resumes on another machine.

Why not the run files themselves: a run file is 100 KB or more even without its student (HDF5
spends a few KB per dataset, and a run records ~30 per-epoch series), so the ~1,700 runs of the
claims study would be ~200 MB. A ledger entry keeps what a study reads back and what says where
a number came from: the run's name, seed and manifest digest, its config, /eval's scalars, its
root attributes, environment and data attributes, the per-epoch series of ``FULL_SERIES`` in
full (validation scores, T, wall time; at float32 precision) and every other series' last value
— a few KB a run once compressed (4.8 KB for a 200-epoch run alone in its part, less beside
others): ~1,700 runs in ~5 MB. Per-step series, traces, arrays (test predictions) and the
student's weights are not kept.

``write_part`` adds the complete runs of a sweep directory that the ledger does not hold yet as
one new file ``part-<time>.jsonl.gz`` (parts are only ever added, so a repository keeps each
piece once); ``restore`` writes a run file for every entry whose run the directory lacks, and
merges the entries' digests into the directory's manifest, so the sweep's own resume
(``sweep.resume``) keeps those runs and refuses a ledger written for another config. A restored
file is an ordinary run file (``show``, ``compare``, a study read it) whose root attribute
``restored_from`` names its part; the series kept only at their last value are NaN before it.

A ledger is data: parts are read as JSON, every entry checked, nothing in them is executed.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gzip
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

import numpy as np

from tempdistill.analysis.statistics import SCORES
from tempdistill.config import ConfigError
from tempdistill.record.checks import plain
from tempdistill.record.run import Run
from tempdistill.record.run_file import RunRecorder, run_identity
from tempdistill.sweep.resume import merge_manifest, read_manifest

LEDGER_FORMAT = 1
PART_PATTERN = "part-*.jsonl.gz"
RESTORED_ATTR = "restored_from"
# Kept in full: what a study reads over the epochs (the validation score, epochs to a target, T).
FULL_SERIES = ("epoch", "temperature", "wall_seconds") + tuple(spec[2] for spec in SCORES if spec[2])
# Root attributes that belong to the writer of a file, not to the run.
_WRITER_ATTRS = ("journal", "status")
_REQUIRED = {"format": int, "name": str, "seed": int, "digest": str, "file": str, "config": dict, "eval": dict,
             "attrs": dict, "env": dict, "data_attrs": dict, "series": dict, "last": dict}

Key = Tuple[str, int]


def read_ledger(ledger: str | Path) -> Dict[Key, Dict[str, Any]]:
    """Every entry of the ledger folder's parts by (name, seed); a later part's entry for the
    same run replaces an earlier one. A missing folder is an empty ledger."""
    entries: Dict[Key, Dict[str, Any]] = {}
    for part in sorted(Path(ledger).glob(PART_PATTERN)):
        for number, entry in enumerate(_part_entries(part), 1):
            _check_entry(entry, f"{part} entry {number}")
            entries[(entry["name"], entry["seed"])] = entry
    return entries


def write_part(ledger: str | Path, out: str | Path) -> Optional[Path]:
    """Add the complete runs of the sweep directory ``out`` that the ledger lacks (or holds with
    another digest) as one new part; returns it, or None when there was nothing to add.
    Restored files are not written back: their entries are already in a part."""
    ledger, out = Path(ledger), Path(out)
    held = {key: entry["digest"] for key, entry in read_ledger(ledger).items()}
    digests = read_manifest(out)
    new: List[Dict[str, Any]] = []
    for key, path in _complete_runs(out).items():
        digest = digests.get(key)
        if digest is None or held.get(key) == digest:
            continue
        run = Run.read(path)
        if RESTORED_ATTR in run.attrs:
            continue
        new.append(entry_of(run, digest))
        held[key] = digest
    if not new:
        return None
    ledger.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    part = ledger / f"part-{stamp}-{os.getpid()}.jsonl.gz"
    tmp = part.with_name(f".{part.name}.tmp")
    text = "".join(json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n" for entry in new)
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(text.encode("utf-8"))
    os.replace(tmp, part)
    return part


def restore(ledger: str | Path, out: str | Path, keys: Optional[Iterable[Key]] = None) -> List[Path]:
    """Write a run file into ``out`` for every ledger entry (of ``keys``, if given) whose run
    ``out`` does not hold complete, and merge the entries' digests into ``out``'s manifest;
    returns the files written."""
    entries = read_ledger(ledger)
    if keys is not None:
        wanted = set(keys)
        entries = {key: entry for key, entry in entries.items() if key in wanted}
    if not entries:
        return []
    out = Path(out)
    present = _complete_runs(out)
    # The digests first: a ledger of another config is refused by the sweep's resume check
    # before any file is written.
    merge_manifest(out, {key: entry["digest"] for key, entry in entries.items()})
    return [_write_run(entry, out) for key, entry in entries.items() if key not in present]


@contextlib.contextmanager
def landing(ledger: Optional[str | Path], out: str | Path, keys: Iterable[Key],
            log: Callable[[str], None], who: str) -> Iterator[None]:
    """Around one sweep into ``out``: the ledger's runs among ``keys`` restored first, the new
    complete runs added as a part afterwards, also when the sweep is stopped; nothing without
    a ledger. ``who`` starts the log lines (``sweep``, ``claims``)."""
    if ledger is None:
        yield
        return
    restored = restore(ledger, out, keys)
    if restored:
        log(f"{who}: {len(restored)} runs restored from the ledger {ledger}")
    try:
        yield
    finally:
        part = write_part(ledger, out)
        if part is not None:
            log(f"{who}: new complete runs added to the ledger: {part}")


def _complete_runs(out: Path) -> Dict[Key, Path]:
    """The complete run files in ``out`` by (name, seed), read without their arrays."""
    found: Dict[Key, Path] = {}
    for path in sorted(out.glob("*.h5")) if out.is_dir() else []:
        identity = run_identity(path)
        if identity is not None and identity[0] == "complete":
            found[(str(identity[1].get("name")), int(identity[1].get("seed", -1)))] = path
    return found


def entry_of(run: Run, digest: str) -> Dict[str, Any]:
    """A complete run as one ledger entry (see the module docstring for what is kept)."""
    series = {name: _float32_list(values) for name, values in run.series.items() if name in FULL_SERIES}
    last = {name: _last(values) for name, values in run.series.items() if name not in FULL_SERIES}
    return {
        "format": LEDGER_FORMAT, "name": run.name, "seed": int(run.config.get("seed", -1)), "digest": digest,
        "file": run.path.name, "config": run.config,
        "eval": {key: _json_scalar(value) for key, value in run.eval.items() if np.ndim(value) == 0},
        "attrs": {key: _json_scalar(value) for key, value in run.attrs.items()
                  if key not in _WRITER_ATTRS and np.ndim(value) == 0},
        "env": {key: _json_scalar(value) for key, value in run.env.items() if np.ndim(value) == 0},
        "data_attrs": {key: _json_scalar(value) for key, value in run.data_attrs.items() if np.ndim(value) == 0},
        "warnings": list(run.warnings), "series": series, "last": last,
    }


def _write_run(entry: Mapping[str, Any], out: Path) -> Path:
    """An ordinary run file from a ledger entry, named as the original was (``-1`` on a clash)."""
    stem = Path(entry["file"]).stem
    epochs = max([len(values) for values in entry["series"].values()] + [int(entry["attrs"].get("epochs_completed", 0))])
    recorder = RunRecorder.create(out, stem, json.dumps(entry["config"]))
    columns: Dict[str, np.ndarray] = {}
    for name, values in entry["series"].items():
        # the float32 each value was kept as, exactly
        columns[name] = np.asarray([math.nan if v is None else v for v in values], dtype=np.float32).astype(np.float64)
    for name, value in entry["last"].items():
        column = np.full(epochs, math.nan)
        if epochs:
            column[-1] = math.nan if value is None else value
        columns[name] = column
    recorder.write_epochs(columns)
    recorder.write_eval({key: math.nan if value is None else value for key, value in entry["eval"].items()})
    recorder.finish("complete")
    with recorder.edit() as f:
        for key, value in entry["attrs"].items():
            if value is not None:
                f.attrs[key] = value
        f.attrs[RESTORED_ATTR] = f"ledger {entry.get('part', 'part')}"
        if entry.get("warnings"):
            f.attrs["warnings"] = json.dumps(entry["warnings"])
        env = f.require_group("env")
        for key in list(env.attrs):
            del env.attrs[key]
        for key, value in entry["env"].items():
            if value is not None:
                env.attrs[key] = value
        data = f.require_group("data")
        for key, value in entry["data_attrs"].items():
            if value is not None:
                data.attrs[key] = value
    return recorder.path


def _part_entries(part: Path) -> List[Any]:
    try:
        with gzip.open(part, "rt", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ConfigError(f"ledger: {part} is not a gzip file of JSON lines ({exc})") from None
    entries = []
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
        except ValueError:
            raise ConfigError(f"ledger: {part} line {number} is not JSON") from None
        if isinstance(entry, dict):
            entry["part"] = part.name
        entries.append(entry)
    return entries


def _check_entry(entry: Any, where: str) -> None:
    if not isinstance(entry, dict):
        raise ConfigError(f"ledger: {where}: expected an object")
    for key, kind in _REQUIRED.items():
        if not isinstance(entry.get(key), kind) or isinstance(entry.get(key), bool):
            raise ConfigError(f"ledger: {where}: '{key}' must be {kind.__name__}")
    if entry["format"] != LEDGER_FORMAT:
        raise ConfigError(f"ledger: {where}: format {entry['format']}; this version reads format {LEDGER_FORMAT}")
    name = Path(entry["file"]).name
    if name != entry["file"] or not name.endswith(".h5") or name.startswith("."):
        raise ConfigError(f"ledger: {where}: 'file' must be a plain run file name (*.h5), got {entry['file']!r}")
    for key, values in entry["series"].items():
        if not isinstance(values, list) or not all(v is None or isinstance(v, (int, float)) for v in values):
            raise ConfigError(f"ledger: {where}: series {key!r} must be a list of numbers")
    for key, value in entry["last"].items():
        if value is not None and not isinstance(value, (int, float)):
            raise ConfigError(f"ledger: {where}: last {key!r} must be a number")
    for group in ("eval", "attrs", "env", "data_attrs"):
        for key, value in entry[group].items():
            if not isinstance(value, (str, int, float, bool)) and value is not None:
                raise ConfigError(f"ledger: {where}: {group} {key!r} must be a string or a number")


def _float32_list(values: Any) -> List[Optional[float]]:
    """Values at float32 precision, written with the fewest digits that read back the same
    float32 (a validation accuracy k/n keeps 7–8 digits); NaN as null."""
    out: List[Optional[float]] = []
    for value in np.asarray(values, dtype=np.float32):
        out.append(None if not np.isfinite(value) else float(np.format_float_positional(value, unique=True)))
    return out


def _last(values: Any) -> Optional[float]:
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0 or not np.isfinite(array[-1]):
        return None
    return float(array[-1])


def _json_scalar(value: Any) -> Any:
    """An attribute as JSON holds it: ``plain``, with NaN and infinities as null."""
    value = plain(value)
    return None if isinstance(value, float) and not math.isfinite(value) else value
