"""Pieces shared by learners of every family: schedules, optimizer state as plain data, the PPO clipped update.

Only what at least two algorithm modules use lives here (one algorithm module never imports another; see
DESIGN.md and ``tests/foundation/test_layering.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from fastadapt.core.errors import NumericError


def linear_schedule(start: float, end: float, iteration: int, horizon: int) -> float:
    """``start`` at iteration 0 moving linearly to ``end`` at ``horizon``, constant afterwards."""
    frac = min(max(iteration / horizon, 0.0), 1.0)
    return start + (end - start) * frac


def optimizer_state(opt: torch.optim.Optimizer) -> dict[str, Any]:
    """``opt.state_dict()`` with string keys, lists instead of tuples and cloned tensors (checkpoint friendly)."""
    s = opt.state_dict()
    return {
        "state": {
            str(k): {n: (t.detach().clone() if isinstance(t, torch.Tensor) else t) for n, t in v.items()}
            for k, v in s["state"].items()
        },
        "param_groups": [
            {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in s["param_groups"]
        ],
    }


def load_optimizer_state(opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Inverse of :func:`optimizer_state` (raises ``KeyError``/``ValueError`` on a foreign state)."""
    groups = []
    for g in state["param_groups"]:
        g2 = dict(g)
        if "betas" in g2:
            g2["betas"] = tuple(float(b) for b in g2["betas"])
        g2["params"] = [int(p) for p in g2["params"]]
        groups.append(g2)
    opt.load_state_dict({"state": {int(k): dict(v) for k, v in state["state"].items()}, "param_groups": groups})


def ppo_clip_update(
    evaluate: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    opt: torch.optim.Optimizer,
    params: Iterable[torch.Tensor],
    *,
    clip: float,
    epochs: int,
    minibatches: int,
    ent_coef: float,
    vf_coef: float,
    max_grad_norm: float,
    generator: torch.Generator,
    iteration: int,
    target_kl: float | None = None,
) -> dict[str, float]:
    """PPO's clipped-surrogate epochs over minibatches of the leading (batch) dimension.

    Schulman et al. 2017, eq. (7) and (9): for each minibatch ``idx`` of a random permutation of the ``B``
    rows, ``evaluate(idx) -> (log_probs [b, ...], entropy [] (mean), values [b, ...])`` under the current
    parameters; the loss is ``-mean(min(r A, clip(r, 1-eps, 1+eps) A)) - ent_coef H + vf_coef 0.5 mean((V - R)^2)``
    with ``r = exp(log_probs - old_log_probs)``; gradients are clipped to ``max_grad_norm``.
    ``old_log_probs, advantages, returns: [B, ...]`` (same shape as ``evaluate``'s outputs for all rows).
    With ``target_kl`` the epochs stop early once a minibatch's approximate KL exceeds ``1.5 target_kl``.

    Returns the means over the minibatches of ``entropy``, ``approx_kl`` (``E[(r - 1) - log r]``),
    ``clip_frac`` and ``value_loss``. A non-finite loss raises ``NumericError("loss", iteration)``.
    """
    params = list(params)
    b = old_log_probs.shape[0]
    if advantages.shape != old_log_probs.shape or returns.shape[0] != b:
        raise ValueError(
            f"ppo_clip_update: advantages {tuple(advantages.shape)} / returns {tuple(returns.shape)} do not "
            f"match old_log_probs {tuple(old_log_probs.shape)}"
        )
    mb = max(1, b // minibatches)
    stats: dict[str, list[float]] = {"entropy": [], "approx_kl": [], "clip_frac": [], "value_loss": []}
    for _ in range(epochs):
        perm = torch.randperm(b, generator=generator)
        stop = False
        for j in range(minibatches):
            idx = perm[j * mb : (j + 1) * mb] if j < minibatches - 1 else perm[j * mb :]
            logp, ent, v = evaluate(idx)
            log_ratio = logp - old_log_probs[idx]
            ratio = torch.exp(log_ratio)
            a_mb = advantages[idx]
            surr = torch.min(ratio * a_mb, torch.clamp(ratio, 1 - clip, 1 + clip) * a_mb)
            vloss = 0.5 * (v - returns[idx]).pow(2).mean()
            loss = -surr.mean() - ent_coef * ent + vf_coef * vloss
            if not bool(torch.isfinite(loss)):
                raise NumericError("loss", iteration)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            opt.step()
            with torch.no_grad():
                stats["entropy"].append(float(ent))
                stats["approx_kl"].append(float(((ratio - 1) - log_ratio).mean()))
                stats["clip_frac"].append(float(((ratio - 1).abs() > clip).float().mean()))
                stats["value_loss"].append(float(vloss))
            if target_kl is not None and stats["approx_kl"][-1] > 1.5 * target_kl:
                stop = True
                break
        if stop:
            break
    return {k: float(np.mean(v)) for k, v in stats.items()}


__all__ = ["linear_schedule", "load_optimizer_state", "optimizer_state", "ppo_clip_update"]
