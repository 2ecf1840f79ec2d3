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
import tempfile
import time
from importlib import metadata
from typing import Callable, Dict, List, Mapping, Sequence

import numpy as np
import torch

PACKAGES = ("torch", "snntorch", "norse", "h5py", "numpy")


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def interleaved_times(
    candidates: Mapping[str, Callable[[], None]], repeats: int, warmup: int = 2, device: str = "cpu"
) -> Dict[str, List[float]]:
    """Milliseconds of each call of each candidate, round by round (one call of each per round)."""
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
    return times


def interleaved_medians(
    candidates: Mapping[str, Callable[[], None]], repeats: int, warmup: int = 2, device: str = "cpu"
) -> Dict[str, float]:
    """Median milliseconds per call of each candidate, rounds interleaved across candidates."""
    return {name: float(np.median(values)) for name, values in interleaved_times(candidates, repeats, warmup, device).items()}


class PairedRatios:
    """a/b as the median over rounds of the ratio within each round. The machine's speed can
    drift by tens of percent over a benchmark; two calls made back to back in one round share
    the drift, so their ratio carries over where a ratio of two medians may not."""

    def __init__(self, times: Mapping[str, List[float]]) -> None:
        self.times = times

    def __call__(self, a: str, b: str) -> float:
        return float(np.median(np.asarray(self.times[a]) / np.asarray(self.times[b])))


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


# Run inside the measured child: at exit it writes the high-water mark of its own address space
# (VmHWM, kB). ``ru_maxrss`` from ``wait4`` would not do: on Linux a child's maximum starts from
# its parent's resident size at fork, so a large benchmark process inflates every child.
_PEAK_WRAPPER = """
import atexit, os, runpy, sys
def report():
    try:
        with open("/proc/self/status") as status:
            kb = next(line.split()[1] for line in status if line.startswith("VmHWM"))
    except (OSError, StopIteration):
        import resource
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open(os.environ["TEMPDISTILL_PEAK_FILE"], "w") as out:
        out.write(str(kb))
atexit.register(report)
mode, target, *rest = sys.argv[1:]
if mode == "-m":
    sys.argv = [target, *rest]
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    sys.argv = ["-c", *rest]
    exec(compile(target, "<benchmark>", "exec"), {"__name__": "__main__"})
"""


def peak_rss_mb(python_args: Sequence[str], env: Mapping[str, str] | None = None) -> tuple[float, float, int]:
    """(peak resident MB, wall seconds, exit code) of ``python -m MODULE ...`` or ``python -c
    CODE ...`` (``python_args``) in a child process, as the child itself saw it."""
    with tempfile.TemporaryDirectory() as tmp:
        peak_file = os.path.join(tmp, "peak")
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", _PEAK_WRAPPER, *python_args],
                                env={**os.environ, **(env or {}), "TEMPDISTILL_PEAK_FILE": peak_file},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            print(result.stderr[-2000:], file=sys.stderr)
        peak = float(open(peak_file).read()) / 1024.0 if os.path.exists(peak_file) else float("nan")
    return peak, seconds, result.returncode
