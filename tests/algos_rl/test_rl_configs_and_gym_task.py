"""The `gym` task and the shipped single-task RL configs."""

from __future__ import annotations

import pytest

from fastadapt.core.errors import ConfigError
from fastadapt.core.registry import ALGOS, TASKS
from fastadapt.tasks.rl.gym_env import GymConfig, build_gym

SHIPPED = [
    "ppo-cartpole", "a2c-cartpole", "dqn-cartpole", "trpo-cartpole", "vpg-cartpole", "sac-pendulum",
    "td3-pendulum", "ddpg-pendulum", "ppo-halfcheetah", "sac-halfcheetah", "q-learning-frozenlake",
    "q-learning-cliffwalking", "sarsa-cliffwalking",
]


def test_gym_task_builds_factory_with_spaces() -> None:
    f = build_gym(GymConfig(env_id="CartPole-v1", max_episode_steps=50))
    env = f.make()
    try:
        assert env.spec.max_episode_steps == 50
        assert f.observation_space.shape == (4,) and f.action_space.n == 2
    finally:
        env.close()
    assert "gym" in TASKS and TASKS.get("gym").family == "rl"


def test_unknown_env_id_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^task\.env_id: unknown gymnasium environment 'NoSuchEnv-v9'"):
        build_gym(GymConfig(env_id="NoSuchEnv-v9"))


def test_bad_kwargs_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^task\."):
        build_gym(GymConfig(env_id="CartPole-v1", kwargs={"no_such_kwarg": 1}))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_validate(name: str) -> None:
    from fastadapt.experiment import catalog
    from fastadapt.experiment.config import find_config, read_yaml, resolve

    catalog.load_all()
    raw = read_yaml(find_config(name))
    if raw["task"]["env_id"].startswith("HalfCheetah"):
        pytest.importorskip("mujoco")
    cfg = resolve(raw, name)
    assert cfg.algo_entry.family == "rl" and cfg.name == name
    assert cfg.algo_entry.name in ALGOS


def test_fastadapt_env_ids_are_found_and_trainable() -> None:
    """`gym` imports fastadapt's task modules on demand, so `fastadapt/<Name>-v0` ids work as single tasks."""
    import gymnasium as gym

    from fastadapt.algos.rl.ppo import PPO, PPOConfig

    try:
        factory = build_gym(GymConfig(env_id="fastadapt/Navigation2D-v0"))
    except ConfigError:
        pytest.skip("fastadapt/Navigation2D-v0 is not registered in this checkout")
    assert "fastadapt/Navigation2D-v0" in gym.registry
    learner = PPO(PPOConfig(num_envs=2, num_steps=8, epochs=1, minibatch_size=8, hidden=(8,)), factory, 0)
    assert learner.train_step(1)["env_steps"] == 16
