"""SNAIL (Mishra et al. 2018) with PPO over trials: resume equality and a quick learning check."""

from __future__ import annotations

import pytest
import torch

from fastadapt.algos.metarl.snail import SNAIL, SNAILConfig, SNAILEvalConfig
from fastadapt.core.registry import ALGOS
from fastadapt.tasks.rl.bandit import BanditDistribution


def test_registered_and_resume_equality() -> None:
    assert ALGOS.get("snail").family == "metarl"
    dist = BanditDistribution(arms=3, pulls=5)
    cfg = SNAILConfig(trials_per_iter=32, embed=8, filters=4, key_size=4, value_size=4, epochs=2, minibatches=2)
    a = SNAIL(cfg, dist, seed=2)
    for i in range(1, 4):
        a.train_step(i)
    snap = a.state_dict()
    rest_a = [a.train_step(i) for i in (4, 5)]
    b = SNAIL(cfg, dist, seed=2)
    b.load_state_dict(snap)
    assert [b.train_step(i) for i in (4, 5)] == rest_a
    row = a.evaluate(SNAILEvalConfig(trials=100, batch_trials=64), seed=0)[0]
    assert row.method == "snail" and row.setting == {"arms": 3, "pulls": 5} and row.n == 100


def test_rollout_logprobs_match_full_forward() -> None:
    dist = BanditDistribution(arms=3, pulls=6)
    learner = SNAIL(SNAILConfig(trials_per_iter=16, embed=8, filters=4, key_size=4, value_size=4), dist, 0)
    batch = learner.rollout(learner.env, dist.sample(16, 0), 3, torch.Generator().manual_seed(0))
    logits, _ = learner.model(batch["x"])
    assert torch.allclose(learner.model.log_prob((logits,), batch["actions"]), batch["log_probs"], atol=1e-5)


@pytest.mark.slow
def test_snail_beats_random_on_two_arm_bandits() -> None:
    dist = BanditDistribution(arms=2, pulls=10)
    learner = SNAIL(SNAILConfig(trials_per_iter=512, lr=3e-3, anneal_iterations=40), dist, seed=0)
    for i in range(1, 41):
        learner.train_step(i)
    row = learner.evaluate(SNAILEvalConfig(trials=4000, greedy=True), seed=1)[0]
    assert row.mean > 5.3 and row.mean - 5.0 > 8 * row.se, row
