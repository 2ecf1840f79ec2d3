"""What ``compare`` and the report's comparison read: runs of one task at a time, each seed once.

A folder may hold runs of several tasks (the demo writes digits classifiers and CartPole
policies side by side). Their scores are different measures, so a difference or an interval
across them means nothing: runs are split by task (its data set, environment or heads) and
each task gets its own tables under a heading. A run given twice (one file in two folders, a
copy, the same config and seed rerun) would pass for another seed and narrow every interval
for nothing, so a replicate counts once (``statistics.replicate_key``). Both are said in one
line each, so nothing is dropped or split silently.
"""

from __future__ import annotations

import html
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from tempdistill.text import printable, printable_lines

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


def by_task(runs: Sequence[Dict[str, Any]]) -> List[Tuple[str, List[Dict[str, Any]]]]:
    """The runs split by ``task_label``, tasks in the order their first run was given."""
    groups: Dict[str, List[Dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(task_label(run["config"]), []).append(run)
    return list(groups.items())


def _preference(run: Dict[str, Any]) -> int:
    """Which of two copies to keep: a complete run with final figures before any other."""
    return 0 if run["status"] == "complete" and run["eval"] else 1


def drop_duplicates(runs: Sequence[Dict[str, Any]]) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """(kept, dropped): one run per replicate (config and seed), in the order given; of copies
    the first complete one is kept, else the first. A file without a config (its writer died
    first) is never taken for a copy: nothing says what it ran."""
    from tempdistill.statistics import replicate_key

    chosen: Dict[str, Dict[str, Any]] = {}
    for run in runs:
        key = replicate_key(run["config"]) if run["config"] else f"unknown {id(run)}"
        if key not in chosen or _preference(run) < _preference(chosen[key]):
            chosen[key] = run
    kept_ids = {id(run) for run in chosen.values()}
    return [r for r in runs if id(r) in kept_ids], [r for r in runs if id(r) not in kept_ids]


def notices(runs: Sequence[Dict[str, Any]], dropped: Sequence[Dict[str, Any]]) -> List[str]:
    """One line for duplicates dropped and one for runs of more than one task, where so."""
    lines = []
    if dropped:
        named = ", ".join(str(r["path"]) for r in dropped[:NAMED_DUPLICATES])
        more = f" and {len(dropped) - NAMED_DUPLICATES} more" if len(dropped) > NAMED_DUPLICATES else ""
        runs_word = "run" if len(dropped) == 1 else "runs"
        lines.append(f"dropped {len(dropped)} duplicate {runs_word} (same config and seed as a run kept; a seed "
                     f"counts once): {named}{more}")
    tasks = by_task(runs)
    if len(tasks) > 1:
        listed = "; ".join(f"{label} ({len(group)} runs)" for label, group in tasks)
        lines.append(f"runs of {len(tasks)} different tasks were given; each is compared on its own: {listed}")
    return lines


def comparison_text(runs: Sequence[Dict[str, Any]], statistics: bool = True) -> str:
    """The runs table and (with ``statistics``) the statistics over seeds, per task, after the
    notices; a single task without duplicates reads as one plain table."""
    from tempdistill.report import comparison_rows, statistics_text, table

    kept, dropped = drop_duplicates(runs)
    tasks = by_task(kept)
    parts = ["\n".join(notices(kept, dropped))] if dropped or len(tasks) > 1 else []
    for label, group in tasks:
        section = table(*comparison_rows(group))
        extra = statistics_text(group) if statistics else ""
        if extra:
            section += "\n\n" + extra
        parts.append(f"== {label}: {len(group)} runs ==\n{section}" if len(tasks) > 1 else section)
    return printable_lines("\n\n".join(parts))


def comparison_html(runs: Sequence[Dict[str, Any]]) -> str:
    """The same as HTML: the notices, then per task a heading, the runs table and the
    statistics over seeds, in one ``<section id="comparison">``."""
    from tempdistill.report import comparison_rows, format_value, statistics_text

    kept, dropped = drop_duplicates(runs)
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
