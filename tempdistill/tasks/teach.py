"""``tempdistill teach CONFIG``: train a Stable-Baselines3 teacher for a policy config.

The config's ``teacher`` section names the algorithm (``algo``: ppo, a2c, dqn or sac), the number
of environment steps (``timesteps``), parallel environments (``n_envs``) and SB3 keyword
arguments (``hyperparams``, as in RL Baselines3 Zoo); the model is saved as SB3's standard
``.zip`` at ``teacher.checkpoint``, so any SB3 tool loads it, and a distillation run with the
same config uses it. With ``select_every: N`` the model is scored every N steps by its greedy
return over the config's validation episodes (``eval.val_seed``) and the best one is saved: a
DQN's return swings between good and collapsed policies during training. The test episodes
(``eval.seed``) are used once, for the figure printed at the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict

from tempdistill.config import ConfigError, RunConfig


def _progress_callback(total: int, show: bool) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    class TqdmProgress(BaseCallback):
        """SB3's own progress bar needs 'rich'; this one uses tqdm like the rest of the CLI
        (on a terminal; elsewhere ten plain lines over the training)."""

        bar: Any = None

        def _on_training_start(self) -> None:
            from tempdistill.core.progress import progress_bar

            if show:
                self.bar = progress_bar(total, "teach", "step", lines=10, mininterval=1.0)

        def _on_step(self) -> bool:
            if self.bar is not None:
                self.bar.update(self.training_env.num_envs)
            return True

        def _on_training_end(self) -> None:
            if self.bar is not None:
                self.bar.close()

    return TqdmProgress()


def _beside_bar(show_progress: bool, log: Callable[[str], None]) -> Callable[[str], None]:
    """A log that prints above a running progress bar instead of into it."""
    if not show_progress:
        return log
    import sys

    from tqdm import tqdm

    return lambda message: tqdm.write(message, file=sys.stderr)


def _selection_callback(every: int, score: Callable[[Any], float], target: Path, log: Callable[[str], None]) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    class KeepBest(BaseCallback):
        """Value-based learners (DQN) swing between good and collapsed policies; keep the
        checkpoint with the best validation return, never looking at the test seeds."""

        best = float("-inf")
        last_check = 0

        def _on_step(self) -> bool:
            if self.num_timesteps - self.last_check >= every:
                self.last_check = self.num_timesteps
                value = score(self.model)
                if value > self.best:
                    self.best = value
                    self.model.save(str(target))
                    log(f"teach: step {self.num_timesteps}: validation return {value:.1f}, kept")
            return True

    return KeepBest()


def teach(config: RunConfig, show_progress: bool = True, log: Callable[[str], None] = lambda _: None) -> Dict[str, Any]:
    """Train the configured teacher, save it, and return its figures over 20 seeded episodes."""
    from stable_baselines3.common.env_util import make_vec_env

    from tempdistill.tasks.actions import action_head
    from tempdistill.tasks.envs import check_spaces, greedy, make_env, run_episodes
    from tempdistill.tasks.policy import policy_teacher_options
    from tempdistill.tasks.sb3_teacher import SB3Teacher, algorithm_class, load_teacher

    if config.task != "policy" or config.env is None:
        raise ConfigError("task: `teach` trains reinforcement-learning teachers; it needs task: policy and an env")
    options = policy_teacher_options(config)
    if not options.checkpoint:
        raise ConfigError("teacher.checkpoint: required: where to save the trained .zip")
    probe = make_env(config.env.id)
    check_spaces(probe)
    head = action_head(probe.action_space, options.algo)
    probe.close()
    continuous = not hasattr(probe.action_space, "n")
    if (options.algo == "sac") != continuous and options.algo in ("sac", "dqn"):
        kind = "continuous" if continuous else "discrete"
        allowed = "ppo, a2c, sac" if continuous else "ppo, a2c, dqn"
        raise ConfigError(f"teacher.algo: {options.algo!r} cannot act in {config.env.id}, whose actions are {kind}; "
                          f"allowed: {allowed}")
    target = Path(options.checkpoint)
    if target.suffix != ".zip":
        raise ConfigError(f"teacher.checkpoint: SB3 saves .zip files, got {target.name}")
    env = make_vec_env(config.env.id, n_envs=options.n_envs, seed=config.seed)
    try:
        model = algorithm_class(options.algo)("MlpPolicy", env, seed=config.seed, device=config.device,
                                               verbose=0, **options.hyperparams)
    except TypeError as exc:
        raise ConfigError(f"teacher.hyperparams: {exc}") from None
    from stable_baselines3.common.logger import Logger

    model.set_logger(Logger(folder=None, output_formats=[]))  # SB3's default makes a /tmp/SB3-<date> folder
    log(f"teach: {options.algo.upper()} on {config.env.id} for {options.timesteps} steps, {options.n_envs} envs")
    target.parent.mkdir(parents=True, exist_ok=True)
    callbacks = [_progress_callback(options.timesteps, show_progress)]
    if options.select_every:
        def score(candidate: Any) -> float:
            actor = greedy(SB3Teacher(candidate, options.algo), head)
            return run_episodes(config.env.id, actor, config.eval.val_episodes, config.eval.val_seed).mean

        callbacks.append(_selection_callback(options.select_every, score, target, _beside_bar(show_progress, log)))
    model.learn(total_timesteps=options.timesteps, callback=callbacks)
    if options.select_every and callbacks[-1].best > float("-inf"):
        # The kept file is read back like any teacher (the path may be shared with others)
        teacher = load_teacher(target, probe.observation_space, probe.action_space, config.device,
                               trusted=options.trusted)
    else:
        model.save(str(target))
        teacher = SB3Teacher(model, options.algo)
    episodes = run_episodes(config.env.id, greedy(teacher, head), 20, config.eval.seed)
    return {"checkpoint": str(target), "return_mean": episodes.mean, "return_std": episodes.std}
