"""Surrogate losses: values by hand, gradients, clipping, masks and per-task reduction."""

from __future__ import annotations

import pytest
import torch

from fastadapt.ops.kl import categorical_kl, diag_gaussian_kl, sample_kl
from fastadapt.ops.surrogates import (
    clip_fraction,
    importance_sampled_loss,
    policy_gradient_loss,
    ppo_clip_loss,
    value_loss,
)


def test_policy_gradient_and_importance_sampled_agree_at_old_policy() -> None:
    g = torch.Generator().manual_seed(0)
    logp = torch.randn(3, 4, generator=g, requires_grad=True)
    adv = torch.randn(3, 4, generator=g)
    pg = policy_gradient_loss(logp, adv)
    ist = importance_sampled_loss(logp, logp.detach(), adv)
    (g1,) = torch.autograd.grad(pg, logp)
    (g2,) = torch.autograd.grad(ist, logp)
    torch.testing.assert_close(g1, g2)  # d/dθ ratio = d/dθ log π at θ_old
    torch.testing.assert_close(g1, -adv / 12)


def test_ppo_clip_values() -> None:
    old = torch.zeros(4)
    logp = torch.log(torch.tensor([1.5, 0.5, 1.5, 0.5]))
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0])
    # r*A: [1.5, .5, -1.5, -.5]; clipped(0.2): [1.2, .8, -1.2, -.8]*A -> min: [1.2, .5, -1.5, -.8]
    loss = ppo_clip_loss(logp, old, adv, 0.2)
    torch.testing.assert_close(loss, -torch.tensor([1.2, 0.5, -1.5, -0.8]).mean())
    assert float(clip_fraction(logp, old, 0.2)) == 1.0
    # no gradient through clipped terms that are active
    lp = logp.clone().requires_grad_(True)
    (gr,) = torch.autograd.grad(ppo_clip_loss(lp, old, adv, 0.2), lp)
    assert gr[0] == 0 and gr[3] == 0 and gr[1] != 0 and gr[2] != 0


def test_mask_and_dim() -> None:
    logp = torch.zeros(2, 3)
    adv = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, 5.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    per_task = ppo_clip_loss(logp, logp, adv, 0.2, mask=mask, dim=1)
    torch.testing.assert_close(per_task, torch.tensor([-1.5, -4.0]))
    with pytest.raises(ValueError, match="advantages"):
        policy_gradient_loss(logp, torch.zeros(3))
    with pytest.raises(ValueError, match="clip_eps"):
        ppo_clip_loss(logp, logp, adv, 0.0)


def test_value_loss_clipping() -> None:
    v = torch.tensor([2.0, 0.0])
    old = torch.tensor([0.0, 0.0])
    ret = torch.tensor([1.0, 1.0])
    assert float(value_loss(v, ret)) == pytest.approx(0.5 * (1 + 1) / 2)
    # clipped prediction of v[0] is 0.5 -> (0.5-1)^2 = .25 < (2-1)^2 = 1: max keeps 1
    assert float(value_loss(v, ret, old_values=old, clip_eps=0.5)) == pytest.approx(0.5 * (1 + 1) / 2)
    v2 = torch.tensor([0.9, 0.0])  # clipped 0.5 -> .25 > .01
    assert float(value_loss(v2, ret, old_values=old, clip_eps=0.5)) == pytest.approx(0.5 * (0.25 + 1) / 2)
    with pytest.raises(ValueError, match="old_values"):
        value_loss(v, ret, clip_eps=0.1)


def test_kls() -> None:
    g = torch.Generator().manual_seed(0)
    lp, lq = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Categorical(logits=lp), torch.distributions.Categorical(logits=lq))
    torch.testing.assert_close(categorical_kl(lp, lq), ref)
    m1, s1, m2, s2 = (torch.randn(5, 2, generator=g) for _ in range(4))
    ref = torch.distributions.kl_divergence(
        torch.distributions.Independent(torch.distributions.Normal(m1, s1.exp()), 1),
        torch.distributions.Independent(torch.distributions.Normal(m2, s2.exp()), 1))
    torch.testing.assert_close(diag_gaussian_kl(m1, s1, m2, s2), ref)
    # sample estimator is unbiased: many samples from p
    p = torch.distributions.Categorical(logits=lp[0])
    q = torch.distributions.Categorical(logits=lq[0])
    a = torch.multinomial(p.probs, 200_000, replacement=True, generator=g)
    est = sample_kl(p.log_prob(a), q.log_prob(a)).mean()
    assert abs(float(est) - float(torch.distributions.kl_divergence(p, q))) < 0.02
