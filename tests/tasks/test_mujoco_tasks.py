"""MuJoCo task families (HalfCheetah-Vel/Dir, Ant-Dir/Goal, Walker/Hopper random params) on gymnasium v5."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from fastadapt.core.errors import EnvError
from fastadapt.core.registry import TASKS

pytestmark = pytest.mark.mujoco
pytest.importorskip("mujoco")

from gymnasium.utils.env_checker import check_env  # noqa: E402

import fastadapt.tasks.rl.mujoco.ant  # noqa: E402,F401  (registers)
import fastadapt.tasks.rl.mujoco.cheetah  # noqa: E402,F401
import fastadapt.tasks.rl.mujoco.random_params  # noqa: E402,F401

NAMES = ["halfcheetah-vel", "halfcheetah-dir", "ant-dir", "ant-goal", "walker-rand-params", "hopper-rand-params"]


def _dist(name: str, **cfg: object) -> object:
    entry = TASKS.get(name)
    assert entry.family == "metarl"
    return entry.build(entry.config(**cfg))


@pytest.mark.parametrize("name", NAMES)
def test_check_env_and_horizon(name: str) -> None:
    dist = _dist(name, horizon=7)
    env = dist.make_env()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unbounded Box observation spaces (as in gymnasium's own envs)
        check_env(env.unwrapped, skip_render_check=True)
    task = dist.sample(1, seed=0)[0]
    env.reset(seed=0, options={"task": task})
    for t in range(7):
        _, r, term, trunc, _ = env.step(np.zeros(env.action_space.shape, np.float32))
        assert np.isfinite(r)
        if term:
            break
    assert term or trunc


@pytest.mark.parametrize("name", NAMES)
def test_sampling_deterministic_and_splits(name: str) -> None:
    dist = _dist(name)
    a = dist.sample(6, seed=1, split="train")
    assert a == dist.sample(6, seed=1, split="train")
    b = dist.sample(6, seed=1, split="test")
    if "dir" not in name:  # two directions only: the splits cannot be disjoint
        assert not any(x == y for x in a for y in b)


def test_cheetah_vel_reward_definition() -> None:
    dist = _dist("halfcheetah-vel")
    env = dist.make_env().unwrapped
    env.reset(seed=0, options={"task": {"velocity": 1.5}})
    a = np.full(6, 2.0, np.float32)  # clipped to 1 before the control cost
    _, r, _, _, info = env.step(a)
    assert r == pytest.approx(-abs(info["x_velocity"] - 1.5) - 0.05 * 6.0)
    vels = [t["velocity"] for t in dist.sample(500, seed=0)]
    assert 0.0 <= min(vels) and max(vels) <= 2.0 and np.std(vels) > 0.4


def test_cheetah_dir_rewards_opposite_directions() -> None:
    env = _dist("halfcheetah-dir").make_env().unwrapped
    rewards = {}
    for d in (-1.0, 1.0):
        env.reset(seed=3, options={"task": {"direction": d}})
        _, r, _, _, info = env.step(np.zeros(6, np.float32))
        rewards[d] = (r, info["x_velocity"])
    assert rewards[1.0][0] == pytest.approx(rewards[1.0][1])
    assert rewards[-1.0][0] == pytest.approx(-rewards[-1.0][1])
    with pytest.raises(EnvError):
        env.reset(options={"task": {"direction": 0.5}})


def test_ant_goal_reward_and_disk() -> None:
    dist = _dist("ant-goal")
    goals = np.array([t["goal"] for t in dist.sample(300, seed=0)])
    assert np.linalg.norm(goals, axis=1).max() <= 3.0 and (goals < 0).any()
    env = dist.make_env().unwrapped
    obs, _ = env.reset(seed=0, options={"task": {"goal": [1.0, -2.0]}})
    assert obs.shape == (107,)
    _, r, term, _, info = env.step(np.zeros(8, np.float32))
    xy = np.array([info["x_position"], info["y_position"]])
    assert r == pytest.approx(-np.abs(xy - [1.0, -2.0]).sum() - env.contact_cost())
    assert not term


def test_rand_params_change_the_model_and_split_is_fixed() -> None:
    dist = _dist("hopper-rand-params")
    train, test = dist.split_tasks("train"), dist.split_tasks("test")
    assert len(train) == 40 and len(test) == 10
    env = dist.make_env().unwrapped
    base_mass = env.init_params["body_mass"].copy()
    env.reset(seed=0, options={"task": train[0]})
    mult = np.asarray(train[0]["body_mass"])
    assert np.allclose(env.inner.model.body_mass, base_mass * mult)
    assert (mult >= 1.5**-3 - 1e-12).all() and (mult <= 1.5**3 + 1e-12).all()
    env.reset(seed=0, options={"task": test[0]})
    assert not np.allclose(env.inner.model.body_mass, base_mass * mult)
    with pytest.raises(EnvError):
        env.reset(options={"task": {**train[0], "body_mass": [1.0]}})


def test_process_sampler_on_halfcheetah_vel() -> None:
    from fastadapt.nn.policies import GaussianMLPPolicy
    from fastadapt.samplers import ProcessSampler

    dist = _dist("halfcheetah-vel", horizon=10)
    policy = GaussianMLPPolicy(17, 6, hidden=(16,))
    tasks = dist.sample(2, seed=0)
    with ProcessSampler(dist, policy, num_envs=2, num_workers=2) as s:
        b = s.sample(tasks, None, seed=0)
    local = ProcessSampler(dist, policy, num_envs=2, num_workers=0).sample(tasks, None, seed=0)
    assert b.obs.shape == (2, 2, 10, 17) and torch.equal(b.rewards, local.rewards)
