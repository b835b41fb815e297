"""VariBAD's gridworld navigation ("GridNavi"), single gymnasium env and batched torch env.

Zintgraf et al. 2020, "VariBAD: A Very Good Method for Bayes-Adaptive Deep RL via Meta-Learning", sec. 5.1
(code: lmzintgraf/varibad ``environments/navigation/gridworld.py``):
a 5x5 grid; the agent starts in cell ``(0, 0)``; the task is a goal cell drawn uniformly among the 21 cells
other than ``(0, 0), (0, 1), (1, 0), (1, 1)``; 5 actions ``0 = stay, 1 = up (y+1), 2 = right (x+1), 3 = down
(y-1), 4 = left (x-1)``, moves off the grid leave the agent in place; reward ``+1`` on the goal cell and
``-0.1`` elsewhere (the goal does not end the episode); episodes of 15 steps, 4 episodes per task (the
BAMDP horizon of 60 steps over which VariBAD/RL² maximise the return). Observation: the agent's cell
``(x, y)`` as float32 (the goal is not observed).

API (same shape as :mod:`fastadapt.tasks.rl.navigation2d`)::

    dist = Gridworld(GridworldConfig())
    tasks = dist.sample(n, seed, split)            # list[GridTask]; VariBAD has no fixed split, so
                                                   # "train"/"test" are independent streams over the 21 goals
    env = dist.batched_env(num_tasks, num_envs)    # obs [T, E, 2], actions [T, E] int64
    single = dist.make_env()                       # gymnasium "fastadapt/Gridworld-v0"
    dist.episodes_per_task                         # 4 (trial length for RL²/VariBAD-style learners)
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from pydantic import Field

from fastadapt.core.config import Section
from fastadapt.core.errors import ConfigError, EnvError
from fastadapt.core.registry import register_task
from fastadapt.core.seeding import np_rng
from fastadapt.tasks.rl.action_checks import check_discrete_action, check_discrete_actions, env_label

ENV_ID = "fastadapt/Gridworld-v0"
SPLITS = ("train", "test")
#: ``(dx, dy)`` of actions 0..4: stay, up, right, down, left (VariBAD's ``state_transition``).
MOVES = ((0, 0), (0, 1), (1, 0), (0, -1), (-1, 0))
#: Cells excluded as goals (the start cell and its neighbourhood, as in VariBAD).
EXCLUDED_GOALS = ((0, 0), (0, 1), (1, 0), (1, 1))
GOAL_REWARD = 1.0
STEP_REWARD = -0.1


@dataclass(frozen=True)
class GridTask:
    """One gridworld task: the goal cell ``(x, y)``."""

    goal: tuple[int, int]

    def to_dict(self) -> dict[str, Any]:
        return {"goal": [int(self.goal[0]), int(self.goal[1])]}

    @classmethod
    def from_any(cls, task: Any, num_cells: int = 5) -> GridTask:
        """A :class:`GridTask` from itself or ``{"goal": [x, y]}``; EnvError if off the grid."""
        if isinstance(task, GridTask):
            goal = task.goal
        else:
            raw = task.get("goal") if isinstance(task, Mapping) else task
            try:
                x, y = (int(v) for v in np.asarray(raw).reshape(2))
            except Exception:
                raise EnvError(f"gridworld task: expected {{'goal': [x, y]}}, got {task!r}") from None
            goal = (x, y)
        if not all(0 <= g < num_cells for g in goal):
            raise EnvError(f"gridworld task: goal {goal} is off the {num_cells}x{num_cells} grid")
        return cls((int(goal[0]), int(goal[1])))


def possible_goals(num_cells: int = 5) -> list[tuple[int, int]]:
    """The goal cells: every cell except :data:`EXCLUDED_GOALS` (21 on the 5x5 grid)."""
    return [c for c in itertools.product(range(num_cells), repeat=2) if c not in EXCLUDED_GOALS]


class GridworldConfig(Section):
    """The ``task:`` section for ``gridworld`` (VariBAD's GridNavi)."""

    num_cells: int = Field(5, ge=3)
    episode_steps: int = Field(15, gt=0, description="steps per episode")
    episodes_per_task: int = Field(4, gt=0, description="episodes per task (trial) for BAMDP learners")


def _spaces(num_cells: int) -> tuple[gym.spaces.Box, gym.spaces.Discrete]:
    obs = gym.spaces.Box(low=0.0, high=float(num_cells - 1), shape=(2,), dtype=np.float32)
    return obs, gym.spaces.Discrete(len(MOVES))


class Gridworld:
    """Task distribution + env factories for VariBAD's gridworld (see the module docstring)."""

    env_id = ENV_ID

    def __init__(self, cfg: GridworldConfig | None = None, **overrides: Any) -> None:
        if cfg is None:
            cfg = GridworldConfig(**overrides)
        elif overrides:
            cfg = GridworldConfig(**{**cfg.model_dump(), **overrides})
        self.cfg = cfg
        self.horizon = self.cfg.episode_steps
        self.max_episode_steps = self.horizon
        self.episodes_per_task = self.cfg.episodes_per_task
        self.observation_space, self.action_space = _spaces(self.cfg.num_cells)
        self.obs_dim = 2
        self.n_actions = len(MOVES)
        self.discrete = True
        self.goals = possible_goals(self.cfg.num_cells)

    def sample(self, n: int, seed: int, split: str = "train") -> list[GridTask]:
        """``n`` goals drawn uniformly (with replacement) from the 21 cells; same args -> same tasks."""
        if split not in SPLITS:
            raise ConfigError(f"split: expected one of {SPLITS}, got {split!r}")
        if n < 0:
            raise ConfigError(f"n: expected >= 0, got {n}")
        rng = np_rng(seed, "gridworld", split)
        idx = rng.integers(0, len(self.goals), size=n)
        return [GridTask(self.goals[int(i)]) for i in idx]

    def all_tasks(self) -> list[GridTask]:
        """Every possible task once (for exhaustive evaluation)."""
        return [GridTask(g) for g in self.goals]

    def env_kwargs(self) -> dict[str, Any]:
        return {"num_cells": self.cfg.num_cells, "episode_steps": self.cfg.episode_steps}

    def make_env(self, **kwargs: Any) -> gym.Env:
        """A single gymnasium env ``fastadapt/Gridworld-v0``."""
        return gym.make(ENV_ID, **{**self.env_kwargs(), **kwargs})

    def batched_env(
        self, num_tasks: int, num_envs: int, device: str | torch.device = "cpu"
    ) -> GridworldBatchedEnv:
        """A :class:`GridworldBatchedEnv` with ``num_tasks x num_envs`` agents."""
        return GridworldBatchedEnv(num_tasks, num_envs, device=device, **self.env_kwargs())

    def optimal_episode_return(self, task: Any) -> float:
        """Return of one episode of an agent that knows the goal (shortest path, then stay)."""
        g = GridTask.from_any(task, self.cfg.num_cells).goal
        d = g[0] + g[1]
        steps = self.cfg.episode_steps
        on_goal = max(0, steps - d + 1) if d > 0 else steps
        return on_goal * GOAL_REWARD + (steps - on_goal) * STEP_REWARD


class GridworldEnv(gym.Env):
    """Single gymnasium env ``fastadapt/Gridworld-v0`` (VariBAD's GridNavi).

    ``reset(seed, options={"task": GridTask | {"goal": [x, y]}})`` sets the goal (kept for later resets;
    without any, a goal is drawn from the env's ``np_random``). Observation ``(x, y)`` float32; actions
    ``Discrete(5)``: an int (or NumPy integer / 0-d integer array) in ``0..4``, anything else raises
    :class:`EnvError` naming the env and the action; truncated after ``episode_steps``.
    """

    metadata = {"render_modes": []}

    def __init__(self, num_cells: int = 5, episode_steps: int = 15, render_mode: str | None = None) -> None:
        super().__init__()
        self.num_cells = int(num_cells)
        self.episode_steps = int(episode_steps)
        self.observation_space, self.action_space = _spaces(self.num_cells)
        self.render_mode = render_mode
        self._goals = possible_goals(self.num_cells)
        self._goal: tuple[int, int] | None = None
        self._pos = [0, 0]
        self._t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        if options.get("task") is not None:
            self._goal = GridTask.from_any(options["task"], self.num_cells).goal
        elif self._goal is None:
            self._goal = self._goals[int(self.np_random.integers(len(self._goals)))]
        self._pos = [0, 0]
        self._t = 0
        return np.array(self._pos, dtype=np.float32), {"goal": np.array(self._goal)}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._goal is None:
            raise EnvError("gridworld: step() called before reset()")
        a = check_discrete_action(action, len(MOVES), env_label(self, ENV_ID))
        dx, dy = MOVES[a]
        hi = self.num_cells - 1
        self._pos = [min(max(self._pos[0] + dx, 0), hi), min(max(self._pos[1] + dy, 0), hi)]
        self._t += 1
        reward = GOAL_REWARD if tuple(self._pos) == self._goal else STEP_REWARD
        truncated = self._t >= self.episode_steps
        return np.array(self._pos, dtype=np.float32), float(reward), False, truncated, {}


class GridworldBatchedEnv:
    """``num_tasks x num_envs`` gridworld agents in one tensor op (core.protocols.BatchedEnv).

    ``reset(seed) -> obs [T, E, 2]`` (float32 cells), ``step(actions [T, E] int) -> (obs, reward [T, E],
    terminated [T, E] (always False), truncated [T, E], {})``. Deterministic dynamics.
    """

    def __init__(
        self,
        num_tasks: int,
        num_envs: int,
        num_cells: int = 5,
        episode_steps: int = 15,
        device: str | torch.device = "cpu",
    ) -> None:
        if num_tasks < 1 or num_envs < 1:
            raise ConfigError(f"batched env: num_tasks and num_envs must be >= 1, got {num_tasks}, {num_envs}")
        self.num_tasks, self.num_envs = int(num_tasks), int(num_envs)
        self.num_cells = int(num_cells)
        self.max_episode_steps = int(episode_steps)
        self.device = torch.device(device)
        self.observation_space, self.action_space = _spaces(self.num_cells)
        self.moves = torch.tensor(MOVES, dtype=torch.long, device=self.device)
        self.goals = torch.zeros(self.num_tasks, 1, 2, dtype=torch.long, device=self.device)
        self.pos = torch.zeros(self.num_tasks, self.num_envs, 2, dtype=torch.long, device=self.device)
        self.generator = torch.Generator(device=self.device)
        self._t = 0
        self._tasks_set = False
        self._false = torch.zeros(self.num_tasks, self.num_envs, dtype=torch.bool, device=self.device)

    def set_tasks(self, tasks: Sequence[Any]) -> None:
        if len(tasks) != self.num_tasks:
            raise EnvError(f"gridworld batched env: expected {self.num_tasks} tasks, got {len(tasks)}")
        goals = [GridTask.from_any(t, self.num_cells).goal for t in tasks]
        self.goals = torch.tensor(goals, dtype=torch.long, device=self.device).reshape(self.num_tasks, 1, 2)
        self._tasks_set = True

    def reset(self, seed: int | None = None) -> torch.Tensor:
        if not self._tasks_set:
            raise EnvError("gridworld batched env: call set_tasks() before reset()")
        if seed is not None:
            self.generator.manual_seed(int(seed))
        self.pos = torch.zeros(self.num_tasks, self.num_envs, 2, dtype=torch.long, device=self.device)
        self._t = 0
        return self.pos.float()

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """``actions``: an integer tensor ``[tasks, envs]`` in ``0..4``; floats, bools, out-of-range entries
        and other shapes raise :class:`EnvError` naming the position, leaving the env unchanged."""
        a = check_discrete_actions(actions, (self.num_tasks, self.num_envs), len(MOVES), "gridworld batched env")
        self.pos = (self.pos + self.moves[a]).clamp(0, self.num_cells - 1)
        at_goal = (self.pos == self.goals).all(-1)
        reward = torch.where(at_goal, GOAL_REWARD, STEP_REWARD).to(torch.float32)
        self._t += 1
        truncated = self._false | (self._t >= self.max_episode_steps)
        return self.pos.float(), reward, self._false, truncated, {}


if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point=GridworldEnv)


@register_task("gridworld", family="metarl", config=GridworldConfig)
def build_gridworld(cfg: GridworldConfig) -> Gridworld:
    """VariBAD's 5x5 gridworld: unknown goal among 21 cells, +1 at the goal, -0.1 otherwise, 4 x 15 steps."""
    return Gridworld(cfg)


__all__ = [
    "ENV_ID",
    "GridTask",
    "Gridworld",
    "GridworldBatchedEnv",
    "GridworldConfig",
    "GridworldEnv",
    "MOVES",
    "build_gridworld",
    "possible_goals",
]
