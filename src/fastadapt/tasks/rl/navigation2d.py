"""2D point navigation: the MAML paper's dense task and PEARL's sparse point robot.

Dense (Finn et al. 2017, "Model-Agnostic Meta-Learning", sec. 5.3; cbfinn/maml_rl
``maml_examples/point_env_randgoal.py``):
    a point starts at ``(0, 0)``; the task is a goal ``g ~ U[-0.5, 0.5]^2``; an action ``a`` is clipped to
    ``[-0.1, 0.1]^2`` and moves the point, ``s' = s + clip(a)``; the reward is the negative Euclidean distance
    ``-||s' - g||``; the episode terminates when ``|s'_x - g_x| < 0.01`` and ``|s'_y - g_y| < 0.01`` (as in the
    original code) and is truncated after ``horizon = 100`` steps.

Sparse (Rakelly et al. 2019, "Efficient Off-Policy Meta-RL via Probabilistic Context Variables" (PEARL),
katerakelly/oyster ``rlkit/envs/point_robot.py`` ``SparsePointEnv`` and ``configs/sparse-point-robot.json``):
    the same point dynamics starting at ``(0, 0)``; the goals are ``num_goals = 100`` points on the upper
    half of the unit circle, ``angle = linspace(0, pi, 100)``, shuffled with ``RandomState(1337)`` as in
    PEARL; the first 80 are the meta-train split, the last 20 the meta-test split; the reward is
    ``1 - ||s' - g||`` inside ``goal_radius = 0.2`` of the goal and ``0`` outside; no termination; horizon 20.

API (stable; used by the samplers and the meta-RL algorithms)::

    dist = Navigation2D(Navigation2DConfig(sparse=False))   # also: TASKS.get("navigation2d").build(cfg)
    tasks = dist.sample(40, seed=0, split="train")          # list[Nav2DTask]; same args -> same tasks
    env = dist.batched_env(num_tasks=40, num_envs=20)       # core.protocols.BatchedEnv (torch)
    env.set_tasks(tasks); obs = env.reset(seed=0)           # obs: [tasks, envs, 2]
    obs, rew, term, trunc, info = env.step(actions)         # actions: [tasks, envs, 2]
    single = dist.make_env()                                # gymnasium env "fastadapt/Navigation2D-v0"
    obs, info = single.reset(seed=0, options={"task": tasks[0]})
    a = oracle_actions(obs, goals)                          # the oracle policy (knows the goal)

A task is a frozen :class:`Nav2DTask` (``goal``: a pair of floats); ``Nav2DTask.from_any`` also accepts
``{"goal": [x, y]}`` (JSON form, ``task.to_dict()``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from pydantic import Field, model_validator

from fastadapt.core.config import Section
from fastadapt.core.errors import ConfigError, EnvError
from fastadapt.core.registry import register_task
from fastadapt.core.seeding import np_rng
from fastadapt.tasks.rl.action_checks import check_box_action, check_box_actions, env_label, nonfinite_error

ENV_ID = "fastadapt/Navigation2D-v0"
SPLITS = ("train", "test")
#: MAML's termination tolerance per axis (cbfinn/maml_rl point_env_randgoal.py).
GOAL_TOLERANCE = 0.01
_NEAR = 0.015  # > GOAL_TOLERANCE * sqrt(2)
#: PEARL shuffles the half-circle goals after ``np.random.seed(1337)``.
PEARL_SHUFFLE_SEED = 1337


@dataclass(frozen=True)
class Nav2DTask:
    """One 2D-navigation task: the goal position ``(x, y)``."""

    goal: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON form ``{"goal": [x, y]}``."""
        return {"goal": [float(self.goal[0]), float(self.goal[1])]}

    @classmethod
    def from_any(cls, task: Any) -> Nav2DTask:
        """A :class:`Nav2DTask` from itself, ``{"goal": [x, y]}`` or a length-2 sequence; EnvError otherwise."""
        if isinstance(task, Nav2DTask):
            return task
        goal = task.get("goal") if isinstance(task, Mapping) else task
        try:
            x, y = (float(v) for v in np.asarray(goal, dtype=np.float64).reshape(2))
        except Exception:
            raise EnvError(f"navigation2d task: expected {{'goal': [x, y]}}, got {task!r}") from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise EnvError(f"navigation2d task: non-finite goal {task!r}")
        return cls((x, y))


