"""Meta-World v3 ML1 / ML10 / ML45 through the ``metaworld`` package's own benchmark objects.

Yu et al. 2019, "Meta-World: A Benchmark and Evaluation for Multi-Task and Meta Reinforcement Learning".
ML1 meta-trains on 50 goal positions of one manipulation task and meta-tests on 50 *other* goal positions
of the same task; ML10 meta-trains on 10 tasks and meta-tests on 5 held-out tasks; ML45 45 / 5 (each task
with 50 goal variations). The goal is not observed (39-dim observation with the goal slots zeroed); actions
are 4-dim in ``[-1, 1]``; episodes last 500 steps (Meta-World's ``max_path_length``; configurable below it);
``info["success"]`` says whether the task is solved at that step and an episode counts as a success if any
of its steps is (Meta-World's evaluation convention) — see :func:`episode_success`.

Known trap (REFERENCES.md): in metaworld 3.1.1 the registered ``Meta-World/ML1-train`` vector env hands
out the *test* split (a late-binding lambda). This module never uses it: tasks come from
``metaworld.ML1(env_name, seed=...)`` / ``ML10(seed=...)`` / ``ML45(seed=...)`` objects (``train_tasks`` /
``test_tasks``) and are installed with ``env.set_task(...)``; the tests check that train and test goals differ.

Tasks are JSON-able references ``{"env_name": "reach-v3", "split": "train", "index": i}`` (the i-th task of
that env in that split of the benchmark the env was built for), so they cross process boundaries without
pickling Meta-World's task objects. The benchmark object is built once per process (ML1 ~4 s, ML10 ~30 s
on a loaded 2-core machine; ML45 longer) and inherited by forked sampler workers.

API::

    dist = MetaWorldTasks(MetaWorldConfig(benchmark="ML1", env_name="reach-v3", benchmark_seed=0))
    tasks = dist.sample(n, seed, split)          # drawn from the benchmark's train or test tasks
    env = dist.make_env()                        # gymnasium "fastadapt/MetaWorld-v0"
    sampler = ProcessSampler(dist, policy, num_envs=10, info_keys=("success",))
    rate = episode_success(batch).mean()         # success rate over the batch's episodes
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from pydantic import Field, model_validator

from fastadapt.core.config import Section
from fastadapt.core.errors import ConfigError, EnvError
from fastadapt.core.registry import register_task
from fastadapt.core.seeding import np_rng
from fastadapt.core.types import EpisodeBatch
from fastadapt.tasks.rl.action_checks import check_box_action, env_label

ENV_ID = "fastadapt/MetaWorld-v0"
SPLITS = ("train", "test")
BENCHMARKS = ("ML1", "ML10", "ML45")
MAX_PATH_LENGTH = 500


def require_metaworld() -> Any:
    """Import and return ``metaworld``; EnvError with the install command if it is missing or broken."""
    try:
        import metaworld
    except Exception as exc:  # ImportError, or a broken mujoco shared library
        raise EnvError(
            f"Meta-World tasks need the optional dependency 'metaworld' ({type(exc).__name__}: {exc}); "
            "install with: pip install 'gymnasium[mujoco]' metaworld  (in one command)"
        ) from exc
    return metaworld


@lru_cache(maxsize=4)
def benchmark(name: str, env_name: str, seed: int) -> Any:
    """The ``metaworld`` benchmark object (cached per process): ``ML1(env_name, seed)``, ``ML10(seed)``..."""
    mw = require_metaworld()
    if name == "ML1":
        if env_name not in mw.ML1.ENV_NAMES:
            raise ConfigError(f"task.env_name: {env_name!r} is not a Meta-World v3 task; e.g. reach-v3, push-v3")
        return mw.ML1(env_name, seed=seed)
    if name == "ML10":
        return mw.ML10(seed=seed)
    if name == "ML45":
        return mw.ML45(seed=seed)
    raise ConfigError(f"task.benchmark: expected one of {BENCHMARKS}, got {name!r}")


def split_index(bench: Any, split: str) -> dict[str, list[Any]]:
    """``{env_name: [metaworld Task, ...]}`` of one split, in the benchmark's order."""
    tasks = bench.train_tasks if split == "train" else bench.test_tasks
    out: dict[str, list[Any]] = {}
    for t in tasks:
        out.setdefault(t.env_name, []).append(t)
    return out


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"split: expected one of {SPLITS}, got {split!r}")


