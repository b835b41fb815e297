"""RL² (Duan et al. 2016): trial structure, hidden-state resets, resume equality, quick learning check."""

from __future__ import annotations

import math

import pytest
import torch

from fastadapt.algos.metarl.rl2 import RL2, RL2Config, RL2EvalConfig, gae_trial
from fastadapt.core.errors import CheckpointError
from fastadapt.core.registry import ALGOS
from fastadapt.tasks.rl.bandit import BanditDistribution


def _small(**kw: object) -> RL2Config:
    base: dict[str, object] = dict(trials_per_iter=32, hidden=8, epochs=2, minibatches=2)
    base.update(kw)
    return RL2Config(**base)


def test_registered_as_metarl() -> None:
    entry = ALGOS.get("rl2")
    assert entry.family == "metarl" and entry.config is RL2Config and entry.eval_config is RL2EvalConfig


def test_gae_trial_matches_reference() -> None:
    g = torch.Generator().manual_seed(0)
    r, v = torch.rand(3, 6, generator=g), torch.rand(3, 6, generator=g)
    gamma, lam = 0.9, 0.7
    adv, ret = gae_trial(r, v, gamma, lam)
    for i in range(3):
        for t in range(6):
            ref = 0.0
            for k in range(t, 6):
                v_next = v[i, k + 1] if k + 1 < 6 else 0.0
                delta = r[i, k] + gamma * v_next - v[i, k]
                ref += (gamma * lam) ** (k - t) * float(delta)
            assert math.isclose(float(adv[i, t]), ref, rel_tol=1e-4, abs_tol=1e-5)
    assert torch.allclose(ret, adv + v)
    # lambda = 1, gamma = 1: advantages are reward-to-go minus the value
    adv1, _ = gae_trial(r, v, 1.0, 1.0)
    rtg = r.flip(1).cumsum(1).flip(1)
    assert torch.allclose(adv1, rtg - v, atol=1e-5)


def test_hidden_state_carries_across_episodes_and_resets_between_trials() -> None:
    """A trial of 2 episodes: the recorded policy outputs equal ONE sequence run from zeros over the whole
    trial (memory kept across the episode boundary), not two runs reset at the boundary; each trial of the
    batch starts from zeros (rows are independent of each other)."""
    dist = BanditDistribution(arms=3, pulls=4)
    learner = RL2(_small(episodes_per_trial=2), dist, seed=0)
    assert learner.trial_len == 8
    tasks = dist.sample(64, seed=1)
    batch = learner.rollout(dist.batched_env(64, 1), tasks, 7, torch.Generator().manual_seed(0))
    x = batch["x"]
    assert x.shape == (64, 8, learner.model.in_dim)
    # done flags at the end of each episode
    assert torch.equal(batch["dones"][0], torch.tensor([0, 0, 0, 1, 0, 0, 0, 1], dtype=torch.float32))
    logits, values, _ = learner.model(x)
    logp = learner.model.log_prob((logits,), batch["actions"])
    assert torch.allclose(logp, batch["log_probs"], atol=1e-5)
    assert torch.allclose(values, batch["values"], atol=1e-5)
    # resetting at the episode boundary changes the second episode's outputs
    start = torch.zeros(64, 8, dtype=torch.bool)
    start[:, 4] = True
    logits_reset, _, _ = learner.model(x, trial_start=start)
    assert not torch.allclose(logits_reset[:, 4:], logits[:, 4:], atol=1e-4)
    # the input at an episode start carries the previous episode's last action/reward and done=1
    onehot = x[:, 4, learner.obs_dim : learner.obs_dim + 3]
    assert torch.equal(onehot.argmax(-1), batch["actions"][:, 3])
    assert torch.equal(x[:, 4, -1], torch.ones(64))
    assert torch.equal(x[:, 4, -2], batch["rewards"][:, 3])
    # the first step of every trial has no previous action/reward/done
    assert torch.equal(x[:, 0, learner.obs_dim :], torch.zeros(64, 5))
    # a trial's outputs do not depend on the other trials of the batch (fresh zero state per trial)
    sub, _, _ = learner.model(x[:5])
    assert torch.allclose(sub, logits[:5], atol=1e-5)


def _run(learner: RL2, iters: range) -> list[dict[str, float]]:
    return [learner.train_step(i) for i in iters]


@pytest.mark.parametrize("extra", [{}, {"critic_task_info": True, "learning_reward": "expected"}])
def test_resume_equality(extra: dict[str, object]) -> None:
    dist = BanditDistribution(arms=3, pulls=5)
    cfg = _small(**extra)
    a = RL2(cfg, dist, seed=3)
    _run(a, range(1, 4))
    snap = a.state_dict()
    rest_a = _run(a, range(4, 6))
    b = RL2(cfg, dist, seed=3)
    b.load_state_dict(snap)
    rest_b = _run(b, range(4, 6))
    assert rest_a == rest_b
    assert rest_a[-1]["env_steps"] == 5 * 32 * 5
    for m in rest_a:
        assert all(isinstance(v, float) and math.isfinite(v) for v in m.values())


