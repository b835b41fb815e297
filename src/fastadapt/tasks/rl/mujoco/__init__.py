"""MuJoCo locomotion task families on gymnasium's v5 environments (optional dependency ``mujoco``).

- :mod:`~fastadapt.tasks.rl.mujoco.cheetah`: HalfCheetah-Vel and HalfCheetah-Dir (Finn et al. 2017, MAML).
- :mod:`~fastadapt.tasks.rl.mujoco.ant`: Ant-Dir (MAML) and Ant-Goal (PEARL, Rakelly et al. 2019).
- :mod:`~fastadapt.tasks.rl.mujoco.random_params`: Walker2d / Hopper with random physical parameters (PEARL).

Nothing here imports ``mujoco`` at module import: the simulator is built inside the env constructor, so the
catalog can import these modules (and register their tasks and env ids) without the extra installed.

Common API of every family (``dist = TASKS.get(name).build(cfg)``)::

    tasks = dist.sample(n, seed, split)        # list[dict] (JSON-able); same args -> same tasks
    env = dist.make_env()                      # gymnasium env "fastadapt/<Name>-v0", horizon cfg.horizon
    obs, info = env.reset(seed=s, options={"task": tasks[i]})
    dist.horizon, dist.max_episode_steps       # 200 by default (MAML), configurable

These simulators cannot batch in one tensor op; collect with ``fastadapt.samplers.ProcessSampler(dist.make_env,
...)``. Actions: a numeric array of the action space's shape; finite values are clipped to the action space
before the step and before any control cost, NaN/Inf and other shapes raise
:class:`~fastadapt.core.errors.EnvError` naming the env and the action (never reaching the simulator;
:mod:`fastadapt.tasks.rl.action_checks`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from pydantic import Field

from fastadapt.core.config import Section
from fastadapt.core.errors import ConfigError, EnvError
from fastadapt.tasks.rl.action_checks import check_box_action, env_label

SPLITS = ("train", "test")


def require_mujoco() -> Any:
    """Import and return ``mujoco``; EnvError with the install command if it is missing or broken."""
    try:
        import mujoco
    except Exception as exc:  # ImportError, or an OSError from a broken shared library
        raise EnvError(
            f"this task needs the optional dependency 'mujoco' ({type(exc).__name__}: {exc}); "
            "install it with: pip install 'gymnasium[mujoco]' metaworld  (in one command)"
        ) from exc
    return mujoco


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"split: expected one of {SPLITS}, got {split!r}")


def task_dict(task: Any, keys: tuple[str, ...], family: str) -> dict[str, Any]:
    """``task`` as a dict with ``keys`` (EnvError naming the family otherwise)."""
    if hasattr(task, "to_dict"):
        task = task.to_dict()
    if not isinstance(task, Mapping) or any(k not in task for k in keys):
        raise EnvError(f"{family} task: expected a dict with keys {list(keys)}, got {task!r}")
    return dict(task)


class MujocoTaskConfig(Section):
    """Common ``task:`` fields of the MuJoCo families."""

    horizon: int = Field(200, gt=0, description="steps per episode (MAML: 200)")


class MujocoTaskEnv(gym.Env):
    """Base of the task envs: wraps a gymnasium v5 MuJoCo env (built lazily) and replaces its reward.

    Subclasses set ``base_id`` / ``base_kwargs`` and implement ``parse_task``, ``default_task(np_random)``,
    ``apply_task`` (optional) and ``task_reward(action, base_reward, info)``. The episode is truncated
    after ``horizon`` steps; termination is the base env's (e.g. Ant's healthy-z check) unless disabled.
    ``step`` clips finite actions to the action space and rejects NaN/Inf and wrong shapes with
    :class:`EnvError` (the simulator state is untouched).
    """

    metadata = {"render_modes": ["rgb_array"]}
    base_id = ""
    base_kwargs: dict[str, Any] = {}
    family = ""

    def __init__(self, horizon: int = 200, render_mode: str | None = None, **kwargs: Any) -> None:
        super().__init__()
        require_mujoco()
        self.inner = gym.make(self.base_id, render_mode=render_mode, **{**self.base_kwargs, **kwargs}).unwrapped
        self.observation_space = self.inner.observation_space
        self.action_space = self.inner.action_space
        self.render_mode = render_mode
        self.horizon = int(horizon)
        self.task: dict[str, Any] | None = None
        self._t = 0

    # -- to override ---------------------------------------------------------------------------------
    def parse_task(self, task: Any) -> dict[str, Any]:
        raise NotImplementedError

    def default_task(self, rng: np.random.Generator) -> dict[str, Any]:
        raise NotImplementedError

    def apply_task(self, task: dict[str, Any]) -> None:
        """Change the simulator for ``task`` (physical parameters); reward-only tasks do nothing."""

    def task_reward(self, action: np.ndarray, base_reward: float, info: dict[str, Any]) -> float:
        raise NotImplementedError

    # -- gymnasium API ---------------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        if options.get("task") is not None:
            self.task = self.parse_task(options["task"])
            self.apply_task(self.task)
        elif self.task is None:
            self.task = self.parse_task(self.default_task(self.np_random))
            self.apply_task(self.task)
        obs, info = self.inner.reset(seed=seed)
        self._t = 0
        return obs, info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.task is None:
            raise EnvError(f"{self.family}: step() called before reset()")
        a = check_box_action(
            action, self.action_space.low, self.action_space.high, self.action_space.shape,
            env_label(self, self.family),
        ).astype(np.float64, copy=False)
        obs, base_reward, terminated, _, info = self.inner.step(a)
        reward = float(self.task_reward(a, float(base_reward), info))
        self._t += 1
        truncated = self._t >= self.horizon and not terminated
        return obs, reward, bool(terminated), truncated, info

    def render(self) -> Any:
        return self.inner.render()

    def close(self) -> None:
        self.inner.close()


def register_env(env_id: str, entry_point: type) -> None:
    """Register ``env_id`` once (no TimeLimit wrapper: the env truncates at its own ``horizon``)."""
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=entry_point)


class MujocoFamily:
    """Base of the MuJoCo task distributions: ``sample``, ``make_env``, ``horizon``."""

    env_id = ""
    name = ""

    def __init__(self, cfg: MujocoTaskConfig) -> None:
        self.cfg = cfg
        self.horizon = int(cfg.horizon)
        self.max_episode_steps = self.horizon
        self.discrete = False

    def env_kwargs(self) -> dict[str, Any]:
        return {"horizon": self.horizon}

    def make_env(self, **kwargs: Any) -> gym.Env:
        """A single gymnasium env for this family (needs ``mujoco``)."""
        require_mujoco()
        return gym.make(self.env_id, **{**self.env_kwargs(), **kwargs})

    def sample(self, n: int, seed: int, split: str = "train") -> list[dict[str, Any]]:
        raise NotImplementedError


__all__ = [
    "MujocoFamily",
    "MujocoTaskConfig",
    "MujocoTaskEnv",
    "check_split",
    "register_env",
    "require_mujoco",
    "task_dict",
]