class MetaWorldConfig(Section):
    """The ``task:`` section for ``metaworld``."""

    benchmark: Literal["ML1", "ML10", "ML45"] = "ML1"
    env_name: str = Field("reach-v3", description="ML1 only: which of the 50 v3 tasks")
    benchmark_seed: int = Field(0, ge=0, description="seed of metaworld.ML1/ML10/ML45(seed=...)")
    horizon: int = Field(MAX_PATH_LENGTH, gt=0, le=MAX_PATH_LENGTH, description="steps per episode")

    @model_validator(mode="after")
    def _check(self) -> MetaWorldConfig:
        if not self.env_name:
            raise ValueError("env_name must not be empty")
        return self


class MetaWorldEnv(gym.Env):
    """Single gymnasium env ``fastadapt/MetaWorld-v0`` over one benchmark's tasks.

    ``reset(seed, options={"task": {"env_name", "split", "index"}})`` installs that Meta-World task (one
    simulator per env class, created on first use); without a task the first train task is used. Actions:
    a numeric array of shape ``[4]``; finite values are clipped to ``[-1, 1]``, NaN/Inf and other shapes
    raise :class:`EnvError` naming the env and the action; the episode is truncated after ``horizon``
    steps; ``info["success"]`` is a float in {0, 1}.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        benchmark_name: str = "ML1",
        env_name: str = "reach-v3",
        benchmark_seed: int = 0,
        horizon: int = MAX_PATH_LENGTH,
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        if not 0 < horizon <= MAX_PATH_LENGTH:
            raise ConfigError(f"horizon: expected 1..{MAX_PATH_LENGTH}, got {horizon}")
        self.bench = benchmark(benchmark_name, env_name, int(benchmark_seed))
        self.benchmark_name = benchmark_name
        self.horizon = int(horizon)
        self.render_mode = render_mode
        self._splits = {s: split_index(self.bench, s) for s in SPLITS}
        self._classes = {**self.bench.train_classes, **self.bench.test_classes}
        self._sims: dict[str, Any] = {}
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(39,), dtype=np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        self.sim: Any = None
        self.task: dict[str, Any] | None = None
        self._t = 0

    def resolve(self, task: Any) -> tuple[dict[str, Any], Any]:
        """``(normalised task dict, metaworld Task)``; EnvError if the reference is not in this benchmark."""
        if hasattr(task, "to_dict"):
            task = task.to_dict()
        if not isinstance(task, Mapping) or not {"env_name", "split", "index"} <= set(task):
            raise EnvError(f"metaworld task: expected {{'env_name', 'split', 'index'}}, got {task!r}")
        name, split, index = str(task["env_name"]), str(task["split"]), int(task["index"])
        tasks = self._splits.get(split, {}).get(name)
        if tasks is None:
            raise EnvError(f"metaworld task: no {split!r} tasks for {name!r} in {self.benchmark_name}")
        if not 0 <= index < len(tasks):
            raise EnvError(f"metaworld task: index {index} out of range for {name!r} ({len(tasks)} tasks)")
        return {"env_name": name, "split": split, "index": index}, tasks[index]

    def _sim_for(self, env_name: str) -> Any:
        if env_name not in self._sims:
            sim = self._classes[env_name](render_mode=self.render_mode)
            self._sims[env_name] = sim
        return self._sims[env_name]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        if options.get("task") is not None or self.task is None:
            ref = options.get("task")
            if ref is None:
                ref = {"env_name": next(iter(self._splits["train"])), "split": "train", "index": 0}
            self.task, mw_task = self.resolve(ref)
            self.sim = self._sim_for(self.task["env_name"])
            self.sim.set_task(mw_task)
        if seed is not None:
            self.sim.seed(int(seed) % (2**32))
        obs, info = self.sim.reset()
        self._t = 0
        return np.asarray(obs, dtype=np.float64), dict(info)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.sim is None:
            raise EnvError("metaworld: step() called before reset()")
        a = check_box_action(action, -1.0, 1.0, (4,), env_label(self, ENV_ID)).astype(np.float32, copy=False)
        obs, reward, terminated, _, info = self.sim.step(a)
        self._t += 1
        info = dict(info)
        info["success"] = float(info.get("success", 0.0))
        truncated = self._t >= self.horizon
        return np.asarray(obs, dtype=np.float64), float(reward), bool(terminated), truncated, info

    def goal(self) -> np.ndarray:
        """The current task's goal position (hidden from the agent; for tests and plots)."""
        if self.sim is None:
            raise EnvError("metaworld: goal() called before reset()")
        return np.asarray(self.sim._target_pos, dtype=np.float64).copy()

    def render(self) -> Any:
        return None if self.sim is None else self.sim.render()

    def close(self) -> None:
        for sim in self._sims.values():
            sim.close()
        self._sims = {}


