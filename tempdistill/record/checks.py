"""What a run file must hold before anything reads it: the one check between opening a
``.h5`` and using it.

A run file is data from outside the program: a file a colleague sent, a run killed mid-write,
a disk that lost a block, a file made to break readers. Every reader (``read_run``, hence
``show``, ``compare``, ``report``, ``export``) opens it through ``check_run_file``, which
checks the types and shapes the format promises (``tempdistill.record.run_file``'s format history)
against what HDF5 *declares*, before any data is read: a per-epoch series that claims four
billion entries (a few hundred kilobytes on disk, compressed) is refused from its shape, not
found out by allocating 30 GiB. Each failure is one ``RunFileError`` line naming the file and
the field, which the CLI prints and exits 2 with, as for any other bad input.

What is checked, per group (absent groups are fine: a run killed early lacks most of them):

* root attrs: ``status`` one of ``STATUSES``; ``format_version`` and ``epochs_completed``
  non-negative integers; the text attrs text; ``overrides`` and ``warnings`` JSON lists of text;
* ``/config``: one string holding a JSON object whose sections readers use have their
  config types (``name`` text, ``student``/``distill``/... objects, ``heads`` a list of objects);
* ``/eval``: scalar attrs; a figure readers compute with (accuracy, return, energy, ...) a number;
* ``/metrics``, ``/temperature``: 1-D numbers, at most ``MAX_EPOCHS`` and no longer than
  ``/metrics/epoch``; ``/steps``: 1-D numbers, at most ``MAX_STEPS``, none longer than
  ``/steps/step``;
* ``/student`` attrs: ``backend`` text, ``options``/``describe``/``task_facts`` JSON objects,
  ``input_dim``/``num_classes`` positive integers; ``/data`` attr ``normalization`` a JSON object;
* every dataset read eagerly: numbers or text, at most ``MAX_ARRAY_BYTES`` each and
  ``MAX_EAGER_BYTES`` together; no soft, external or virtual links (a file reads only itself);
* ``/traces/<epoch>``: integer epoch names; every array at most ``MAX_ARRAY_BYTES``;
  ``spikes`` 3-D (probe, time, neuron); ``probe_rows``/``probe_labels`` one entry per probe.
  Traces are not read here, nor by ``read_run``: they are read when a figure asks for them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

import h5py
import numpy as np

from tempdistill.config import ConfigError
from tempdistill.text import printable

STATUSES = ("running", "complete", "failed", "interrupted")

MAX_EPOCHS = 1_000_000  # per-epoch series entries
MAX_STEPS = 10_000_000  # per-step series entries (80 MB of float64)
MAX_ARRAY_BYTES = 1 << 29  # any one array (512 MiB)
MAX_EAGER_BYTES = 1 << 31  # all that read_run reads at once (2 GiB)
MAX_ATTR_ELEMENTS = 1 << 20
TEXT_ATTRS = ("created", "finished", "error", "tempdistill_version", "name", "student_backend")
JSON_LIST_ATTRS = ("overrides", "warnings")
EAGER_GROUPS = ("metrics", "steps", "temperature", "episodes", "student", "data", "eval")
# Config sections a reader looks into: always objects (the first four), or objects or null.
CONFIG_OBJECTS = ("data", "teacher", "student", "distill")
CONFIG_OPTIONAL_OBJECTS = ("record", "env", "eval", "sweep")
# /eval figures readers compute with (score, tables, figures): numbers, never text.
NUMERIC_EVAL = re.compile(r"accuracy|return|energy|spikes|synops|macs|params|param_ratio|latency|wall_seconds|"
                          r"best_val_epoch|best_val_score|temperature")


class RunFileError(ConfigError):
    """A run file (or a file exported from one) that does not hold what its format promises;
    one line naming the file and the field. A ``ConfigError``: bad input, exit 2."""


def fail(path: str | Path, field: str, problem: str) -> RunFileError:
    """The error for ``field`` of the file at ``path``, on one printable line."""
    return RunFileError(printable(f"{path}: {field}: {problem}"))


def quoted(value: Any, limit: int = 60) -> str:
    """A value from a file as it may appear in a message: repr, shortened, printable."""
    text = repr(value)
    return printable(text if len(text) <= limit else text[: limit - 3] + "...")


def check_run_file(f: h5py.File, path: str | Path) -> None:
    """Raise ``RunFileError`` unless the open run file ``f`` holds what the format promises
    (the module docstring lists what); reads attributes and shapes, never a series' data."""
    _check_root_attrs(f, path)
    parse_config(f, path)
    for name in ("env", *EAGER_GROUPS, "traces"):
        if name in f and not isinstance(_item(f, name, path), h5py.Group):
            raise fail(path, f"/{name}", "expected a group")
    epochs = _series_bound(f, "metrics", "epoch", MAX_EPOCHS, path)
    for group in ("metrics", "temperature"):
        _check_series(f, group, epochs, path, _bound_reason(epochs, MAX_EPOCHS, "/metrics/epoch"))
    steps = _series_bound(f, "steps", "step", MAX_STEPS, path)
    _check_series(f, "steps", steps, path, _bound_reason(steps, MAX_STEPS, "/steps/step"))
    _check_student_attrs(f, path)
    _check_eval_attrs(f, path)
    _check_json_object_attr(f, "data", "normalization", path)
    total = 0
    for group in EAGER_GROUPS:
        if group in f:
            for name, dataset in walk(f[group], path):
                total += _check_array(dataset, name, path)
            _check_attr_sizes(f[group], path)
    if total > MAX_EAGER_BYTES:
        raise fail(path, "file", f"declares {total / 2**30:.1f} GiB of arrays; a run holds at most "
                                 f"{MAX_EAGER_BYTES / 2**30:.0f} GiB")
    if "traces" in f:
        for epoch in f["traces"]:
            trace_epoch(f, epoch, path)
            check_traces(f["traces"][epoch], path)


