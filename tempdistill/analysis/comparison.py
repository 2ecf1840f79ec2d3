"""What ``compare`` and the report's comparison show: runs of one task at a time, each seed once.

A folder may hold runs of several tasks (the demo writes digits classifiers and CartPole
policies side by side). Their scores are different measures, so a difference or an interval
across them means nothing: runs are split by task (its data set, environment or heads) and
each task gets its own tables under a heading. A run given twice (one file in two folders, a
copy, the same config and seed rerun) would pass for another seed and narrow every interval
for nothing, so a replicate counts once (``statistics.replicate_key``). Both are said in one
line each, so nothing is dropped or split silently.
"""

from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from tempdistill.record.run import Run
from tempdistill.record.run_file import find_runs
from tempdistill.analysis.statistics import difference_table, flatten, group_table, replicate_key
from tempdistill.text import format_value, printable, printable_lines, table

# How many dropped files a notice names before it only counts.
NAMED_DUPLICATES = 3


def task_label(config: Mapping[str, Any]) -> str:
    """What a run is scored on: 'classification on digits', 'policy on CartPole-v1',
    'multitask on CartPole-v1 + Acrobot-v1' (a data file by its path)."""
    task = config.get("task", "classification")
    if task == "policy":
        where = (config.get("env") or {}).get("id", "?")
    elif task == "multitask":
        where = " + ".join(str(head.get("env", "?")) for head in config.get("heads") or [])
    else:
        data = config.get("data") or {}
        where = str(data.get("path") or data.get("name", "?"))
    return f"{task} on {where}"


def by_task(runs: Sequence[Run]) -> List[Tuple[str, List[Run]]]:
    """The runs split by ``task_label``, tasks in the order their first run was given."""
    groups: Dict[str, List[Run]] = {}
    for run in runs:
        groups.setdefault(task_label(run.config), []).append(run)
    return list(groups.items())


def with_data_identity(runs: Sequence[Run]) -> List[Run]:
    """The runs, each whose data were arrays given in memory carrying their sizes in its config
    (``data.arrays``: ``X 4000x40, X_val 600x40, ...`` from ``/data``'s ``arrays_shapes``). Such
    a config names no file, so runs on arrays of other sizes (more training rows, other
    features) would otherwise read as one setting; with it they are levels of a factor, seed
    for seed. Arrays of the same sizes but other content stay one setting, and are never taken
    for copies of each other (``drop_duplicates`` reads the content's fingerprint)."""
    told: List[Run] = []
    for run in runs:
        data = run.config.get("data") if run.config else None
        shapes = _arrays_shapes(run)
        if shapes and isinstance(data, Mapping) and data.get("name") == "arrays":
            run = dataclasses.replace(run, config={**run.config, "data": {**data, "arrays": shapes}})
        told.append(run)
    return told


def _arrays_shapes(run: Run) -> str:
    try:
        shapes = json.loads(str((run.data_attrs or {}).get("arrays_shapes", "")) or "{}")
    except ValueError:
        return ""
    return ", ".join(f"{name} {'x'.join(str(d) for d in shape)}" for name, shape in shapes.items()
                     if not name.startswith("y")) if isinstance(shapes, dict) else ""


def _preference(run: Run) -> int:
    """Which of two copies to keep: a complete run with final figures before any other."""
    return 0 if run.status == "complete" and run.eval else 1


def drop_duplicates(runs: Sequence[Run]) -> Tuple[List[Run], List[Run]]:
    """(kept, dropped): one run per replicate (config and seed, and the arrays' content where
    they were given in memory), in the order given; of copies
    the first complete one is kept, else the first. A file without a config (its writer died
    first) is never taken for a copy: nothing says what it ran."""
    chosen: Dict[str, Run] = {}
    for run in runs:
        key = replicate_key(run.config) if run.config else f"unknown {id(run)}"
        key += str((run.data_attrs or {}).get("arrays_sha256", ""))  # other arrays given in memory: not a copy
        if key not in chosen or _preference(run) < _preference(chosen[key]):
            chosen[key] = run
    kept_ids = {id(run) for run in chosen.values()}
    return [r for r in runs if id(r) in kept_ids], [r for r in runs if id(r) not in kept_ids]


def notices(runs: Sequence[Run], dropped: Sequence[Run]) -> List[str]:
    """One line for duplicates dropped and one for runs of more than one task, where so."""
    lines = []
    if dropped:
        named = ", ".join(str(r.path) for r in dropped[:NAMED_DUPLICATES])
        more = f" and {len(dropped) - NAMED_DUPLICATES} more" if len(dropped) > NAMED_DUPLICATES else ""
        runs_word = "run" if len(dropped) == 1 else "runs"
        lines.append(f"dropped {len(dropped)} duplicate {runs_word} (same config and seed as a run kept; a seed "
                     f"counts once): {named}{more}")
    tasks = by_task(runs)
    if len(tasks) > 1:
        listed = "; ".join(f"{label} ({len(group)} runs)" for label, group in tasks)
        lines.append(f"runs of {len(tasks)} different tasks were given; each is compared on its own: {listed}")
    return lines


