"""Bandit task family: distribution, gymnasium env (check_env), batched env == single env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from fastadapt.core.errors import EnvError
from fastadapt.core.protocols import BatchedEnv, TaskDistribution
from fastadapt.core.registry import TASKS
from fastadapt.tasks.rl import bandit as B


@pytest.mark.parametrize("env_id", ["fastadapt/BernoulliBandit-v0", "fastadapt/GaussianBandit-v0"])
def test_check_env(env_id: str) -> None:
    env = gym.make(env_id, arms=4, pulls=6)
    check_env(env.unwrapped, skip_render_check=True)


def test_distribution_is_deterministic_and_splits_differ() -> None:
    d = B.BanditDistribution(arms=5, pulls=10)
    assert isinstance(d, TaskDistribution)
    a, b = d.sample(8, seed=3), d.sample(8, seed=3)
    assert a == b
    c = d.sample(8, seed=3, split="test")
    assert a != c
    means = np.array([t.means for t in a])
    assert means.shape == (8, 5) and (means >= 0).all() and (means <= 1).all()
    # JSON round trip
    t2 = B.BanditTask.coerce(a[0].to_dict())
    assert t2 == a[0]


def test_bernoulli_means_are_uniform() -> None:
    m = B.BanditDistribution(arms=5).sample_means(4000, seed=0)
    assert abs(m.mean() - 0.5) < 0.01 and abs(m.var() - 1 / 12) < 0.003


@pytest.mark.parametrize("distribution", ["bernoulli", "gaussian"])
def test_batched_equals_single(distribution: str) -> None:
    T, E, n, k = 3, 4, 12, 5
    d = B.BanditDistribution(arms=k, pulls=n, distribution=distribution)  # type: ignore[arg-type]
    tasks = d.sample(T, seed=1)
    benv = d.batched_env(T, E)
    assert isinstance(benv, BatchedEnv)
    benv.set_tasks(tasks)
    obs0 = benv.reset(seed=11)
    assert obs0.shape == (T, E, k + 2)
    actions = torch.randint(0, k, (n, T, E), generator=torch.Generator().manual_seed(5))
    obs, rew, term = [], [], []
    for s in range(n):
        o, r, te, tr, _ = benv.step(actions[s])
        assert o.shape == (T, E, k + 2) and r.shape == (T, E) and te.dtype == torch.bool
        assert not tr.any()
        obs.append(o)
        rew.append(r)
        term.append(te)
    assert term[-1].all() and not term[-2].any()
    with pytest.raises(EnvError):
        benv.step(actions[0])
    env = d.make_env()
    for t in range(T):
        for e in range(E):
            o, _ = env.reset(seed=11, options={"task": tasks[t], "index": (t, e)})
            np.testing.assert_array_equal(o, obs0[t, e].numpy())
            for s in range(n):
                o, r, te, tr, _ = env.step(int(actions[s, t, e]))
                np.testing.assert_allclose(o, obs[s][t, e].numpy(), rtol=0, atol=1e-6)
                np.testing.assert_allclose(r, float(rew[s][t, e]), rtol=0, atol=1e-6)
                assert te == bool(term[s][t, e])
    if distribution == "bernoulli":
        assert set(torch.stack(rew).unique().tolist()) <= {0.0, 1.0}


def test_observation_layout() -> None:
    env = B.BanditEnv(arms=3, pulls=2)
    obs, _ = env.reset(seed=0, options={"task": {"means": [0.0, 1.0, 0.0]}})
    assert obs.tolist() == [0, 0, 0, 0, 0]
    obs, r, term, trunc, _ = env.step(1)
    assert r == 1.0 and obs.tolist() == [0, 1, 0, 1, 1] and not term
    obs, r, term, trunc, _ = env.step(2)
    assert r == 0.0 and obs.tolist() == [0, 0, 1, 0, 1] and term


def test_reward_frequencies_match_means() -> None:
    d = B.BanditDistribution(arms=2, pulls=200)
    benv = d.batched_env(2, 50)
    benv.set_tasks(np.array([[0.2, 0.7], [0.9, 0.5]]))
    benv.reset(seed=0)
    a = torch.tensor([[0] * 50, [1] * 50])
    tot = torch.zeros(2, 50)
    for _ in range(200):
        tot += benv.step(a)[1]
    freq = tot.mean(1) / 200
    assert abs(float(freq[0]) - 0.2) < 0.02 and abs(float(freq[1]) - 0.5) < 0.02


def test_same_seed_same_rewards_and_different_seed_differs() -> None:
    d = B.BanditDistribution(arms=5, pulls=30)
    benv = d.batched_env(2, 8)
    benv.set_tasks(d.sample(2, 0))

    def run(seed: int) -> torch.Tensor:
        benv.reset(seed=seed)
        return torch.stack([benv.step(torch.zeros(2, 8, dtype=torch.long))[1] for _ in range(30)])

    assert torch.equal(run(4), run(4))
    assert not torch.equal(run(4), run(5))


def test_bad_inputs() -> None:
    d = B.BanditDistribution(arms=5, pulls=3)
    benv = d.batched_env(2, 2)
    with pytest.raises(EnvError):
        benv.reset(seed=0)
    with pytest.raises(EnvError):
        benv.set_tasks(d.sample(3, 0))
    benv.set_tasks(d.sample(2, 0))
    benv.reset(seed=0)
    with pytest.raises(EnvError):
        benv.step(torch.full((2, 2), 5))
    with pytest.raises(EnvError):
        benv.step(torch.zeros(2, 3, dtype=torch.long))


def test_registered_task() -> None:
    entry = TASKS.get("bandit")
    assert entry.family == "metarl"
    cfg = entry.config(arms=10, pulls=100, distribution="gaussian")
    dist = entry.build(cfg)
    assert dist.arms == 10 and dist.pulls == 100 and dist.distribution == "gaussian"
    with pytest.raises(Exception):
        entry.config(arms=10, bogus=1)
