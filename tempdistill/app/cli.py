"""The ``tempdistill`` command line: exit 0 on success, 2 with one line on bad input."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from tempdistill.config import ConfigError


def _cmd_run(args: argparse.Namespace) -> int:
    from tempdistill.api import run
    from tempdistill.core.callbacks import EpochFunction
    from tempdistill.config import load_config
    from tempdistill.core.interrupt import EXIT_INTERRUPTED, StopRequest, stop_on_signals
    from tempdistill.analysis.report import headline
    from tempdistill.runner import echo

    epochs = load_config(args.config, args.set or [])  # the bar's length; errors surface here, before any output
    bar = None if args.quiet else EpochBar(epochs.distill.epochs, f"{epochs.name} [{epochs.student.backend}]")
    stop = StopRequest()
    try:
        with stop_on_signals(stop):
            made = run(args.config, out=args.out, set=args.set or [], callbacks=[EpochFunction(bar)] if bar else [],
                       stop=stop, log=(lambda _: None) if args.quiet else echo,
                       warn=lambda message: print(message, file=sys.stderr))
    finally:
        if bar is not None:
            bar.close()
    if made.status == "interrupted":
        print(f"tempdistill run: {made.attrs.get('error', 'interrupted')}; partial run kept (student saved, "
              f"status=interrupted): {made.path}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"{headline(made.eval)}  record {made.path}")
    return 0


class EpochBar:
    """A progress bar over epochs, opened at the first finished epoch, so that a user error
    found while the run is set up (data, checkpoint, backend) prints as one clean line; off a
    terminal, one plain line per epoch (``tempdistill.core.progress``)."""

    def __init__(self, epochs: int, description: str) -> None:
        self.epochs, self.description, self.bar = epochs, description, None

    def __call__(self, epoch: int, metrics: dict) -> None:
        if self.bar is None:
            from tempdistill.core.progress import progress_bar

            self.bar = progress_bar(self.epochs, self.description, "epoch", lines=self.epochs)
        score = {k: f"{metrics[k]:.4f}" for k in ("val_accuracy", "return_mean") if k in metrics}
        self.bar.set_postfix(T=f"{metrics['temperature']:.2f}", **score)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _cmd_show(args: argparse.Namespace) -> int:
    from tempdistill.analysis.report import show_run

    print(show_run(args.run))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from tempdistill.analysis.comparison import compare_runs
    from tempdistill.record.run_file import find_runs

    if not find_runs(args.paths):
        raise FileNotFoundError(f"no run files found in {', '.join(args.paths)}")
    print(compare_runs(args.paths))
    if args.csv:
        from tempdistill.analysis.comparison import runs_frame

        runs_frame(args.paths).to_csv(args.csv, index=False)
        print(f"one row per run written to {args.csv}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from tempdistill.analysis.report import write_report

    page = write_report(args.paths, args.out)
    print(f"report: {page}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from tempdistill.record.export import export_run
    from tempdistill.record.run import Run

    out = export_run(Run.read(args.run), args.format, args.out)
    print(f"exported {args.format} student to {out}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from tempdistill.conversion import convert_run, parse_steps
    from tempdistill.runner import echo

    paths = convert_run(args.run, parse_steps(args.steps), args.out, log=echo)
    print(f"{len(paths)} converted runs written to {paths[0].parent}")
    return 0


def _cmd_entropy(args: argparse.Namespace) -> int:
    import math

    from tempdistill.config import load_config
    from tempdistill.information import entropy_summary
    from tempdistill.analysis.report import entropy_plot, entropy_table
    from tempdistill.runner import echo, prepare_classifier

    for t in args.temperatures:
        if not math.isfinite(t) or t <= 0:
            raise ConfigError(f"--temperatures: every T must be a finite number > 0, got {t}")
    config = load_config(args.config, args.set or [])
    split, teacher = prepare_classifier(config, log=echo)
    logits = teacher.logits("val")  # a choice of T is made on validation, never test
    rows = [{"temperature": t, **entropy_summary(logits, t)} for t in args.temperatures]
    print(entropy_table(rows, split.num_classes))
    plot = entropy_plot(rows, split.num_classes, args.plot or f"{config.record.dir}/{config.name}-entropy.png",
                        f"{config.name}: teacher soft-label entropy")
    print(f"plot: {plot}")
    return 0


def _cmd_floor(args: argparse.Namespace) -> int:
    from tempdistill.analysis.floor import floor_report
    from tempdistill.runner import echo

    print(floor_report(args.source, args.temperatures, args.steps, args.set or [], log=echo))
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tempdistill.config import read_yaml
    from tempdistill.core.interrupt import EXIT_INTERRUPTED
    from tempdistill.record.run import Run
    from tempdistill.runner import echo
    from tempdistill.sweep.launch import run_sweep
    from tempdistill.sweep.ledger import landing
    from tempdistill.sweep.plan import parse_grid, parse_seeds, plan_sweep
    from tempdistill.sweep.summary import difference_text, summarize, summary_table

    if args.jobs < 1:
        raise ConfigError(f"--jobs: must be >= 1, got {args.jobs}")
    raw = read_yaml(args.config)
    jobs = plan_sweep(raw, parse_grid(args.grid or []), parse_seeds(args.seeds) if args.seeds else None, args.set or [])
    out = args.out or str(Path(raw.get("record", {}).get("dir", "runs")) / f"sweep-{raw.get('name', 'sweep')}")
    if not args.quiet:
        echo(f"sweep: {len(jobs)} runs into {out}")
    ray_flags = {"address": args.address, "cpus_per_run": args.cpus_per_run, "gpus_per_run": args.gpus_per_run,
                 "storage": args.storage}
    if args.executor != "ray" and (args.address or args.storage or args.cpus_per_run != 1 or args.gpus_per_run):
        raise ConfigError("--address/--storage/--cpus-per-run/--gpus-per-run: only used with --executor ray")
    log = (lambda _: None) if args.quiet else echo
    with landing(args.ledger, out, [(job.name, job.seed) for job in jobs], log, "sweep"):
        outcome = run_sweep(jobs, out, args.jobs, args.executor, log=log,
                            ray_options=ray_flags if args.executor == "ray" else None)
    runs = [Run.read(path) for path in outcome.paths]
    rows = summarize(runs, (raw.get("sweep") or {}).get("target"))
    text = summary_table(rows) if rows else "no run completed"
    verdict = difference_text(runs)
    print(text)
    if verdict:
        print()
        print(verdict)
    ending = outcome.describe()
    if ending:
        print()
        print(ending)
    Path(out, "summary.txt").write_text("\n\n".join(part for part in (text, verdict, ending) if part) + "\n")
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    return 1 if outcome.failures else 0


def _cmd_claims(args: argparse.Namespace) -> int:
    from tempdistill.studies.claims_experiment import run_claims
    from tempdistill.core.interrupt import EXIT_INTERRUPTED
    from tempdistill.text import table
    from tempdistill.runner import echo

    if args.executor != "ray" and args.address:
        raise ConfigError("--address: only used with --executor ray")
    ray_options = {"address": args.address} if args.executor == "ray" else None
    outcome = run_claims(args.config, args.out, args.jobs, args.executor, args.report, args.only, args.quick,
                         log=(lambda _: None) if args.quiet else echo, ray_options=ray_options, ledger=args.ledger)
    if outcome.report is None:
        print("tempdistill claims: stopped; run the same command again to finish the runs left", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(table(["claim", "verdict", "measured effect [95% interval]"],
                [[f.claim.id, f.verdict_text, f.effect] for f in outcome.findings]))
    for sweep in ([outcome.tuning] if outcome.tuning is not None else []) + [outcome.sweep]:
        ending = sweep.describe()
        if ending:
            print(ending)
    print(f"report: {outcome.report}")
    return 1 if outcome.sweep.failures else 0


def _cmd_teach(args: argparse.Namespace) -> int:
    from tempdistill.config import load_config
    from tempdistill.runner import echo
    from tempdistill.tasks.teach import teach

    config = load_config(args.config, args.set or [])
    result = teach(config, show_progress=not args.quiet, log=(lambda _: None) if args.quiet else echo)
    print(f"teacher saved to {result['checkpoint']}: greedy return {result['return_mean']:.1f} "
          f"± {result['return_std']:.1f} over 20 seeded episodes")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from tempdistill import __version__

    parser = argparse.ArgumentParser(prog="tempdistill", description="Temperature-controlled knowledge distillation.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="one distillation run -> one .h5 record")
    run.add_argument("config", help="YAML config file")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    run.add_argument("--out", help="directory for the run file (default: record.dir)")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.set_defaults(handler=_cmd_run)

    show = sub.add_parser("show", help="summary and per-epoch table of one run")
    show.add_argument("run", help="a run's .h5 file")
    show.set_defaults(handler=_cmd_show)

    compare = sub.add_parser("compare", help="one table across runs (files or directories)")
    compare.add_argument("paths", nargs="+", help="run files or directories holding them")
    compare.add_argument("--csv", metavar="FILE", help="also write one row per run (config keys flattened) as CSV")
    compare.set_defaults(handler=_cmd_compare)

    report = sub.add_parser("report", help="PNG plots of runs (curves, spike rasters) and a Markdown page")
    report.add_argument("paths", nargs="+", help="run files or directories holding them")
    report.add_argument("--out", required=True, help="directory for the figures and index.md")
    report.set_defaults(handler=_cmd_report)

    sweep = sub.add_parser("sweep", help="a config over a grid, its variants and seeds; summary table")
    sweep.add_argument("config", help="YAML config; its optional 'sweep' section names seeds, grid, variants")
    sweep.add_argument("--grid", action="append", metavar="KEY=V1,V2", help="vary a key (repeatable)")
    sweep.add_argument("--seeds", help="seeds as a range 0-4 or a list 0,1,2 (default: the config's)")
    sweep.add_argument("--set", action="append", metavar="KEY=VALUE", help="override the base config")
    sweep.add_argument("--out", help="directory for the run files and summary.txt")
    sweep.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    sweep.add_argument("--executor", default="local", help="local (a process pool; default) or ray (Ray Tune trials)")
    sweep.add_argument("--address", help="ray: join this Ray cluster (default: start a local Ray with --jobs CPUs)")
    sweep.add_argument("--cpus-per-run", type=float, default=1, help="ray: CPUs (and torch threads) per run")
    sweep.add_argument("--gpus-per-run", type=float, default=0, help="ray: GPUs per run")
    sweep.add_argument("--storage", help="ray: where trials hand run files over (a path all nodes reach, or a "
                                         "cloud URI); default: a temporary directory on this machine")
    sweep.add_argument("--ledger", metavar="DIR", help="a folder (committed) that keeps what is read back of every "
                                                       "complete run: restored into --out first, added to after")
    sweep.add_argument("--quiet", action="store_true")
    sweep.set_defaults(handler=_cmd_sweep)

    claims = sub.add_parser("claims", help="run the claims experiment and write its report (CLAIMS.md)")
    claims.add_argument("config", help="claims file (experiments/claims.yaml): bases, settings, arms, seeds")
    claims.add_argument("--out", help="directory for the run files (default: runs/claims, or runs/claims-quick)")
    claims.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    claims.add_argument("--executor", default="local", help="local (a process pool; default) or ray (Ray Tune trials)")
    claims.add_argument("--address", help="ray: join this Ray cluster (default: start a local Ray with --jobs CPUs)")
    claims.add_argument("--report", help="Markdown report (default: CLAIMS.md beside the claims file; "
                                         "with --quick, in --out)")
    claims.add_argument("--only", metavar="C1,C3", help="judge only these claims (and run only their runs)")
    claims.add_argument("--quick", action="store_true", help="the claims file's quick section: few seeds and "
                                                             "epochs, a smoke test of the machinery, not evidence")
    claims.add_argument("--ledger", metavar="DIR", help="a folder (committed) that keeps what the study reads of "
                                                        "every complete run: restored into --out before each stage, "
                                                        "added to after it, so a long study lands in pieces")
    claims.add_argument("--quiet", action="store_true")
    claims.set_defaults(handler=_cmd_claims)

    entropy = sub.add_parser("entropy", help="teacher soft-label entropy vs temperature (table + PNG)")
    entropy.add_argument("config", help="YAML config file (its data and teacher are used)")
    entropy.add_argument("--temperatures", nargs="+", type=float, default=[1, 2, 4, 8, 16])
    entropy.add_argument("--set", action="append", metavar="KEY=VALUE")
    entropy.add_argument("--plot", help="PNG path (default: RECORD_DIR/NAME-entropy.png)")
    entropy.set_defaults(handler=_cmd_entropy)

    floor = sub.add_parser(
        "floor", help="the best KL each spiking readout can reach against the tempered teacher, per T and steps",
        description="The KL floor of each spiking readout (count, count_membrane, li): the mean over the "
                    "validation rows of the smallest KL(softmax(z/T) || softmax(readout)) any student with that "
                    "readout can reach. A run file does not hold the teacher's logits, so the teacher is rebuilt "
                    "(checkpoint, cache, or trained now) from a config file or from the config a run file recorded. "
                    "θ0 is the spiking student's: student.theta0, or auto from the teacher's training logits.")
    floor.add_argument("source", metavar="CONFIG_OR_RUN", help="YAML config file, or a run's .h5 (its recorded config)")
    floor.add_argument("--temperatures", nargs="+", type=float, default=[1, 2, 4, 8, 16])
    floor.add_argument("--steps", nargs="+", type=int, default=[8, 25, 100], help="time steps N (columns)")
    floor.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    floor.set_defaults(handler=_cmd_floor)

    teach_cmd = sub.add_parser("teach", help="train a reinforcement-learning teacher (SB3) for a policy config")
    teach_cmd.add_argument("config", help="YAML config with task: policy, env and teacher {algo, timesteps, checkpoint}")
    teach_cmd.add_argument("--set", action="append", metavar="KEY=VALUE")
    teach_cmd.add_argument("--quiet", action="store_true")
    teach_cmd.set_defaults(handler=_cmd_teach)

    export = sub.add_parser("export", help="write a run's trained student as NIR or a PyTorch checkpoint")
    export.add_argument("run", help="a run's .h5 file")
    export.add_argument("--format", required=True, choices=["nir", "pt"])
    export.add_argument("--out", required=True, help="output file")
    export.set_defaults(handler=_cmd_export)

    convert = sub.add_parser("convert", help="turn a run's dense ReLU student into integrate-and-fire networks "
                                             "(ANN-to-SNN conversion), one run file per step count")
    convert.add_argument("run", help="a dense student's run file (.h5)")
    convert.add_argument("--steps", default="8,16,32,64", help="step counts, e.g. 8,16,32,64")
    convert.add_argument("--out", help="directory for the converted runs (default: the folder of RUN.h5)")
    convert.set_defaults(handler=_cmd_convert)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    from tempdistill.app.hugepages import prefer_huge_pages
    from tempdistill.core.interrupt import EXIT_INTERRUPTED, Interrupted, interruption_line

    prefer_huge_pages()

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except BrokenPipeError:
        # The reader went away (``show RUN | head``): stop quietly, as a Unix filter does.
        _silence_stdout()
        return 141
    except (Interrupted, KeyboardInterrupt) as exc:
        print(f"tempdistill {args.command}: {interruption_line(exc)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ConfigError, FileNotFoundError, NotADirectoryError, IsADirectoryError, FileExistsError, PermissionError) as exc:
        # Paths the user named (config, data, --out, record.dir) that cannot be used as asked.
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"tempdistill {args.command}: error: {message}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:
        from tempdistill.core.memory import allocation_failure

        line = allocation_failure(exc)
        if line is None:
            raise
        print(f"tempdistill {args.command}: error: {line}", file=sys.stderr)
        return 2
    except ValueError as exc:
        # Numeric validation (e.g. a temperature <= 0 reaching the math) is still user input.
        if args.command != "run":
            print(f"tempdistill {args.command}: error: {exc}", file=sys.stderr)
            return 2
        raise


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
