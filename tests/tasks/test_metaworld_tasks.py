"""Meta-World ML1 through metaworld's own benchmark objects: train and test goals differ, success info."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from fastadapt.core.errors import ConfigError, EnvError
from fastadapt.core.registry import TASKS

pytestmark = pytest.mark.metaworld
pytest.importorskip("metaworld")

from gymnasium.utils.env_checker import check_env  # noqa: E402

import fastadapt.tasks.rl.metaworld  # noqa: E402,F401  (registers the task)


@pytest.fixture(scope="module")
def dist() -> object:
    entry = TASKS.get("metaworld")
    assert entry.family == "metarl"
    return entry.build(entry.config(benchmark="ML1", env_name="reach-v3", benchmark_seed=0, horizon=20))


def test_check_env(dist: object) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(dist.make_env().unwrapped, skip_render_check=True)


def test_train_and_test_goals_differ(dist: object) -> None:
    train, test = dist.split_tasks("train"), dist.split_tasks("test")
    assert len(train) == 50 and len(test) == 50
    env = dist.make_env().unwrapped

    def goals(tasks: list[dict]) -> np.ndarray:
        out = []
        for t in tasks[:10]:
            env.reset(seed=0, options={"task": t})
            out.append(env.goal())
        return np.array(out)

    g_train, g_test = goals(train), goals(test)
    assert len({tuple(np.round(g, 6)) for g in g_train}) == 10  # 10 different goals
    dists = np.linalg.norm(g_train[:, None] - g_test[None], axis=-1)
    assert dists.min() > 1e-6  # no meta-test goal is a meta-train goal
    # the benchmark object's own splits agree
    bench = dist.benchmark()
    assert bench.train_tasks[0].data != bench.test_tasks[0].data


def test_episode_success_and_horizon(dist: object) -> None:
    from fastadapt.nn.policies import GaussianMLPPolicy
    from fastadapt.samplers import ProcessSampler
    from fastadapt.tasks.rl.metaworld import episode_success

    tasks = dist.sample(2, seed=0, split="test")
    assert all(t["split"] == "test" for t in tasks)
    policy = GaussianMLPPolicy(39, 4, hidden=(8,))
    b = ProcessSampler(dist, policy, num_envs=1, num_workers=0, info_keys=("success",)).sample(tasks, None, 0)
    assert b.rewards.shape == (2, 1, 20) and b.infos["success"].shape == (2, 1, 20)
    s = episode_success(b)
    assert s.shape == (2, 1) and ((s == 0) | (s == 1)).all()
    assert torch.isfinite(b.rewards).all()


def test_bad_references(dist: object) -> None:
    env = dist.make_env().unwrapped
    with pytest.raises(EnvError):
        env.reset(options={"task": {"env_name": "push-v3", "split": "train", "index": 0}})
    with pytest.raises(EnvError):
        env.reset(options={"task": {"env_name": "reach-v3", "split": "train", "index": 50}})
    with pytest.raises(ConfigError):
        dist.sample(1, seed=0, split="valid")


@pytest.mark.slow
def test_ml10_meta_test_tasks_are_held_out_envs() -> None:
    """ML10 (~30 s to build here): 10 meta-train env classes, 5 different meta-test ones."""
    from fastadapt.tasks.rl.metaworld import MetaWorldTasks

    dist = MetaWorldTasks(benchmark="ML10", horizon=5)
    train, test = dist.env_names("train"), dist.env_names("test")
    assert len(train) == 10 and len(test) == 5 and not set(train) & set(test)
    assert len(dist.split_tasks("train")) == 500 and len(dist.split_tasks("test")) == 250
    env = dist.make_env().unwrapped
    task = dist.sample(1, seed=0, split="test")[0]
    env.reset(seed=0, options={"task": task})
    _, r, _, _, info = env.step(np.zeros(4, np.float32))
    assert np.isfinite(r) and info["success"] in (0.0, 1.0) and env.task["env_name"] in test


@pytest.mark.slow
def test_ml45_builds_and_steps_every_meta_test_env() -> None:
    """ML45 (~30 s to build on a quiet 2-core machine): 45 meta-train env classes, 5 held-out ones, all step."""
    from fastadapt.tasks.rl.metaworld import MetaWorldTasks

    dist = MetaWorldTasks(benchmark="ML45", horizon=5)
    train, test = dist.env_names("train"), dist.env_names("test")
    assert len(train) == 45 and len(test) == 5 and not set(train) & set(test)
    env = dist.make_env().unwrapped
    seen: set[str] = set()
    for task in dist.split_tasks("test"):
        if task["env_name"] in seen:
            continue
        seen.add(task["env_name"])
        obs, _ = env.reset(seed=0, options={"task": task})
        assert obs.shape == (39,) and np.isfinite(obs).all()
        _, r, _, _, info = env.step(np.zeros(4, np.float32))
        assert np.isfinite(r) and info["success"] in (0.0, 1.0) and env.task["env_name"] == task["env_name"]
    assert seen == set(test)
    # a meta-train task of a train-only env class resolves and steps too
    task = dist.sample(1, seed=1, split="train")[0]
    assert task["env_name"] in train
    env.reset(seed=1, options={"task": task})
    _, r, _, _, _ = env.step(np.zeros(4, np.float32))
    assert np.isfinite(r)
