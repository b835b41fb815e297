"""VariBAD (algos/metarl/varibad.py): belief across episodes, encoder isolation, resume, eval rows, smoke."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from fastadapt.algos.metarl.varibad import VariBAD, VariBADConfig, VariBADEvalConfig
from fastadapt.core.errors import CheckpointError, ConfigError
from fastadapt.core.registry import ALGOS
from fastadapt.tasks.rl.gridworld import Gridworld, GridworldConfig


def _small(**kw: object) -> VariBADConfig:
    base: dict[str, object] = dict(
        trials_per_iter=8, policy_hidden=(16,), latent_dim=3, encoder_hidden=16, state_embed=8,
        reward_embed=4, reward_decoder=(16,), epochs=2, minibatches=2, vae_updates=2, vae_batch_trials=4,
        buffer_trials=20,
    )
    base.update(kw)
    return VariBADConfig(**base)


def _dist() -> Gridworld:
    return Gridworld(GridworldConfig(num_cells=4, episode_steps=5, episodes_per_task=3))


def test_registered_and_shipped_config_validates() -> None:
    entry = ALGOS.get("varibad")
    assert entry.family == "metarl" and entry.config is VariBADConfig and entry.eval_config is VariBADEvalConfig
    path = Path(__file__).resolve().parents[2] / "src/fastadapt/configs/varibad-gridworld.yaml"
    raw = yaml.safe_load(path.read_text())
    algo = dict(raw["algo"])
    assert algo.pop("name") == "varibad" and raw["task"]["name"] == "gridworld"
    VariBADConfig(**algo)
    VariBADEvalConfig(**raw["eval"])
    assert VariBADEvalConfig(**raw["eval"]).trials >= 1000


def test_belief_carries_across_episodes_and_policy_sees_it() -> None:
    """The policy input at step t holds [obs_t, mu_t, logvar_t], where the belief is the encoder run over the
    WHOLE trial so far (not reset at episode boundaries) and starts from the prior in every trial."""
    dist = _dist()
    learner = VariBAD(_small(), dist, seed=0)
    assert learner.trial_len == 15
    b = 6
    batch = learner.rollout(dist.batched_env(b, 1), dist.sample(b, 1), 3, torch.Generator().manual_seed(0))
    mu, lv = learner.vae.encode(batch["actions"], batch["rewards"], batch["next_obs"])
    pin = batch["pin"]
    assert pin.shape == (b, 15, 2 + 2 * 3)
    assert torch.allclose(pin[..., :2], batch["obs"])
    assert torch.allclose(pin[..., 2:5], mu[:, :15], atol=1e-5)
    assert torch.allclose(pin[..., 5:8], lv[:, :15], atol=1e-5)
    # episode boundaries: the observation resets to the start cell, the belief does not
    assert torch.equal(batch["obs"][:, 5], torch.zeros(b, 2))
    mu_reset, _ = learner.vae.encode(batch["actions"][:, 5:], batch["rewards"][:, 5:], batch["next_obs"][:, 5:])
    assert not torch.allclose(mu_reset[:, 1:5], mu[:, 6:10], atol=1e-4)


def test_rl_loss_does_not_train_the_encoder() -> None:
    """With vae_updates=0 a training step changes the policy and value but leaves the VAE untouched."""
    learner = VariBAD(_small(vae_updates=0), _dist(), seed=0)
    vae0 = {k: v.clone() for k, v in learner.vae.state_dict().items()}
    pol0 = {k: v.clone() for k, v in learner.policy.state_dict().items()}
    learner.train_step(0)
    assert all(torch.equal(vae0[k], v) for k, v in learner.vae.state_dict().items())
    assert any(not torch.equal(pol0[k], v) for k, v in learner.policy.state_dict().items())
    # and the VAE updates do change the encoder
    learner2 = VariBAD(_small(), _dist(), seed=0)
    learner2.train_step(0)
    assert any(not torch.equal(vae0[k], v) for k, v in learner2.vae.state_dict().items())


def test_resume_gives_identical_metrics() -> None:
    cfg, dist = _small(buffer_trials=12), _dist()  # the ring buffer wraps around during the test
    a = VariBAD(cfg, dist, seed=3)
    for i in range(3):
        a.train_step(i)
    snap = a.state_dict()
    ref = [a.train_step(i) for i in (3, 4)]
    b = VariBAD(cfg, dist, seed=3)
    b.load_state_dict(snap)
    got = [b.train_step(i) for i in (3, 4)]
    assert got == ref
    with pytest.raises(CheckpointError):
        VariBAD(cfg, dist, seed=3).load_state_dict({"policy": snap["policy"]})


def test_same_seed_same_results_and_eval_rows() -> None:
    dist = _dist()
    m1 = VariBAD(_small(), dist, seed=1).train_step(0)
    m2 = VariBAD(_small(), dist, seed=1).train_step(0)
    assert m1 == m2 and all(math.isfinite(v) for v in m1.values())
    learner = VariBAD(_small(), dist, seed=1)
    rows = learner.evaluate(VariBADEvalConfig(trials=30, batch_trials=16), seed=0)
    assert [r.setting for r in rows] == [{"episode": 1}, {"episode": 2}, {"episode": 3}, {"episodes": 3}]
    assert all(r.method == "varibad" and r.n == 30 and r.se > 0 for r in rows)
    assert rows[-1].mean == pytest.approx(sum(r.mean for r in rows[:-1]))
    again = learner.evaluate(VariBADEvalConfig(trials=30, batch_trials=16), seed=0)
    assert [r.mean for r in again] == [r.mean for r in rows]


def test_config_errors() -> None:
    from fastadapt.tasks.rl.navigation2d import Navigation2D

    with pytest.raises(ConfigError):
        VariBAD(_small(), Navigation2D(), seed=0)  # continuous actions
    with pytest.raises(ConfigError):
        VariBAD(_small(), object(), seed=0)


def test_smoke_training_improves_the_return() -> None:
    """A tiny grid (3x3, 2 episodes of 4 steps): a short run beats the random policy's return."""
    dist = Gridworld(GridworldConfig(num_cells=3, episode_steps=4, episodes_per_task=2))
    learner = VariBAD(_small(trials_per_iter=32, lr=3e-3, ent_coef=0.01, vae_batch_trials=16,
                             buffer_trials=200), dist, seed=0)
    random_ret = learner.evaluate(VariBADEvalConfig(trials=400, batch_trials=400), seed=0)[-1].mean
    for i in range(60):
        m = learner.train_step(i)
    assert m["env_steps"] == 60 * 32 * 8
    trained = learner.evaluate(VariBADEvalConfig(trials=400, batch_trials=400), seed=0)[-1].mean
    assert trained > random_ret + 0.5
