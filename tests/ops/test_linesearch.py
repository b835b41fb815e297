"""Backtracking line search respects the KL bound; a full TRPO step on a small policy does too."""

from __future__ import annotations

import pytest
import torch

from fastadapt.nn.policies import CategoricalMLPPolicy
from fastadapt.ops.cg import conjugate_gradient, flat_grad, flatten, hessian_vector_product, set_flat_
from fastadapt.ops.linesearch import backtracking_line_search, trust_region_step_size
from fastadapt.ops.surrogates import importance_sampled_loss


def test_line_search_quadratic() -> None:
    # loss = (x-3)^2, "kl" = x^2/2: full step 8 from 0 overshoots both; ratio 0.5 -> 4 (kl 8) -> 2 (kl 2)
    res = backtracking_line_search(
        lambda x: (float(((x - 3) ** 2).sum()), float((x**2).sum() / 2)),
        torch.zeros(1), torch.tensor([8.0]), loss_before=9.0, max_kl=2.5,
    )
    assert res.accepted and res.step_frac == 0.25 and res.kl <= 2.5 and res.tries == 3
    torch.testing.assert_close(res.params, torch.tensor([2.0]))


def test_line_search_rejects_and_keeps_params() -> None:
    res = backtracking_line_search(
        lambda x: (10.0, 0.0), torch.ones(3), torch.ones(3), loss_before=1.0, max_kl=0.1, max_backtracks=4
    )
    assert not res.accepted and res.step_frac == 0.0 and res.tries == 4
    torch.testing.assert_close(res.params, torch.ones(3))
    with pytest.raises(ValueError, match="full_step"):
        backtracking_line_search(lambda x: (0.0, 0.0), torch.ones(3), torch.ones(2), 1.0, 0.1)


def test_step_size_formula() -> None:
    s = torch.tensor([1.0, 0.0])
    assert trust_region_step_size(s, torch.tensor([2.0, 0.0]), 0.01) == pytest.approx((2 * 0.01 / 2) ** 0.5)
    assert trust_region_step_size(s, torch.tensor([-1.0, 0.0]), 0.01) == 0.0


@pytest.mark.parametrize("max_kl", [0.001, 0.01, 0.05])
def test_trpo_step_respects_max_kl(max_kl: float) -> None:
    g = torch.Generator().manual_seed(0)
    pol = CategoricalMLPPolicy(4, 3, hidden=(16,), generator=g)
    obs = torch.randn(256, 4, generator=g)
    with torch.no_grad():
        old_out = pol(obs)
        actions = pol.sample(old_out, g)
        old_logp = pol.log_prob(old_out, actions)
    adv = torch.randn(256, generator=g)
    params = list(pol.parameters())

    def loss_kl() -> tuple[torch.Tensor, torch.Tensor]:
        out = pol(obs)
        return (importance_sampled_loss(pol.log_prob(out, actions), old_logp, adv),
                pol.kl(old_out, out).mean())

    loss, kl = loss_kl()
    grad = flat_grad(loss, params, retain_graph=True)
    fvp = hessian_vector_product(kl, params, damping=1e-3)
    direction = conjugate_gradient(fvp, -grad, iters=10)
    full_step = trust_region_step_size(direction, fvp(direction), max_kl) * direction
    flat = flatten([p.detach() for p in params])

    def evaluate(cand: torch.Tensor) -> tuple[float, float]:
        set_flat_(params, cand)
        with torch.no_grad():
            l2, k2 = loss_kl()
        return float(l2), float(k2)

    res = backtracking_line_search(evaluate, flat, full_step, float(loss.detach()), max_kl,
                                   expected_improve=float(-(grad @ full_step).detach()), accept_ratio=0.1)
    set_flat_(params, res.params)
    assert res.accepted
    with torch.no_grad():
        l_new, kl_new = loss_kl()
    assert float(kl_new) <= max_kl
    assert float(l_new) < float(loss.detach())
