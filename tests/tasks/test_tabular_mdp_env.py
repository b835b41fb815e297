"""Random tabular MDP family (RL² Sec. 4.2): distribution, gymnasium env, batched env == single env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from fastadapt.core.errors import EnvError
from fastadapt.core.protocols import BatchedEnv
from fastadapt.core.registry import TASKS
from fastadapt.tasks.rl import tabular_mdp as M


def test_check_env() -> None:
    env = gym.make("fastadapt/TabularMDP-v0", episodes=2)
    check_env(env.unwrapped, skip_render_check=True)


def test_distribution() -> None:
    d = M.TabularMDPDistribution()
    a, b = d.sample(4, seed=2), d.sample(4, seed=2)
    assert a == b and a != d.sample(4, seed=2, split="test")
    P, R = d.sample_arrays(500, seed=0)
    assert P.shape == (500, 10, 5, 10) and R.shape == (500, 10, 5)
    np.testing.assert_allclose(P.sum(-1), 1.0)
    # Dirichlet(1) marginals have mean 1/S and variance (S-1)/(S^2 (S+1)); R ~ N(1, 1)
    assert abs(P.mean() - 0.1) < 1e-9 and abs(P.var() - 9 / (100 * 11)) < 5e-4
    assert abs(R.mean() - 1.0) < 0.02 and abs(R.std() - 1.0) < 0.02
    assert M.TabularMDPTask.coerce(a[0].to_dict()) == a[0]


def test_batched_equals_single() -> None:
    T, E, episodes = 2, 3, 3
    d = M.TabularMDPDistribution(episodes=episodes)
    tasks = d.sample(T, seed=5)
    benv = d.batched_env(T, E)
    assert isinstance(benv, BatchedEnv)
    benv.set_tasks(tasks)
    obs0 = benv.reset(seed=3)
    L = benv.max_episode_steps
    assert L == 30 and obs0.shape == (T, E, 17)
    acts = torch.randint(0, 5, (L, T, E), generator=torch.Generator().manual_seed(1))
    out = [benv.step(acts[i]) for i in range(L)]
    assert out[-1][2].all() and not out[-2][2].any()
    assert out[9][4]["episode_done"].all() and not out[8][4]["episode_done"].any()
    with pytest.raises(EnvError):
        benv.step(acts[0])
    env = d.make_env()
    for t in range(T):
        for e in range(E):
            o, _ = env.reset(seed=3, options={"task": tasks[t], "index": (t, e)})
            np.testing.assert_array_equal(o, obs0[t, e].numpy())
            for i in range(L):
                o, r, term, trunc, info = env.step(int(acts[i, t, e]))
                np.testing.assert_allclose(o, out[i][0][t, e].numpy(), rtol=0, atol=1e-6)
                assert abs(r - float(out[i][1][t, e])) < 1e-6 and term == bool(out[i][2][t, e])
                assert info["next_state"] == int(out[i][4]["next_state"][t, e])


def test_episode_starts_in_state_zero_and_transitions_follow_P() -> None:
    d = M.TabularMDPDistribution(episodes=200, horizon=2)
    task = d.sample(1, seed=0)[0]
    benv = d.batched_env(1, 200)
    benv.set_tasks([task])
    benv.reset(seed=0)
    counts = np.zeros(10)
    for i in range(2 * 200):
        obs, _, _, _, info = benv.step(torch.full((1, 200), 2))
        if i % 2 == 0:  # first step of each episode: from state 0 with action 2
            assert (info["state"] == 0).all()
            counts += np.bincount(info["next_state"].flatten().numpy(), minlength=10)
        else:
            assert (obs[..., 0] == 1).all() and (obs[..., -1] == 1).all()
    freq = counts / counts.sum()
    assert np.abs(freq - task.P[0, 2]).max() < 0.01


def test_registered_task() -> None:
    entry = TASKS.get("tabular-mdp")
    dist = entry.build(entry.config(episodes=25))
    assert dist.episodes == 25 and dist.states == 10 and dist.actions == 5 and dist.horizon == 10
