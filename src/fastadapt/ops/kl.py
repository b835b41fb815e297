"""KL divergences between policies' distribution parameters, and sample-based estimators.

Closed forms (summing over the event dim) for the two policy families of :mod:`fastadapt.nn.policies`,
plus estimators from log-probabilities for when only samples are available (Schulman 2020, "Approximating
KL divergence"). All return per-element ``[...]`` values; average them with
:func:`fastadapt.ops.returns.masked_mean`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastadapt.ops._checks import check_same_shape


def categorical_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """``KL(p || q) = sum_a p(a) (log p(a) - log q(a))`` for ``logits: [..., n]`` -> ``[...]``."""
    check_same_shape("logits_p", logits_p, logits_q=logits_q)
    logp = F.log_softmax(logits_p, dim=-1)
    logq = F.log_softmax(logits_q, dim=-1)
    return (logp.exp() * (logp - logq)).sum(-1)


def diag_gaussian_kl(
    mean_p: torch.Tensor, log_std_p: torch.Tensor, mean_q: torch.Tensor, log_std_q: torch.Tensor
) -> torch.Tensor:
    """``KL(N_p || N_q)`` for diagonal Gaussians with ``[..., d]`` parameters -> ``[...]``:
    ``sum_i log(s_q/s_p) + (s_p^2 + (m_p - m_q)^2) / (2 s_q^2) - 1/2``."""
    check_same_shape("mean_p", mean_p, log_std_p=log_std_p, mean_q=mean_q, log_std_q=log_std_q)
    var_ratio = torch.exp(2.0 * (log_std_p - log_std_q))
    diff = (mean_p - mean_q) * torch.exp(-log_std_q)
    return (log_std_q - log_std_p + 0.5 * (var_ratio + diff.pow(2)) - 0.5).sum(-1)


def sample_kl(log_probs_p: torch.Tensor, log_probs_q: torch.Tensor) -> torch.Tensor:
    """Unbiased, non-negative estimator ``k3 = (r - 1) - log r`` of ``KL(p || q)``, ``r = q(a)/p(a)``,
    for actions ``a ~ p`` (per sample ``[...]``). PPO's "approx_kl" diagnostic."""
    check_same_shape("log_probs_p", log_probs_p, log_probs_q=log_probs_q)
    log_r = log_probs_q - log_probs_p
    return torch.expm1(log_r) - log_r


__all__ = ["categorical_kl", "diag_gaussian_kl", "sample_kl"]
