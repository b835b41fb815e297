"""Discounted returns and generalised advantage estimation over ``[..., time]``.

All functions take tensors whose LAST dim is time and any leading dims (``[time]``, ``[envs, time]``,
``[tasks, envs, time]``...). Two ways to mark episode ends are supported and may be combined:

- ``dones[..., t] = 1`` when the episode ended at step ``t`` (terminated: nothing is bootstrapped past
  ``t``; the next step, if any, starts a new episode, as with auto-resetting vector envs);
- ``mask[..., t] = 1`` for valid steps and 0 for padding after an episode ended early (the MAML/ProMP
  layout with one episode per row). Padded steps get zero returns/advantages, and a step followed by
  padding bootstraps nothing.

``bootstrap[...]`` is the value of the state reached after the last step (``V(s_T)``), used for rows that
are still running at the end of the window (truncated collection); default 0.

To bootstrap a time-limit truncation inside the window, add ``discount * V(s_final)`` to that step's
reward and mark it done (the usual trick, e.g. Pardo et al. 2018, "Time Limits in RL").
"""

from __future__ import annotations

import torch

from fastadapt.ops._checks import check_min_dims, check_same_shape, check_shape


def _continuation(
    rewards: torch.Tensor, dones: torch.Tensor | None, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(valid [..., T], cont [..., T])``: cont_t = 1 if the value of step t+1 feeds step t."""
    valid = torch.ones_like(rewards) if mask is None else mask.to(rewards.dtype)
    cont = torch.ones_like(rewards) if dones is None else 1.0 - dones.to(rewards.dtype)
    # a step followed by padding bootstraps nothing; the last step's successor is `bootstrap`
    next_valid = torch.cat([valid[..., 1:], torch.ones_like(valid[..., :1])], dim=-1)
    return valid, cont * next_valid * valid


def _check(
    rewards: torch.Tensor,
    discount: float,
    dones: torch.Tensor | None,
    mask: torch.Tensor | None,
    bootstrap: torch.Tensor | None,
    values: torch.Tensor | None = None,
) -> None:
    check_min_dims("rewards", rewards, 1)
    check_same_shape("rewards", rewards, dones=dones, mask=mask, values=values)
    check_shape("bootstrap", bootstrap, tuple(rewards.shape[:-1]))
    if not 0.0 <= discount <= 1.0:
        raise ValueError(f"discount: expected in [0, 1], got {discount}")


def discounted_returns(
    rewards: torch.Tensor,
    discount: float,
    dones: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    bootstrap: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reward-to-go ``G_t = r_t + discount * c_t * G_{t+1}`` with ``G_T = bootstrap``.

    ``c_t = (1 - dones_t) * mask_{t+1}`` stops the sum at episode ends (see the module docstring).

    Args:
        rewards: ``[..., T]``.
        discount: ``gamma`` in [0, 1].
        dones: ``[..., T]`` bool/float, 1 where the episode terminated at that step.
        mask: ``[..., T]``, 1 for valid steps, 0 for padding.
        bootstrap: ``[...]``, value of the state after the last step (default 0).

    Returns:
        ``[..., T]`` discounted returns (0 on padding). Sutton & Barto 2018, eq. 3.8.
    """
    _check(rewards, discount, dones, mask, bootstrap)
    valid, cont = _continuation(rewards, dones, mask)
    out = torch.zeros_like(rewards)
    nxt = torch.zeros_like(rewards[..., 0]) if bootstrap is None else bootstrap.to(rewards.dtype)
    for t in range(rewards.shape[-1] - 1, -1, -1):
        nxt = valid[..., t] * rewards[..., t] + discount * cont[..., t] * nxt
        out[..., t] = nxt
    return out


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    discount: float,
    lam: float,
    dones: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    bootstrap: torch.Tensor | None = None,
) -> torch.Tensor:
    """Generalised advantage estimation, GAE(gamma, lambda) (Schulman et al. 2016, eq. 16).

    ``delta_t = r_t + gamma c_t V_{t+1} - V_t`` and ``A_t = delta_t + gamma lambda c_t A_{t+1}``, where
    ``V_T = bootstrap`` and ``c_t = (1 - dones_t) mask_{t+1}``. ``lam = 1`` gives ``G_t - V_t``; ``lam = 0``
    the one-step TD error. The lambda-returns (value targets) are ``gae(...) + values``.

    Args:
        rewards, values: ``[..., T]``; ``values[..., t] = V(s_t)``.
        discount: ``gamma`` in [0, 1]; lam: ``lambda`` in [0, 1].
        dones, mask, bootstrap: as in :func:`discounted_returns`.

    Returns:
        advantages ``[..., T]`` (0 on padding), without gradient through ``values`` (detached).
    """
    _check(rewards, discount, dones, mask, bootstrap, values=values)
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam: expected in [0, 1], got {lam}")
    values = values.detach().to(rewards.dtype)
    valid, cont = _continuation(rewards, dones, mask)
    boot = (
        torch.zeros_like(rewards[..., 0]) if bootstrap is None else bootstrap.detach().to(rewards.dtype)
    )
    next_values = torch.cat([values[..., 1:], boot.unsqueeze(-1)], dim=-1)
    deltas = valid * (rewards + discount * cont * next_values - values)
    out = torch.zeros_like(rewards)
    acc = torch.zeros_like(rewards[..., 0])
    for t in range(rewards.shape[-1] - 1, -1, -1):
        acc = deltas[..., t] + discount * lam * cont[..., t] * acc
        out[..., t] = acc
    return out


