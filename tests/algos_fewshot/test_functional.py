"""fastadapt.ops.functional: meta-gradients against finite differences, vmap == loop, first order."""

from __future__ import annotations

import pytest
import torch

from fastadapt.nn.mlp import MLP
from fastadapt.ops import functional as F


def _mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((pred - y) ** 2).mean()


def _setup(tasks: int = 3, shot: int = 4, hidden: tuple[int, ...] = (5,), seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    model = MLP(1, 1, hidden, "tanh", generator=g).double()
    x = torch.rand(tasks, 2 * shot, 1, generator=g, dtype=torch.float64) * 4 - 2
    amp = torch.rand(tasks, 1, 1, generator=g, dtype=torch.float64) + 0.5
    y = amp * torch.sin(x)
    return model, x[:, :shot], y[:, :shot], x[:, shot:], y[:, shot:]


def _meta_loss(model, params, lrs, sx, sy, qx, qy, steps, first_order=False, mode="vmap", frozen=None):
    adapted = F.adapt(model, params, sx, sy, _mse, steps, lrs, first_order=first_order, frozen=frozen, mode=mode)
    pred = F.forward_batched(model, adapted, qx, frozen)
    return ((pred - qy) ** 2).flatten(1).mean(1).mean()


@pytest.mark.parametrize("granularity", ["scalar", "layer", "parameter"])
def test_meta_gradient_matches_finite_differences(granularity: str) -> None:
    model, sx, sy, qx, qy = _setup()
    params = F.detached_params(F.params_of(model))
    lrs = F.init_inner_lrs(params, steps=2, init=0.1, granularity=granularity)
    lr_spec = F.expand_scalar_lrs(lrs, list(params))
    loss = _meta_loss(model, params, lr_spec, sx, sy, qx, qy, steps=2)
    leaves = list(params.values()) + list(lrs.values())
    grads = torch.autograd.grad(loss, leaves)
    eps = 1e-6
    for leaf, g in zip(leaves, grads):
        flat = leaf.data.view(-1)
        for i in range(flat.numel()):
            old = float(flat[i])
            with torch.no_grad():
                flat[i] = old + eps
                up = _meta_loss(model, params, lr_spec, sx, sy, qx, qy, steps=2)
                flat[i] = old - eps
                down = _meta_loss(model, params, lr_spec, sx, sy, qx, qy, steps=2)
                flat[i] = old
            fd = float(up - down) / (2 * eps)
            assert abs(float(g.view(-1)[i]) - fd) < 1e-6 * max(1.0, abs(fd)), (granularity, i)


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("granularity", ["scalar", "layer", "parameter", None])
def test_vmap_meta_batch_equals_task_loop(first_order: bool, granularity: str | None) -> None:
    model, sx, sy, qx, qy = _setup(tasks=4, hidden=(8, 8))
    params = F.detached_params(F.params_of(model))
    if granularity is None:
        lrs: dict[str, torch.Tensor] = {}
        spec: F.LRSpec = 0.05
    else:
        lrs = F.init_inner_lrs(params, steps=3, init=0.05, granularity=granularity)
        spec = F.expand_scalar_lrs(lrs, list(params))
    leaves = list(params.values()) + list(lrs.values())
    out = {}
    for mode in ("vmap", "loop"):
        loss = _meta_loss(model, params, spec, sx, sy, qx, qy, steps=3, first_order=first_order, mode=mode)
        out[mode] = (loss.detach(), torch.autograd.grad(loss, leaves))
    assert torch.allclose(out["vmap"][0], out["loop"][0], rtol=1e-12, atol=1e-14)
    for a, b in zip(out["vmap"][1], out["loop"][1]):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-13)


def test_vmap_equals_loop_with_frozen_body_and_trajectory() -> None:
    model, sx, sy, qx, qy = _setup(tasks=3, hidden=(6, 6))
    allp = F.detached_params(F.params_of(model))
    head = ["net.4.weight", "net.4.bias"]
    fast = {k: allp[k] for k in head}
    frozen = {k: v for k, v in allp.items() if k not in head}
    tv = F.adapt(model, fast, sx, sy, _mse, 2, 0.1, frozen=frozen, trajectory=True, mode="vmap")
    tl = F.adapt(model, fast, sx, sy, _mse, 2, 0.1, frozen=frozen, trajectory=True, mode="loop")
    assert isinstance(tv, list) and isinstance(tl, list) and len(tv) == len(tl) == 3
    for pv, pl in zip(tv, tl):
        for k in head:
            assert pv[k].shape == (3, *allp[k].shape)
            assert torch.allclose(pv[k], pl[k], rtol=1e-12, atol=1e-14)
    lv = _meta_loss(model, fast, 0.1, sx, sy, qx, qy, 2, frozen=frozen, mode="vmap")
    gb = torch.autograd.grad(lv, [frozen["net.0.weight"]])[0]
    assert gb.abs().sum() > 0  # the body still gets a meta-gradient through the head's adaptation


