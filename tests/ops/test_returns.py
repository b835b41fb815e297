"""Discounted returns and GAE equal naive Python loops (with dones, masks and bootstrap values)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastadapt.ops.returns import discounted_returns, gae, masked_mean, normalize, td_targets


def naive_returns(r, d, m, boot, gamma):
    T = len(r)
    out = [0.0] * T
    for t in range(T):
        if not m[t]:
            continue
        g, disc = 0.0, 1.0
        k = t
        while True:
            g += disc * r[k]
            if d[k]:
                break
            if k + 1 == T:
                g += disc * gamma * boot
                break
            if not m[k + 1]:
                break
            disc *= gamma
            k += 1
        out[t] = g
    return out


def naive_gae(r, v, d, m, boot, gamma, lam):
    T = len(r)
    deltas = []
    for t in range(T):
        if not m[t]:
            deltas.append(0.0)
            continue
        if d[t]:
            nv = 0.0
        elif t + 1 == T:
            nv = boot
        elif not m[t + 1]:
            nv = 0.0
        else:
            nv = v[t + 1]
        deltas.append(r[t] + gamma * nv - v[t])
    out = [0.0] * T
    for t in range(T):
        if not m[t]:
            continue
        a, coef, k = 0.0, 1.0, t
        while True:
            a += coef * deltas[k]
            if d[k] or k + 1 == T or not m[k + 1]:
                break
            coef *= gamma * lam
            k += 1
        out[t] = a
    return out


def _batch(seed, shape, padded):
    rng = np.random.default_rng(seed)
    r = rng.normal(size=shape)
    v = rng.normal(size=shape)
    d = rng.random(shape) < 0.15
    if padded:
        lengths = rng.integers(1, shape[-1] + 1, size=shape[:-1])
        m = np.arange(shape[-1]) < lengths[..., None]
    else:
        m = np.ones(shape, dtype=bool)
    boot = rng.normal(size=shape[:-1])
    return r, v, d, m, boot


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), T=st.integers(1, 9), gamma=st.floats(0.0, 1.0),
       lam=st.floats(0.0, 1.0), padded=st.booleans())
def test_match_naive_loops(seed, T, gamma, lam, padded) -> None:
    shape = (2, 3, T)
    r, v, d, m, boot = _batch(seed, shape, padded)
    tr = lambda x: torch.as_tensor(x, dtype=torch.float64)  # noqa: E731
    got_g = discounted_returns(tr(r), gamma, torch.as_tensor(d), torch.as_tensor(m), tr(boot))
    got_a = gae(tr(r), tr(v), gamma, lam, torch.as_tensor(d), torch.as_tensor(m), tr(boot))
    for i in range(2):
        for j in range(3):
            ref_g = naive_returns(r[i, j], d[i, j], m[i, j], boot[i, j], gamma)
            ref_a = naive_gae(r[i, j], v[i, j], d[i, j], m[i, j], boot[i, j], gamma, lam)
            np.testing.assert_allclose(got_g[i, j].numpy(), ref_g, rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(got_a[i, j].numpy(), ref_a, rtol=1e-9, atol=1e-9)


def test_gae_lambda_one_is_returns_minus_values_and_zero_is_td() -> None:
    r, v, d, m, boot = _batch(3, (4, 12), padded=False)
    tr = lambda x: torch.as_tensor(x, dtype=torch.float64)  # noqa: E731
    dd = torch.as_tensor(d)
    g = discounted_returns(tr(r), 0.9, dd, bootstrap=tr(boot))
    a1 = gae(tr(r), tr(v), 0.9, 1.0, dd, bootstrap=tr(boot))
    torch.testing.assert_close(a1, g - tr(v))
    a0 = gae(tr(r), tr(v), 0.9, 0.0, dd, bootstrap=tr(boot))
    nv = torch.cat([tr(v)[:, 1:], tr(boot)[:, None]], -1)
    torch.testing.assert_close(a0, tr(r) + 0.9 * (1 - dd.double()) * nv - tr(v))


def test_simple_known_values() -> None:
    r = torch.tensor([1.0, 1.0, 1.0])
    torch.testing.assert_close(discounted_returns(r, 0.5), torch.tensor([1.75, 1.5, 1.0]))
    torch.testing.assert_close(
        discounted_returns(r, 0.5, dones=torch.tensor([False, True, False])), torch.tensor([1.5, 1.0, 1.0])
    )


def test_shape_errors_name_argument() -> None:
    r = torch.zeros(2, 5)
    with pytest.raises(ValueError, match="values"):
        gae(r, torch.zeros(2, 4), 0.9, 0.9)
    with pytest.raises(ValueError, match="mask"):
        discounted_returns(r, 0.9, mask=torch.ones(5))
    with pytest.raises(ValueError, match="bootstrap"):
        discounted_returns(r, 0.9, bootstrap=torch.zeros(5))
    with pytest.raises(ValueError, match="discount"):
        discounted_returns(r, 1.5)
    with pytest.raises(ValueError, match="lam"):
        gae(r, r, 0.9, -0.1)


def test_td_targets_masked_mean_normalize() -> None:
    y = td_targets(torch.tensor([1.0, 2.0]), torch.tensor([10.0, 10.0]), 0.5, torch.tensor([False, True]))
    torch.testing.assert_close(y, torch.tensor([6.0, 2.0]))
    x = torch.tensor([[1.0, 3.0, 100.0], [2.0, 4.0, 6.0]])
    m = torch.tensor([[1, 1, 0], [1, 1, 1]])
    torch.testing.assert_close(masked_mean(x, m), torch.tensor(16.0 / 5))
    torch.testing.assert_close(masked_mean(x, m, dim=1), torch.tensor([2.0, 4.0]))
    n = normalize(x, m, dim=1)
    assert n[0, 2] == 0
    torch.testing.assert_close(masked_mean(n, m, dim=1), torch.zeros(2), atol=1e-6, rtol=0)
    full = normalize(torch.randn(100, generator=torch.Generator().manual_seed(0)))
    assert abs(float(full.mean())) < 1e-6 and abs(float(full.std(unbiased=False)) - 1) < 1e-4


def test_normalize_over_tuple_dims_per_task() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 5, generator=g) * torch.tensor([1.0, 10.0, 100.0]).view(3, 1, 1)
    mask = (torch.rand(3, 4, 5, generator=g) > 0.3).float()
    n = normalize(x, mask, dim=(1, 2))
    for k in range(3):
        v = n[k][mask[k] > 0]
        assert abs(float(v.mean())) < 1e-5
        assert abs(float(v.std(unbiased=False)) - 1) < 1e-3
    assert bool((n[mask == 0] == 0).all())
