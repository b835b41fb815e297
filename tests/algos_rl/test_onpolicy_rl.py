"""VPG, A2C, PPO, TRPO: resume equality, determinism, improvement on a contextual bandit, eval rows."""

from __future__ import annotations

import math

import pytest
import rl_test_envs
from rl_test_envs import single_thread  # noqa: F401 (autouse fixture)
import torch

from fastadapt.algos.rl.a2c import A2C, A2CConfig
from fastadapt.algos.rl.ppo import PPO, PPOConfig
from fastadapt.algos.rl.trpo import TRPO, TRPOConfig
from fastadapt.algos.rl.vpg import VPG, VPGConfig
from fastadapt.algos.rl.common import RLEvalConfig
from fastadapt.core.errors import ConfigError
from fastadapt.tasks.rl.gym_env import make_gym_factory

assert rl_test_envs  # registers the test envs

SMALL = {"num_envs": 2, "num_steps": 8, "hidden": (16,)}
ALGOS = {
    "ppo": (PPO, PPOConfig, {"epochs": 2, "minibatch_size": 8}),
    "a2c": (A2C, A2CConfig, {}),
    "vpg": (VPG, VPGConfig, {"vf_epochs": 1}),
    "vpg_linear": (VPG, VPGConfig, {"baseline": "linear"}),
    "trpo": (TRPO, TRPOConfig, {"vf_epochs": 1}),
}


@pytest.mark.parametrize(
    "name,env_id",
    [(n, "CartPole-v1") for n in ALGOS] + [("ppo", "Pendulum-v1"), ("trpo", "Pendulum-v1")],
)
def test_resume_and_determinism(name: str, env_id: str) -> None:
    cls, cfg_cls, kw = ALGOS[name]
    task = make_gym_factory(env_id)
    cfg = cfg_cls(**SMALL, **kw, normalize_obs=True)
    rl_test_envs.check_resume(lambda: cls(cfg, task, 3))


def _mean_eval(learner, seed: int = 0) -> float:
    return learner.evaluate(RLEvalConfig(episodes=20, deterministic=False), seed)[0].mean


@pytest.mark.parametrize(
    "name,iters,kw",
    [
        ("ppo", 10, {"lr": 3e-3, "epochs": 4, "minibatch_size": 32}),
        ("a2c", 30, {"lr": 3e-3, "optimizer": "adam", "norm_adv": True}),
        ("vpg", 15, {"lr": 3e-2}),
        ("vpg_linear", 15, {"lr": 3e-2}),
        ("trpo", 15, {"max_kl": 0.05}),
    ],
)
def test_updates_improve_on_context_bandit(name: str, iters: int, kw: dict) -> None:
    """Stochastic-policy return on the 2-action contextual bandit rises from ~4 (chance) towards 8."""
    cls, cfg_cls, _ = ALGOS[name]
    base = {**{k: v for k, v in ALGOS[name][2].items() if k == "baseline"}, **kw}
    task = make_gym_factory("fastadapt-test/ContextBandit-v0")
    learner = cls(cfg_cls(num_envs=4, num_steps=16, hidden=(16,), gamma=0.5, **base), task, 0)
    before = _mean_eval(learner)
    for i in range(1, iters + 1):
        m = learner.train_step(i)
    after = _mean_eval(learner)
    assert 2.0 < before < 6.0
    assert after > before + 1.5, (before, after)
    assert m["env_steps"] == iters * 64


def test_eval_row_and_metrics_are_finite() -> None:
    task = make_gym_factory("CartPole-v1")
    learner = PPO(PPOConfig(**SMALL, epochs=1, minibatch_size=32), task, 0)
    m = learner.train_step(1)
    assert all(math.isfinite(v) for v in m.values())
    rows = learner.evaluate(RLEvalConfig(episodes=3), 0)
    assert len(rows) == 1 and rows[0].method == "ppo" and rows[0].setting == {"env": "CartPole-v1"}
    assert rows[0].n == 3 and rows[0].mean >= 8
    # evaluation does not disturb training randomness
    l2 = PPO(PPOConfig(**SMALL, epochs=1, minibatch_size=32), task, 0)
    l2.train_step(1)
    assert learner.train_step(2) == l2.train_step(2)


def test_trpo_accepted_steps_respect_max_kl() -> None:
    task = make_gym_factory("CartPole-v1")
    learner = TRPO(TRPOConfig(num_envs=2, num_steps=32, hidden=(16,), max_kl=0.005, vf_epochs=1), task, 1)
    for i in range(1, 4):
        m = learner.train_step(i)
        assert m["kl"] <= 0.005
        if m["step_frac"] > 0:
            assert m["kl"] > 0


def test_bad_task_object_is_config_error() -> None:
    with pytest.raises(ConfigError, match="task"):
        PPO(PPOConfig(), object(), 0)


@pytest.mark.mujoco
def test_resume_on_mujoco_halfcheetah() -> None:
    """Env-state replay (reset seed + recorded actions) restores MuJoCo physics exactly."""
    pytest.importorskip("mujoco")
    task = make_gym_factory("HalfCheetah-v5")
    cfg = PPOConfig(num_envs=1, num_steps=8, hidden=(16,), epochs=1, minibatch_size=8,
                    normalize_obs=True, normalize_reward=True)
    rl_test_envs.check_resume(lambda: PPO(cfg, task, 0))
