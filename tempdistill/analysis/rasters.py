"""Spike rasters of a run's recorded probes: what its spiking student did on a few known inputs.

One panel per (layer, probe), for up to ``MAX_PROBES`` probes of the last traced epoch, each
titled with the probe's validation row and label (format 4 records them beside the spikes;
older files say only ``probe i``). A panel's y axis spans every neuron of its layer, so a
silent neuron shows as an empty row rather than being cut from the axis, and panels of one
layer share their axes so they compare at a glance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Mapping, Optional

import numpy as np

from tempdistill.record.run import Run
from tempdistill.text import plot_label

MAX_PROBES = 4


def probe_titles(traces: Mapping[str, Any], count: int) -> List[str]:
    """A title per probe: its validation row and label where the file records them."""
    rows = traces.get("probe_rows")
    labels = traces.get("probe_labels")
    titles = []
    for i in range(count):
        if rows is None:
            titles.append(f"probe {i}")
            continue
        title = f"val row {int(rows[i])}"
        if labels is not None:
            label = labels[i]
            title += f", label {int(label) if float(label).is_integer() else f'{float(label):.3g}'}"
        titles.append(title)
    return titles


def raster_figure(run: Run, colour: Any, path: Path) -> Optional[str]:
    """Draw ``run``'s rasters of its last traced epoch to ``path``, titled with its ``label``;
    returns the file name, or None when the run recorded no spikes."""
    import matplotlib.pyplot as plt

    if not run.traces:
        return None
    epoch = max(run.traces)
    traces = run.traces[epoch]
    layers = sorted((name, arrays["spikes"]) for name, arrays in traces.items()
                    if isinstance(arrays, dict) and "spikes" in arrays)
    if not layers:
        return None
    count = min(MAX_PROBES, min(spikes.shape[0] for _, spikes in layers))
    if count == 0:
        return None
    titles = probe_titles(traces, count)
    fig, axes = plt.subplots(len(layers), count, figsize=(2.7 * count + 0.6, 2.1 * len(layers) + 0.7),
                             squeeze=False, sharey="row")
    for row, (layer, spikes) in enumerate(layers):
        steps, neurons = spikes.shape[1], spikes.shape[2]
        for column in range(count):
            ax = axes[row][column]
            times, fired = np.nonzero(spikes[column])
            ax.scatter(times, fired, s=max(12.0, 400.0 / steps), marker="|", color=colour, linewidths=1.2)
            ax.set_xlim(-0.5, steps - 0.5)
            ax.set_ylim(-0.5, neurons - 0.5)
            ax.set_title(plot_label(f"{layer}: {titles[column]}"), fontsize=8)
            ax.tick_params(labelsize=7)
            if row == len(layers) - 1:
                ax.set_xlabel("time step", fontsize=8)
            if column == 0:
                ax.set_ylabel(plot_label(f"{layer} neuron (of {neurons})"), fontsize=8)
    fig.suptitle(plot_label(f"{run.label}: spikes at epoch {epoch + 1}"), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name
