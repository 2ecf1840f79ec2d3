"""Policy distillation on gymnasium: an SB3 teacher's action distribution into a student policy.

After Rusu et al. (2016), "Policy Distillation": states come from rollouts, the teacher labels
each with its action distribution (logits, Q-values, or a Gaussian's [μ, log σ]), and the
student learns that distribution at temperature T. What the distribution, the objective and an
action are for the environment's action space is the ``ActionHead``'s (``actions.py``):
discrete softmax(· / T), or a Gaussian N(μ, T·σ²) with a push-pull student mean. Collection is DAgger-style (Ross et al. 2011): epoch 0 uses the teacher's
own rollouts; from then on, in each environment step the teacher acts with probability β (a
linear schedule from ``distill.dagger.beta_start`` to ``beta_end``) and the student otherwise,
and every visited state is labelled by the teacher. States accumulate in a bounded buffer;
each epoch trains ``updates_per_epoch`` minibatches drawn from it.

Every epoch is measured on held-out states visited by the teacher from validation seeds
(information metrics, spikes per decision) and scored by the student's greedy return over
``eval.val_episodes`` validation episodes (``return_mean``, the ``best_val`` choice's score);
the final student (and with ``distill.select: best_val`` the best-validation weights) and the
teacher are scored once over ``eval.episodes`` test episodes with their own seeds, and
``return_retained`` = (student − random)/(teacher − random). Per-episode returns and lengths
go to ``/episodes`` (``student_best_val_returns`` for the best-validation weights).
"""

from __future__ import annotations

from typing import Annotated, Any, Callable, Dict, Iterator, Literal, Optional, Tuple

import numpy as np
import torch
from pydantic import Field

from tempdistill.config import MAX_TIMESTEPS, ConfigError, DaggerConfig, EnvCount, RunConfig, Strict, validate_section, within
from tempdistill.core.student import Student, StudentOutput
from tempdistill.temperature import Temperature
from tempdistill.core.task import Batch
from tempdistill.tasks.base import RecordGroup, Task
from tempdistill.tasks.actions import ActionHead, action_head
from tempdistill.tasks.envs import Collector, Episodes, check_spaces, greedy, make_env, run_episodes
from tempdistill.tasks.sb3_files import check_replaceable, read_sb3_file
from tempdistill.tasks.sb3_teacher import SB3Teacher, algorithm_note, load_teacher
from tempdistill.tasks.teacher import TeacherOrigin

# Held-out states (visited by the teacher from validation seeds) for the per-epoch measures.
VALIDATION_STATES = 1000


class PolicyTeacherOptions(Strict):
    """The ``teacher`` section of a policy config: an SB3 ``.zip`` and how ``teach`` trains one."""

    checkpoint: Optional[str] = None
    algo: Literal["ppo", "a2c", "dqn", "sac"] = "ppo"
    timesteps: Annotated[int, within(1, MAX_TIMESTEPS)] = 100_000
    n_envs: EnvCount = 8
    hyperparams: Dict[str, Any] = Field(default_factory=dict)
    # Every ``select_every`` steps the greedy return over ``eval.val_episodes`` validation
    # episodes is measured and the best model so far is the one saved (0: save the last).
    select_every: Annotated[int, within(0, MAX_TIMESTEPS)] = 0
    # Load the checkpoint with SB3's own loader, which unpickles the file's serialized fields (runs
    # code from it); only for a file you trust that the safe loader refuses (sb3_files).
    trusted: bool = False


def policy_teacher_options(config: RunConfig) -> PolicyTeacherOptions:
    """The teacher section as the user wrote it (classification's network defaults do not apply)."""
    return validate_section(PolicyTeacherOptions, config.teacher.model_dump(mode="json", exclude_unset=True), "teacher")