def test_same_seed_same_metrics_and_bad_checkpoint() -> None:
    dist = BanditDistribution(arms=2, pulls=3)
    m1 = _run(RL2(_small(), dist, seed=1), range(1, 3))
    m2 = _run(RL2(_small(), dist, seed=1), range(1, 3))
    assert m1 == m2
    learner = RL2(_small(), dist, seed=1)
    state = learner.state_dict()
    del state["optimizer"]
    with pytest.raises(CheckpointError, match="optimizer"):
        learner.load_state_dict(state)


def test_evaluate_rows() -> None:
    dist = BanditDistribution(arms=3, pulls=4)
    learner = RL2(_small(), dist, seed=0)
    rows = learner.evaluate(RL2EvalConfig(trials=300, batch_trials=128), seed=0)
    assert len(rows) == 1
    r = rows[0]
    assert r.method == "rl2" and r.setting == {"arms": 3, "pulls": 4} and r.n == 300
    assert 0.0 <= r.mean <= 4.0 and 0.0 < r.se < 0.2
    again = learner.evaluate(RL2EvalConfig(trials=300, batch_trials=128), seed=0)[0]
    assert again.mean == r.mean  # seeded


def test_short_run_beats_random_on_two_arm_bandits() -> None:
    """A few seconds of RL² on 2-armed Bernoulli bandits with 10 pulls clearly beats random (5.0; the
    Bayes-optimal value is 6.02)."""
    dist = BanditDistribution(arms=2, pulls=10)
    cfg = RL2Config(trials_per_iter=512, hidden=32, lr=3e-3, lr_final=1e-3, anneal_iterations=30,
                    gae_lambda=0.5, ent_coef=0.01)
    learner = RL2(cfg, dist, seed=0)
    _run(learner, range(1, 31))
    row = learner.evaluate(RL2EvalConfig(trials=4000, greedy=True), seed=1)[0]
    assert row.mean > 5.0 + 0.35 and row.mean - 5.0 > 8 * row.se, row


@pytest.mark.slow
def test_five_arm_bandits_near_bayes_optimal() -> None:
    """The shipped-config budget on k=5, n=10 gets within 1% of the Bayes-optimal 6.660."""
    dist = BanditDistribution(arms=5, pulls=10)
    learner = RL2(RL2Config(), dist, seed=0)
    _run(learner, range(1, 151))
    row = learner.evaluate(RL2EvalConfig(trials=20000, greedy=True), seed=1)[0]
    assert row.mean > 6.60, row


def test_tabular_mdp_trial_and_resume() -> None:
    """Tabular MDPs play a whole trial of n episodes as one env episode: done flags every `horizon` steps,
    the GRU state is never reset inside the trial; resume equality holds with the privileged critic."""
    from fastadapt.tasks.rl.tabular_mdp import TabularMDPDistribution

    dist = TabularMDPDistribution(states=4, actions=3, horizon=3, episodes=2)
    cfg = _small(critic_task_info=True)
    learner = RL2(cfg, dist, seed=0)
    assert learner.trial_len == 6 and learner.episodes == 1
    batch = learner.rollout(dist.batched_env(8, 1), dist.sample(8, 0), 5, torch.Generator().manual_seed(0))
    assert torch.equal(batch["dones"][0], torch.tensor([0, 0, 1, 0, 0, 1], dtype=torch.float32))
    assert batch["task_features"].shape == (8, 4 * 3 * 4 + 4 * 3)
    _run(learner, range(1, 3))
    snap = learner.state_dict()
    after = _run(learner, range(3, 5))
    fresh = RL2(cfg, dist, seed=0)
    fresh.load_state_dict(snap)
    assert _run(fresh, range(3, 5)) == after
    row = learner.evaluate(RL2EvalConfig(trials=50), seed=0)[0]
    assert row.setting["episodes"] == 2 and row.n == 50


def test_shipped_configs_resolve() -> None:
    from fastadapt.experiment import catalog
    from fastadapt.experiment.config import load_config

    catalog.load_all()
    bandit = load_config("rl2-bandit", [], None)
    assert bandit.algo_entry.name == "rl2" and bandit.task.arms == 5 and bandit.task.pulls == 10
    assert bandit.eval.trials == 20000
    mdp = load_config("rl2-tabular-mdp", ["task.episodes=25"], None)
    assert mdp.task.episodes == 25
    assert load_config("snail-bandit", [], None).algo_entry.name == "snail"
