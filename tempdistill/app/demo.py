"""The main job behind ``make demo``: a classifier and a policy, each into every student backend.

Classifier: every student is trained twice from the same config, once with distillation (the
config's alpha and temperature) and once with alpha = 0 (hard labels only), so the table says
plainly whether distillation helped on this task. Policy: the committed CartPole PPO teacher
distilled into each backend, scored by return over seeded test episodes. Tables are read
back from the HDF5 files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from tempdistill.config import ConfigError, load_config
from tempdistill.app.hugepages import prefer_huge_pages
from tempdistill.core.interrupt import EXIT_INTERRUPTED, Interrupted, interruption_line
from tempdistill.record.run import Run
from tempdistill.analysis.comparison import compare_runs
from tempdistill.text import table

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "experiments" / "digits.yaml"
POLICY_CONFIG = Path(__file__).resolve().parents[2] / "experiments" / "cartpole.yaml"


def run_demo(config_path: Path, backends: Sequence[str], out: str, quiet: bool = False, extra: Sequence[str] = ()) -> List[Path]:
    """Each backend distils the digits teacher twice: with distillation and with hard labels only."""
    name = load_config(config_path, list(extra)).name
    return [_one_run(config_path, [*extra, f"student.backend={backend}", f"name={name}-{backend}-{label}", *overrides],
                     out, quiet, f"student {backend}, alpha={{alpha}}")
            for backend in backends for label, overrides in (("kd", []), ("no-kd", ["distill.alpha=0"]))]


def run_policy_demo(
    config_path: Path, backends: Sequence[str], out: str, quiet: bool = False, extra: Sequence[str] = ()
) -> List[Path]:
    """Each backend distils the policy config's teacher once."""
    return [_one_run(config_path, [f"student.backend={backend}", *extra], out, quiet, f"student {backend}, {{env}}")
            for backend in backends]


def _one_run(config_path: Path, sets: List[str], out: str, quiet: bool, heading: str) -> Path:
    """One run of the demo through the Python API, its heading and progress on the terminal."""
    from tempdistill.api import run
    from tempdistill.core.callbacks import EpochFunction
    from tempdistill.runner import echo

    config = load_config(config_path, sets)
    if not quiet:
        env = config.env.id if config.env else ""
        echo(f"== {config.name}: " + heading.format(alpha=config.distill.alpha, env=env))
    made = run(config_path, out=out, set=sets, log=(lambda _: None) if quiet else echo,
               callbacks=[] if quiet else [EpochFunction(_progress(config))], warn=_stderr)
    return made.path


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _progress(config):
    def report(epoch: int, metrics: Dict[str, float]) -> None:
        if epoch % 10 == 9 or epoch == config.distill.epochs - 1:
            score = (f"validation acc {metrics['val_accuracy']:.4f}" if "val_accuracy" in metrics
                     else f"validation return {metrics['return_mean']:.1f}")
            print(f"   epoch {epoch + 1:3d}/{config.distill.epochs}  T={metrics['temperature']:.2f}  {score}",
                  file=sys.stderr)
    return report


def distillation_verdicts(paths: Sequence[Path]) -> str:
    """Per backend: test accuracy with KD minus without (of the weights each run selected
    without test data: ``statistics.score_of``), paired over seeds, with the verdict only a
    95% interval that excludes 0 may give (one seed per backend here cannot give one)."""
    from tempdistill.analysis.statistics import paired_differences, score_of

    runs = [Run.read(p) for p in paths]
    accuracy = {(r.config["student"]["backend"], r.config["distill"]["alpha"] > 0): score_of(r)[1] for r in runs}
    rows = []
    for diff in paired_differences(runs, lambda r: score_of(r)[1]):
        if diff.factor != "distill.alpha":
            continue
        backend = diff.within.split("=", 1)[-1]
        low, high = diff.interval
        interval = f" [{low:+.4f}, {high:+.4f}]" if diff.n > 1 else ""
        verdict = diff.verdict if diff.n > 1 else "one seed: cannot tell (README's 3-seed table)"
        rows.append([backend, accuracy.get((backend, True)), accuracy.get((backend, False)),
                     f"{diff.mean:+.4f}{interval}", verdict])
    return table(["backend", "test acc with KD", "test acc without", "difference", "distillation"], rows)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tempdistill.app.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--backends", nargs="+", default=["dense", "snntorch", "norse"])
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--policy-config", type=Path, default=POLICY_CONFIG)
    parser.add_argument("--no-policy", action="store_true", help="skip the policy part")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    prefer_huge_pages()
    try:
        paths = run_demo(args.config, args.backends, args.out, args.quiet, args.set)
        policy_paths = [] if args.no_policy else run_policy_demo(args.policy_config, args.backends, args.out, args.quiet)
    except ConfigError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2
    except (Interrupted, KeyboardInterrupt) as exc:
        print(f"demo: {interruption_line(exc)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    first = Run.read(paths[0])
    print()
    print(f"teacher: dense {first.config['teacher']['hidden']}, test accuracy "
          f"{first.eval['teacher_accuracy']:.4f}, {first.eval['teacher_params']} parameters")
    print()
    print(compare_runs(paths, statistics=False))
    print()
    print(distillation_verdicts(paths))
    if policy_paths:
        pole = Run.read(policy_paths[0])
        print()
        print(f"policy teacher: {Path(pole.config['teacher']['checkpoint']).name} on {pole.config['env']['id']}, "
              f"return {pole.eval['teacher_return_mean']:.1f} over {pole.config['eval']['episodes']} episodes, "
              f"{pole.eval['teacher_params']} actor parameters")
        print()
        print(compare_runs(policy_paths, statistics=False))
    print()
    print(f"HDF5 records: {args.out}/ ({len(paths) + len(policy_paths)} files); "
          "inspect one with: .venv/bin/tempdistill show FILE")
    return 0


if __name__ == "__main__":
    sys.exit(main())