class PolicyTask(Task):
    """Distil an SB3 policy acting in a gymnasium environment."""

    name = "policy"
    validation_score = "return_mean"

    def __init__(self, config: RunConfig, teacher: SB3Teacher, log: Callable[[str], None] = lambda _: None) -> None:
        assert config.env is not None
        self.env_id = config.env.id
        self.device = config.device
        env = make_env(self.env_id)
        self.input_dim = check_spaces(env)
        self.head: ActionHead = action_head(env.action_space, teacher.algorithm)
        self.num_outputs = self.head.student_outputs
        env.close()
        self.teacher = teacher
        self.eval_config = config.eval
        self.dagger = config.distill.dagger or DaggerConfig()
        self.epochs = config.distill.epochs
        self.teacher_actor = greedy(teacher, self.head, self.device)
        self.collector = Collector(self.env_id, config.env.n_envs, config.seed)
        obs = self.collector.collect(self.dagger.steps_per_epoch, self.teacher_actor, self.teacher_actor, 1.0)
        self.buffer_obs, self.buffer_logits = self._label(obs)
        validation = Collector(self.env_id, config.env.n_envs, config.eval.val_seed)
        held_out = validation.collect(VALIDATION_STATES, self.teacher_actor, self.teacher_actor, 1.0)
        validation.close()
        self.val_obs, self.val_logits = self._label(held_out)
        self.betas: Dict[int, float] = {0: 1.0}
        self.test_episodes: Optional[Dict[str, Episodes]] = None
        log(f"policy: {self.env_id}, {self.input_dim} observations, {self.num_outputs} actions, "
            f"{len(self.buffer_obs)} teacher states to start")

    @classmethod
    def plan_teacher(cls, config: RunConfig) -> Tuple[Any, Any]:
        options = policy_teacher_options(config)
        if not options.checkpoint:
            raise ConfigError("teacher.checkpoint: required when task is 'policy' (an SB3 .zip; "
                              "train one with `tempdistill teach CONFIG`)")
        file = read_sb3_file(options.checkpoint)  # a missing, corrupt or non-SB3 file fails before any work
        if not options.trusted:
            check_replaceable(file)  # and one the safe loader would refuse
        algorithm = file.algorithm
        assert config.env is not None
        env = make_env(config.env.id)
        check_spaces(env)
        action_head(env.action_space, algorithm).check_loss(config.distill.loss, config.env.id)
        env.close()
        return None, options

    @classmethod
    def build(cls, config: RunConfig, teacher_backend: Any, teacher_options: Any,
              log: Callable[[str], None], given: Any = None) -> Tuple["PolicyTask", TeacherOrigin]:
        assert config.env is not None
        env = make_env(config.env.id)
        check_spaces(env)
        path = teacher_options.checkpoint
        teacher = load_teacher(path, env.observation_space, env.action_space, config.device,
                               trusted=teacher_options.trusted)
        env.close()
        if teacher.trusted:
            log(f"teacher: {path} loaded by SB3's own loader (teacher.trusted: true)")
        notes: Tuple[str, ...] = ()
        if "algo" in teacher_options.model_fields_set and teacher_options.algo != teacher.algorithm:
            notes = (algorithm_note(path, teacher_options.algo, teacher.algorithm),)
        origin = TeacherOrigin("checkpoint", str(path), teacher.sha256, teacher.algorithm, teacher.trusted, notes)
        return cls(config, teacher, log), origin

    # --- data ---------------------------------------------------------------------------------
    def _label(self, obs: np.ndarray) -> Tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(obs, device=self.device)
        with torch.no_grad():
            logits = torch.cat([self.teacher(x[i : i + 4096]) for i in range(0, x.shape[0], 4096)])
        return x, logits.float()

    def beta(self, epoch: int) -> float:
        """The teacher's share of actions in ``epoch``'s collection (1 in epoch 0)."""
        if epoch == 0:
            return 1.0
        span = max(self.epochs - 1, 1)
        return self.dagger.beta_start + (self.dagger.beta_end - self.dagger.beta_start) * min(epoch / span, 1.0)

    def begin_epoch(self, epoch: int, student: Student, temperature: float) -> Dict[str, float]:
        """Collect this epoch's states (epoch 0's were collected from the teacher at build)."""
        if epoch > 0:
            mode = student.training
            student.eval()
            student.set_temperature(temperature)
            obs = self.collector.collect(self.dagger.steps_per_epoch, self.teacher_actor,
                                         greedy(student, self.head, self.device), self.beta(epoch))
            student.train(mode)
            x, logits = self._label(obs)
            self.buffer_obs = torch.cat([self.buffer_obs, x])[-self.dagger.buffer_size :]
            self.buffer_logits = torch.cat([self.buffer_logits, logits])[-self.dagger.buffer_size :]
        return {"dagger_beta": self.beta(epoch), "buffer_states": float(len(self.buffer_obs))}

    # --- the Task interface ----------------------------------------------------------------------
    def export_facts(self) -> Dict[str, Any]:
        return {"task": "policy", "env": self.env_id, "actions": self.head.facts()}

    def prepare_student(self, student: Student) -> None:
        self.head.prepare_student(student)

    def check_schedule(self, schedule: Any) -> None:
        self.head.check_schedule(schedule, self.env_id)

    def objective(self, student: Student, output: StudentOutput, batch: Batch, temperature: Temperature,
                  alpha: float, loss: str) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.head.objective(student, output, batch.teacher_logits, temperature, alpha, loss)

    def soft_label_measures(self, student: Student, tempered: torch.Tensor, logits: torch.Tensor, batch: Batch,
                            temperature: Temperature) -> Dict[str, float]:
        return self.head.measures(student, tempered, logits, batch.teacher_logits, temperature)

    def fitting_logits(self) -> torch.Tensor:
        return self.head.fitting_logits(self.buffer_logits)

    def fitting_inputs(self) -> Optional[torch.Tensor]:
        """The teacher states of ``fitting_logits``, where the action head fits the output."""
        return self.buffer_obs if self.head.fits_output else None

    def steps_per_epoch(self, batch_size: int) -> int:
        return self.dagger.updates_per_epoch

    def train_batches(self, epoch: int, batch_size: int, generator: torch.Generator,
                      teacher: bool = True) -> Iterator[Batch]:
        for _ in range(self.dagger.updates_per_epoch):
            index = torch.randint(len(self.buffer_obs), (batch_size,), generator=generator)
            index = index.to(self.buffer_obs.device)
            logits = self.buffer_logits[index]
            yield Batch(self.buffer_obs[index], logits, self.head.targets(logits))

    def evaluation_batch(self) -> Batch:
        return Batch(self.val_obs, self.val_logits, self.head.targets(self.val_logits))

    def score(self, student: Student, output: StudentOutput, batch: Batch) -> Dict[str, float]:
        """Greedy return over the validation episodes, and agreement with the teacher's action."""
        episodes = run_episodes(self.env_id, greedy(student, self.head, self.device), self.eval_config.val_episodes,
                                self.eval_config.val_seed)
        return {"return_mean": episodes.mean, "return_std": episodes.std,
                **self.head.agreement(output, batch.teacher_logits)}

    def probe_inputs(self, count: int) -> torch.Tensor:
        return self.val_obs[:count]

    def probe_facts(self, count: int) -> Dict[str, np.ndarray]:
        """The first validation observations, labelled with the teacher's greedy action where
        the action space has one (discrete actions)."""
        facts = {"probe_rows": np.arange(len(self.val_obs[:count]), dtype=np.int64)}
        actions = self.head.targets(self.val_logits[:count])
        if actions is not None and actions.ndim == 1:
            facts["probe_labels"] = actions.cpu().numpy().astype(np.int64)
        return facts

    def teacher_parameter_count(self) -> int:
        return self.teacher.actor_parameters()

    def teacher_figures(self) -> Dict[str, Any]:
        cfg = self.eval_config
        teacher = run_episodes(self.env_id, self.teacher_actor, cfg.episodes, cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        randomly = run_episodes(self.env_id, lambda obs: self.head.random_actions(rng, len(obs)),
                                cfg.episodes, cfg.seed)
        self.test_episodes = {"teacher": teacher, "random": randomly}
        return {"teacher_return_mean": teacher.mean, "teacher_return_std": teacher.std,
                "random_return_mean": randomly.mean}

    def test_figures(self, student: Student, temperature: float, weights: str = "final") -> Dict[str, Any]:
        """Greedy return over the test episodes; the final student's first ``eval.rollouts``
        episodes are kept whole."""
        student.eval()
        student.set_temperature(temperature)
        cfg = self.eval_config
        episodes = run_episodes(self.env_id, greedy(student, self.head, self.device), cfg.episodes, cfg.seed,
                                keep=cfg.rollouts if weights == "final" else 0)
        assert self.test_episodes is not None, "teacher_figures runs first"
        self.test_episodes["student" if weights == "final" else f"student_{weights}"] = episodes
        teacher, randomly = self.test_episodes["teacher"].mean, self.test_episodes["random"].mean
        retained = (episodes.mean - randomly) / (teacher - randomly) if teacher != randomly else float("nan")
        return {"student_return_mean": episodes.mean, "student_return_std": episodes.std, "return_retained": retained}

    def final_groups(self) -> Dict[str, RecordGroup]:
        if not self.test_episodes:
            return {}
        arrays = {}
        for who, episodes in self.test_episodes.items():
            arrays[f"{who}_returns"] = episodes.returns
            arrays[f"{who}_lengths"] = episodes.lengths
        groups: Dict[str, RecordGroup] = {"episodes": (arrays, {"env": self.env_id, "seed": self.eval_config.seed,
                                                                "episodes": self.eval_config.episodes})}
        student = self.test_episodes.get("student")
        for k, trajectory in enumerate(student.trajectories if student else []):
            groups[f"episodes/{k}"] = (trajectory, {"seed": self.eval_config.seed + k, "actor": "student"})
        return groups

    def close(self) -> None:
        self.collector.close()
