"""Recording as a callback of the training loop: each finished epoch committed to the run file.

The loop itself knows nothing of files; ``runner.execute`` adds this callback first among
those a user sees, so every callback after it sees an epoch that is already recorded.
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import torch

from tempdistill.config import TracesConfig
from tempdistill.core.callbacks import Callback, EpochEnd, Loop
from tempdistill.record.run_file import RunRecorder


class RecordEpochs(Callback):
    """Commit each epoch to the run file: its metrics and step series, per-class or per-head T
    (``/temperature``), and on the epochs ``record.traces`` asks for, the spikes of fixed
    validation probes at the evaluation temperature (``/traces``)."""

    def __init__(self, recorder: RunRecorder, traces: Optional[TracesConfig] = None) -> None:
        self.recorder = recorder
        self.traces = traces

    def on_epoch_end(self, loop: Loop, end: EpochEnd) -> None:
        named = loop.schedule.named_temperatures(loop.last_base_temperature)
        self.recorder.append_epoch(end.metrics, steps=end.steps, traces=self.probe_traces(loop, end.epoch),
                                   groups={"temperature": named} if named else {})

    def probe_traces(self, loop: Loop, epoch: int) -> Optional[Dict[str, np.ndarray]]:
        cfg = self.traces
        if cfg is None or cfg.every <= 0 or cfg.samples <= 0:
            return None
        if epoch % cfg.every != 0 and epoch != loop.config.epochs - 1:
            return None
        probes = loop.task.probe_inputs(cfg.samples)
        loop.student.eval()
        loop.student.set_temperature(loop.config.eval_temperature)
        with torch.no_grad():
            traces = loop.student.capture_traces(probes) or None
        loop.student.train()
        if traces:
            traces.update(loop.task.probe_facts(cfg.samples))
        return traces