def parse_config(f: h5py.File, path: str | Path) -> Dict[str, Any]:
    """The resolved config of a run: ``/config`` as a JSON object ({} when the file has none)."""
    if "config" not in f:
        return {}
    item = _item(f, "config", path)
    if not isinstance(item, h5py.Dataset) or item.shape != () or h5py.check_string_dtype(item.dtype) is None:
        shape = getattr(item, "shape", None)
        dtype = getattr(item, "dtype", "a group")
        raise fail(path, "/config", f"expected one string of JSON text, got {dtype} of shape {shape}")
    text = item[()]
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(path, "/config", f"not JSON text ({exc.msg} at character {exc.pos})") from None
    if not isinstance(config, dict):
        raise fail(path, "/config", f"expected a JSON object, got a JSON {type(config).__name__}")
    _check_config_sections(config, path)
    return config


def _check_config_sections(config: Dict[str, Any], path: str | Path) -> None:
    """The parts of a resolved config that readers index into have the config's types."""
    def expect(ok: bool, field: str, what: str) -> None:
        if not ok:
            raise fail(path, f"/config {field}", f"expected {what}")

    expect(isinstance(config.get("name", ""), str), "name", "text")
    for section in CONFIG_OBJECTS:
        expect(isinstance(config.get(section, {}), dict), section, "an object")
    for section in CONFIG_OPTIONAL_OBJECTS:
        expect(isinstance(config.get(section), (dict, type(None))), section, "an object or null")
    expect(isinstance(config.get("student", {}).get("backend", ""), str), "student.backend", "text")
    expect(isinstance(config.get("distill", {}).get("temperature", {}), dict), "distill.temperature", "an object")
    expect(isinstance(config.get("teacher", {}).get("checkpoint"), (str, type(None))), "teacher.checkpoint",
           "text or null")
    if config.get("env") is not None:
        expect(isinstance(config["env"].get("id"), str), "env.id", "text")
    heads = config.get("heads")
    if heads is not None:
        expect(isinstance(heads, list), "heads", "a list")
        for i, head in enumerate(heads):
            expect(isinstance(head, dict) and all(isinstance(head.get(k), str) for k in ("name", "env", "checkpoint"))
                   and isinstance(head.get("temperature"), (dict, type(None))), f"heads[{i}]",
                   "an object with name, env and checkpoint as text")