def comparison_text(runs: Sequence[Run], statistics: bool = True) -> str:
    """The runs table and (with ``statistics``) the statistics over seeds, per task, after the
    notices; a single task without duplicates reads as one plain table."""
    kept, dropped = drop_duplicates(with_data_identity(runs))
    tasks = by_task(kept)
    parts = ["\n".join(notices(kept, dropped))] if dropped or len(tasks) > 1 else []
    for label, group in tasks:
        section = table(*comparison_rows(group))
        extra = statistics_text(group) if statistics else ""
        if extra:
            section += "\n\n" + extra
        parts.append(f"== {label}: {len(group)} runs ==\n{section}" if len(tasks) > 1 else section)
    return printable_lines("\n\n".join(parts))


def comparison_html(runs: Sequence[Run]) -> str:
    """The same as HTML: the notices, then per task a heading, the runs table and the
    statistics over seeds, in one ``<section id="comparison">``."""
    kept, dropped = drop_duplicates(with_data_identity(runs))
    tasks = by_task(kept)
    parts = [f'<p class="notice">{html.escape(printable(line))}</p>' for line in notices(kept, dropped)]
    for label, group in tasks:
        headers, rows = comparison_rows(group)
        head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
        body = "\n".join("<tr>" + "".join(f"<td>{html.escape(printable(format_value(v)))}</td>" for v in row) + "</tr>"
                         for row in rows)
        if len(tasks) > 1:
            parts.append(f"<h3>{html.escape(printable(label))}: {len(group)} runs</h3>")
        parts.append(f'<table class="comparison"><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>')
        statistics = statistics_text(group)
        if statistics:
            parts.append(f'<pre class="statistics">{html.escape(printable_lines(statistics))}</pre>')
    return '<section id="comparison">\n' + "\n".join(parts) + "\n</section>"


COMPARE_COLUMNS = (
    ("run", lambda r: r.label),
    ("backend", lambda r: r.config.get("student", {}).get("backend")),
    ("alpha", lambda r: r.config.get("distill", {}).get("alpha")),
    ("schedule", lambda r: _schedule_label(r.config)),
    ("status", lambda r: r.status),
    ("select", lambda r: _selected(r)),
    ("accuracy", lambda r: _test_figure(r, "student_accuracy", "val_accuracy")),
    ("teacher_acc", lambda r: r.eval.get("teacher_accuracy")),
    ("return", lambda r: _test_figure(r, "student_return_mean", "return_mean")),
    ("return_std", lambda r: _test_figure(r, "student_return_std")),
    ("teacher_return", lambda r: r.eval.get("teacher_return_mean")),
    ("retained", lambda r: r.eval.get("return_retained")),
    ("params", lambda r: r.eval.get("student_params")),
    ("param_ratio", lambda r: r.eval.get("param_ratio")),
    ("spikes/sample", lambda r: r.eval.get("spikes_per_sample")),
    ("synops/sample", lambda r: r.eval.get("synops_per_sample")),
    ("MACs/sample", lambda r: r.eval.get("macs_per_sample")),
    ("energy_nJ(est)", lambda r: r.eval.get("energy_nj_per_sample")),
    ("latency_ms/sample", lambda r: _latency(r)),
    ("wall_s", lambda r: r.eval.get("wall_seconds", _last(r, "wall_seconds"))),
)


def _latency(run: Run) -> Any:
    """The student's latency where it was measured as ``tempdistill.core.latency`` does (a fixed
    batch, median of repeats); earlier files timed one pass, which is noise, and show none."""
    return run.eval.get("student_latency_ms_per_sample") if "latency_batch" in run.eval else None


def _selected(run: Run) -> Any:
    """'best_val@E' (1-based epoch) for a run that reports its best-validation weights, else None."""
    epoch = run.eval.get("best_val_epoch")
    return f"best_val@{int(epoch) + 1}" if run.eval.get("select") == "best_val" and epoch is not None else None


def _test_figure(run: Run, key: str, old_series: Optional[str] = None) -> Any:
    """A test figure of the weights the run selected without test data (the final student's,
    or the best-validation epoch's). A format 1–2 file without final figures falls back to its
    last per-epoch value, which those formats measured on the same held-out rows; from format
    3 the per-epoch series are validation and never stand in for a test figure."""
    selected = f"{key}_best_val" if run.eval.get("select") == "best_val" else key
    if selected in run.eval:
        return run.eval[selected]
    if key in run.eval:
        return run.eval[key]
    return _last(run, old_series) if old_series and run.format_version < 3 else None


def _last(run: Run, metric: str) -> Any:
    series = run.series.get(metric)
    return float(series[-1]) if series is not None and len(series) else None


def _schedule_label(config: Dict[str, Any]) -> str:
    shared = config.get("distill", {}).get("temperature", {})
    if config.get("heads"):  # one schedule per head
        return " ".join(f"{h['name']}:{_section_label(h.get('temperature') or shared)}" for h in config["heads"])
    return _section_label(shared)


