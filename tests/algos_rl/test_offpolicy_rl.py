"""DQN, DDPG, TD3, SAC: resume equality, determinism, improvement on tiny bandits, config errors."""

from __future__ import annotations

import pytest
import rl_test_envs
import torch
from rl_test_envs import single_thread  # noqa: F401 (autouse fixture)

from fastadapt.algos.rl.common import RLEvalConfig
from fastadapt.algos.rl.ddpg import DDPG, DDPGConfig
from fastadapt.algos.rl.dqn import DQN, DQNConfig
from fastadapt.algos.rl.sac import SAC, SACConfig
from fastadapt.algos.rl.td3 import TD3, TD3Config
from fastadapt.core.errors import ConfigError
from fastadapt.tasks.rl.gym_env import make_gym_factory

TINY = {"num_envs": 2, "steps_per_iter": 20, "batch_size": 8, "learning_starts": 20, "hidden": (16,)}


@pytest.mark.parametrize(
    "cls,cfg_cls,env_id,kw",
    [
        (DQN, DQNConfig, "CartPole-v1", {"target_update_interval": 3}),
        (DQN, DQNConfig, "CartPole-v1", {"target_update_interval": 3, "lr_final": 0.0, "lr_anneal_steps": 100}),
        (DQN, DQNConfig, "CartPole-v1", {"target_update_interval": 1, "tau": 0.05, "keep_best_train": True}),
        (DDPG, DDPGConfig, "Pendulum-v1", {}),
        (DDPG, DDPGConfig, "Pendulum-v1", {"noise": "ou"}),
        (TD3, TD3Config, "Pendulum-v1", {}),
        (SAC, SACConfig, "Pendulum-v1", {"policy_frequency": 2}),
    ],
)
def test_resume_and_determinism(cls, cfg_cls, env_id, kw) -> None:
    task = make_gym_factory(env_id)
    cfg = cfg_cls(**TINY, **kw)
    rl_test_envs.check_resume(lambda: cls(cfg, task, 5))


def test_dqn_lr_decays_linearly_to_lr_final() -> None:
    task = make_gym_factory("CartPole-v1")
    cfg = DQNConfig(**TINY, lr=1e-3, lr_final=1e-4, lr_anneal_steps=100)
    learner = DQN(cfg, task, 0)
    m = learner.train_step(1)  # 20 env steps; updates happen at env_steps = 20
    assert m["lr"] == pytest.approx(1e-3 + (1e-4 - 1e-3) * 0.2)
    assert learner.opt.param_groups[0]["lr"] == pytest.approx(m["lr"])
    for i in range(2, 8):
        m = learner.train_step(i)
    assert m["lr"] == pytest.approx(1e-4)  # clipped at lr_final after lr_anneal_steps
    const = DQN(DQNConfig(**TINY, lr=1e-3), task, 0).train_step(1)
    assert const["lr"] == pytest.approx(1e-3)


def test_dqn_improves_on_context_bandit() -> None:
    task = make_gym_factory("fastadapt-test/ContextBandit-v0")
    cfg = DQNConfig(num_envs=1, steps_per_iter=100, batch_size=32, learning_starts=100, hidden=(32,),
                    exploration_steps=300, gamma=0.0, target_update_interval=20, lr=3e-3)
    learner = DQN(cfg, task, 0)
    ev = RLEvalConfig(episodes=20)
    before = learner.evaluate(ev, 0)[0].mean
    for i in range(1, 6):
        m = learner.train_step(i)
    after = learner.evaluate(ev, 0)[0].mean
    assert after >= 7.5 and after > before + 1.0, (before, after)
    assert m["env_steps"] == 500


def test_dqn_keep_best_train_snapshots_best_training_window() -> None:
    """The evaluation network is the live network of the iteration with the highest full-window training
    return (ties -> later), and evaluation uses it even after the live network is ruined."""
    task = make_gym_factory("CartPole-v1")
    cfg = DQNConfig(num_envs=1, steps_per_iter=60, batch_size=8, learning_starts=20, hidden=(16,),
                    target_update_interval=1, tau=0.05, keep_best_train=True)
    learner = DQN(cfg, task, 0)
    best, best_state = -float("inf"), None
    for i in range(1, 12):
        m = learner.train_step(i)
        full = len(learner.stats.returns) == learner.stats.returns.maxlen
        if full and m["episode_return"] >= best:
            best = m["episode_return"]
            best_state = {k: v.clone() for k, v in learner.q.state_dict().items()}
        if full:
            assert m["best_train_return"] == best
    assert best_state is not None and learner.best_train == best
    for k, v in learner.q_best.state_dict().items():
        assert torch.equal(v, best_state[k]), k
    ev = RLEvalConfig(episodes=3)
    before = learner.evaluate(ev, 1)[0].mean
    with torch.no_grad():
        for p in learner.q.parameters():
            p.zero_()
    assert learner.evaluate(ev, 1)[0].mean == before
    # without the option the live network is evaluated
    assert "q_best" not in DQN(DQNConfig(**TINY), task, 0).modules()


@pytest.mark.parametrize("cls,cfg_cls", [(DDPG, DDPGConfig), (TD3, TD3Config), (SAC, SACConfig)])
def test_continuous_control_improves_on_bandit(cls, cfg_cls) -> None:
    """Return on the continuous contextual bandit (reward -(a - c)^2) moves towards the optimum 0."""
    task = make_gym_factory("fastadapt-test/ContinuousBandit-v0")
    cfg = cfg_cls(num_envs=1, steps_per_iter=100, batch_size=32, learning_starts=100, hidden=(32,),
                  gamma=0.0)
    learner = cls(cfg, task, 0)
    ev = RLEvalConfig(episodes=20)
    before = learner.evaluate(ev, 0)[0].mean
    for i in range(1, 7):
        learner.train_step(i)
    after = learner.evaluate(ev, 0)[0].mean
    assert after > -0.8 and after > before + 0.5, (before, after)


def test_action_space_mismatch_is_config_error() -> None:
    with pytest.raises(ConfigError, match="task.env_id"):
        DQN(DQNConfig(), make_gym_factory("Pendulum-v1"), 0)
    with pytest.raises(ConfigError, match="task.env_id"):
        SAC(SACConfig(), make_gym_factory("CartPole-v1"), 0)
