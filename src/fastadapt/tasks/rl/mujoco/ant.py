"""Ant-Dir (Finn et al. 2017, MAML) and Ant-Goal (Rakelly et al. 2019, PEARL) on gymnasium's ``Ant-v5``.

- Ant-Dir (cbfinn/maml_rl ``rllab/envs/mujoco/ant_env_rand_direc.py``): direction ``d in {-1, +1}`` with
  probability 1/2 each; reward ``d * v_x - 0.005 * sum(a^2) - 0.0005 * sum(clip(cfrc_ext, -1, 1)^2) + 0.05``
  (MAML's ``0.5 * 1e-2`` control, ``0.5 * 1e-3`` contact and ``0.05`` survive terms); the episode terminates
  when the torso height leaves ``[0.2, 1.0]`` (Ant-v5's healthy range, as in MAML). Observation: Ant-v5's
  default 105 dims (positions without x/y, velocities, clipped external contact forces).
- Ant-Goal (katerakelly/oyster ``rlkit/envs/ant_goal.py``, after ProMP): goal ``g = r (cos a, sin a)`` with
  ``a ~ U[0, 2 pi)``, ``r = 3 sqrt(u)``, ``u ~ U[0, 1]`` (uniform on the disk of radius 3); reward
  ``-||xy - g||_1 - 0.1 * sum(a^2) - 0.0005 * sum(clip(cfrc_ext, -1, 1)^2)``; no termination (PEARL's
  ``done = False``); the observation includes the torso's x/y position (107 dims), as PEARL's does.

Horizon 200 (configurable). Tasks: ``{"direction": +-1}`` / ``{"goal": [x, y]}``; meta-train and meta-test
tasks come from independent streams keyed by ``(seed, split)``. Env ids ``fastadapt/AntDir-v0``,
``fastadapt/AntGoal-v0``; registered tasks ``ant-dir``, ``ant-goal``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import Field

from fastadapt.core.errors import EnvError
from fastadapt.core.registry import register_task
from fastadapt.core.seeding import np_rng
from fastadapt.tasks.rl.mujoco import (
    MujocoFamily,
    MujocoTaskConfig,
    MujocoTaskEnv,
    check_split,
    register_env,
    task_dict,
)

DIR_ENV_ID = "fastadapt/AntDir-v0"
GOAL_ENV_ID = "fastadapt/AntGoal-v0"


class _AntTaskEnv(MujocoTaskEnv):
    base_id = "Ant-v5"

    def contact_cost(self) -> float:
        cfrc = np.clip(self.inner.data.cfrc_ext, -1.0, 1.0)
        return 0.5 * 1e-3 * float(np.sum(cfrc**2))


class AntDirEnv(_AntTaskEnv):
    """Ant-v5 rewarded for walking forward (+1) or backward (-1) along x (MAML's Ant-Dir)."""

    family = "ant-dir"

    def parse_task(self, task: Any) -> dict[str, Any]:
        d = float(task_dict(task, ("direction",), self.family)["direction"])
        if d not in (-1.0, 1.0):
            raise EnvError(f"ant-dir task: direction must be -1 or +1, got {d}")
        return {"direction": d}

    def default_task(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"direction": float(rng.choice([-1.0, 1.0]))}

    def task_reward(self, action: np.ndarray, base_reward: float, info: dict[str, Any]) -> float:
        assert self.task is not None
        forward = self.task["direction"] * float(info["x_velocity"])
        ctrl = 0.5 * 1e-2 * float(np.sum(action**2))
        return forward - ctrl - self.contact_cost() + 0.05


class AntGoalEnv(_AntTaskEnv):
    """Ant-v5 rewarded for reaching a 2D goal position (PEARL's Ant-Goal); never terminates."""

    family = "ant-goal"
    base_kwargs = {"terminate_when_unhealthy": False, "exclude_current_positions_from_observation": False}

    def parse_task(self, task: Any) -> dict[str, Any]:
        raw = task_dict(task, ("goal",), self.family)["goal"]
        try:
            g = [float(v) for v in np.asarray(raw, dtype=np.float64).reshape(2)]
        except Exception:
            raise EnvError(f"ant-goal task: goal must be [x, y], got {raw!r}") from None
        if not all(math.isfinite(v) for v in g):
            raise EnvError(f"ant-goal task: non-finite goal {g}")
        return {"goal": g}

    def default_task(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"goal": disk_goals(rng, 1, 3.0)[0].tolist()}

    def task_reward(self, action: np.ndarray, base_reward: float, info: dict[str, Any]) -> float:
        assert self.task is not None
        xy = np.array([info["x_position"], info["y_position"]], dtype=np.float64)
        goal_reward = -float(np.sum(np.abs(xy - np.asarray(self.task["goal"]))))
        ctrl = 0.1 * float(np.sum(action**2))
        return goal_reward - ctrl - self.contact_cost()


def disk_goals(rng: np.random.Generator, n: int, radius: float) -> np.ndarray:
    """``[n, 2]`` goals uniform on the disk of ``radius`` (PEARL: ``a = 2 pi u1``, ``r = R sqrt(u2)``)."""
    a = rng.random(n) * 2 * np.pi
    r = radius * rng.random(n) ** 0.5
    return np.stack([r * np.cos(a), r * np.sin(a)], axis=-1)


class AntDirConfig(MujocoTaskConfig):
    """The ``task:`` section for ``ant-dir``."""


class AntGoalConfig(MujocoTaskConfig):
    """The ``task:`` section for ``ant-goal``."""

    radius: float = Field(3.0, gt=0, description="goals uniform on the disk of this radius (PEARL: 3)")


class AntDir(MujocoFamily):
    """Task distribution of Ant-Dir: ``{"direction": +-1}``."""

    env_id = DIR_ENV_ID
    name = "ant-dir"

    def sample(self, n: int, seed: int, split: str = "train") -> list[dict[str, Any]]:
        check_split(split)
        d = np_rng(seed, self.name, split).choice([-1.0, 1.0], size=n)
        return [{"direction": float(x)} for x in d]


class AntGoal(MujocoFamily):
    """Task distribution of Ant-Goal: ``{"goal": [x, y]}`` uniform on the disk of radius 3."""

    env_id = GOAL_ENV_ID
    name = "ant-goal"

    def sample(self, n: int, seed: int, split: str = "train") -> list[dict[str, Any]]:
        check_split(split)
        assert isinstance(self.cfg, AntGoalConfig)
        goals = disk_goals(np_rng(seed, self.name, split), n, self.cfg.radius)
        return [{"goal": [float(g[0]), float(g[1])]} for g in goals]


register_env(DIR_ENV_ID, AntDirEnv)
register_env(GOAL_ENV_ID, AntGoalEnv)


@register_task("ant-dir", family="metarl", config=AntDirConfig)
def build_ant_dir(cfg: AntDirConfig) -> AntDir:
    """Ant-Dir (MAML): walk forward or backward; needs mujoco."""
    return AntDir(cfg)


@register_task("ant-goal", family="metarl", config=AntGoalConfig)
def build_ant_goal(cfg: AntGoalConfig) -> AntGoal:
    """Ant-Goal (PEARL): reach a goal on the disk of radius 3; needs mujoco."""
    return AntGoal(cfg)


__all__ = [
    "DIR_ENV_ID",
    "GOAL_ENV_ID",
    "AntDir",
    "AntDirConfig",
    "AntDirEnv",
    "AntGoal",
    "AntGoalConfig",
    "AntGoalEnv",
    "disk_goals",
]
