"""VariBAD trajectory VAE (nn/trajectory_vae.py): shapes, recurrent consistency, KL math, ELBO terms."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastadapt.nn.trajectory_vae import TrajectoryVAE, belief_kls, gaussian_kl


def _data(b: int = 3, h: int = 7, d: int = 2, n_actions: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randint(0, 4, (b, h, d), generator=g).float()
    nobs = torch.randint(0, 4, (b, h, d), generator=g).float()
    actions = torch.randint(0, n_actions, (b, h), generator=g)
    rewards = torch.where(torch.rand(b, h, generator=g) < 0.3, 1.0, -0.1)
    return obs, actions, rewards, nobs


def _vae(**kw: object) -> TrajectoryVAE:
    base: dict[str, object] = dict(latent_dim=4, hidden=16, n_states=16, generator=torch.Generator().manual_seed(1))
    base.update(kw)
    return TrajectoryVAE(2, 5, **base)  # type: ignore[arg-type]


def test_gaussian_kl_matches_torch() -> None:
    g = torch.Generator().manual_seed(0)
    mq, mp = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    lq, lp = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mq, (0.5 * lq).exp()), torch.distributions.Normal(mp, (0.5 * lp).exp())
    ).sum(-1)
    assert torch.allclose(gaussian_kl(mq, lq, mp, lp), ref, atol=1e-5)
    assert torch.allclose(gaussian_kl(mq, lq, mq, lq), torch.zeros(6), atol=1e-6)


def test_belief_kls_prior_then_previous_posterior() -> None:
    g = torch.Generator().manual_seed(0)
    mu, lv = torch.randn(2, 5, 3, generator=g), torch.randn(2, 5, 3, generator=g)
    kl = belief_kls(mu, lv)
    assert kl.shape == (2, 5)
    assert torch.allclose(kl[:, 0], gaussian_kl(mu[:, 0], lv[:, 0], torch.zeros(3), torch.zeros(3)))
    for t in range(1, 5):
        assert torch.allclose(kl[:, t], gaussian_kl(mu[:, t], lv[:, t], mu[:, t - 1], lv[:, t - 1]))


def test_encode_shapes_and_stepwise_equals_sequence() -> None:
    vae = _vae(action_embed=3)
    obs, actions, rewards, nobs = _data()
    mu, lv = vae.encode(actions, rewards, nobs)
    assert mu.shape == lv.shape == (3, 8, 4)
    m0, l0, h = vae.prior(3)
    assert torch.allclose(mu[:, 0], m0) and torch.allclose(lv[:, 0], l0)
    for t in range(7):
        m, lgv, h = vae.encode_step(actions[:, t], rewards[:, t], nobs[:, t], h)
        assert torch.allclose(m, mu[:, t + 1], atol=1e-5) and torch.allclose(lgv, lv[:, t + 1], atol=1e-5)


def test_elbo_terms_match_manual_multihead_bernoulli() -> None:
    vae = _vae()
    obs, actions, rewards, nobs = _data()
    idx = (nobs[..., 0] * 4 + nobs[..., 1]).long()
    targets = (rewards > 0).float()
    terms = vae.elbo_terms(obs, actions, rewards, nobs, torch.Generator().manual_seed(5),
                           reward_targets=targets, next_state_idx=idx)
    assert terms["reward_nll"].shape == terms["kl"].shape == terms["state_nll"].shape == (3,)
    assert terms["mu"].shape == (3, 8, 4)
    # manual: same reparameterised samples, every (encoder time t, transition i) pair
    mu, lv = vae.encode(actions, rewards, nobs)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(5))
    m = mu + eps * (0.5 * lv).exp()
    nll = torch.zeros(3)
    for t in range(8):
        logits = vae.reward_dec(m[:, t])  # [B, n_states]
        for i in range(7):
            lg = logits[torch.arange(3), idx[:, i]]
            nll += F.binary_cross_entropy_with_logits(lg, targets[:, i], reduction="none")
    assert torch.allclose(terms["reward_nll"], nll, atol=1e-4)
    assert torch.allclose(terms["kl"], belief_kls(mu, lv).sum(1), atol=1e-5)
    assert torch.equal(terms["state_nll"], torch.zeros(3))
    loss = vae.loss(terms, kl_weight=0.5)
    assert torch.allclose(loss, (terms["reward_nll"] + 0.5 * terms["kl"]).mean())
    # the loss trains the encoder (gradients reach the GRU)
    loss.backward()
    assert vae.gru.weight_ih_l0.grad is not None and vae.gru.weight_ih_l0.grad.abs().sum() > 0


def test_conditional_gaussian_head_and_state_decoder() -> None:
    vae = _vae(reward_head="conditional", n_states=None, likelihood="gaussian", decoder_inputs_prev=True,
               decode_state=True)
    obs, actions, rewards, nobs = _data(b=2, h=5)
    terms = vae.elbo_terms(obs, actions, rewards, nobs, torch.Generator().manual_seed(0))
    assert terms["reward_nll"].shape == (2,) and bool((terms["state_nll"] > 0).all())
    out = vae.reward_output(terms["mu"], nobs, obs=obs, actions=actions)
    assert out.shape == (2, 6, 5)
    with pytest.raises(ValueError):
        vae.reward_output(terms["mu"], nobs)  # decoder_inputs_prev needs obs/actions
    with pytest.raises(ValueError):
        TrajectoryVAE(2, 5, reward_head="multihead", n_states=None)


def test_trained_vae_belief_identifies_the_goal() -> None:
    """Trained on trajectories that each visit their (random) goal cell, the decoder's goal probability at
    the true goal cell is high under the final belief (goal seen) and low under the prior (goal unknown)."""
    g = torch.Generator().manual_seed(0)
    vae = _vae(generator=torch.Generator().manual_seed(3))
    opt = torch.optim.Adam(vae.parameters(), lr=1e-2)
    b, h = 64, 6
    goals = torch.randint(0, 16, (b,), generator=g)
    cells = torch.randint(0, 16, (b, h), generator=g)
    cells[:, -2:] = goals.unsqueeze(1)  # the goal is reached at the end of each trajectory
    nobs = torch.stack([cells // 4, cells % 4], -1).float()
    rewards = torch.where(cells == goals.unsqueeze(1), 1.0, -0.1)
    obs = torch.zeros_like(nobs)
    actions = torch.zeros(b, h, dtype=torch.long)
    for _ in range(200):
        terms = vae.elbo_terms(obs, actions, rewards, nobs, g, reward_targets=(rewards > 0).float(),
                               next_state_idx=cells)
        loss = vae.loss(terms, kl_weight=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        mu, _ = vae.encode(actions, rewards, nobs)
        probs = vae.reward_probs(mu)  # [B, H+1, 16]
        at_goal = probs.gather(-1, goals.view(b, 1, 1).expand(b, h + 1, 1)).squeeze(-1)
    assert float(at_goal[:, -1].mean()) > 0.8
    assert float(at_goal[:, 0].mean()) < 0.6  # the prior belief cannot know the goal
