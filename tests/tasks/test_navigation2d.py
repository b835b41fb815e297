"""2D navigation (MAML dense / PEARL sparse): env checks, batched == single env, splits, oracle."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from fastadapt.core.errors import ConfigError, EnvError
from fastadapt.core.registry import TASKS
from fastadapt.tasks.rl.navigation2d import (
    ENV_ID,
    Nav2DTask,
    Navigation2D,
    Navigation2DConfig,
    oracle_actions,
    sparse_goal_pool,
)


@pytest.mark.parametrize("sparse", [False, True])
def test_check_env(sparse: bool) -> None:
    env = gym.make(ENV_ID, sparse=sparse)
    check_env(env.unwrapped)
    obs, _ = env.reset(seed=0, options={"task": {"goal": [0.3, -0.2]}})
    assert obs.dtype == np.float32 and np.array_equal(obs, np.zeros(2, np.float32))


def test_dense_dynamics_reward_and_termination() -> None:
    env = gym.make(ENV_ID).unwrapped
    env.reset(seed=0, options={"task": Nav2DTask((0.25, 0.05))})
    obs, r, term, trunc, _ = env.step(np.array([1.0, 0.05], np.float32))  # x clipped to 0.1
    assert np.allclose(obs, [0.1, 0.05])
    assert r == pytest.approx(-0.15, abs=1e-6) and not term and not trunc
    env.step(np.array([0.1, 0.0], np.float32))
    _, r, term, _, _ = env.step(np.array([0.05, 0.0], np.float32))
    assert term and r == pytest.approx(0.0, abs=1e-6)


def test_dense_truncates_at_horizon() -> None:
    env = gym.make(ENV_ID, horizon=5).unwrapped
    env.reset(seed=0, options={"task": {"goal": [0.5, 0.5]}})
    flags = [env.step(np.zeros(2, np.float32))[3] for _ in range(5)]
    assert flags == [False] * 4 + [True]


def test_sparse_reward_only_inside_radius() -> None:
    env = gym.make(ENV_ID, sparse=True).unwrapped
    env.reset(seed=0, options={"task": {"goal": [0.0, 0.3]}})
    _, r1, _, _, _ = env.step(np.array([0.0, 0.05], np.float32))  # distance 0.25 > 0.2
    _, r2, term, _, _ = env.step(np.array([0.0, 0.1], np.float32))  # distance 0.15
    assert r1 == 0.0 and r2 == pytest.approx(1.0 - 0.15, abs=1e-6) and not term


@pytest.mark.parametrize("sparse", [False, True])
def test_batched_matches_single_env(sparse: bool) -> None:
    dist = Navigation2D(sparse=sparse, horizon=30)
    tasks = dist.sample(3, seed=1)
    T, E = 3, 2
    benv = dist.batched_env(T, E)
    benv.set_tasks(tasks)
    bobs = benv.reset(seed=5)
    singles = [[dist.make_env().unwrapped for _ in range(E)] for _ in range(T)]
    sobs = np.stack([[s.reset(seed=5, options={"task": tasks[t]})[0] for s in row] for t, row in enumerate(singles)])
    assert np.array_equal(bobs.numpy(), sobs)
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        a = torch.randn(T, E, 2, generator=gen) * 0.15  # some actions exceed the 0.1 bound
        bobs, brew, bterm, btrunc, _ = benv.step(a)
        for t in range(T):
            for e in range(E):
                o, r, te, tr, _ = singles[t][e].step(a[t, e].numpy())
                assert np.array_equal(bobs[t, e].numpy(), o)
                assert float(brew[t, e]) == pytest.approx(r, abs=1e-6)  # float32 sqrt rounding
                assert bool(bterm[t, e]) == te and bool(btrunc[t, e]) == tr
    assert btrunc.all()


def test_batched_termination_matches_single() -> None:
    dist = Navigation2D()
    tasks = [Nav2DTask((0.05, 0.05)), Nav2DTask((0.4, 0.4))]
    benv = dist.batched_env(2, 1)
    benv.set_tasks(tasks)
    obs = benv.reset(seed=0)
    _, _, term, _, _ = benv.step(oracle_actions(obs, benv.goals))
    assert term.tolist() == [[True], [False]]


def test_sampling_is_deterministic_and_splits_differ() -> None:
    dist = Navigation2D()
    a = dist.sample(10, seed=3, split="train")
    assert a == dist.sample(10, seed=3, split="train")
    assert a != dist.sample(10, seed=4, split="train")
    test = dist.sample(10, seed=3, split="test")
    assert not set(a) & set(test)
    goals = np.array([t.goal for t in a + test])
    assert goals.min() >= -0.5 and goals.max() <= 0.5
    with pytest.raises(ConfigError):
        dist.sample(2, seed=0, split="valid")


def test_sparse_fixed_pearl_split() -> None:
    dist = Navigation2D(sparse=True)
    train, test = dist.split_tasks("train"), dist.split_tasks("test")
    assert len(train) == 80 and len(test) == 20 and not set(train) & set(test)
    goals = np.array([t.goal for t in train + test])
    assert np.allclose(np.linalg.norm(goals, axis=1), 1.0) and (goals[:, 1] >= -1e-12).all()
    # the pool is the 100 half-circle angles, only reordered
    angles = np.sort(np.arctan2(goals[:, 1], goals[:, 0]))
    assert np.allclose(angles, np.linspace(0, np.pi, 100), atol=1e-9)
    assert np.array_equal(sparse_goal_pool(), sparse_goal_pool())
    s = dist.sample(30, seed=0, split="test")
    assert set(s) <= set(test)
    assert len(set(dist.sample(20, seed=0, split="test"))) == 20  # without replacement while possible


def test_oracle_beats_zero_policy_and_reaches_goal() -> None:
    dist = Navigation2D()
    tasks = dist.sample(16, seed=0)
    oracle = dist.oracle_returns(tasks)
    env = dist.batched_env(16, 1)
    env.set_tasks(tasks)
    env.reset(seed=0)
    zero = torch.zeros(16)
    for _ in range(100):
        _, r, _, _, _ = env.step(torch.zeros(16, 1, 2))
        zero += r[:, 0]
    assert (oracle > zero).all()
    # oracle steps are the projection of the goal onto the action box
    a = oracle_actions(np.zeros(2, np.float32), np.array([0.3, -0.05], np.float32))
    assert np.allclose(a, [0.1, -0.05])


def test_registered_task_and_config_validation() -> None:
    entry = TASKS.get("navigation2d")
    assert entry.family == "metarl"
    dist = entry.build(entry.config(horizon=50, sparse=False))
    assert dist.horizon == 50 and dist.make_env().unwrapped.horizon == 50
    assert Navigation2D(sparse=True).horizon == 20
    with pytest.raises(ValueError):
        Navigation2DConfig(num_train_goals=100)
    with pytest.raises(ValueError):
        Navigation2DConfig(bogus=1)


def test_bad_tasks_and_actions_raise_env_error() -> None:
    env = Navigation2D().batched_env(2, 1)
    with pytest.raises(EnvError):
        env.set_tasks([Nav2DTask((0, 0))])
    with pytest.raises(EnvError):
        Nav2DTask.from_any({"goal": [float("nan"), 0.0]})
    env.set_tasks([Nav2DTask((0, 0)), {"goal": [0.1, 0.1]}])
    env.reset(0)
    with pytest.raises(EnvError):
        env.step(torch.zeros(2, 2, 2))
