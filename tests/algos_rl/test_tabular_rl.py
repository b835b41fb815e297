"""Tabular Q-learning and SARSA converge to value-iteration Q* on a small known MDP; resume; errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import rl_test_envs
from rl_test_envs import single_thread  # noqa: F401 (autouse fixture)

from fastadapt.algos.rl.common import RLEvalConfig
from fastadapt.algos.rl.tabular import TabularConfig, TabularLearner, q_value_iteration
from fastadapt.core.errors import ConfigError
from fastadapt.tasks.rl.gym_env import make_gym_factory

GAMMA = 0.9


def test_value_iteration_known_values() -> None:
    # deterministic 2-state chain: state 0 --a1--> terminal with reward 1, a0 loops with reward 0
    P = {0: {0: [(1.0, 0, 0.0, False)], 1: [(1.0, 1, 1.0, True)]}, 1: {0: [(1.0, 1, 0.0, True)], 1: [(1.0, 1, 0.0, True)]}}
    q = q_value_iteration(P, 2, 2, 0.5)
    np.testing.assert_allclose(q[0], [0.5, 1.0])


@pytest.mark.parametrize("sarsa", [False, True])
def test_converges_to_value_iteration(sarsa: bool) -> None:
    q_star = q_value_iteration(rl_test_envs.TINY_P, 3, 2, GAMMA)
    task = make_gym_factory("fastadapt-test/TinyMDP-v0")
    if sarsa:  # GLIE: epsilon -> small, so SARSA's Q approaches Q* (Singh et al. 2000)
        cfg = TabularConfig(alpha=0.5, alpha_power=0.5, gamma=GAMMA, eps_end=0.02, exploration_steps=5_000,
                            steps_per_iter=5_000)
    else:  # off-policy: keep exploring; Robbins-Monro step sizes
        cfg = TabularConfig(alpha=0.5, alpha_power=0.7, gamma=GAMMA, eps_end=0.3, exploration_steps=20_000,
                            steps_per_iter=5_000)
    learner = TabularLearner(cfg, task, 0, sarsa=sarsa)
    for i in range(1, 9):
        learner.train_step(i)
    # non-terminal states 0 and 1; SARSA evaluates its (nearly greedy) behaviour policy
    np.testing.assert_allclose(learner.q[:2], q_star[:2], atol=0.05)
    assert learner.evaluate(RLEvalConfig(episodes=5), 0)[0].n == 5


@pytest.mark.parametrize("sarsa", [False, True])
def test_resume_and_determinism(sarsa: bool) -> None:
    task = make_gym_factory("FrozenLake-v1", kwargs={"is_slippery": True})
    cfg = TabularConfig(steps_per_iter=37)
    rl_test_envs.check_resume(lambda: TabularLearner(cfg, task, 2, sarsa=sarsa))


def test_frozenlake_greedy_policy_reaches_goal() -> None:
    task = make_gym_factory("FrozenLake-v1", kwargs={"is_slippery": False})
    learner = TabularLearner(TabularConfig(exploration_steps=3000, steps_per_iter=1000), task, 0, sarsa=False)
    before = learner.evaluate(RLEvalConfig(episodes=5), 0)[0].mean
    for i in range(1, 6):
        learner.train_step(i)
    assert before == 0.0
    assert learner.evaluate(RLEvalConfig(episodes=5), 0)[0].mean == 1.0


def test_continuous_observations_rejected() -> None:
    with pytest.raises(ConfigError, match="Discrete"):
        TabularLearner(TabularConfig(), make_gym_factory("CartPole-v1"), 0, sarsa=False)


def test_gym_registry_has_test_env() -> None:
    assert "fastadapt-test/TinyMDP-v0" in gym.registry