class Navigation2DConfig(Section):
    """The ``task:`` section for ``navigation2d`` (MAML's dense task, or PEARL's sparse point robot)."""

    sparse: bool = False
    horizon: int | None = Field(None, gt=0, description="steps per episode; None: 100 dense, 20 sparse")
    max_action: float = Field(0.1, gt=0, description="actions are clipped to [-max_action, max_action]^2")
    goal_low: float = Field(-0.5, description="dense goals ~ U[goal_low, goal_high]^2")
    goal_high: float = 0.5
    terminate_at_goal: bool = Field(True, description="dense: episode ends within 0.01 of the goal per axis")
    goal_radius: float = Field(0.2, gt=0, description="sparse: reward only within this distance")
    num_goals: int = Field(100, ge=2, description="sparse: goals on the half circle (PEARL n_tasks)")
    num_train_goals: int = Field(80, ge=1, description="sparse: the first goals after shuffling are meta-train")

    @model_validator(mode="after")
    def _check(self) -> Navigation2DConfig:
        if self.goal_high <= self.goal_low:
            raise ValueError("goal_high must be > goal_low")
        if self.num_train_goals >= self.num_goals:
            raise ValueError("num_train_goals must be < num_goals (the rest is the meta-test split)")
        return self

    @property
    def steps(self) -> int:
        """The effective horizon."""
        if self.horizon is not None:
            return int(self.horizon)
        return 20 if self.sparse else 100


def sparse_goal_pool(num_goals: int = 100) -> np.ndarray:
    """PEARL's sparse point-robot goals ``[num_goals, 2]`` on the unit half circle, shuffled as in PEARL."""
    angles = np.linspace(0.0, np.pi, num=num_goals)
    goals = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    # An explicit, locally owned legacy generator reproduces PEARL's ``np.random.seed(1337); shuffle``.
    np.random.RandomState(PEARL_SHUFFLE_SEED).shuffle(goals)
    return goals


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"split: expected one of {SPLITS}, got {split!r}")


