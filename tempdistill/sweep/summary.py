"""A sweep's summary from its runs (``Run``, read from its files): mean ± std over seeds of the
score and KL, epochs to 95% of the final score, and the paired differences with their verdicts."""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from tempdistill.record.run import Run
from tempdistill.analysis.statistics import score_of, score_spec
from tempdistill.text import table


def target_near(value: float, fraction: float = 0.95) -> float:
    """A score at ``fraction`` of ``value``: 95% of an accuracy, and for a negative return
    (Acrobot's −80) no more than 5% worse than it."""
    return value - (1.0 - fraction) * abs(value)


def epochs_to_fraction(accuracy: np.ndarray, fraction: float = 0.95) -> float:
    """1-based epoch at which accuracy first reaches ``fraction`` of its final value."""
    if accuracy.size == 0:
        return math.nan
    return epochs_to_value(accuracy, target_near(float(accuracy[-1]), fraction))


def epochs_to_value(series: np.ndarray, target: float) -> float:
    """1-based epoch at which a per-epoch score first reaches ``target``; NaN if it never does."""
    reached = np.nonzero(np.asarray(series, dtype=float) >= target)[0]
    return float(reached[0] + 1) if reached.size else math.nan


def _mean_std(values: List[float]) -> Tuple[float, float]:
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else 0.0


def summarize(runs: Sequence[Run], target: Optional[float] = None) -> List[Dict[str, Any]]:
    """One row per run name, over the complete ``runs``: mean ± std over seeds of the score
    (accuracy or return), final KL, epochs to 95% of the final score, and with a ``target``
    (``sweep.target``) the epochs each run needed to first reach that validation score."""
    groups: Dict[str, List[Run]] = {}
    for run in runs:
        if run.status != "complete":
            continue
        groups.setdefault(run.config["name"], []).append(run)
    rows = []
    for name, group in groups.items():
        label, _, series = score_spec(group[0])  # accuracy, return, or a multitask's retained
        acc = _mean_std([score_of(r)[1] for r in group])  # test figure of the weights each run selected
        kl = _mean_std([float(r.series["kl"][-1]) for r in group])
        kl_t1 = _mean_std([float(r.series.get("kl_t1", [math.nan])[-1]) for r in group])
        to95 = _mean_std([epochs_to_fraction(np.asarray(r.series.get(series, []) if series else []))
                          for r in group])
        reached = [epochs_to_value(np.asarray(r.series.get(series, []) if series else []), target)
                   for r in group] if target is not None else []
        rows.append({
            "name": name,
            "backend": group[0].config["student"]["backend"],
            "schedule": group[0].config["distill"]["temperature"]["schedule"],
            "seeds": len(group),
            "accuracy": acc,  # the task's score (statistics.SCORES); named for the classifier
            "score_name": label,
            "final_kl": kl,
            "final_kl_t1": kl_t1,
            "epochs_to_95": to95,
            "target": target,
            "epochs_to_target": reached,
        })
    return rows


def summary_table(rows: Sequence[Dict[str, Any]]) -> str:
    """The sweep summary as a text table, mean ± std over seeds."""
    def pm(row: Dict[str, Any], key: str, digits: int) -> str:
        mean, std = row[key]
        # One seed has no spread: a '± 0' would claim a precision nobody measured.
        return f"{mean:.{digits}f}" if row["seeds"] < 2 else f"{mean:.{digits}f} ± {std:.{digits}f}"

    def to_target(row: Dict[str, Any]) -> str:
        values = np.asarray(row["epochs_to_target"], dtype=float)
        reached = values[~np.isnan(values)]
        never = f" ({values.size - reached.size} of {values.size} never)" if reached.size < values.size else ""
        if reached.size == 0:
            return "never"
        spread = f" ± {reached.std(ddof=1):.1f}" if reached.size > 1 else ""
        return f"{reached.mean():.1f}{spread}{never}"

    target = rows[0].get("target") if rows else None
    headers = ["run", "backend", "schedule", "seeds", rows[0].get("score_name", "accuracy") if rows else "accuracy",
               "final KL at T", "final KL at T=1", "epochs to 95%"]
    if target is not None:
        headers.append(f"epochs to val {target:g}")
    return table(
        headers,
        [[r["name"], r["backend"], r["schedule"], r["seeds"],
          pm(r, "accuracy", 1 if r.get("score_name") == "return" else 4), pm(r, "final_kl", 4),
          pm(r, "final_kl_t1", 4), pm(r, "epochs_to_95", 1)] + ([to_target(r)] if target is not None else [])
         for r in rows],
    )


def difference_text(runs: Sequence[Run]) -> str:
    """The sweep's paired differences over seeds with their verdicts (``tempdistill.analysis.statistics``):
    "helped"/"hurt" only where the 95% t-interval excludes 0. Runs that did not complete
    with final figures take no part."""
    from tempdistill.analysis.statistics import difference_table

    complete = [run for run in runs if run.status == "complete" and run.eval]
    if len(complete) < 2:
        return ""
    header, rows = difference_table(complete)
    if not rows:
        return ""
    undecided = sum(row[-1] != "helped" and row[-1] != "hurt" for row in rows)
    note = (f"{undecided} of {len(rows)} differences are not resolved by these seeds (run more with --seeds)"
            if undecided else "")
    return "paired differences over matching seeds (a verdict needs the 95% interval to exclude 0):\n" + \
        table(header, rows) + ("\n" + note if note else "")
