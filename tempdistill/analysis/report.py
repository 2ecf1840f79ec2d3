"""Reading runs back for people: one run's summary, and the report (figures and pages) of many.

The comparison tables themselves are ``tempdistill.analysis.comparison``'s."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from tempdistill.analysis.comparison import comparison_html, comparison_text, read_runs
from tempdistill.analysis.rasters import raster_figure
from tempdistill.record.run import Run
from tempdistill.record.run_file import find_runs
from tempdistill.text import code_fence, format_value, markdown, plot_label, printable, table

EPOCH_COLUMNS = ("epoch", "temperature", "loss", "kd_loss", "ce_loss", "kl", "teacher_entropy", "student_entropy",
                 "val_accuracy", "return_mean", "action_agreement", "dagger_beta")


HEADLINE = (
    ("student accuracy", "student_accuracy", 4), ("teacher accuracy", "teacher_accuracy", 4),
    ("student return", "student_return_mean", 1), ("teacher return", "teacher_return_mean", 1),
    ("random return", "random_return_mean", 1), ("return retained", "return_retained", 3),
)


def headline(eval_values: Dict[str, Any]) -> str:
    """The test figures of a run in one line, whatever its task; with ``distill.select:
    best_val`` the best-validation epoch's figures first, then the final student's."""
    parts = []
    if "best_val_epoch" in eval_values:
        best = [f"{label} {eval_values[key + '_best_val']:.{digits}f}" for label, key, digits in HEADLINE
                if key + "_best_val" in eval_values]
        parts.append(f"best_val (epoch {int(eval_values['best_val_epoch']) + 1}): " + "  ".join(best) + "  final:")
    parts += [f"{label} {eval_values[key]:.{digits}f}" for label, key, digits in HEADLINE if key in eval_values]
    return "  ".join(parts)


def _teacher_label(config: Dict[str, Any]) -> str:
    if config.get("heads"):
        return "; ".join(f"{h['name']}: {Path(h['checkpoint']).name} on {h['env']}" for h in config["heads"])
    teacher = config.get("teacher", {})
    if teacher.get("source") == "logits":
        return "stored logits"
    if teacher.get("source") == "module":
        return "a module given in Python"
    if teacher.get("factory"):
        return f"{teacher['factory']} with {Path(str(teacher.get('checkpoint'))).name}"
    if teacher.get("checkpoint"):
        return Path(teacher["checkpoint"]).name + (f" on {config['env']['id']}" if config.get("env") else "")
    return str(teacher.get("hidden"))


def show_run(path: str | Path) -> str:
    """A one-screen summary and the per-epoch table of one run."""
    run = Run.read(path)
    cfg = run.config
    student = cfg.get("student", {})
    temperature: Any = cfg.get("distill", {}).get("temperature", {})
    if cfg.get("heads"):  # one schedule per head
        temperature = {h["name"]: h.get("temperature") or temperature for h in cfg["heads"]}
    epochs_done = len(run.series.get("epoch", []))
    overrides = run.overrides()
    lines = [
        f"run      {run.path}",
        f"name     {cfg.get('name', '?')}   status {run.status}" + (f"   error {run.attrs['error']}" if "error" in run.attrs else ""),
        f"student  {student.get('backend', '?')} hidden={student.get('hidden')}   teacher {_teacher_label(cfg)}",
        f"distill  alpha={cfg.get('distill', {}).get('alpha')}  temperature={temperature}",
        f"epochs   {epochs_done} of {cfg.get('distill', {}).get('epochs', '?')} recorded",
    ]
    if overrides:
        lines.append("set      " + "  ".join(overrides))
    lines += [f"log      {w}" for w in run.warnings]
    if run.eval:
        lines.append("eval     " + "  ".join(f"{k}={format_value(v)}" for k, v in sorted(run.eval.items()) if not hasattr(v, "shape")))
    lines = [printable(line) for line in lines]  # text from the file, as the terminal is to show it
    metrics = run.series
    columns = [c for c in EPOCH_COLUMNS if c in metrics]
    if columns and epochs_done:
        rows = [[float(metrics[c][i]) if i < len(metrics[c]) else None for c in columns] for i in range(epochs_done)]
        for row in rows:
            row[0] = int(row[0]) + 1 if row[0] is not None else None  # 1-based, as in report figures
        lines += ["", table(columns, rows)]
    return "\n".join(lines)


def entropy_table(rows: Sequence[Dict[str, float]], num_classes: int) -> str:
    """Soft-label entropy per temperature, in nats and as % of the maximum log K."""
    return table(
        ["T", "entropy_mean", "entropy_std", f"% of log {num_classes}"],
        [[r["temperature"], r["mean"], r["std"], r["percent_of_max"]] for r in rows],
    )


def entropy_plot(rows: Sequence[Dict[str, float]], num_classes: int, path: str | Path, title: str) -> Path:
    """Entropy (mean ± std) against T on a log axis, with log K as the uniform ceiling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    temps = [r["temperature"] for r in rows]
    means = [r["mean"] for r in rows]
    stds = [r["std"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.errorbar(temps, means, yerr=stds, marker="o", capsize=3, label="teacher soft labels (mean ± std)")
    ax.axhline(math.log(num_classes), color="grey", linestyle="--", label=f"log K = {math.log(num_classes):.2f} (uniform)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("temperature T")
    ax.set_ylabel("entropy (nats), validation split")
    ax.set_title(plot_label(title))
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


REPORT_SERIES = (
    ("val_accuracy", "validation accuracy (eval T)"),
    ("return_mean", "validation return (greedy, eval T)"),
    ("temperature", "temperature T (epoch mean)"),
    ("kl", "teacher-student KL at T"),
    ("kl_t1", "teacher-student KL at T = 1"),
    ("student_entropy", "student soft-label entropy at T (nats)"),
    ("spikes_per_sample", "spikes per sample (spiking students)"),
)


def run_colours(runs: Sequence[Run]) -> Dict[Path, Any]:
    """One colour per run file, the same in every figure of a report."""
    import matplotlib

    cycle = matplotlib.colormaps["tab10" if len(runs) <= 10 else "tab20"]
    return {run.path: cycle(i % cycle.N) for i, run in enumerate(runs)}


LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "v", "D", "P", "X")


def line_style(index: int, points: int) -> Dict[str, Any]:
    """Dashes and markers for the ``index``-th curve of a figure, so that curves drawn on top
    of one another (runs that agree exactly) stay visible: each has its own dash pattern and
    hollow marker of its own size, its markers at its own offset along the curve."""
    every = max(1, points // 8)
    return {"linestyle": LINE_STYLES[index % len(LINE_STYLES)], "marker": MARKERS[index % len(MARKERS)],
            "markersize": 4 + 1.5 * (index % 4), "markerfacecolor": "none", "markevery": (index % every, every),
            "linewidth": 1.4}


def same_as_earlier(curves: Sequence[Any]) -> List[Optional[int]]:
    """For each curve, the index of the first earlier curve with exactly its values (drawn
    over it, it would hide it), else None; the legend says so."""
    found: List[Optional[int]] = []
    for i, curve in enumerate(curves):
        match = next((j for j in range(i) if found[j] is None and len(curves[j]) == len(curve)
                      and np.array_equal(np.asarray(curves[j]), np.asarray(curve), equal_nan=True)), None)
        found.append(match)
    return found


def _file_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+=-]+", "_", text).strip("_") or "run"


def _draw_figures(runs: Sequence[Run], out: Path, plt: Any) -> List[str]:
    """Every figure of a report into ``out``: per-epoch curves, rasters, groups of seeds."""
    colours = run_colours(runs)
    out.mkdir(parents=True, exist_ok=True)
    figures: List[str] = []
    for metric, title in REPORT_SERIES:
        series = [(r, r.series[metric]) for r in runs if len(r.series.get(metric, [])) > 0]
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(6.5, 4))
        same = same_as_earlier([values for _, values in series])
        for index, (run, values) in enumerate(series):
            ax.plot(range(1, len(values) + 1), values, label=plot_label(run.label), color=colours[run.path],
                    **line_style(index, len(values)))
        notes = [plot_label(f"{run.label} = {series[match][0].label}")
                 for (run, _), match in zip(series, same) if match is not None]
        figures.append(_save_epoch_figure(fig, ax, title, out / f"{metric}.png",
                                          "same values, drawn over each other:\n" + "\n".join(notes) if notes else None))
    for run in runs:
        raster = raster_figure(run, colours[run.path], out / f"raster-{_file_part(run.path.stem)}.png")
        if raster:
            figures.append(raster)
    figures += group_figures(runs, out)
    return figures


def write_report(paths: Sequence[str | Path], out: str | Path) -> Path:
    """PNG plots of the per-epoch series of every run, spike rasters, and a Markdown page.

    The page holds the comparison table and links every figure, so a set of runs can be read
    (or attached to a lab note) without opening Python.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = find_runs(paths)
    if not files:
        raise FileNotFoundError(f"no run files found in {', '.join(map(str, paths))}")
    runs = read_runs(files)
    out = Path(out)
    with matplotlib.rc_context({"text.usetex": False}):  # labels are plain text (``plot_label``), never LaTeX
        figures = _draw_figures(runs, out, plt)
    comparison = comparison_text(runs)
    fence = code_fence(comparison)
    lines = ["# tempdistill report", "", f"{len(runs)} runs:", ""]
    lines += [f"- {markdown(str(r.path))} ({markdown(r.status)})" for r in runs]
    lines += ["", fence, comparison, fence, ""]
    lines += [f"![{name}]({name})" for name in figures]
    page = out / "index.md"
    page.write_text("\n".join(lines) + "\n")
    write_html(runs, figures, out / "index.html")
    return page


def _score_series(runs: Sequence[Run]) -> str:
    return "val_accuracy" if any("val_accuracy" in r.series for r in runs) else "return_mean"


GROUP_SERIES = (("temperature", "temperature T (epoch mean)"),
                ("teacher_entropy", "teacher soft-label entropy at T (nats)"))


def _save_epoch_figure(fig: Any, ax: Any, title: str, path: Path, note: Optional[str] = None) -> str:
    """Label a per-epoch figure, save it and close it; returns its file name. ``note`` (which
    curves hide one another; text already escaped) heads the legend."""
    import matplotlib.pyplot as plt

    ax.set_xlabel("epoch")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    legend = ax.legend(fontsize=7, loc="best", title=note, title_fontsize=6)
    if note:
        legend.get_title().set_multialignment("left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def group_figures(runs: Sequence[Run], out: Path) -> List[str]:
    """Figures over groups of seeds (``tempdistill.analysis.statistics.group_runs``): the score, T and
    the teacher's soft-label entropy per epoch as mean ± sd over seeds, and the final score
    against the estimated energy per sample, dense and spiking students marked apart and
    every point labelled with its run."""
    import matplotlib.pyplot as plt

    from tempdistill.analysis.statistics import group_runs, score_of

    complete = [r for r in runs if r.series.get("epoch") is not None and len(r.series["epoch"])]
    if not complete:
        return []
    _, groups = group_runs(complete)
    names: List[str] = []
    score = _score_series(complete)
    series = [(score, "validation accuracy (eval T)" if score == "val_accuracy" else "validation return"), *GROUP_SERIES]
    for metric, title in series:
        fig, ax = plt.subplots(figsize=(6.5, 4))
        drawn = False
        for index, group in enumerate(groups):
            curves = [np.asarray(r.series[metric], dtype=float) for r in group.runs if len(r.series.get(metric, []))]
            if not curves:
                continue
            length = min(len(c) for c in curves)
            stack = np.stack([c[:length] for c in curves])
            mean, sd = stack.mean(axis=0), stack.std(axis=0, ddof=1) if len(curves) > 1 else np.zeros(length)
            epochs = np.arange(1, length + 1)
            line, = ax.plot(epochs, mean, label=plot_label(f"{group.label} (n={len(curves)})"),
                            **line_style(index, length))
            ax.fill_between(epochs, mean - sd, mean + sd, color=line.get_color(), alpha=0.2)
            drawn = True
        if drawn:
            names.append(_save_epoch_figure(fig, ax, f"{title}: mean ± sd over seeds", out / f"groups-{metric}.png"))
        plt.close(fig)
    points = [(r, score_of(r)[1], r.eval.get("energy_nj_per_sample")) for r in complete]
    points = [(r, y, x) for r, y, x in points if y is not None and x is not None]
    if points:
        fig, ax = plt.subplots(figsize=(6, 4))
        for kind, marker in (("dense", "s"), ("spiking", "o")):
            chosen = [(x, y) for r, y, x in points
                      if (r.config.get("student", {}).get("backend") == "dense") == (kind == "dense")]
            if chosen:
                ax.scatter(*zip(*chosen), marker=marker, label=f"{kind} students", alpha=0.8)
        stacked: Dict[tuple, int] = {}
        for run, y, x in points:  # which run each point is; labels of one spot stacked, not overprinted
            spot = (round(float(x), 6), round(float(y), 6))
            line = stacked[spot] = stacked.get(spot, -1) + 1
            ax.annotate(plot_label(run.label), (x, y), xytext=(5, 3 - 8 * line), textcoords="offset points",
                        fontsize=6, alpha=0.85, annotation_clip=False)
        ax.margins(x=0.2, y=0.12)
        ax.set_xlabel("estimated energy per sample (nJ, 45 nm model)")
        ax.set_ylabel(plot_label(score_of(points[0][0])[0]))
        ax.set_title("test score against estimated energy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "score-vs-energy.png", dpi=110)
        plt.close(fig)
        names.append("score-vs-energy.png")
    return names


def write_html(runs: Sequence[Run], figures: Sequence[str], path: Path) -> Path:
    """The report as one page next to its figures (relative links only): the comparison as an
    HTML table per task with the statistics over seeds, every figure."""
    import html

    comparison = comparison_html(runs)

    items = "\n".join(f"<li><code>{html.escape(printable(str(r.path)))}</code> ({html.escape(printable(r.status))})</li>"
                      for r in runs)
    images = "\n".join(
        f'<figure><img src="{html.escape(name)}" alt="{html.escape(name)}"><figcaption>{html.escape(name)}'
        "</figcaption></figure>" for name in figures)
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>tempdistill report</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1200px; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 12px; }}
figure {{ display: inline-block; margin: 0.5em; }}
img {{ max-width: 560px; border: 1px solid #ddd; }}
figcaption {{ font-size: 11px; color: #555; }}
table {{ border-collapse: collapse; font-size: 12px; }}
th, td {{ border: 1px solid #ddd; padding: 2px 6px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
</style>
</head>
<body>
<h1>tempdistill report</h1>
<p>{len(runs)} runs:</p>
<ul>
{items}
</ul>
<h2>Comparison</h2>
{comparison}
<h2>Figures</h2>
{images}
</body>
</html>
"""
    path.write_text(page, encoding="utf-8")
    return path
