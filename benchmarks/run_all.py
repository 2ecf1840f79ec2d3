"""``make bench``: every benchmark, written to benchmarks/RESULTS.md with the machine it ran on.

Each section prints its tables as it finishes (a long run shows progress); the file is written
once at the end, with a summary of the project's speed targets read off the measured figures
(met or missed, and by how much). Timing uses one torch thread unless ``--threads`` says
otherwise, so figures compare across machines with different core counts.

    .venv/bin/python benchmarks/run_all.py [--device cuda] [--quick] [--out benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

from tempdistill.hugepages import prefer_huge_pages

prefer_huge_pages()  # as the CLI does, before torch allocates: the figures are what a user gets

import torch  # noqa: E402

import demo_speed  # noqa: E402
import engines  # noqa: E402
import epochs  # noqa: E402
from bench_common import machine_facts  # noqa: E402

HERE = Path(__file__).resolve().parent


def script_output(script: str, arguments: List[str]) -> str:
    """A standalone benchmark's printout, as a code block (it prints its own ratios)."""
    result = subprocess.run([sys.executable, str(HERE / script), *arguments], capture_output=True, text=True)
    text = result.stdout.strip() if result.returncode == 0 else f"failed (exit {result.returncode}):\n{result.stderr[-2000:]}"
    return f"```\n{text}\n```"


def targets(small: Dict[str, float], large: Dict[str, float]) -> List[str]:
    """The issue's speed targets, each with the measured figure and met / missed."""

    def line(what: str, value: float, goal: float, at_least: bool) -> str:
        met = value >= goal if at_least else value <= goal
        sign = "≥" if at_least else "≤"
        return f"- {what}: **{value:.2f}×** (target {sign} {goal:g}×) — {'met' if met else 'missed'}"

    lines = []
    for backend in ("snntorch", "norse"):
        fused, loop = f"{backend} student, engine fused", f"{backend} student, engine loop"
        lines.append(line(f"{backend} fused vs snn.Leaky stock loop at (128, 1024, 100)",
                          large["snnTorch stock snn.Leaky loop"] / large[fused], 5, True))
        lines.append(line(f"{backend} fused vs engine loop (today's backend) at (128, 1024, 100)",
                          large[loop] / large[fused], 3, True))
        lines.append(line(f"{backend} fused vs engine loop at the demo size (64, 64, 25)",
                          small[loop] / small[fused], 2, True))
        lines.append(line(f"{backend} reference path (engine loop) / hand-written loop, demo size",
                          small[loop] / small["hand-written loop"], 1.10, False))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, or cuda to run the step tables on a GPU")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and sizes (a smoke run)")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    sections: List[str] = []

    def section(title: str, body: str) -> None:
        text = f"## {title}\n\n{body}\n"
        print(text, flush=True)
        sections.append(text)

    facts = machine_facts(args.device)
    small_table, small = engines.engine_table(64, 64, 25, args.device, 5 if args.quick else 30, compile_it=not args.quick)
    section("Spiking students, one distillation step (demo size)", small_table)
    large_table, large = engines.engine_table(128, 1024, 100, args.device, 3 if args.quick else 7, compile_it=False)
    section("Spiking students, one distillation step (large)", large_table)
    section("Scaling: steps and width doubled (snnTorch student, batch 64)",
            engines.scaling_table(args.device, 3 if args.quick else 7, args.quick))
    if args.device == "cpu":
        section("Dense distillation epoch against a hand-written loop", epochs.dense_against_hand_written(10 if args.quick else 40))
        section("Recording: what an epoch's record costs", epochs.recording_tables(6 if args.quick else 20, 40 if args.quick else 300))
        section("The demo end to end, and peak memory", demo_speed.demo_tables())
        section("Recording: the journal against copying the file per commit (benchmarks/recording.py)",
                script_output("recording.py", ["--epochs", "60" if args.quick else "300"]))
        if not args.quick:
            section("Sweeps: Ray against the local process pool (benchmarks/sweep_overhead.py)",
                    script_output("sweep_overhead.py", []))
    summary = "\n".join(targets(small, large))
    minutes = (time.perf_counter() - started) / 60
    header = ["# Benchmark results", "",
              f"Written by `make bench` (`benchmarks/run_all.py{' --quick' if args.quick else ''}`) in {minutes:.1f} minutes. "
              "Each figure is the median over repeats, interleaved with its baseline in the same process; "
              "ratios are what carry over to another machine.", ""]
    header += [f"- {key}: {value}" for key, value in facts.items()]
    header += ["", "## Targets", "", summary, ""]
    args.out.write_text("\n".join(header) + "\n" + "\n".join(sections))
    print(f"wrote {args.out} ({minutes:.1f} min)")


if __name__ == "__main__":
    main()