def _section_label(temperature: Dict[str, Any]) -> str:
    section = dict(temperature)
    name = section.pop("schedule", "?")
    return name + "(" + ",".join(f"{k}={v}" for k, v in sorted(section.items())) + ")"


def _flatten_config(config: Dict[str, Any]) -> Dict[str, str]:
    """Dotted config keys with their values as JSON text (comparable across runs)."""
    return {key: json.dumps(value, sort_keys=True, separators=(",", ":")) for key, value in flatten(config).items()}


# Keys that never tell runs apart for a reader (where files went, how often traces were taken).
_UNLABELLED = ("name", "record.", "sweep.")


def run_labels(runs: Sequence[Run]) -> List[str]:
    """A label per run: its name plus ``key=value`` for every config key that differs among
    the runs sharing that name (the last part of the key where that is unambiguous), so runs
    made from one config with ``--set`` or a grid are told apart and distinct names stay short.
    A run alone is labelled by the ``--set``/grid overrides it was made with."""
    flats = [_flatten_config(r.config) for r in runs]
    names = [r.config.get("name", r.path.stem) for r in runs]
    labels = []
    for run, flat, name in zip(runs, flats, names):
        if len(runs) == 1:
            parts = run.overrides()
        else:
            group = [f for f, n in zip(flats, names) if n == name]
            keys = sorted({k for f in group for k in f})
            varying = [k for k in keys if not k.startswith(_UNLABELLED) and len({f.get(k) for f in group}) > 1]
            shorts = [k.rsplit(".", 1)[-1] for k in varying]
            parts = [f"{short if shorts.count(short) == 1 else key}={_plain_value(flat.get(key))}"
                     for key, short in zip(varying, shorts)]
        # No spaces: a label stays one column for awk, cut and the column checks in tests.
        labels.append(f"{name}[{','.join(parts)}]" if parts else name)
    return labels


def _plain_value(text: Any) -> str:
    if text is None:
        return "-"
    value = json.loads(text)
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def read_runs(paths: Sequence[str | Path]) -> List[Run]:
    """The runs at ``paths`` (files or directories), each with its ``label`` among them
    (``run_labels``)."""
    runs = [Run.read(p) for p in find_runs(paths)]
    return [dataclasses.replace(run, label=label) for run, label in zip(runs, run_labels(runs))]


def compare_runs(paths: Sequence[str | Path], statistics: bool = True) -> str:
    """One row per run: what a spiking student costs and scores against the dense baseline;
    then, where runs repeat over seeds or differ in a two-level factor, the statistics. Runs of
    different tasks get a table each, and a run given twice counts once
    (``tempdistill.analysis.comparison``)."""
    runs = read_runs(paths)
    if not runs:
        return "no runs found"
    return comparison_text(runs, statistics)


def comparison_rows(runs: Sequence[Run]) -> tuple[List[str], List[List[Any]]]:
    """The comparison's columns (those some run has) and one row per run."""
    columns = [(name, get) for name, get in COMPARE_COLUMNS if any(get(r) is not None for r in runs)]
    return [name for name, _ in columns], [[get(r) for _, get in columns] for r in runs]


def runs_frame(paths: Sequence[str | Path]) -> Any:
    """A pandas DataFrame with one row per run (files, or directories searched for them): the
    run's path, status and seed, its final figures (``/eval``, prefixed ``eval.``), the last
    value of every per-epoch metric (``final.``) and every config key flattened
    (``config.distill.temperature.schedule``), for analysis in a notebook."""
    import pandas as pd

    rows = []
    for run in read_runs(paths):
        row: Dict[str, Any] = {"path": str(run.path), "status": run.status, "seed": run.config.get("seed")}
        row.update({f"config.{k}": (json.dumps(v) if isinstance(v, (list, dict)) else v)
                    for k, v in flatten(run.config).items()})
        row.update({f"eval.{k}": v for k, v in run.eval.items() if not hasattr(v, "shape") or v.shape == ()})
        row.update({f"final.{k}": float(v[-1]) for k, v in run.series.items() if len(v)})
        rows.append(row)
    return pd.DataFrame(rows)


def statistics_text(runs: Sequence[Run]) -> str:
    """Groups of seeds (mean ± std and 95% t-interval of the final figures) and the
    paired differences of every two-level factor, with verdicts (``tempdistill.analysis.statistics``)."""
    complete = [r for r in runs if r.status == "complete" and r.eval]
    if len(complete) < 2:
        return ""
    parts = []
    header, rows = group_table(complete)
    if any(row[1] > 1 for row in rows):
        parts.append("per group of seeds (final figures; 95% t-interval of the mean):\n"
                     + table(header, rows))
    header, rows = difference_table(complete)
    if rows:
        parts.append("paired differences over matching seeds (second level minus first; a verdict needs the 95% "
                     "interval to exclude 0):\n" + table(header, rows))
    return "\n\n".join(parts)
