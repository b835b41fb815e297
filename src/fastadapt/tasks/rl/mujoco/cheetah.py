"""HalfCheetah-Vel and HalfCheetah-Dir (Finn et al. 2017, "Model-Agnostic Meta-Learning", sec. 5.3).

Both run gymnasium's ``HalfCheetah-v5`` (17-dim observation without the x position, 6 actions in [-1, 1])
with the MAML reward (cbfinn/maml_rl ``rllab/envs/mujoco/half_cheetah_env_rand.py`` / ``..._rand_direc.py``),
control cost ``0.05 * sum(a^2)`` (MAML's ``1e-1 * 0.5 * sum(a^2)``) on the clipped action:

- HalfCheetah-Vel: target velocity ``v_goal ~ U[0, 2]``; reward ``-|v_x - v_goal| - 0.05 * sum(a^2)``.
- HalfCheetah-Dir: direction ``d in {-1, +1}`` (each with probability 1/2); reward ``d * v_x - 0.05 * sum(a^2)``.

``v_x`` is the forward velocity of the root (gymnasium's ``info["x_velocity"]``, the finite difference of
the x position over one control step; MAML used the torso's centre-of-mass velocity). Horizon 200 as in
MAML (configurable); no termination. Meta-train and meta-test tasks come from independent streams keyed by
``(seed, split)`` (MAML evaluates on freshly sampled tasks).

Tasks are dicts: ``{"velocity": v}`` / ``{"direction": +-1}``. Env ids ``fastadapt/HalfCheetahVel-v0`` and
``fastadapt/HalfCheetahDir-v0``; registered tasks ``halfcheetah-vel`` and ``halfcheetah-dir``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, model_validator

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

VEL_ENV_ID = "fastadapt/HalfCheetahVel-v0"
DIR_ENV_ID = "fastadapt/HalfCheetahDir-v0"
CTRL_COST = 0.05  # MAML: 1e-1 * 0.5 * sum(a^2)


class HalfCheetahVelEnv(MujocoTaskEnv):
    """HalfCheetah-v5 rewarded for running at the task's target velocity."""

    base_id = "HalfCheetah-v5"
    family = "halfcheetah-vel"

    def parse_task(self, task: Any) -> dict[str, Any]:
        v = float(task_dict(task, ("velocity",), self.family)["velocity"])
        if not np.isfinite(v):
            raise EnvError(f"halfcheetah-vel task: non-finite velocity {v}")
        return {"velocity": v}

    def default_task(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"velocity": float(rng.uniform(0.0, 2.0))}

    def task_reward(self, action: np.ndarray, base_reward: float, info: dict[str, Any]) -> float:
        assert self.task is not None
        return -abs(float(info["x_velocity"]) - self.task["velocity"]) - CTRL_COST * float(np.sum(action**2))


class HalfCheetahDirEnv(MujocoTaskEnv):
    """HalfCheetah-v5 rewarded for running forward (+1) or backward (-1)."""

    base_id = "HalfCheetah-v5"
    family = "halfcheetah-dir"

    def parse_task(self, task: Any) -> dict[str, Any]:
        d = float(task_dict(task, ("direction",), self.family)["direction"])
        if d not in (-1.0, 1.0):
            raise EnvError(f"halfcheetah-dir task: direction must be -1 or +1, got {d}")
        return {"direction": d}

    def default_task(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"direction": float(rng.choice([-1.0, 1.0]))}

    def task_reward(self, action: np.ndarray, base_reward: float, info: dict[str, Any]) -> float:
        assert self.task is not None
        return self.task["direction"] * float(info["x_velocity"]) - CTRL_COST * float(np.sum(action**2))


class HalfCheetahVelConfig(MujocoTaskConfig):
    """The ``task:`` section for ``halfcheetah-vel``."""

    velocity_low: float = Field(0.0, description="target velocities ~ U[velocity_low, velocity_high]")
    velocity_high: float = 2.0

    @model_validator(mode="after")
    def _check(self) -> HalfCheetahVelConfig:
        if self.velocity_high <= self.velocity_low:
            raise ValueError("velocity_high must be > velocity_low")
        return self


class HalfCheetahDirConfig(MujocoTaskConfig):
    """The ``task:`` section for ``halfcheetah-dir``."""


class HalfCheetahVel(MujocoFamily):
    """Task distribution of HalfCheetah-Vel: ``{"velocity": v}``, ``v ~ U[0, 2]``."""

    env_id = VEL_ENV_ID
    name = "halfcheetah-vel"

    def sample(self, n: int, seed: int, split: str = "train") -> list[dict[str, Any]]:
        check_split(split)
        cfg = self.cfg
        assert isinstance(cfg, HalfCheetahVelConfig)
        v = np_rng(seed, self.name, split).uniform(cfg.velocity_low, cfg.velocity_high, size=n)
        return [{"velocity": float(x)} for x in v]


class HalfCheetahDir(MujocoFamily):
    """Task distribution of HalfCheetah-Dir: ``{"direction": +-1}`` with probability 1/2 each."""

    env_id = DIR_ENV_ID
    name = "halfcheetah-dir"

    def sample(self, n: int, seed: int, split: str = "train") -> list[dict[str, Any]]:
        check_split(split)
        d = np_rng(seed, self.name, split).choice([-1.0, 1.0], size=n)
        return [{"direction": float(x)} for x in d]


register_env(VEL_ENV_ID, HalfCheetahVelEnv)
register_env(DIR_ENV_ID, HalfCheetahDirEnv)


@register_task("halfcheetah-vel", family="metarl", config=HalfCheetahVelConfig)
def build_halfcheetah_vel(cfg: HalfCheetahVelConfig) -> HalfCheetahVel:
    """HalfCheetah-Vel (MAML): run at a target velocity in U[0, 2]; needs mujoco."""
    return HalfCheetahVel(cfg)


@register_task("halfcheetah-dir", family="metarl", config=HalfCheetahDirConfig)
def build_halfcheetah_dir(cfg: HalfCheetahDirConfig) -> HalfCheetahDir:
    """HalfCheetah-Dir (MAML): run forward or backward; needs mujoco."""
    return HalfCheetahDir(cfg)


__all__ = [
    "DIR_ENV_ID",
    "VEL_ENV_ID",
    "HalfCheetahDir",
    "HalfCheetahDirConfig",
    "HalfCheetahDirEnv",
    "HalfCheetahVel",
    "HalfCheetahVelConfig",
    "HalfCheetahVelEnv",
]
