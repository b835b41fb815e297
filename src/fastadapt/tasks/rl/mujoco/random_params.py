"""Walker2d and Hopper with random physical parameters (Rakelly et al. 2019, PEARL, sec. 6.1).

PEARL's ``walker-rand-params`` / ``hopper-rand-params`` come from dennisl88/rand_param_envs: every element of
the model's ``body_mass``, ``body_inertia``, ``geom_friction`` (base 1.5) and ``dof_damping`` (base 1.3) is
multiplied by ``base ** u`` with ``u ~ U[-3, 3]`` (``log_scale_limit = 3``), independently per element. The
reward is the usual locomotion reward (forward velocity + 1 alive bonus - 1e-3 * sum(a^2)), which is
gymnasium's ``Walker2d-v5`` / ``Hopper-v5`` reward, and the episode terminates when the robot is unhealthy
(v5's checks). Horizon 200 (configurable).

PEARL's split is a fixed pool of 50 tasks, 40 for meta-training and 10 for meta-testing
(``configs/walker-rand-params.json``); here the pool is drawn once from ``np_rng(pool_seed, name)`` and
``sample(n, seed, split)`` draws from the split's part (without replacement while possible).

A task is a dict of multiplier lists ``{"body_mass": [nbody], "body_inertia": [[nbody x 3]], "dof_damping":
[nv], "geom_friction": [[ngeom x 3]]}``; building the pool needs ``mujoco`` (the shapes come from the model).
Env ids ``fastadapt/WalkerRandParams-v0`` / ``fastadapt/HopperRandParams-v0``; registered tasks
``walker-rand-params`` / ``hopper-rand-params``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import gymnasium as gym
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
    require_mujoco,
    task_dict,
)

WALKER_ENV_ID = "fastadapt/WalkerRandParams-v0"
HOPPER_ENV_ID = "fastadapt/HopperRandParams-v0"
#: parameter -> multiplier base (rand_param_envs/base.py)
PARAM_BASES = {"body_mass": 1.5, "body_inertia": 1.5, "dof_damping": 1.3, "geom_friction": 1.5}


@lru_cache(maxsize=None)
def model_shapes(base_id: str) -> dict[str, tuple[int, ...]]:
    """Shapes of the randomised model arrays of a gymnasium MuJoCo env (builds it once)."""
    require_mujoco()
    env = gym.make(base_id).unwrapped
    shapes = {k: tuple(getattr(env.model, k).shape) for k in PARAM_BASES}
    env.close()
    return shapes


def sample_multipliers(
    rng: np.random.Generator, shapes: dict[str, tuple[int, ...]], log_scale_limit: float
) -> dict[str, list[Any]]:
    """One task: ``base ** U[-limit, limit]`` per element of every randomised array."""
    return {
        k: (PARAM_BASES[k] ** rng.uniform(-log_scale_limit, log_scale_limit, size=shapes[k])).tolist()
        for k in PARAM_BASES
    }


class RandParamsEnv(MujocoTaskEnv):
    """A v5 locomotion env whose physical parameters are scaled per task; reward = the base env's."""

    def __init__(self, horizon: int = 200, render_mode: str | None = None, **kwargs: Any) -> None:
        super().__init__(horizon=horizon, render_mode=render_mode, **kwargs)
        self.init_params = {k: getattr(self.inner.model, k).copy() for k in PARAM_BASES}

    def parse_task(self, task: Any) -> dict[str, Any]:
        d = task_dict(task, tuple(PARAM_BASES), self.family)
        out = {}
        for k in PARAM_BASES:
            arr = np.asarray(d[k], dtype=np.float64)
            if arr.shape != self.init_params[k].shape:
                raise EnvError(
                    f"{self.family} task: {k} multipliers must have shape {self.init_params[k].shape}, "
                    f"got {arr.shape}"
                )
            if not (np.isfinite(arr).all() and (arr > 0).all()):
                raise EnvError(f"{self.family} task: {k} multipliers must be finite and > 0")
            out[k] = arr
        return out

    def default_task(self, rng: np.random.Generator) -> dict[str, Any]:
        return {k: np.ones_like(v).tolist() for k, v in self.init_params.items()}

    def apply_task(self, task: dict[str, Any]) -> None:
        for k, mult in task.items():
            getattr(self.inner.model, k)[:] = self.init_params[k] * mult

    def task_reward(self, action: np.ndarray, base_reward: float, info: dict[str, Any]) -> float:
        return base_reward


