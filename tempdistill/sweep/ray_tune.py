"""The Ray executor of a sweep: one Ray Tune trial per planned run, on this machine or a cluster.

``tempdistill sweep ... --executor ray`` starts a local Ray with as many CPUs as ``--jobs``, or
joins a running cluster with ``--address``. Each trial is one run with ``--cpus-per-run`` CPUs
(its torch thread count) and ``--gpus-per-run`` GPUs. A run is a config in and a run file out,
exactly as with the local executor, so both give the same files for the same seeds.

Where files go. A trial records its run in a temporary directory on the node it ran on and
hands the file to Tune as the trial's checkpoint; Tune persists checkpoints to its storage
(a temporary directory here, or ``--storage``: a directory every node can reach, or a cloud URI
such as ``s3://bucket/path``), and this process copies each run file from there into the sweep
directory on the machine that launched the sweep as soon as its trial ends (so a sweep killed
half-way keeps what finished, and a rerun skips it), then removes Tune's temporary storage. So
the sweep directory fills the same way with shared storage or without it; only a multi-node
cluster without a shared file system needs ``--storage`` on cloud storage.

Teachers are trained (or found in the cache) once, here, before any trial starts; their cache
files travel to the trials through Ray's object store (``tune.with_parameters``), and a node
that lacks one writes it into its own cache, so no trial trains a teacher. Policy teachers are
the user's ``.zip`` files, read from the same path on every node.

Ray's own console output is silenced (no dashboard, no trial table, no worker logs); the sweep
prints one line per finished run, as the local executor does. Ray's session files live under
the system's temporary directory, never in the project.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from tempdistill.config import ConfigError
from tempdistill.core.interrupt import StopRequest

# Tune's logger callbacks write CSV/JSON/TensorBoard files for every trial: not wanted here.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


def _install_teachers(teachers: Dict[str, bytes]) -> None:
    """Write the shipped teacher cache files this node lacks (atomically: trials run in parallel)."""
    from tempdistill.tasks.cache import cache_dir

    folder = cache_dir()
    for name, content in teachers.items():
        target = folder / name
        if not target.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f"{name}.{os.getpid()}.tmp")
            tmp.write_bytes(content)
            os.replace(tmp, target)


def _trial(params: Dict[str, Any], teachers: Dict[str, bytes]) -> None:
    """One run inside a Ray trial; reports its status and hands its file over as a checkpoint."""
    import torch
    from ray import tune

    from tempdistill.config import config_from_mapping
    from tempdistill.runner import execute
    from tempdistill.sweep.jobs import one_line

    torch.set_num_threads(params["threads"])
    _install_teachers(teachers)
    job = params["job"]
    with tempfile.TemporaryDirectory(prefix="tempdistill-trial-") as folder:
        try:
            path = execute(config_from_mapping(job["mapping"]), folder, overrides=job["overrides"], warn=lambda _: None)
        except Exception as exc:  # a failed run is a result of the sweep, not a Ray error
            tune.report({"index": job["index"], "status": "failed", "error": one_line(exc)})
            return
        tune.report({"index": job["index"], "status": "complete", "run_file": Path(path).name},
                    checkpoint=tune.Checkpoint.from_directory(folder))


def run_on_ray(
    jobs: Sequence[Any], out: str, workers: int, stop: StopRequest, outcome: Any, log: Callable[[str], None],
    address: Optional[str] = None, cpus_per_run: float = 1, gpus_per_run: float = 0, storage: Optional[str] = None,
) -> None:
    """Run the sweep's jobs as Ray Tune trials; run files land in ``out``, failures in ``outcome``."""
    try:
        import ray
        from ray import tune
    except ImportError:
        raise ConfigError("--executor: 'ray' needs Ray Tune: pip install 'tempdistill[ray]'") from None
    from tempdistill.record.run_file import place_run_file
    from tempdistill.sweep.jobs import prepare_teachers

    if cpus_per_run <= 0 or gpus_per_run < 0:
        raise ConfigError(f"--cpus-per-run: must be > 0 (got {cpus_per_run}); --gpus-per-run >= 0 (got {gpus_per_run})")
    if not jobs:
        return
    teachers = {path.name: path.read_bytes() for path in prepare_teachers(jobs, log)}
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                     log_to_driver=False, logging_level="ERROR", configure_logging=True)
        except ConnectionError as exc:
            raise ConfigError(f"--address: cannot join a Ray cluster at {address!r} ({exc})") from None
    tune_storage = storage or tempfile.mkdtemp(prefix="tempdistill-tune-")
    total = len(jobs)
    done: List[int] = []

    placed: Dict[int, Path] = {}

    class Progress(tune.Callback):
        """Each run file into the sweep directory as soon as its trial hands it over (a sweep
        killed later keeps it, and a rerun skips it), and one line per finished run instead of
        Tune's trial table."""

        def on_checkpoint(self, iteration: int, trials: List[Any], trial: Any, checkpoint: Any, **info: Any) -> None:
            index = int(trial.config["job"]["index"])
            with checkpoint.as_directory() as folder:
                for run_file in Path(folder).glob("*.h5"):
                    placed[index] = place_run_file(run_file, out)
            job = jobs[index]
            done.append(1)
            log(f"[{len(done)}/{total}] {job.name} seed {job.seed}: {placed[index].name}")

        def on_trial_result(self, iteration: int, trials: List[Any], trial: Any, result: Dict[str, Any], **info: Any) -> None:
            if result.get("status") == "failed":
                job = jobs[int(result["index"])]
                done.append(1)
                log(f"[{len(done)}/{total}] {job.name} seed {job.seed}: failed: {result.get('error')}")

    trainable = tune.with_resources(tune.with_parameters(_trial, teachers=teachers),
                                    {"cpu": cpus_per_run, "gpu": gpus_per_run})
    space = {"job": tune.grid_search([{"index": i, **asdict(job)} for i, job in enumerate(jobs)]),
             "threads": max(1, int(cpus_per_run))}
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        # one worker process per slot for the whole sweep: a fresh process per trial would pay
        # the import of torch and the spiking libraries (about 8 s here) for every run
        tune_config=tune.TuneConfig(num_samples=1, reuse_actors=True),
        run_config=tune.RunConfig(name="sweep", storage_path=tune_storage, verbose=0, callbacks=[Progress()],
                                  failure_config=tune.FailureConfig(max_failures=0), log_to_file=False),
    )
    try:
        results = tuner.fit()
        for result in results:
            metrics = result.metrics or {}
            # a trial that died before reporting (its worker crashed) has only its config
            index = int(metrics.get("index", (result.config or {}).get("job", {}).get("index", -1)))
            if index >= 0 and index not in placed:
                error = metrics.get("error") or (str(result.error).strip().splitlines() or ["no result"])[-1]
                outcome.failures.append((jobs[index], error))
        outcome.paths.extend(placed[i] for i in sorted(placed))
    except KeyboardInterrupt:
        stop.request("interrupted")
    finally:
        if storage is None:
            shutil.rmtree(tune_storage, ignore_errors=True)
        if started_here:
            ray.shutdown()