class Navigation2D:
    """Task distribution + env factories for 2D navigation (see the module docstring).

    ``sample(n, seed, split)``: dense goals come from a stream keyed by ``(seed, split)``, so meta-train and
    meta-test goals never share a stream; sparse goals are drawn (without replacement while possible) from
    the fixed PEARL split (80 train / 20 test). ``split_tasks(split)`` returns a sparse split in full.
    """

    env_id = ENV_ID

    def __init__(self, cfg: Navigation2DConfig | None = None, **overrides: Any) -> None:
        if cfg is None:
            cfg = Navigation2DConfig(**overrides)
        elif overrides:
            cfg = Navigation2DConfig(**{**cfg.model_dump(), **overrides})
        self.cfg = cfg
        self.horizon = self.cfg.steps
        self.max_episode_steps = self.horizon
        self.observation_space = _obs_space()
        self.action_space = _act_space(self.cfg.max_action)
        self.obs_dim = 2
        self.act_dim = 2
        self.discrete = False
        self._pool = sparse_goal_pool(self.cfg.num_goals) if self.cfg.sparse else None

    # -- tasks -----------------------------------------------------------------------------------------
    def split_tasks(self, split: str = "train") -> list[Nav2DTask]:
        """The whole fixed split (sparse variant only; the dense variant has a continuum of goals)."""
        _check_split(split)
        if self._pool is None:
            raise ConfigError("split_tasks: the dense navigation2d variant has no finite split; use sample()")
        k = self.cfg.num_train_goals
        goals = self._pool[:k] if split == "train" else self._pool[k:]
        return [Nav2DTask((float(g[0]), float(g[1]))) for g in goals]

    def sample(self, n: int, seed: int, split: str = "train") -> list[Nav2DTask]:
        """``n`` tasks for ``split``; the same ``(n, seed, split)`` always gives the same tasks."""
        _check_split(split)
        if n < 0:
            raise ConfigError(f"n: expected >= 0, got {n}")
        rng = np_rng(seed, "navigation2d", "sparse" if self.cfg.sparse else "dense", split)
        if self._pool is None:
            goals = rng.uniform(self.cfg.goal_low, self.cfg.goal_high, size=(n, 2))
            return [Nav2DTask((float(g[0]), float(g[1]))) for g in goals]
        pool = self.split_tasks(split)
        idx = rng.choice(len(pool), size=n, replace=n > len(pool))
        return [pool[int(i)] for i in idx]

    # -- envs ------------------------------------------------------------------------------------------
    def env_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the single env and the batched env for this config."""
        c = self.cfg
        return {
            "horizon": self.horizon,
            "sparse": c.sparse,
            "max_action": c.max_action,
            "goal_radius": c.goal_radius,
            "terminate_at_goal": c.terminate_at_goal and not c.sparse,
            "goal_low": c.goal_low,
            "goal_high": c.goal_high,
        }

    def make_env(self, **kwargs: Any) -> gym.Env:
        """A single gymnasium env ``fastadapt/Navigation2D-v0`` (task set by ``reset(options={"task": t})``)."""
        return gym.make(ENV_ID, **{**self.env_kwargs(), **kwargs})

    def batched_env(
        self, num_tasks: int, num_envs: int, device: str | torch.device = "cpu"
    ) -> Navigation2DBatchedEnv:
        """A :class:`Navigation2DBatchedEnv` with ``num_tasks x num_envs`` points."""
        kw = self.env_kwargs()
        kw.pop("goal_low")
        kw.pop("goal_high")
        return Navigation2DBatchedEnv(num_tasks, num_envs, device=device, **kw)

    # -- oracle ----------------------------------------------------------------------------------------
    def oracle_returns(self, tasks: Sequence[Any]) -> torch.Tensor:
        """Undiscounted return ``[tasks]`` of :func:`oracle_actions` on each task (one episode)."""
        env = self.batched_env(len(tasks), 1)
        env.set_tasks(tasks)
        obs = env.reset(seed=0)
        total = torch.zeros(len(tasks))
        alive = torch.ones(len(tasks), 1, dtype=torch.bool)
        for _ in range(self.horizon):
            obs, rew, term, trunc, _ = env.step(oracle_actions(obs, env.goals, self.cfg.max_action))
            total += (rew * alive).sum(1)
            alive &= ~(term | trunc)
        return total


def oracle_actions(
    obs: torch.Tensor | np.ndarray, goals: torch.Tensor | np.ndarray, max_action: float = 0.1
) -> Any:
    """The oracle policy: the step that moves as close to the goal as the action bounds allow.

    ``clip(goal - obs, -max_action, max_action)`` per axis, which is the Euclidean projection of the goal
    onto the reachable box, so it reaches the goal in the fewest steps and greedily minimises the
    distance (hence maximises the dense reward) at every step. ``obs``, ``goals``: ``[..., 2]`` (torch or
    numpy, broadcastable) -> actions ``[..., 2]`` of the same kind.
    """
    if isinstance(obs, torch.Tensor):
        g = torch.as_tensor(goals, dtype=obs.dtype, device=obs.device)
        return torch.clamp(g - obs, -max_action, max_action)
    return np.clip(np.asarray(goals) - np.asarray(obs), -max_action, max_action).astype(np.float32)


def _obs_space() -> gym.spaces.Box:
    return gym.spaces.Box(low=-np.inf, high=np.inf, shape=(2,), dtype=np.float32)


def _act_space(max_action: float) -> gym.spaces.Box:
    return gym.spaces.Box(low=-max_action, high=max_action, shape=(2,), dtype=np.float32)


class Navigation2DEnv(gym.Env):
    """Single gymnasium env ``fastadapt/Navigation2D-v0`` (one point, one goal).

    Observation: the position ``[2]`` (float32). Action: a numeric array of shape ``[2]``; finite values are
    clipped to ``[-max_action, max_action]``, NaN/Inf and other shapes raise :class:`EnvError`
    (:mod:`fastadapt.tasks.rl.action_checks`).
    ``reset(seed, options={"task": Nav2DTask | {"goal": [x, y]}})`` sets the goal (kept for later resets);
    without any task ever set, a goal is drawn from the env's own ``np_random``. ``options={"state": [x,
    y]}`` starts from another position (used by tests). Positions are float32 and updated exactly as in
    :class:`Navigation2DBatchedEnv`, so both give bit-identical observations and termination flags for
    identical actions; rewards agree to float32 rounding (torch's vectorised float32 ``sqrt`` is not always
    correctly rounded, numpy's is).
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        horizon: int = 100,
        sparse: bool = False,
        max_action: float = 0.1,
        goal_radius: float = 0.2,
        terminate_at_goal: bool = True,
        goal_low: float = -0.5,
        goal_high: float = 0.5,
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        self.horizon = int(horizon)
        self.sparse = bool(sparse)
        self.max_action = np.float32(max_action)
        self.goal_radius = np.float32(goal_radius)
        self.terminate_at_goal = bool(terminate_at_goal) and not self.sparse
        self.goal_low, self.goal_high = float(goal_low), float(goal_high)
        self.observation_space = _obs_space()
        self.action_space = _act_space(max_action)
        self.render_mode = render_mode
        self._goal: np.ndarray | None = None
        self._state = np.zeros(2, dtype=np.float32)
        self._t = 0

    @property
    def task(self) -> Nav2DTask | None:
        """The current task (``None`` before the first reset)."""
        if self._goal is None:
            return None
        return Nav2DTask((float(self._goal[0]), float(self._goal[1])))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        if options.get("task") is not None:
            self._goal = np.asarray(Nav2DTask.from_any(options["task"]).goal, dtype=np.float32)
        elif self._goal is None:
            if self.sparse:
                angle = self.np_random.uniform(0.0, np.pi)
                self._goal = np.array([np.cos(angle), np.sin(angle)], dtype=np.float32)
            else:
                self._goal = self.np_random.uniform(self.goal_low, self.goal_high, size=2).astype(np.float32)
        start = options.get("state")
        self._state = (
            np.zeros(2, dtype=np.float32) if start is None else np.asarray(start, dtype=np.float32).reshape(2)
        )
        self._t = 0
        return self._state.copy(), {"goal": self._goal.copy()}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._goal is None:
            raise EnvError("navigation2d: step() called before reset()")
        a = check_box_action(action, -self.max_action, self.max_action, (2,), env_label(self, ENV_ID))
        self._state = (self._state + a.astype(np.float32, copy=False)).astype(np.float32)
        d = self._state - self._goal
        dist = np.sqrt(d[0] * d[0] + d[1] * d[1], dtype=np.float32)
        if self.sparse:
            reward = np.float32(1.0) - dist if dist <= self.goal_radius else np.float32(0.0)
        else:
            reward = -dist
        terminated = bool(
            self.terminate_at_goal and abs(d[0]) < GOAL_TOLERANCE and abs(d[1]) < GOAL_TOLERANCE
        )
        self._t += 1
        truncated = self._t >= self.horizon and not terminated
        return self._state.copy(), float(reward), terminated, truncated, {"distance": float(dist)}


class Navigation2DBatchedEnv:
    """``num_tasks x num_envs`` points stepped in one tensor operation (core.protocols.BatchedEnv).

    ``set_tasks(tasks)`` (``num_tasks`` goals), ``reset(seed) -> obs [tasks, envs, 2]``, ``step(actions
    [tasks, envs, 2]) -> (obs [T, E, 2], reward [T, E], terminated [T, E], truncated [T, E], {})``. The
    dynamics are deterministic (the seed is accepted for the protocol). No auto-reset: after an env
    terminates it keeps moving; the sampler masks those steps. ``goals``: ``[tasks, 1, 2]``.

    Positions are stored as two contiguous planes ``[2, T, E]`` (x and y) so that every per-step op is a
    dense elementwise op; the returned ``obs`` is the view ``planes.permute(1, 2, 0)`` (``[T, E, 2]``, not
    contiguous). Returned tensors may be shared with the env or be constants: treat them as read-only.
    """

    def __init__(
        self,
        num_tasks: int,
        num_envs: int,
        horizon: int = 100,
        sparse: bool = False,
        max_action: float = 0.1,
        goal_radius: float = 0.2,
        terminate_at_goal: bool = True,
        device: str | torch.device = "cpu",
    ) -> None:
        if num_tasks < 1 or num_envs < 1:
            raise ConfigError(f"batched env: num_tasks and num_envs must be >= 1, got {num_tasks}, {num_envs}")
        self.num_tasks = int(num_tasks)
        self.num_envs = int(num_envs)
        self.max_episode_steps = int(horizon)
        self.sparse = bool(sparse)
        self.max_action = float(max_action)
        self.goal_radius = float(goal_radius)
        self.terminate_at_goal = bool(terminate_at_goal) and not self.sparse
        self.device = torch.device(device)
        self.observation_space = _obs_space()
        self.action_space = _act_space(max_action)
        self.goals = torch.zeros(self.num_tasks, 1, 2, device=self.device)
        self._goal_planes = torch.zeros(2, self.num_tasks, self.num_envs, device=self.device)
        self._planes = torch.zeros(2, self.num_tasks, self.num_envs, device=self.device)
        self.generator = torch.Generator(device=self.device)
        self._t = 0
        self._tasks_set = False
        self._act_shape = torch.Size((self.num_tasks, self.num_envs, 2))
        self._false = torch.zeros(self.num_tasks, self.num_envs, dtype=torch.bool, device=self.device)
        self._zero = torch.zeros((), device=self.device)

    @property
    def state(self) -> torch.Tensor:
        """Positions ``[T, E, 2]`` (a view of the internal planes)."""
        return self._planes.permute(1, 2, 0)

    def set_tasks(self, tasks: Sequence[Any]) -> None:
        """Set the ``num_tasks`` goals (Nav2DTask or ``{"goal": [x, y]}``)."""
        if len(tasks) != self.num_tasks:
            raise EnvError(f"navigation2d batched env: expected {self.num_tasks} tasks, got {len(tasks)}")
        goals = [Nav2DTask.from_any(t).goal for t in tasks]
        self.goals = torch.tensor(goals, dtype=torch.float32, device=self.device).reshape(self.num_tasks, 1, 2)
        self._goal_planes = self.goals.permute(2, 0, 1).expand(2, self.num_tasks, self.num_envs).contiguous()
        self._tasks_set = True

    def reset(self, seed: int | None = None, state: torch.Tensor | None = None) -> torch.Tensor:
        """All points to ``(0, 0)`` (or ``state [T, E, 2]``); returns ``obs [T, E, 2]``."""
        if not self._tasks_set:
            raise EnvError("navigation2d batched env: call set_tasks() before reset()")
        if seed is not None:
            self.generator.manual_seed(int(seed))
        if state is None:
            self._planes = torch.zeros(2, self.num_tasks, self.num_envs, device=self.device)
        else:
            full = state.to(self.device, torch.float32).expand(self.num_tasks, self.num_envs, 2)
            self._planes = full.permute(2, 0, 1).contiguous()
        self._t = 0
        return self.state

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """One step of every point. ``actions: [T, E, 2]``, a float (or integer) tensor.

        Finite actions are clipped to ``[-max_action, max_action]``; NaN/Inf entries, other shapes and
        bool/complex dtypes raise :class:`EnvError` naming the position, and leave the env unchanged
        (:mod:`fastadapt.tasks.rl.action_checks`). The NaN/Inf test is one sum per step (the exact test only
        runs when that sum is not finite).
        """
        if (
            not isinstance(actions, torch.Tensor)
            or actions.shape != self._act_shape
            or not actions.dtype.is_floating_point
        ):
            actions = check_box_actions(actions, self._act_shape, "navigation2d batched env")
        elif not math.isfinite(actions.sum().item()) and not bool(torch.isfinite(actions).all()):
            raise nonfinite_error(actions, "navigation2d batched env")
        m = self.max_action
        step = torch.clamp(actions, -m, m)
        if step.dtype != torch.float32:
            step = step.to(torch.float32)
        self._planes = self._planes + step.permute(2, 0, 1)
        d = self._planes - self._goal_planes
        dist = (d * d).sum(0).sqrt_()
        if self.sparse:
            reward = torch.where(dist <= self.goal_radius, 1.0 - dist, self._zero)
        else:
            reward = dist.neg_()
        terminated = self._false
        # MAML's per-axis test |d| < 0.01 implies dist < 0.01 * sqrt(2): test exactly only when near
        if self.terminate_at_goal and reward.max().item() > -_NEAR:
            ad = d.abs()
            terminated = (ad[0] < GOAL_TOLERANCE) & (ad[1] < GOAL_TOLERANCE)
        self._t += 1
        truncated = self._false
        if self._t >= self.max_episode_steps:
            truncated = ~terminated
        return self.state, reward, terminated, truncated, {}


def _register_env() -> None:
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point=Navigation2DEnv, disable_env_checker=False)


_register_env()


@register_task("navigation2d", family="metarl", config=Navigation2DConfig)
def build_navigation2d(cfg: Navigation2DConfig) -> Navigation2D:
    """2D point navigation (MAML dense goals in [-0.5, 0.5]^2, or PEARL's sparse half-circle goals)."""
    return Navigation2D(cfg)


__all__ = [
    "ENV_ID",
    "Nav2DTask",
    "Navigation2D",
    "Navigation2DBatchedEnv",
    "Navigation2DConfig",
    "Navigation2DEnv",
    "build_navigation2d",
    "oracle_actions",
    "sparse_goal_pool",
]
