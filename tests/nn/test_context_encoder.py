"""PEARL's context encoder (Rakelly et al. 2019): product-of-Gaussians math, permutation invariance, KL."""

from __future__ import annotations

import math

import pytest
import torch

from fastadapt.nn.context_encoder import (
    ContextEncoder,
    gaussian_log_prob,
    kl_to_standard_normal,
    product_of_gaussians,
    rsample_gaussian,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_product_of_two_gaussians_closed_form() -> None:
    """1-D: N(m1, v1) * N(m2, v2) ∝ N((m1 v2 + m2 v1) / (v1 + v2), v1 v2 / (v1 + v2))."""
    m1, v1, m2, v2 = 0.3, 0.5, -1.2, 2.0
    mu, var = product_of_gaussians(torch.tensor([[m1], [m2]]), torch.tensor([[v1], [v2]]))
    assert math.isclose(float(var), v1 * v2 / (v1 + v2), rel_tol=1e-6)
    assert math.isclose(float(mu), (m1 * v2 + m2 * v1) / (v1 + v2), rel_tol=1e-6)


def test_product_matches_numerical_normalised_product() -> None:
    """The product density, normalised numerically on a grid, has the closed-form mean and variance."""
    g = _gen(1)
    mus = torch.randn(4, 1, generator=g, dtype=torch.float64)
    vs = torch.rand(4, 1, generator=g, dtype=torch.float64) + 0.2
    mu, var = product_of_gaussians(mus, vs)
    x = torch.linspace(-8, 8, 200001, dtype=torch.float64)
    logp = sum(-0.5 * (x - mus[i, 0]) ** 2 / vs[i, 0] for i in range(4))
    w = torch.exp(logp - logp.max())
    w = w / w.sum()
    m_num = float((w * x).sum())
    v_num = float((w * (x - m_num) ** 2).sum())
    assert math.isclose(float(mu), m_num, abs_tol=1e-6)
    assert math.isclose(float(var), v_num, rel_tol=1e-4)


def test_mask_drops_factors_and_empty_context_is_prior() -> None:
    g = _gen(2)
    mus, vs = torch.randn(3, 5, 4, generator=g), torch.rand(3, 5, 4, generator=g) + 0.1
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]])
    mu, var = product_of_gaussians(mus, vs, mask)
    mu0, var0 = product_of_gaussians(mus[0, :2], vs[0, :2])
    assert torch.allclose(mu[0], mu0) and torch.allclose(var[0], var0)
    mu1, var1 = product_of_gaussians(mus[1], vs[1])
    assert torch.allclose(mu[1], mu1) and torch.allclose(var[1], var1)
    assert torch.equal(mu[2], torch.zeros(4)) and torch.equal(var[2], torch.ones(4))
    # including the prior is the same as one more N(0, 1) factor
    mup, varp = product_of_gaussians(mus[1], vs[1], include_prior=True)
    muq, varq = product_of_gaussians(torch.cat([mus[1], torch.zeros(1, 4)]), torch.cat([vs[1], torch.ones(1, 4)]))
    assert torch.allclose(mup, muq, atol=1e-6) and torch.allclose(varp, varq, atol=1e-6)


def test_more_context_shrinks_the_posterior() -> None:
    enc = ContextEncoder(5, 3, (16,), generator=_gen(3))
    ctx = torch.randn(2, 10, 5, generator=_gen(4))
    _, v_small = enc(ctx[:, :3])
    _, v_big = enc(ctx)
    assert bool((v_big < v_small).all())


def test_encoder_is_permutation_invariant_and_batched() -> None:
    enc = ContextEncoder(7, 5, (32, 32), generator=_gen(5))
    ctx = torch.randn(3, 20, 7, generator=_gen(6))
    perm = torch.randperm(20, generator=_gen(7))
    mu, var = enc(ctx)
    mu_p, var_p = enc(ctx[:, perm])
    assert mu.shape == (3, 5) and var.shape == (3, 5)
    assert torch.allclose(mu, mu_p, atol=1e-5) and torch.allclose(var, var_p, atol=1e-6)
    # each task only depends on its own context
    mu1, _ = enc(ctx[1:2])
    assert torch.allclose(mu[1:2], mu1, atol=1e-6)
    # the posterior is the product of the per-transition factors
    m_n, v_n = enc.factors(ctx)
    assert bool((v_n > 0).all())
    ref_var = 1.0 / (1.0 / v_n).sum(1)
    assert torch.allclose(var, ref_var, rtol=1e-5)
    assert torch.allclose(mu, ref_var * (m_n / v_n).sum(1), rtol=1e-4, atol=1e-6)


def test_kl_to_standard_normal_matches_torch() -> None:
    g = _gen(8)
    mu, var = torch.randn(6, 5, generator=g), torch.rand(6, 5, generator=g) + 0.05
    ours = kl_to_standard_normal(mu, var)
    q = torch.distributions.Normal(mu, var.sqrt())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(var))
    ref = torch.distributions.kl_divergence(q, p).sum(-1)
    assert torch.allclose(ours, ref, atol=1e-5)
    assert torch.allclose(kl_to_standard_normal(torch.zeros(2, 3), torch.ones(2, 3)), torch.zeros(2))


def test_rsample_is_reparameterised_and_seeded() -> None:
    mu = torch.zeros(4000, 2, requires_grad=True)
    var = torch.full((4000, 2), 4.0, requires_grad=True)
    z = rsample_gaussian(mu, var, _gen(9))
    assert torch.equal(z, rsample_gaussian(mu, var, _gen(9)))
    assert abs(float(z.detach().std()) - 2.0) < 0.1
    z.sum().backward()
    assert mu.grad is not None and var.grad is not None
    lp = gaussian_log_prob(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2))
    assert math.isclose(float(lp), -math.log(2 * math.pi), rel_tol=1e-6)


def test_encoder_gradients_flow_from_z_and_kl() -> None:
    enc = ContextEncoder(4, 2, (8,), generator=_gen(10))
    mu, var = enc(torch.randn(3, 6, 4, generator=_gen(11)))
    z = rsample_gaussian(mu, var, _gen(12))
    (z.pow(2).sum() + kl_to_standard_normal(mu, var).sum()).backward()
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in enc.parameters())


def test_bad_shapes_raise() -> None:
    enc = ContextEncoder(4, 2, (8,))
    with pytest.raises(ValueError, match="context"):
        enc(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="mask"):
        product_of_gaussians(torch.zeros(2, 3, 1), torch.ones(2, 3, 1), torch.ones(3))
