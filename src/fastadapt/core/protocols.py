"""Protocols every layer programs against.

The experiment layer trains and evaluates anything that satisfies :class:`Learner`; meta-RL algorithms
additionally satisfy :class:`MetaLearner` so that the evaluation protocol can adapt them on held-out tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from fastadapt.core.config import Section
from fastadapt.core.types import EpisodeBatch, Row


@runtime_checkable
class TaskDistribution(Protocol):
    """A distribution over tasks with fixed meta-train / meta-test splits where the literature has them.

    ``sample(n, seed, split)`` returns ``n`` task descriptions (plain dicts or small dataclasses of task
    parameters, which can be passed to an env through ``reset(options={"task": task})`` or stacked into
    tensors for batched envs). The same ``(n, seed, split)`` always gives the same tasks.
    """

    def sample(self, n: int, seed: int, split: str = "train") -> Sequence[Any]: ...


@runtime_checkable
class Policy(Protocol):
    """Maps observations ``[..., obs_dim]`` to an action distribution with the same leading dims."""

    def __call__(self, obs: torch.Tensor) -> torch.distributions.Distribution: ...


@runtime_checkable
class Sampler(Protocol):
    """Collects trajectories for many tasks at once.

    ``params`` are per-task policy parameters (each tensor with a leading ``tasks`` dim) or ``None`` for the
    module's own parameters shared by all tasks.
    """

    def sample(
        self, tasks: Sequence[Any], params: dict[str, torch.Tensor] | None, seed: int
    ) -> EpisodeBatch: ...


@runtime_checkable
class Learner(Protocol):
    """What ``fastadapt train`` needs from an algorithm.

    - ``train_step(iteration)`` runs one (meta-)training iteration and returns scalar metrics, including
      the cumulative ``env_steps`` (RL) or ``examples`` (supervised) consumed so far.
    - ``state_dict()`` returns everything needed to continue bit-for-bit (weights, optimizer state, RNG
      states, counters) as nested dicts/lists of tensors, numbers, strings and numpy arrays;
      ``load_state_dict`` restores it. Checkpoints store tensors in safetensors and the rest as JSON.
    - ``evaluate(cfg, seed)`` runs the family's meta-test protocol and returns result rows.
    - ``key_metric`` names the metric shown on the progress bar.
    """

    key_metric: str

    def train_step(self, iteration: int) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def evaluate(self, cfg: Section, seed: int) -> list[Row]: ...


@runtime_checkable
class MetaLearner(Learner, Protocol):
    """A meta-learner as the evaluation protocol sees it (DESIGN.md).

    ``adapt(task, budget)`` returns adapted parameters (or an adapted state such as a posterior or a hidden
    state) after ``budget`` adaptation steps or episodes on ``task``; ``act`` acts with them.
    """

    def meta_train_step(self, iteration: int) -> dict[str, float]: ...

    def adapt(self, task: Any, budget: int) -> Any: ...

    def act(self, adapted: Any, obs: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class BatchedEnv(Protocol):
    """Many tasks x many envs stepped in one tensor operation (the cheap task families).

    Spaces describe ONE env. ``set_tasks`` takes ``num_tasks`` task descriptions (as returned by the
    family's ``TaskDistribution.sample``); ``reset(seed)`` returns ``obs: [tasks, envs, *obs_shape]``;
    ``step(actions: [tasks, envs, *act_shape])`` returns ``(obs, reward [tasks, envs], terminated [tasks, envs]
    bool, truncated [tasks, envs] bool, info)``. Envs whose episode ended are NOT reset automatically; the
    caller resets (all at once) between episodes. Randomness comes from a torch.Generator seeded by ``reset``.
    """

    num_tasks: int
    num_envs: int
    max_episode_steps: int

    def set_tasks(self, tasks: Sequence[Any]) -> None: ...

    def reset(self, seed: int | None = None) -> torch.Tensor: ...

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]: ...