class MetaWorldTasks:
    """Task distribution over one Meta-World benchmark's fixed train / test tasks."""

    env_id = ENV_ID

    def __init__(self, cfg: MetaWorldConfig | None = None, **overrides: Any) -> None:
        if cfg is None:
            cfg = MetaWorldConfig(**overrides)
        elif overrides:
            cfg = MetaWorldConfig(**{**cfg.model_dump(), **overrides})
        self.cfg = cfg
        self.horizon = int(self.cfg.horizon)
        self.max_episode_steps = self.horizon
        self.discrete = False
        self.obs_dim = 39
        self.act_dim = 4

    def benchmark(self) -> Any:
        """The underlying ``metaworld`` benchmark object (built on first use)."""
        return benchmark(self.cfg.benchmark, self.cfg.env_name, self.cfg.benchmark_seed)

    def split_tasks(self, split: str = "train") -> list[dict[str, Any]]:
        """Every task reference of ``split`` (50 per env class), in the benchmark's order."""
        _check_split(split)
        idx = split_index(self.benchmark(), split)
        return [{"env_name": n, "split": split, "index": i} for n, ts in idx.items() for i in range(len(ts))]

    def env_names(self, split: str = "train") -> list[str]:
        _check_split(split)
        return list(split_index(self.benchmark(), split))

    def sample(self, n: int, seed: int, split: str = "train") -> list[dict[str, Any]]:
        """``n`` task references from ``split`` (uniform, without replacement while possible)."""
        tasks = self.split_tasks(split)
        if n < 0:
            raise ConfigError(f"n: expected >= 0, got {n}")
        idx = np_rng(seed, "metaworld", self.cfg.benchmark, split).choice(
            len(tasks), size=n, replace=n > len(tasks)
        )
        return [tasks[int(i)] for i in idx]

    def make_env(self, **kwargs: Any) -> gym.Env:
        """A single gymnasium env ``fastadapt/MetaWorld-v0`` for this benchmark."""
        require_metaworld()
        kw = {
            "benchmark_name": self.cfg.benchmark,
            "env_name": self.cfg.env_name,
            "benchmark_seed": self.cfg.benchmark_seed,
            "horizon": self.horizon,
        }
        return gym.make(ENV_ID, **{**kw, **kwargs})


def episode_success(batch: EpisodeBatch) -> torch.Tensor:
    """``[tasks, envs]``: 1 if the episode succeeded at any valid step (needs ``info_keys=("success",)``)."""
    if "success" not in batch.infos:
        raise EnvError("batch has no 'success' info; sample with info_keys=('success',)")
    return (batch.infos["success"] * batch.mask).amax(dim=-1)


if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point=MetaWorldEnv)


@register_task("metaworld", family="metarl", config=MetaWorldConfig)
def build_metaworld(cfg: MetaWorldConfig) -> MetaWorldTasks:
    """Meta-World v3 ML1 / ML10 / ML45 (success rate reported); needs metaworld + mujoco."""
    return MetaWorldTasks(cfg)


__all__ = [
    "ENV_ID",
    "MetaWorldConfig",
    "MetaWorldEnv",
    "MetaWorldTasks",
    "benchmark",
    "build_metaworld",
    "episode_success",
]
