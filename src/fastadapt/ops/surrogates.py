"""Policy-gradient losses (to MINIMISE), with masks and optional reduction dims.

Every function takes per-step tensors of one shape ``[...]`` (e.g. ``[tasks, envs, time]``), an optional
``mask`` of the same shape (1 on valid steps) and ``dim`` (dims to average over; ``None`` = all, giving a
scalar; e.g. ``dim=(1, 2)`` gives one loss per task for meta-learning). Advantages are treated as
constants (detached).
"""

from __future__ import annotations

import torch

from fastadapt.ops._checks import check_same_shape
from fastadapt.ops.returns import masked_mean

Dim = int | tuple[int, ...] | None


def policy_gradient_loss(
    log_probs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor | None = None,
    dim: Dim = None,
) -> torch.Tensor:
    """REINFORCE / VPG loss ``-E[log pi(a_t|s_t) A_t]`` (Williams 1992; Sutton et al. 2000)."""
    check_same_shape("log_probs", log_probs, advantages=advantages, mask=mask)
    return -masked_mean(log_probs * advantages.detach(), mask, dim)


def importance_sampled_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor | None = None,
    dim: Dim = None,
) -> torch.Tensor:
    """TRPO surrogate ``-E[pi(a|s)/pi_old(a|s) A]`` (Schulman et al. 2015, eq. 14)."""
    check_same_shape("log_probs", log_probs, old_log_probs=old_log_probs, advantages=advantages, mask=mask)
    ratio = torch.exp(log_probs - old_log_probs.detach())
    return -masked_mean(ratio * advantages.detach(), mask, dim)


def ppo_clip_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps: float = 0.2,
    mask: torch.Tensor | None = None,
    dim: Dim = None,
) -> torch.Tensor:
    """PPO clipped surrogate ``-E[min(r A, clip(r, 1-eps, 1+eps) A)]``, ``r = pi/pi_old``
    (Schulman et al. 2017, eq. 7)."""
    check_same_shape("log_probs", log_probs, old_log_probs=old_log_probs, advantages=advantages, mask=mask)
    if clip_eps <= 0:
        raise ValueError(f"clip_eps: expected > 0, got {clip_eps}")
    adv = advantages.detach()
    ratio = torch.exp(log_probs - old_log_probs.detach())
    surr = torch.minimum(ratio * adv, ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * adv)
    return -masked_mean(surr, mask, dim)


def clip_fraction(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    clip_eps: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fraction of steps whose ratio lies outside ``[1-eps, 1+eps]`` (a PPO diagnostic), scalar."""
    check_same_shape("log_probs", log_probs, old_log_probs=old_log_probs, mask=mask)
    ratio = torch.exp(log_probs.detach() - old_log_probs.detach())
    return masked_mean(((ratio - 1.0).abs() > clip_eps).to(ratio.dtype), mask)


def value_loss(
    values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor | None = None,
    old_values: torch.Tensor | None = None,
    clip_eps: float | None = None,
    dim: Dim = None,
) -> torch.Tensor:
    """``0.5 E[(V - R)^2]``; with ``old_values`` and ``clip_eps``, PPO's clipped value loss
    ``0.5 E[max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2)]`` (baselines' ppo2)."""
    check_same_shape("values", values, returns=returns, mask=mask, old_values=old_values)
    target = returns.detach()
    err = (values - target) ** 2
    if clip_eps is not None:
        if old_values is None:
            raise ValueError("old_values: required when clip_eps is set")
        old = old_values.detach()
        clipped = old + (values - old).clamp(-clip_eps, clip_eps)
        err = torch.maximum(err, (clipped - target) ** 2)
    return 0.5 * masked_mean(err, mask, dim)


def entropy_bonus(entropy: torch.Tensor, mask: torch.Tensor | None = None, dim: Dim = None) -> torch.Tensor:
    """Mean entropy (subtract ``coef * entropy_bonus`` from the loss to encourage exploration)."""
    return masked_mean(entropy, mask, dim)


__all__ = [
    "clip_fraction",
    "entropy_bonus",
    "importance_sampled_loss",
    "policy_gradient_loss",
    "ppo_clip_loss",
    "value_loss",
]
