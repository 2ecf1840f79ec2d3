"""The demo end to end, and peak memory.

- The spiking rows of ``make demo`` (digits with and without distillation, and CartPole, for
  snnTorch and Norse students) run twice in child processes: with ``student.engine=loop`` (the
  per-step path every spiking run took before the fused engine) and ``engine=fused`` (the
  default). Each run's wall time and score are read back from its HDF5 file.
- Peak resident memory (the kernel's ``ru_maxrss`` of the child) of the whole default demo
  (every backend) and of training steps at the large spiking size for each engine.

    .venv/bin/python benchmarks/demo_speed.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import List, Sequence, Tuple

from bench_common import markdown_table, peak_rss_mb
from tempdistill.record.run import Run

BENCHMARKS = Path(__file__).resolve().parent
SPIKING = ("snntorch", "norse")

_DEMO_ROWS = """
import sys
from tempdistill.app.demo import DEFAULT_CONFIG, POLICY_CONFIG, run_demo, run_policy_demo
out, engine = sys.argv[1], sys.argv[2]
extra = ["student.engine=" + engine]
run_demo(DEFAULT_CONFIG, {backends!r}, out, True, extra)
run_policy_demo(POLICY_CONFIG, {backends!r}, out, True, extra)
"""

_LARGE_STEPS = """
import sys
sys.path.insert(0, {benchmarks!r})
import torch
torch.set_num_threads(1)
from engines import _batch, student_step
step = student_step("snntorch", 1024, 100, sys.argv[1], _batch(128, "cpu"), "cpu")
for _ in range(3):
    step()
"""


def _score(run: Run) -> Tuple[str, float]:
    ev = run.eval
    if "student_accuracy" in ev:
        return "accuracy", float(ev["student_accuracy"])
    return "return", float(ev.get("student_return_mean", float("nan")))


def spiking_rows(engine: str, out: Path) -> Tuple[float, float, List[Run]]:
    code = _DEMO_ROWS.format(backends=list(SPIKING))
    peak, seconds, status = peak_rss_mb(["-c", code, str(out), engine], {"OMP_NUM_THREADS": "1"})
    if status != 0:
        raise RuntimeError(f"demo rows with engine {engine} failed (exit {status})")
    return seconds, peak, [Run.read(p) for p in sorted(out.glob("*.h5"))]


def demo_tables() -> Tuple[str, float]:
    """The table, and the spiking rows' speed-up (process wall time, loop over fused)."""
    with tempfile.TemporaryDirectory(prefix="tempdistill-bench-") as tmp:
        results = {engine: spiking_rows(engine, Path(tmp) / engine) for engine in ("loop", "fused")}
    rows: List[List[object]] = []
    by_name = {engine: {r.attrs["name"]: r for r in runs} for engine, (_, _, runs) in results.items()}
    for name in sorted(by_name["loop"]):
        loop, fused = by_name["loop"][name], by_name["fused"].get(name)
        if fused is None:
            continue
        kind, loop_score = _score(loop)
        _, fused_score = _score(fused)
        loop_s, fused_s = float(loop.eval["wall_seconds"]), float(fused.eval["wall_seconds"])
        rows.append([name, loop_s, fused_s, f"{loop_s / fused_s:.2f}", f"{kind} {loop_score:.4g} / {fused_score:.4g}"])
    total_loop, total_fused = results["loop"][0], results["fused"][0]
    rows.append(["all spiking rows, process wall time", total_loop, total_fused, f"{total_loop / total_fused:.2f}", ""])
    table = markdown_table(["run", "engine loop s", "engine fused s", "speed-up", "score loop / fused"], rows)
    return table, total_loop / total_fused


def memory_table() -> str:
    """Peak resident memory of the whole default demo and of the large spiking size per engine."""
    with tempfile.TemporaryDirectory(prefix="tempdistill-bench-") as tmp:
        full_peak, _, status = peak_rss_mb(
            ["-m", "tempdistill.app.demo", "--out", str(Path(tmp) / "demo"), "--quiet"], {"OMP_NUM_THREADS": "1"}
        )
    memory = [["`make demo` (all backends, default engine)" + ("" if status == 0 else f", exit {status}"), full_peak]]
    for engine in ("loop", "fused"):
        peak, _, code = peak_rss_mb(["-c", _LARGE_STEPS.format(benchmarks=str(BENCHMARKS)), engine])
        memory.append([f"snnTorch student (128, 1024, 100), 3 steps, engine {engine}" + ("" if code == 0 else f", exit {code}"),
                       peak])
    return markdown_table(["process", "peak resident MB"], memory)


def main(argv: Sequence[str] = ()) -> None:
    print(demo_tables()[0])
    print()
    print(memory_table())


if __name__ == "__main__":
    main()