def trace_epoch(f: h5py.File, name: str, path: str | Path) -> int:
    """The epoch a ``/traces`` group name stands for (a non-negative integer)."""
    if not re.fullmatch(r"[0-9]{1,9}", name):
        raise fail(path, f"/traces/{name}", "expected a group named by its epoch (0, 1, ...)")
    return int(name)


def check_traces(group: h5py.Group, path: str | Path) -> None:
    """An epoch's traces: arrays of bounded size, spikes (probe, time, neuron), one probe row
    and label per probe."""
    if not isinstance(group, h5py.Group):
        raise fail(path, group.name, "expected a group of trace arrays")
    probes: Optional[int] = None
    for name, dataset in walk(group, path):
        _check_array(dataset, name, path)
        if name.rsplit("/", 1)[-1].endswith("spikes"):
            if dataset.ndim != 3:
                raise fail(path, name, f"expected spikes of shape (probe, time, neuron), got shape {dataset.shape}")
            probes = dataset.shape[0] if probes is None else probes
    for facts in ("probe_rows", "probe_labels"):
        if facts in group:
            dataset = group[facts]
            if dataset.ndim != 1 or (probes is not None and dataset.shape[0] != probes):
                raise fail(path, dataset.name, f"expected one entry per probe ({probes}), got shape {dataset.shape}")


def walk(group: h5py.Group, path: str | Path) -> Iterator[Tuple[str, h5py.Dataset]]:
    """Every dataset under ``group`` with its full name, refusing links that leave the file's
    own objects (soft, external) and virtual datasets (they read other files)."""
    for key in group:
        item = _item(group, key, path)
        if isinstance(item, h5py.Group):
            yield from walk(item, path)
        else:
            if item.is_virtual:
                raise fail(path, item.name, "a virtual dataset (it reads other files); a run file holds its own data")
            yield item.name, item


def _item(group: h5py.Group, key: str, path: str | Path) -> Any:
    link = group.get(key, getlink=True)
    if not isinstance(link, h5py.HardLink):
        raise fail(path, f"{group.name.rstrip('/')}/{key}", f"a {type(link).__name__}; a run file holds its own data")
    return group[key]


def _check_root_attrs(f: h5py.File, path: str | Path) -> None:
    _check_attr_sizes(f, path)
    attrs = f.attrs
    if "status" in attrs:
        status = _text_attr(f, "status", path)
        if status not in STATUSES:
            raise fail(path, "status", f"got {quoted(status)}; a run's status is one of {', '.join(STATUSES)}")
    for name in ("format_version", "epochs_completed"):
        if name in attrs:
            value = attrs[name]
            if not _is_integer(value) or int(value) < 0:
                raise fail(path, name, f"expected a non-negative integer, got {quoted(plain(value))}")
    for name in TEXT_ATTRS:
        if name in attrs:
            _text_attr(f, name, path)
    for name in JSON_LIST_ATTRS:
        if name in attrs:
            text = _text_attr(f, name, path)
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = None
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise fail(path, name, "expected a JSON list of strings")


def _check_student_attrs(f: h5py.File, path: str | Path) -> None:
    if "student" not in f:
        return
    student = f["student"]
    if "backend" in student.attrs:
        _text_attr(student, "backend", path)
    for name in ("options", "describe", "task_facts"):
        _check_json_object_attr(f, "student", name, path)
    for name in ("input_dim", "num_classes"):
        if name in student.attrs:
            value = student.attrs[name]
            if not _is_integer(value) or int(value) < 1:
                raise fail(path, f"/student {name}", f"expected a positive integer, got {quoted(plain(value))}")


