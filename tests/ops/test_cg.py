"""Conjugate gradient solves SPD systems; Hessian-vector products equal the exact Hessian."""

from __future__ import annotations

import pytest
import torch

from fastadapt.ops.cg import conjugate_gradient, flat_grad, flatten, hessian_vector_product, unflatten
from fastadapt.ops.kl import categorical_kl


def test_cg_solves_known_spd_system() -> None:
    g = torch.Generator().manual_seed(0)
    M = torch.randn(8, 8, generator=g, dtype=torch.float64)
    A = M @ M.T + 0.5 * torch.eye(8, dtype=torch.float64)
    x_true = torch.randn(8, generator=g, dtype=torch.float64)
    b = A @ x_true
    x = conjugate_gradient(lambda v: A @ v, b, iters=50, residual_tol=1e-20)
    torch.testing.assert_close(x, x_true, rtol=1e-7, atol=1e-7)
    # exact in n iterations for an n x n system (in exact arithmetic)
    x8 = conjugate_gradient(lambda v: A @ v, b, iters=8, residual_tol=0.0)
    torch.testing.assert_close(x8, torch.linalg.solve(A, b), rtol=1e-5, atol=1e-5)


def test_cg_small_example_by_hand() -> None:
    A = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    b = torch.tensor([1.0, 2.0], dtype=torch.float64)
    x = conjugate_gradient(lambda v: A @ v, b, iters=2, residual_tol=0.0)
    torch.testing.assert_close(x, torch.tensor([1 / 11, 7 / 11], dtype=torch.float64))


def test_hvp_matches_autograd_hessian() -> None:
    g = torch.Generator().manual_seed(1)
    w = torch.randn(3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.randn(10, 3, generator=g, dtype=torch.float64)
    old = (x @ w + b).detach()

    def kl_of(wf, bf):
        return categorical_kl(old, x @ wf + bf).mean()

    hvp = hessian_vector_product(kl_of(w, b), [w, b], damping=0.1)
    H = torch.autograd.functional.hessian(lambda wf, bf: kl_of(wf.view(3, 2), bf), (w.detach().reshape(-1), b.detach()))
    Hfull = torch.cat([torch.cat([H[0][0], H[0][1]], 1), torch.cat([H[1][0], H[1][1]], 1)], 0)
    v = torch.randn(8, generator=g, dtype=torch.float64)
    torch.testing.assert_close(hvp(v), Hfull @ v + 0.1 * v)
    # Fisher is PSD at the old params: CG on (F + damping I) recovers a known solution
    target = torch.randn(8, generator=g, dtype=torch.float64)
    rhs = hvp(target)
    sol = conjugate_gradient(hvp, rhs, iters=60, residual_tol=1e-24)
    torch.testing.assert_close(sol, target, rtol=1e-5, atol=1e-5)


def test_flatten_roundtrip_and_errors() -> None:
    ts = [torch.arange(6.0).view(2, 3), torch.arange(2.0)]
    flat = flatten(ts)
    assert flat.shape == (8,)
    back = unflatten(flat, ts)
    assert all(torch.equal(a, b) for a, b in zip(ts, back))
    with pytest.raises(ValueError, match="vector"):
        unflatten(torch.zeros(7), ts)
    with pytest.raises(ValueError, match="b"):
        conjugate_gradient(lambda v: v, torch.zeros(2, 2))
    p = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="output"):
        flat_grad(p * 2, [p])
