"""Gymnasium environments for policy distillation: checked creation, seeded episodes, DAgger.

Seeding follows gymnasium's documentation: each environment is reset with a seed once, then
reset without one (its generator carries on), and its action space is seeded too. Several
environments step in lockstep and the acting network sees their observations as one batch,
which is what vectorised collection and evaluation buy; episodes are stepped by hand rather
than through ``gymnasium.vector`` so that every evaluation episode has its own fixed seed
(episode i of an evaluation is always reset with ``seed + i``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List

import numpy as np
import torch

from tempdistill.config import ConfigError

# A policy for stepping: observations (B, F) float32 -> actions, (B,) ints or (B, A) floats.
Actor = Callable[[np.ndarray], np.ndarray]


def make_env(env_id: str, field: str = "env.id") -> Any:
    """A gymnasium environment; an unknown id or a missing extra is a ConfigError naming ``field``."""
    import gymnasium as gym

    try:
        return gym.make(env_id)
    except gym.error.DependencyNotInstalled as exc:
        raise ConfigError(f"{field}: {env_id!r} needs an extra that is not installed ({str(exc).splitlines()[0]})") from None
    except (gym.error.NameNotFound, gym.error.NamespaceNotFound, gym.error.VersionNotFound,
            gym.error.UnregisteredEnv, gym.error.Error) as exc:
        raise ConfigError(f"{field}: unknown environment {env_id!r} ({str(exc).splitlines()[0]})") from None
    except ImportError as exc:
        raise ConfigError(f"{field}: {env_id!r} needs a package that is not installed ({exc})") from None


def check_spaces(env: Any, field: str = "env.id") -> int:
    """The observation features of an environment this tool can distil on (a flat Box, and
    Discrete or flat Box actions)."""
    from gymnasium import spaces

    if not isinstance(env.observation_space, spaces.Box) or len(env.observation_space.shape) != 1:
        raise ConfigError(f"{field}: observations must be a flat Box, got {env.observation_space}")
    discrete = isinstance(env.action_space, spaces.Discrete)
    if not (discrete or (isinstance(env.action_space, spaces.Box) and len(env.action_space.shape) == 1)):
        raise ConfigError(f"{field}: actions must be Discrete or a flat Box, got {env.action_space}")
    return int(env.observation_space.shape[0])


def env_action(action: np.ndarray) -> Any:
    """One env's action as gymnasium wants it: an int for Discrete, the array for a Box."""
    return int(action) if np.ndim(action) == 0 else action


@dataclass
class Episodes:
    """Returns and lengths of finished episodes, in episode order; the first few episodes'
    whole trajectories when asked for (Minari's layout: ``observations`` has one more row than
    ``actions``, ``rewards``, ``terminations`` and ``truncations``)."""

    returns: np.ndarray
    lengths: np.ndarray
    trajectories: List[Dict[str, np.ndarray]] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return float(self.returns.mean())

    @property
    def std(self) -> float:
        return float(self.returns.std())


def run_episodes(env_id: str, actor: Actor, episodes: int, seed: int, lockstep: int = 128, keep: int = 0) -> Episodes:
    """``episodes`` full episodes, episode i reset with ``seed + i``, ``lockstep`` at a time;
    the trajectories of the first ``keep`` episodes are kept whole."""
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    steps: Dict[int, Dict[str, list]] = {i: {"observations": [], "actions": [], "rewards": [], "terminations": [],
                                             "truncations": []} for i in range(min(keep, episodes))}
    envs = [make_env(env_id) for _ in range(min(lockstep, episodes))]
    try:
        for first in range(0, episodes, len(envs)):
            batch = list(range(first, min(first + len(envs), episodes)))
            obs = [envs[j].reset(seed=seed + i)[0] for j, i in enumerate(batch)]
            for j, i in enumerate(batch):
                if i in steps:
                    steps[i]["observations"].append(obs[j])
            active = list(range(len(batch)))
            while active:
                actions = actor(np.stack([obs[j] for j in active]).astype(np.float32))
                still = []
                for j, action in zip(active, actions):
                    obs[j], reward, terminated, truncated, _ = envs[j].step(env_action(action))
                    returns[batch[j]] += float(reward)
                    lengths[batch[j]] += 1
                    if batch[j] in steps:
                        for key, value in zip(("observations", "actions", "rewards", "terminations", "truncations"),
                                              (obs[j], action, reward, terminated, truncated)):
                            steps[batch[j]][key].append(value)
                    if not (terminated or truncated):
                        still.append(j)
                active = still
    finally:
        for env in envs:
            env.close()
    trajectories = [{key: np.asarray(values) for key, values in steps[i].items()} for i in sorted(steps)]
    return Episodes(returns, lengths, trajectories)


class Collector:
    """``n_envs`` environments stepping in lockstep for DAgger collection, seeded once."""

    def __init__(self, env_id: str, n_envs: int, seed: int) -> None:
        self.envs = [make_env(env_id) for _ in range(n_envs)]
        self.obs = []
        for i, env in enumerate(self.envs):
            env.action_space.seed(seed + i)
            self.obs.append(env.reset(seed=seed + i)[0])
        self.rng = np.random.default_rng(seed)

    def collect(self, steps: int, teacher: Actor, student: Actor, beta: float) -> np.ndarray:
        """Visit ``steps`` states; each env step, the teacher acts with probability ``beta``.

        Returns the visited observations (steps, F), float32. With ``beta = 1`` no student
        action is taken and no random number is drawn, so it equals plain teacher rollouts.
        """
        visited: List[np.ndarray] = []
        while len(visited) < steps:
            obs = np.stack(self.obs).astype(np.float32)
            visited.extend(obs)
            actions = teacher(obs)
            if beta < 1.0:
                use_student = self.rng.random(len(self.envs)) >= beta
                if use_student.any():
                    mask = use_student.reshape(-1, *([1] * (np.ndim(actions) - 1)))
                    actions = np.where(mask, student(obs), actions)
            for i, (env, action) in enumerate(zip(self.envs, actions)):
                self.obs[i], _, terminated, truncated, _ = env.step(env_action(action))
                if terminated or truncated:
                    self.obs[i] = env.reset()[0]
        return np.stack(visited[:steps]).astype(np.float32)

    def close(self) -> None:
        for env in self.envs:
            env.close()


def greedy(network: Callable[[torch.Tensor], Any], head: Any, device: str = "cpu") -> Actor:
    """An actor taking a network's deterministic action under ``head`` (an ``ActionHead``):
    the argmax action, or the Gaussian's mean squashed into the action box. A student's
    output object and a teacher's plain tensor are both understood."""
    from tempdistill.core.student import StudentOutput

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = network(torch.as_tensor(obs, device=device))
        if isinstance(out, StudentOutput):
            return head.student_actions(out)
        return head.teacher_actions(out)

    return act