def _check_eval_attrs(f: h5py.File, path: str | Path) -> None:
    if "eval" not in f:
        return
    for name in f["eval"].attrs:
        value = plain(f["eval"].attrs[name])
        if not isinstance(value, (str, int, float)):
            raise fail(path, f"/eval {name}", f"expected a number or text, got {quoted(value)}")
        if NUMERIC_EVAL.search(name) and not isinstance(value, (int, float)):
            raise fail(path, f"/eval {name}", f"expected a number, got {quoted(value)}")


def _check_json_object_attr(f: h5py.File, group: str, name: str, path: str | Path) -> None:
    if group not in f or name not in f[group].attrs:
        return
    text = _text_attr(f[group], name, path)
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise fail(path, f"/{group} {name}", "expected a JSON object")


def _text_attr(obj: h5py.HLObject, name: str, path: str | Path) -> str:
    value = plain(obj.attrs[name])
    if not isinstance(value, str):
        where = name if obj.name == "/" else f"{obj.name} {name}"
        raise fail(path, where, f"expected text, got {quoted(value)}")
    return value


def _series_bound(f: h5py.File, group: str, name: str, limit: int, path: str | Path) -> int:
    """The length every series of ``group`` must keep within: that of its index series
    (``epoch``, ``step``) where there is one, else ``limit``."""
    if group not in f or name not in f[group]:
        return limit
    dataset = _item(f[group], name, path)
    _check_series_shape(dataset, limit, path, f"at most {limit:,}")
    return dataset.shape[0]


def _bound_reason(bound: int, limit: int, index: str) -> str:
    return f"at most {limit:,}" if bound == limit else f"{index} has {bound:,}"


def _check_series(f: h5py.File, group: str, bound: int, path: str | Path, why: str) -> None:
    if group not in f:
        return
    for key in f[group]:
        dataset = _item(f[group], key, path)
        if not isinstance(dataset, h5py.Dataset):
            raise fail(path, f"/{group}/{key}", "expected a 1-D series of numbers, got a group")
        _check_series_shape(dataset, bound, path, why)


def _check_series_shape(dataset: Any, bound: int, path: str | Path, why: str) -> None:
    if not isinstance(dataset, h5py.Dataset) or dataset.ndim != 1 or dataset.dtype.kind not in "biuf":
        described = f"{dataset.dtype} of shape {dataset.shape}" if isinstance(dataset, h5py.Dataset) else "a group"
        raise fail(path, dataset.name, f"expected a 1-D series of numbers, got {described}")
    if dataset.shape[0] > bound:
        raise fail(path, dataset.name, f"declares {dataset.shape[0]:,} entries ({why})")


def _check_array(dataset: h5py.Dataset, name: str, path: str | Path) -> int:
    """The bytes ``dataset`` holds once read, if it is numbers or text of a sane size."""
    if dataset.dtype.kind not in "biuf" and h5py.check_string_dtype(dataset.dtype) is None:
        raise fail(path, name, f"expected numbers or text, got dtype {dataset.dtype}")
    size = int(np.prod(dataset.shape, dtype=object)) * dataset.dtype.itemsize if dataset.shape is not None else 0
    if size > MAX_ARRAY_BYTES:
        raise fail(path, name, f"declares shape {dataset.shape} ({size / 2**30:.1f} GiB); an array in a run file "
                               f"holds at most {MAX_ARRAY_BYTES / 2**20:.0f} MiB")
    return size


def _check_attr_sizes(obj: h5py.HLObject, path: str | Path) -> None:
    for name in obj.attrs:
        shape = h5py.h5a.open(obj.id, name.encode()).shape
        if shape and int(np.prod(shape, dtype=object)) > MAX_ATTR_ELEMENTS:
            raise fail(path, f"{obj.name} attr {name}", f"declares shape {shape}")


def _is_integer(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def plain(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value: bytes decoded, numpy scalars unwrapped."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value