class WalkerRandParamsEnv(RandParamsEnv):
    """Walker2d-v5 with random physical parameters."""

    base_id = "Walker2d-v5"
    family = "walker-rand-params"


class HopperRandParamsEnv(RandParamsEnv):
    """Hopper-v5 with random physical parameters."""

    base_id = "Hopper-v5"
    family = "hopper-rand-params"


class RandParamsConfig(MujocoTaskConfig):
    """The ``task:`` section for ``walker-rand-params`` / ``hopper-rand-params``."""

    log_scale_limit: float = Field(3.0, gt=0, description="exponents ~ U[-limit, limit] (PEARL: 3)")
    num_tasks: int = Field(50, ge=2, description="size of the fixed task pool (PEARL: 50)")
    num_train_tasks: int = Field(40, ge=1, description="the first tasks of the pool are meta-train (PEARL: 40)")
    pool_seed: int = Field(0, ge=0, description="seed of the fixed task pool")

    @model_validator(mode="after")
    def _check(self) -> RandParamsConfig:
        if self.num_train_tasks >= self.num_tasks:
            raise ValueError("num_train_tasks must be < num_tasks (the rest is the meta-test split)")
        return self


class RandParams(MujocoFamily):
    """A fixed pool of random-parameter tasks split into meta-train / meta-test (PEARL)."""

    base_id = ""

    def __init__(self, cfg: RandParamsConfig) -> None:
        super().__init__(cfg)
        self._pool: list[dict[str, Any]] | None = None

    def pool(self) -> list[dict[str, Any]]:
        """The whole task pool (built on first use; needs mujoco for the model's array shapes)."""
        if self._pool is None:
            cfg = self.cfg
            assert isinstance(cfg, RandParamsConfig)
            rng = np_rng(cfg.pool_seed, self.name, "pool")
            shapes = model_shapes(self.base_id)
            self._pool = [sample_multipliers(rng, shapes, cfg.log_scale_limit) for _ in range(cfg.num_tasks)]
        return self._pool

    def split_tasks(self, split: str = "train") -> list[dict[str, Any]]:
        check_split(split)
        assert isinstance(self.cfg, RandParamsConfig)
        k = self.cfg.num_train_tasks
        return self.pool()[:k] if split == "train" else self.pool()[k:]

    def sample(self, n: int, seed: int, split: str = "train") -> list[dict[str, Any]]:
        tasks = self.split_tasks(split)
        idx = np_rng(seed, self.name, split).choice(len(tasks), size=n, replace=n > len(tasks))
        return [tasks[int(i)] for i in idx]


class WalkerRandParams(RandParams):
    env_id = WALKER_ENV_ID
    name = "walker-rand-params"
    base_id = "Walker2d-v5"


class HopperRandParams(RandParams):
    env_id = HOPPER_ENV_ID
    name = "hopper-rand-params"
    base_id = "Hopper-v5"


register_env(WALKER_ENV_ID, WalkerRandParamsEnv)
register_env(HOPPER_ENV_ID, HopperRandParamsEnv)


@register_task("walker-rand-params", family="metarl", config=RandParamsConfig)
def build_walker_rand_params(cfg: RandParamsConfig) -> WalkerRandParams:
    """Walker2d with random masses, inertias, damping and friction (PEARL); needs mujoco."""
    return WalkerRandParams(cfg)


@register_task("hopper-rand-params", family="metarl", config=RandParamsConfig)
def build_hopper_rand_params(cfg: RandParamsConfig) -> HopperRandParams:
    """Hopper with random masses, inertias, damping and friction (PEARL); needs mujoco."""
    return HopperRandParams(cfg)


__all__ = [
    "HOPPER_ENV_ID",
    "PARAM_BASES",
    "WALKER_ENV_ID",
    "HopperRandParams",
    "HopperRandParamsEnv",
    "RandParamsConfig",
    "WalkerRandParams",
    "WalkerRandParamsEnv",
    "model_shapes",
    "sample_multipliers",
]
