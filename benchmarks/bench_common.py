"""What every benchmark here shares: timing, a markdown table, the machine, peak memory.

A figure is the median over repeats, measured in the same process as its baseline and printed
with the ratio to it; interleaving the candidates round by round spreads any drift in the
machine's speed over all of them instead of favouring whichever ran first.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from typing import Callable, Dict, List, Mapping, Sequence

import numpy as np
import torch

PACKAGES = ("torch", "snntorch", "norse", "h5py", "numpy")


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def interleaved_medians(
    candidates: Mapping[str, Callable[[], None]], repeats: int, warmup: int = 2, device: str = "cpu"
) -> Dict[str, float]:
    """Median milliseconds per call of each candidate, rounds interleaved across candidates."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    times: Dict[str, List[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            synchronize(device)
            started = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append(1000 * (time.perf_counter() - started))
    return {name: float(np.median(values)) for name, values in times.items()}


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_facts(device: str) -> Dict[str, str]:
    facts = {
        "date (UTC)": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.platform()}",
        "cpu capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
        "torch threads": str(torch.get_num_threads()),
        "torch huge pages (THP_MEM_ALLOC_ENABLE)": os.environ.get("THP_MEM_ALLOC_ENABLE", "unset"),
        "device": device if not device.startswith("cuda") else f"{device} ({torch.cuda.get_device_name()})",
    }
    for name in PACKAGES:
        try:
            facts[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            facts[name] = "absent"
    return facts


def peak_rss_mb(command: Sequence[str], env: Mapping[str, str] | None = None) -> tuple[float, float, int]:
    """(peak resident MB, wall seconds, exit code) of a child process, from the kernel's own
    accounting of that child (``wait4``), so nothing else in this process is counted."""
    started = time.perf_counter()
    child = subprocess.Popen(list(command), env={**os.environ, **(env or {})},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(child.stderr.read().decode()[-2000:] if child.stderr else "", file=sys.stderr)
    return usage.ru_maxrss / 1024.0, seconds, code
