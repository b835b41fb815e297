"""CartPole with varied physics: env checks, gymnasium CartPole-v1 equivalence, batched == single env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from fastadapt.core.errors import EnvError
from fastadapt.core.registry import TASKS
from fastadapt.tasks.rl.cartpole import ENV_ID, CartPolePhysics, CartPoleTask


def test_check_env() -> None:
    check_env(gym.make(ENV_ID).unwrapped)


def test_default_physics_match_gymnasium_cartpole_v1() -> None:
    ours = gym.make(ENV_ID).unwrapped
    ref = gym.make("CartPole-v1").unwrapped
    ref_obs, _ = ref.reset(seed=3)
    obs, _ = ours.reset(seed=3, options={"task": CartPoleTask(), "state": ref.state})
    assert np.allclose(obs, ref_obs)
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = int(rng.integers(2))
        o1, r1, te1, tr1, _ = ref.step(a)
        o2, r2, te2, tr2, _ = ours.step(a)
        assert np.allclose(o1, o2, atol=1e-5) and r1 == r2 and te1 == te2
        if te1:
            break
    assert te1, "a random policy should drop the pole within 200 steps"


def test_batched_matches_single_env() -> None:
    dist = CartPolePhysics(horizon=60)
    tasks = dist.sample(3, seed=0)
    T, E = 3, 2
    benv = dist.batched_env(T, E)
    benv.set_tasks(tasks)
    bobs = benv.reset(seed=4)
    init = benv.state.clone()
    singles = [[dist.make_env().unwrapped for _ in range(E)] for _ in range(T)]
    for t in range(T):
        for e in range(E):
            o, _ = singles[t][e].reset(seed=0, options={"task": tasks[t].to_dict(), "state": init[t, e].numpy()})
            assert np.allclose(o, bobs[t, e].numpy())
    gen = torch.Generator().manual_seed(1)
    for _ in range(60):
        a = torch.randint(0, 2, (T, E), generator=gen)
        bobs, brew, bterm, btrunc, _ = benv.step(a)
        for t in range(T):
            for e in range(E):
                o, r, te, tr, _ = singles[t][e].step(int(a[t, e]))
                assert np.allclose(bobs[t, e].numpy(), o, atol=1e-6)
                assert float(brew[t, e]) == r and bool(bterm[t, e]) == te and bool(btrunc[t, e]) == tr
    assert torch.isfinite(bobs).all()


def test_tasks_vary_physics_and_change_dynamics() -> None:
    dist = CartPolePhysics()
    tasks = dist.sample(200, seed=0)
    assert tasks == dist.sample(200, seed=0) and tasks != dist.sample(200, seed=0, split="test")
    lengths = np.array([t.length for t in tasks])
    gravity = np.array([t.gravity for t in tasks])
    assert lengths.min() >= 0.25 - 1e-9 and lengths.max() <= 1.0 + 1e-9 and lengths.std() > 0.1
    assert gravity.min() >= 4.9 - 1e-9 and gravity.max() <= 19.6 + 1e-9
    env = dist.batched_env(2, 1)
    env.set_tasks([CartPoleTask(gravity=4.9), CartPoleTask(gravity=19.6)])
    env.reset(state=torch.tensor([0.0, 0.0, 0.05, 0.0]))
    for _ in range(10):
        obs, *_ = env.step(torch.zeros(2, 1, dtype=torch.long))
    assert abs(obs[1, 0, 2]) > abs(obs[0, 0, 2])  # stronger gravity: the pole falls faster
    only_g = CartPolePhysics(vary=["gravity"]).sample(5, seed=0)
    assert all(t.length == 0.5 and t.masspole == 0.1 for t in only_g)


def test_errors_and_registration() -> None:
    with pytest.raises(EnvError):
        CartPoleTask.from_any({"length": -1, "masspole": 1, "masscart": 1, "gravity": 1})
    with pytest.raises(ValueError):
        TASKS.get("cartpole-physics").config(vary=["friction"])
    entry = TASKS.get("cartpole-physics")
    assert entry.family == "metarl" and entry.build(entry.config(horizon=100)).horizon == 100


def test_vector_sampler_masks_fallen_poles() -> None:
    from fastadapt.nn.policies import CategoricalMLPPolicy
    from fastadapt.samplers import VectorSampler

    dist = CartPolePhysics(horizon=200)
    policy = CategoricalMLPPolicy(4, 2, hidden=(8,))
    b = VectorSampler(dist, policy, num_envs=4).sample(dist.sample(3, seed=0), None, seed=0)
    lengths = b.mask.sum(-1)
    assert (lengths < 200).all()  # a random policy drops every pole well before 200 steps
    # reward is +1 on every valid step, including the one on which the pole falls
    assert torch.equal(b.rewards.sum(-1), lengths)
    assert torch.equal(b.infos["terminated"].sum(-1), torch.ones(3, 4))
