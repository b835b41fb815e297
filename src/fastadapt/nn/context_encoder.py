"""PEARL's probabilistic, permutation-invariant context encoder (Rakelly et al. 2019, arXiv 1903.08254).

Rakelly, Zhou, Quillen, Finn & Levine 2019, "Efficient Off-Policy Meta-Reinforcement Learning via
Probabilistic Context Variables", sec. 4.1 and fig. 2: an MLP ``phi`` maps every context transition
``c_n = (s_n, a_n, r_n[, s'_n])`` independently to a Gaussian factor ``Psi_phi(z | c_n) = N(mu_n,
diag(sigma_n^2))``; the posterior over the task variable ``z`` is their normalised product

    q_phi(z | c_1..N)  ∝  prod_n Psi_phi(z | c_n)
    =>  sigma^2 = 1 / sum_n (1 / sigma_n^2),    mu = sigma^2 * sum_n (mu_n / sigma_n^2)   (per dimension),

which does not depend on the order of the transitions (permutation invariance). ``sigma_n^2 =
softplus(.)`` clamped below by ``min_var`` (as in the authors' code, katerakelly/oyster). With an empty
context the posterior is the prior ``N(0, I)``. ``z`` is sampled with the reparameterisation trick so the
critic's Bellman loss trains the encoder, and the information bottleneck ``KL(q(z|c) || N(0, I))`` is
added with weight ``beta`` (``kl_lambda`` in the authors' code).

Shapes: ``context: [..., N, context_dim]`` (any leading dims, e.g. ``[tasks, N, d]``); an optional
``mask: [..., N]`` (1 = a valid transition, 0 = padding) lets contexts of different lengths share a tensor.
Outputs ``mu, var: [..., latent_dim]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fastadapt.nn.mlp import MLP


def product_of_gaussians(
    mus: torch.Tensor,
    variances: torch.Tensor,
    mask: torch.Tensor | None = None,
    min_var: float = 1e-7,
    include_prior: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised product of diagonal Gaussian factors over the second-to-last dim.

    ``mus, variances: [..., N, L]``, ``mask: [..., N]`` (float/bool; 0 drops a factor) ->
    ``(mu [..., L], var [..., L])`` with ``var = 1 / sum_n m_n / var_n`` and ``mu = var * sum_n m_n mu_n /
    var_n``. ``include_prior`` multiplies in the standard-normal prior as one more factor (not done in
    PEARL; off by default). A context with no valid factor (and no prior) gives the prior ``N(0, I)``.
    """
    if mus.shape != variances.shape:
        raise ValueError(f"mus {tuple(mus.shape)} and variances {tuple(variances.shape)} differ")
    if mus.dim() < 2:
        raise ValueError(f"mus: expected [..., N, L], got {tuple(mus.shape)}")
    prec = 1.0 / variances.clamp_min(min_var)  # [..., N, L]
    if mask is not None:
        if mask.shape != mus.shape[:-1]:
            raise ValueError(f"mask: expected {tuple(mus.shape[:-1])}, got {tuple(mask.shape)}")
        m = mask.to(mus.dtype).unsqueeze(-1)
        prec = prec * m
    total_prec = prec.sum(-2)
    weighted = (prec * mus).sum(-2)
    if include_prior:
        total_prec = total_prec + 1.0
    empty = total_prec <= 0
    total_prec = torch.where(empty, torch.ones_like(total_prec), total_prec)
    var = 1.0 / total_prec
    mu = torch.where(empty, torch.zeros_like(weighted), var * weighted)
    return mu, var


def kl_to_standard_normal(mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag var) || N(0, I))`` summed over the last dim: ``[..., L] -> [...]``.

    ``0.5 * sum_i (var_i + mu_i^2 - 1 - log var_i)``.
    """
    return 0.5 * (var + mu.pow(2) - 1.0 - var.log()).sum(-1)


def rsample_gaussian(mu: torch.Tensor, var: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Reparameterised sample ``z = mu + sqrt(var) * eps``, ``eps ~ N(0, I)`` from ``generator``: ``[..., L]``."""
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    return mu + var.sqrt() * eps


class ContextEncoder(nn.Module):
    """``phi``: context transitions -> Gaussian factors -> product-of-Gaussians posterior over ``z``.

    Args:
        context_dim: features of one transition (``obs_dim + act_dim + 1 [+ obs_dim]``).
        latent_dim: size of ``z`` (PEARL: 5).
        hidden: widths of the MLP (PEARL: 200, 200, 200).
        activation: hidden activation (PEARL: relu).
        min_var: lower clamp of each factor's variance (PEARL: 1e-7).
        include_prior: multiply the N(0, I) prior into the product (not in PEARL).
        generator: initialisation randomness.
    """

    def __init__(
        self,
        context_dim: int,
        latent_dim: int = 5,
        hidden: Sequence[int] = (200, 200, 200),
        activation: str = "relu",
        min_var: float = 1e-7,
        include_prior: bool = False,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if latent_dim <= 0:
            raise ValueError(f"latent_dim must be > 0, got {latent_dim}")
        self.context_dim = int(context_dim)
        self.latent_dim = int(latent_dim)
        self.min_var = float(min_var)
        self.include_prior = bool(include_prior)
        self.net = MLP(context_dim, 2 * latent_dim, hidden, activation, out_gain=1.0, generator=generator)

    def factors(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-transition factors: ``context [..., N, d] -> (mu_n [..., N, L], var_n [..., N, L])``."""
        if context.shape[-1:] != (self.context_dim,):
            raise ValueError(f"context: expected [..., N, {self.context_dim}], got {tuple(context.shape)}")
        out = self.net(context)
        mu, pre = out[..., : self.latent_dim], out[..., self.latent_dim :]
        return mu, F.softplus(pre)

    def forward(
        self, context: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``q(z | context)``: ``context [..., N, d]``, ``mask [..., N]`` -> ``(mu, var) [..., L]``."""
        mu_n, var_n = self.factors(context)
        return product_of_gaussians(mu_n, var_n, mask, self.min_var, self.include_prior)

    def prior(self, *batch_shape: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """The prior ``N(0, I)`` as ``(mu, var)`` of shape ``[*batch_shape, L]``."""
        shape = (*batch_shape, self.latent_dim)
        return torch.zeros(shape, dtype=dtype), torch.ones(shape, dtype=dtype)


def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """``log N(z; mu, diag var)`` summed over the last dim: ``[..., L] -> [...]``."""
    return -0.5 * (((z - mu) ** 2) / var + var.log() + math.log(2 * math.pi)).sum(-1)


__all__ = [
    "ContextEncoder",
    "gaussian_log_prob",
    "kl_to_standard_normal",
    "product_of_gaussians",
    "rsample_gaussian",
]
