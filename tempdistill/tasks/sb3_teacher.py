"""Stable-Baselines3 models as distillation teachers: any user's PPO, A2C, DQN or SAC ``.zip``.

The algorithm is read from the file (its saved ``data``: the policy class's module, and
PPO's ``clip_range`` that A2C lacks), never asked for. The teacher's soft label at T is its
action distribution at T, after Rusu et al. (2016):

* PPO / A2C with discrete actions: the policy's categorical logits (normalised log-probs);
  softmax(logits / T) is the tempered distribution;
* DQN: the Q-values; softmax(Q / T) (Rusu's τ);
* Gaussian policies (continuous actions; SAC, or PPO/A2C on a Box): ``[μ, log σ]`` of the
  policy's diagonal Gaussian over pre-squash actions, whose tempered form is N(μ, T·σ²)
  (``tempdistill.tasks.actions.GaussianActions``). SAC's log σ is its actor's, clamped as SB3
  clamps it.

A file from someone else is loaded without unpickling anything from it (``sb3_files``: SB3's
``:serialized:`` fields are replaced, its weights read weights-only); ``teacher.trusted: true``
hands the file to SB3's own loader instead, and the run records ``teacher_trusted``.

``SB3Teacher`` is an ``nn.Module`` from observations to those logits, so the distillation loop
treats it like any teacher network; ``actor_parameters`` counts the part that acts (not the
value head), the size a student is compared against.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch
from torch import nn

from tempdistill.config import ConfigError
from tempdistill.tasks.sb3_files import ALGORITHMS, SB3File, algorithm_class, read_sb3_file, safe_objects, \
    weights_only_archive

__all__ = ["ALGORITHMS", "SB3Teacher", "algorithm_class", "load_teacher", "read_algorithm"]


def read_algorithm(path: str | Path, field: str = "teacher.checkpoint") -> str:
    """Which SB3 algorithm saved ``path``; ConfigError naming ``field`` if it is not an SB3 zip."""
    return read_sb3_file(path, field).algorithm


class SB3Teacher(nn.Module):
    """An SB3 model's action distribution: observations (B, F) -> logits (B, K) for discrete
    actions, ``[μ, log σ]`` (B, 2A) for a Gaussian policy."""

    def __init__(self, model: Any, algorithm: str) -> None:
        super().__init__()
        from gymnasium import spaces

        self.algorithm = algorithm
        # Set by ``load_teacher``: the loaded bytes' hash, and whether SB3's own loader read them.
        self.sha256 = ""
        self.trusted = False
        self.policy = model.policy
        self.policy.set_training_mode(False)
        self.action_space = model.action_space
        self.continuous = not isinstance(model.action_space, spaces.Discrete)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.algorithm == "dqn":
            return self.policy.q_net(obs)
        if self.algorithm == "sac":
            mean, log_std, _ = self.policy.actor.get_action_dist_params(obs)
            return torch.cat([mean, log_std], dim=-1)
        distribution = self.policy.get_distribution(obs).distribution
        if self.continuous:
            return torch.cat([distribution.mean, distribution.stddev.log()], dim=-1)
        return distribution.logits

    def actor_parameters(self) -> int:
        """Parameters that act: Q-network (DQN), SAC's actor, or features + policy MLP + action
        head (+ log σ) of PPO/A2C."""
        if self.algorithm == "dqn":
            return sum(p.numel() for p in self.policy.q_net.parameters())
        if self.algorithm == "sac":
            return sum(p.numel() for p in self.policy.actor.parameters())
        policy = self.policy
        parts = [policy.action_net, policy.mlp_extractor.policy_net]
        extractor = policy.pi_features_extractor if not policy.share_features_extractor else policy.features_extractor
        parts.append(extractor)
        extra = policy.log_std.numel() if self.continuous else 0
        return sum(p.numel() for part in parts for p in part.parameters()) + extra


def load_teacher(path: str | Path, observation_space: Any, action_space: Any, device: str = "cpu",
                 field: str = "teacher.checkpoint", trusted: bool = False) -> SB3Teacher:
    """Load an SB3 ``.zip`` acting in the environment's spaces, without unpickling anything from
    it (``sb3_files``); with ``trusted`` by SB3's own loader, which runs the file's pickles."""
    from gymnasium import spaces

    file = read_sb3_file(path, field)
    if trusted:
        model = _sb3_load(file, io.BytesIO(file.raw), None, device, field)
        _check_loaded_spaces(file, model, observation_space, action_space, field)
    else:
        objects = safe_objects(file, observation_space, action_space, field)
        model = _sb3_load(file, weights_only_archive(file, field), objects, device, field)
    if isinstance(model.action_space, spaces.Box) and _uses_sde(model, file.algorithm):
        raise ConfigError(f"{field}: {path} explores with gSDE (use_sde=True); only plain diagonal Gaussian "
                          "policies are distilled")
    teacher = SB3Teacher(model, file.algorithm).to(device)
    teacher.sha256, teacher.trusted = file.sha256, trusted
    return teacher


def _sb3_load(file: SB3File, archive: io.BytesIO, objects: Any, device: str, field: str) -> Any:
    try:
        return algorithm_class(file.algorithm).load(archive, device=device, custom_objects=objects)
    except Exception as exc:  # SB3 raises many kinds for a damaged file
        raise ConfigError(f"{field}: cannot load {file.path} as an SB3 {file.algorithm.upper()} model "
                          f"({type(exc).__name__})") from None


def _check_loaded_spaces(file: SB3File, model: Any, observation_space: Any, action_space: Any, field: str) -> None:
    expected = (tuple(observation_space.shape), _actions(action_space))
    found = (tuple(model.observation_space.shape), _actions(model.action_space))
    if found != expected:
        raise ConfigError(f"{field}: {file.path} was trained on observations {found[0]} with {found[1]} actions; "
                          f"the environment has observations {expected[0]} with {expected[1]} actions")


def algorithm_note(path: str | Path, configured: str, found: str, field: str = "teacher.algo") -> str:
    """The warning when the config names another algorithm than the file's (the file's is used:
    the network's outputs mean Q-values or log-probabilities by what saved it)."""
    return (f"warning: {field}: the config says {configured!r} but {Path(path).name} was saved by "
            f"{found.upper()}; it is loaded and recorded as {found!r}")


def _uses_sde(model: Any, algorithm: str) -> bool:
    if algorithm == "sac":
        return bool(model.policy.actor.use_sde)
    from stable_baselines3.common.distributions import DiagGaussianDistribution

    return not isinstance(model.policy.action_dist, DiagGaussianDistribution)


def _actions(space: Any) -> Any:
    return int(space.n) if hasattr(space, "n") else tuple(space.shape)


def describe_teacher(teacher: SB3Teacher) -> Dict[str, Any]:
    return {"algorithm": teacher.algorithm, "actor_parameters": teacher.actor_parameters()}


def to_tensor(obs: np.ndarray, device: str = "cpu") -> torch.Tensor:
    return torch.as_tensor(np.asarray(obs, dtype=np.float32), device=device)