def td_targets(
    rewards: torch.Tensor,
    next_values: torch.Tensor,
    discount: float | torch.Tensor,
    terminated: torch.Tensor,
) -> torch.Tensor:
    """One-step targets ``y = r + gamma (1 - terminated) V(s')`` (any shape, all arguments alike).

    Used by DQN (Mnih et al. 2015), DDPG, TD3 and SAC with ``next_values`` from target networks. A tensor
    ``discount`` (same shape) gives per-transition factors, e.g. ``gamma^k`` of n-step returns with
    ``rewards`` the discounted k-step sums.
    """
    per_step = discount if isinstance(discount, torch.Tensor) else None
    check_same_shape("rewards", rewards, next_values=next_values, terminated=terminated, discount=per_step)
    return rewards + discount * (1.0 - terminated.to(rewards.dtype)) * next_values


def masked_mean(
    x: torch.Tensor, mask: torch.Tensor | None = None, dim: int | tuple[int, ...] | None = None
) -> torch.Tensor:
    """Mean of ``x`` over ``dim`` (all dims if None) counting only entries where ``mask`` is 1."""
    check_same_shape("x", x, mask=mask)
    if mask is None:
        return x.mean() if dim is None else x.mean(dim=dim)
    m = mask.to(x.dtype)
    if dim is None:
        return (x * m).sum() / m.sum().clamp_min(1.0)
    return (x * m).sum(dim=dim) / m.sum(dim=dim).clamp_min(1.0)


def normalize(
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    dim: int | tuple[int, ...] | None = None,
    eps: float = 1e-8,
) -> torch.Tensor:
    """``(x - mean) / (std + eps)`` over ``dim`` (all dims if None), statistics from valid entries only;
    padded entries are set to 0. The advantage normalisation of PPO/TRPO/MAML implementations."""
    mean = masked_mean(x, mask, dim)
    if dim is not None:
        mean = mean.unsqueeze(dim) if isinstance(dim, int) else _unsqueeze_all(mean, dim, x.dim())
    var = masked_mean((x - mean) ** 2, mask, dim)
    if dim is not None:
        var = var.unsqueeze(dim) if isinstance(dim, int) else _unsqueeze_all(var, dim, x.dim())
    out = (x - mean) / (var.sqrt() + eps)
    return out if mask is None else out * mask.to(x.dtype)


def _unsqueeze_all(t: torch.Tensor, dims: tuple[int, ...], ndim: int) -> torch.Tensor:
    for d in sorted(d % ndim for d in dims):
        t = t.unsqueeze(d)
    return t


__all__ = ["discounted_returns", "gae", "masked_mean", "normalize", "td_targets"]
