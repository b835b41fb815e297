"""VariBAD gridworld: env checks, dynamics, batched == single env, task distribution."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from fastadapt.core.errors import EnvError
from fastadapt.core.registry import TASKS
from fastadapt.tasks.rl.gridworld import ENV_ID, GridTask, Gridworld, possible_goals


def test_check_env() -> None:
    check_env(gym.make(ENV_ID).unwrapped)


def test_goal_set_is_varibads() -> None:
    goals = possible_goals(5)
    assert len(goals) == 21
    assert not {(0, 0), (0, 1), (1, 0), (1, 1)} & set(goals)


def test_dynamics_rewards_and_episode_length() -> None:
    env = gym.make(ENV_ID).unwrapped
    obs, _ = env.reset(seed=0, options={"task": GridTask((2, 0))})
    assert obs.tolist() == [0.0, 0.0]
    obs, r, term, trunc, _ = env.step(4)  # left at the wall: stay
    assert obs.tolist() == [0.0, 0.0] and r == pytest.approx(-0.1)
    obs, r, *_ = env.step(2)
    assert obs.tolist() == [1.0, 0.0] and r == pytest.approx(-0.1)
    obs, r, *_ = env.step(2)
    assert obs.tolist() == [2.0, 0.0] and r == 1.0
    obs, r, term, trunc, _ = env.step(0)  # stay on the goal: +1 again, no termination
    assert r == 1.0 and not term
    for _ in range(10):
        _, _, term, trunc, _ = env.step(1)
        assert not term and not trunc
    _, _, term, trunc, _ = env.step(1)  # 15th step
    assert trunc and not term
    with pytest.raises(EnvError):
        env.step(7)


def test_batched_matches_single_env() -> None:
    dist = Gridworld()
    tasks = dist.sample(4, seed=0)
    T, E = 4, 3
    benv = dist.batched_env(T, E)
    benv.set_tasks(tasks)
    bobs = benv.reset(seed=1)
    singles = [[dist.make_env().unwrapped for _ in range(E)] for _ in range(T)]
    for t in range(T):
        for e in range(E):
            o, _ = singles[t][e].reset(seed=1, options={"task": tasks[t].to_dict()})
            assert np.array_equal(bobs[t, e].numpy(), o)
    gen = torch.Generator().manual_seed(0)
    total = torch.zeros(T, E)
    for _ in range(15):
        a = torch.randint(0, 5, (T, E), generator=gen)
        bobs, brew, bterm, btrunc, _ = benv.step(a)
        total += brew
        for t in range(T):
            for e in range(E):
                o, r, te, tr, _ = singles[t][e].step(int(a[t, e]))
                assert np.array_equal(bobs[t, e].numpy(), o)
                assert float(brew[t, e]) == pytest.approx(r) and bool(bterm[t, e]) == te
                assert bool(btrunc[t, e]) == tr
    assert btrunc.all()
    assert (total >= -1.5 - 1e-6).all() and (total <= 15.0).all()


def test_sampling_and_optimal_return() -> None:
    dist = Gridworld()
    a = dist.sample(50, seed=2)
    assert a == dist.sample(50, seed=2) and a != dist.sample(50, seed=2, split="test")
    assert {t.goal for t in a} <= set(possible_goals())
    assert len(dist.all_tasks()) == 21
    # goal (4, 4) needs 8 moves: 7 x -0.1, then 8 steps on the goal
    assert dist.optimal_episode_return(GridTask((4, 4))) == pytest.approx(8 - 0.7)


def test_registered() -> None:
    entry = TASKS.get("gridworld")
    dist = entry.build(entry.config(episode_steps=10))
    assert entry.family == "metarl" and dist.horizon == 10 and dist.episodes_per_task == 4
