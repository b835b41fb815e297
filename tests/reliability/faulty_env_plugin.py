"""A 2D-navigation task whose envs go bad on demand (sampler-fault tests; FASTADAPT_PLUGINS=faulty_env_plugin).

Task ``faulty-nav`` (family ``metarl``): MAML's dense 2D navigation without termination at the goal (so every
episode lasts exactly ``horizon`` steps) behind the sampler chosen by ``sampler``: ``vector`` (the family
offers ``batched_env``: VectorSampler) or ``process`` (only ``make_env``: ProcessSampler).

The fault comes from the environment variable ``FASTADAPT_TEST_ENV_FAULT="<kind>:<after>:<task>:<env>"``, not
from the config, so that a faulted run can be resumed without it (same config hash):

- ``kind``: ``nan_obs`` | ``inf_obs`` | ``nan_reward`` | ``raise`` | ``wrong_shape``;
- ``after``: the env has made this many steps (over all its episodes; a single env counts only the steps it
  makes at the target position) before the fault starts;
- ``task``, ``env``: the position in the sampled ``[tasks, envs]`` grid that goes bad.

Tasks are ``{"goal": [x, y], "index": i}`` so that a single env knows its task index; in the process sampler
a worker's ``k``-th env object steps env index ``k`` of every task in its share (chunks of one task), so a
per-process counter of env objects gives the env index.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from fastadapt.core.config import Section
from fastadapt.core.registry import TASKS, register_task
from fastadapt.tasks.rl.navigation2d import Navigation2D, Navigation2DBatchedEnv, Navigation2DEnv

FAULT_VAR = "FASTADAPT_TEST_ENV_FAULT"
KINDS = ("nan_obs", "inf_obs", "nan_reward", "raise", "wrong_shape")


def fault_spec() -> tuple[str, int, int, int] | None:
    spec = os.environ.get(FAULT_VAR, "")
    if not spec:
        return None
    kind, after, task, env = spec.split(":")
    if kind not in KINDS:
        raise ValueError(f"{FAULT_VAR}: unknown kind {kind!r}; expected one of {KINDS}")
    return kind, int(after), int(task), int(env)


class FaultyNavConfig(Section):
    sampler: Literal["vector", "process"] = "vector"
    horizon: int = Field(10, gt=0)


class FaultyBatchedNav(Navigation2DBatchedEnv):
    """Navigation2DBatchedEnv that corrupts position ``[task, env]`` of its outputs after ``after`` steps."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fault = fault_spec()
        self.steps = 0

    def step(self, actions: torch.Tensor) -> Any:
        obs, rew, term, trunc, info = super().step(actions)
        self.steps += 1
        if self.fault is None or self.steps <= self.fault[1]:
            return obs, rew, term, trunc, info
        kind, _, t, e = self.fault
        obs, rew = obs.clone(), rew.clone()  # obs is a view of the env's state: never corrupt the state
        if kind == "nan_obs":
            obs[t, e] = float("nan")
        elif kind == "inf_obs":
            obs[t, e, 1] = float("inf")
        elif kind == "nan_reward":
            rew[t, e] = float("nan")
        elif kind == "raise":
            raise RuntimeError("simulated simulator crash")
        elif kind == "wrong_shape":
            obs = torch.zeros(obs.shape[0], obs.shape[1], 3)
        return obs, rew, term, trunc, info


_instances: dict[int, int] = {}  # pid -> env objects made in that process


class FaultyNavEnv(Navigation2DEnv):
    """Single Navigation2DEnv that goes bad at ``[task, env]`` after ``after`` steps of this env object."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        pid = os.getpid()
        self.instance = _instances.get(pid, 0)
        _instances[pid] = self.instance + 1
        self.fault = fault_spec()
        self.steps = 0
        self.task_index = -1

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        task = (options or {}).get("task")
        if isinstance(task, dict):
            self.task_index = int(task.get("index", -1))
        return super().reset(seed=seed, options=options)

    def step(self, action: Any) -> Any:
        obs, rew, term, trunc, info = super().step(action)
        if self.fault is None:
            return obs, rew, term, trunc, info
        kind, after, t, e = self.fault
        if (self.task_index, self.instance) != (t, e):
            return obs, rew, term, trunc, info
        self.steps += 1
        if self.steps <= after:
            return obs, rew, term, trunc, info
        if kind == "nan_obs":
            obs = np.full_like(obs, np.nan)
        elif kind == "inf_obs":
            obs = obs.copy()
            obs[1] = np.inf
        elif kind == "nan_reward":
            rew = float("nan")
        elif kind == "raise":
            raise RuntimeError("simulated simulator crash")
        elif kind == "wrong_shape":
            obs = np.zeros(3, dtype=np.float32)
        return obs, rew, term, trunc, info


class FaultyNav:
    """Task distribution: Navigation2D goals tagged with their index; envs from the classes above."""

    def __init__(self, cfg: FaultyNavConfig) -> None:
        self.nav = Navigation2D(horizon=cfg.horizon, terminate_at_goal=False)
        self.observation_space = self.nav.observation_space
        self.action_space = self.nav.action_space
        self.horizon = self.max_episode_steps = self.nav.horizon
        self.discrete = False
        if cfg.sampler == "vector":
            self.batched_env = self._batched_env
        else:
            self.make_env = self._make_env

    def sample(self, n: int, seed: int, split: str = "train") -> list[dict[str, Any]]:
        return [{"goal": list(t.goal), "index": i} for i, t in enumerate(self.nav.sample(n, seed, split))]

    def _batched_env(self, num_tasks: int, num_envs: int) -> FaultyBatchedNav:
        kw = self.nav.env_kwargs()
        kw.pop("goal_low")
        kw.pop("goal_high")
        return FaultyBatchedNav(num_tasks, num_envs, **kw)

    def _make_env(self) -> FaultyNavEnv:
        return FaultyNavEnv(**self.nav.env_kwargs())


if "faulty-nav" not in TASKS:
    register_task("faulty-nav", family="metarl", config=FaultyNavConfig)(FaultyNav)