def test_first_order_drops_exactly_the_second_order_term() -> None:
    """One inner step: full = (I - a H_s) g_q(theta'),  first-order = g_q(theta'), per task."""
    model, sx, sy, qx, qy = _setup(tasks=3, hidden=(7,))
    params = F.detached_params(F.params_of(model))
    alpha = 0.2
    keys = list(params)
    full = torch.autograd.grad(_meta_loss(model, params, alpha, sx, sy, qx, qy, 1), list(params.values()))
    fo = torch.autograd.grad(
        _meta_loss(model, params, alpha, sx, sy, qx, qy, 1, first_order=True), list(params.values())
    )
    # second-order term, computed independently: -alpha * mean_t H_s,t(theta) g_q,t(theta'_t)
    correction = {k: torch.zeros_like(v) for k, v in params.items()}
    n = sx.shape[0]
    for t in range(n):
        adapted = F.adapt_task(model, params, sx[t], sy[t], _mse, 1, alpha)
        adapted = F.detached_params(adapted)
        gq = torch.autograd.grad(F.task_loss(model, adapted, qx[t], qy[t], _mse), list(adapted.values()))
        hv = F.hvp(lambda p, t=t: F.task_loss(model, p, sx[t], sy[t], _mse), params, dict(zip(keys, gq)))
        for k in keys:
            correction[k] -= alpha * hv[k] / n
    fo_direct = {k: torch.zeros_like(v) for k, v in params.items()}
    for t in range(n):
        adapted = F.detached_params(F.adapt_task(model, params, sx[t], sy[t], _mse, 1, alpha))
        gq = torch.autograd.grad(F.task_loss(model, adapted, qx[t], qy[t], _mse), list(adapted.values()))
        for k, g in zip(keys, gq):
            fo_direct[k] += g / n
    for k, gf, gfo in zip(keys, full, fo):
        assert torch.allclose(gfo, fo_direct[k], rtol=1e-10, atol=1e-13)
        assert torch.allclose(gf - gfo, correction[k], rtol=1e-9, atol=1e-12)
        assert correction[k].abs().max() > 1e-6  # the term is not trivially zero


def test_no_grad_evaluation_gives_same_values() -> None:
    model, sx, sy, _, _ = _setup(tasks=2)
    params = F.params_of(model)
    with_graph = F.adapt(model, params, sx, sy, _mse, 3, 0.05, mode="vmap")
    with torch.no_grad():
        for mode in ("vmap", "loop"):
            nog = F.adapt(model, params, sx, sy, _mse, 3, 0.05, mode=mode)
            for k in params:
                assert not nog[k].requires_grad
                assert torch.allclose(nog[k], with_graph[k].detach(), rtol=1e-12, atol=1e-14)


def test_learning_rate_lookup_and_errors() -> None:
    p = {"w": torch.zeros(2, 3)}
    lrs = F.init_inner_lrs(p, steps=2, init=0.5, granularity="parameter")
    assert lrs["w"].shape == (2, 2, 3)
    assert F.lr_at(lrs, 7, "w").shape == (2, 3)  # past the last step: the last row
    assert F.lr_at(0.1, 3, "w") == 0.1
    assert float(F.lr_at(torch.tensor([1.0, 2.0]), 5, "w")) == 2.0
    with pytest.raises(KeyError, match="'v'"):
        F.lr_at(lrs, 0, "v")
    with pytest.raises(ValueError, match="granularity"):
        F.init_inner_lrs(p, 1, 0.1, granularity="bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        F.adapt(torch.nn.Linear(1, 1), {}, torch.zeros(1, 1, 1), torch.zeros(1, 1, 1), _mse, 1, 0.1, mode="x")  # type: ignore[arg-type]


def _bn_check(bn: torch.nn.Module) -> float:
    g = torch.Generator().manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, padding=1), bn, torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(48, 3)
    ).double()
    p = F.detached_params(F.params_of(model))
    sx = torch.randn(2, 6, 1, 4, 4, generator=g, dtype=torch.float64)
    sy = torch.randint(0, 3, (2, 6), generator=g)
    ce = torch.nn.functional.cross_entropy
    out = {}
    for mode in ("vmap", "loop"):
        P = F.adapt(model, p, sx, sy, ce, 1, 0.3, mode=mode)
        loss = ce(F.forward_batched(model, P, sx).flatten(0, 1), sy.flatten())
        out[mode] = torch.autograd.grad(loss, list(p.values()))
    return max(float((a - b).abs().max()) for a, b in zip(out["vmap"], out["loop"]))


def test_hand_written_batchnorm_vmaps_correctly() -> None:
    from fastadapt.algos.fewshot.maml import TaskBatchNorm2d

    assert _bn_check(TaskBatchNorm2d(3)) < 1e-12


@pytest.mark.xfail(reason="torch 2.13: affine native batch norm gives a wrong 2nd-order grad under vmap(grad)",
                   strict=False)
def test_native_affine_batchnorm_under_vmap_grad() -> None:
    """Records an upstream problem (hence TaskBatchNorm2d); passes once torch fixes it."""
    assert _bn_check(torch.nn.BatchNorm2d(3, track_running_stats=False)) < 1e-12
