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

**Low-rank factors** (``precision_rank = R > 0``, an extension of the paper's diagonal factors; still a
normalised product of Gaussians, so still permutation invariant): factor ``n`` has the precision
``P_n = diag(1 / sigma_n^2) + U_n U_n^T`` with ``U_n [L, R]`` and mean ``mu_n``, and

    Lambda = sum_n P_n,    mu = Lambda^{-1} sum_n P_n mu_n,    q(z | c) = N(mu, Lambda^{-1}).

Why: a diagonal factor can only constrain ``z`` along the coordinate axes. With a dense distance reward
``r = -||s' - g||`` one transition says that the goal lies on a circle around ``s'``, i.e. one *linear*
constraint ``2 s'.g - ||g||^2 = ||s'||^2 - r^2`` on ``(g, ||g||^2)`` in an arbitrary direction: a rank-1
precision factor, which a diagonal factor cannot express (benchmarks/pearl/README.md, session 5). The
posterior is then returned as ``(mu, scale)`` with ``scale [..., L, L]`` (upper triangular,
``scale @ scale^T = Lambda^{-1}``); :func:`rsample_gaussian` and :func:`kl_to_standard_normal` accept it.

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

    ``0.5 * sum_i (var_i + mu_i^2 - 1 - log var_i)``. A full posterior given as a triangular ``scale [..., L,
    L]`` (``Sigma = scale scale^T``, see :func:`low_rank_product_of_gaussians`) gives
    ``0.5 * (||scale||_F^2 + ||mu||^2 - L - 2 sum_i log |scale_ii|)``.
    """
    if var.dim() == mu.dim() + 1:
        diag = torch.diagonal(var, dim1=-2, dim2=-1)
        return 0.5 * (var.pow(2).sum((-2, -1)) + mu.pow(2).sum(-1) - mu.shape[-1] - 2.0 * diag.abs().log().sum(-1))
    return 0.5 * (var + mu.pow(2) - 1.0 - var.log()).sum(-1)


def rsample_gaussian(mu: torch.Tensor, var: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Reparameterised sample ``z = mu + sqrt(var) * eps``, ``eps ~ N(0, I)`` from ``generator``: ``[..., L]``.

    ``var`` may also be a full ``scale [..., L, L]`` (``z = mu + scale @ eps``)."""
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    if var.dim() == mu.dim() + 1:
        return mu + (var @ eps.unsqueeze(-1)).squeeze(-1)
    return mu + var.sqrt() * eps


def posterior_variance(mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Per-dimension variance ``[..., L]`` of a posterior given as ``var [..., L]`` or ``scale [..., L, L]``."""
    return var.pow(2).sum(-1) if var.dim() == mu.dim() + 1 else var


def low_rank_product_of_gaussians(
    mus: torch.Tensor,
    variances: torch.Tensor,
    factors: torch.Tensor,
    mask: torch.Tensor | None = None,
    min_var: float = 1e-7,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised product of Gaussian factors with precisions ``diag(1 / var_n) + U_n U_n^T``.

    ``mus, variances: [..., N, L]``, ``factors (U_n): [..., N, L, R]``, ``mask: [..., N]`` -> ``(mu [..., L],
    scale [..., L, L])`` with ``Lambda = sum_n m_n P_n``, ``mu = Lambda^{-1} sum_n m_n P_n mu_n`` and
    ``scale = C^{-T}`` for the Cholesky factor ``C C^T = Lambda`` (so ``scale scale^T = Lambda^{-1}``). A
    context with no valid factor gives the prior ``N(0, I)`` (``scale = I``).
    """
    if mus.shape != variances.shape or factors.shape[:-1] != mus.shape:
        raise ValueError(
            f"mus {tuple(mus.shape)}, variances {tuple(variances.shape)}, factors {tuple(factors.shape)}: "
            "expected [..., N, L], [..., N, L], [..., N, L, R]"
        )
    L = mus.shape[-1]
    prec = 1.0 / variances.clamp_min(min_var)  # [..., N, L]
    u = factors
    if mask is not None:
        if mask.shape != mus.shape[:-1]:
            raise ValueError(f"mask: expected {tuple(mus.shape[:-1])}, got {tuple(mask.shape)}")
        m = mask.to(mus.dtype).unsqueeze(-1)
        prec = prec * m
        u = u * m.unsqueeze(-1)
    p_full = torch.diag_embed(prec) + u @ u.transpose(-1, -2)  # [..., N, L, L]
    lam = p_full.sum(-3)
    h = (p_full @ mus.unsqueeze(-1)).sum(-3)  # [..., L, 1]
    eye = torch.eye(L, dtype=mus.dtype, device=mus.device)
    empty = (prec.sum((-2, -1)) <= 0)[..., None, None]
    lam = torch.where(empty, eye, lam)
    h = torch.where(empty[..., 0:1], torch.zeros_like(h), h)
    chol = torch.linalg.cholesky(lam)
    mu = torch.cholesky_solve(h, chol).squeeze(-1)
    scale = torch.linalg.solve_triangular(chol.transpose(-1, -2), eye.expand_as(chol), upper=True)
    return mu, scale


class ContextEncoder(nn.Module):
    """``phi``: context transitions -> Gaussian factors -> product-of-Gaussians posterior over ``z``.

    Args:
        context_dim: features of one transition (``obs_dim + act_dim + 1 [+ obs_dim]``).
        latent_dim: size of ``z`` (PEARL: 5).
        hidden: widths of the MLP (PEARL: 200, 200, 200).
        activation: hidden activation (PEARL: relu).
        min_var: lower clamp of each factor's variance (PEARL: 1e-7).
        include_prior: multiply the N(0, I) prior into the product (not in PEARL; diagonal factors only).
        precision_rank: R > 0 adds ``U_n U_n^T`` (``U_n [L, R]``) to each factor's precision and makes
            ``forward`` return ``(mu, scale [..., L, L])``; 0 (default) = PEARL's diagonal factors.
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
        precision_rank: int = 0,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if latent_dim <= 0:
            raise ValueError(f"latent_dim must be > 0, got {latent_dim}")
        if precision_rank < 0:
            raise ValueError(f"precision_rank must be >= 0, got {precision_rank}")
        if precision_rank > 0 and include_prior:
            raise ValueError("include_prior is only supported with diagonal factors (precision_rank=0)")
        self.precision_rank = int(precision_rank)
        self.context_dim = int(context_dim)
        self.latent_dim = int(latent_dim)
        self.min_var = float(min_var)
        self.include_prior = bool(include_prior)
        out = (2 + self.precision_rank) * latent_dim
        self.net = MLP(context_dim, out, hidden, activation, out_gain=1.0, generator=generator)

    def _net_out(self, context: torch.Tensor) -> torch.Tensor:
        """The MLP's raw output ``[..., N, (2 + R) L]`` after checking ``context [..., N, d]``."""
        if context.shape[-1:] != (self.context_dim,):
            raise ValueError(f"context: expected [..., N, {self.context_dim}], got {tuple(context.shape)}")
        return self.net(context)

    def factors(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-transition factors: ``context [..., N, d] -> (mu_n [..., N, L], var_n [..., N, L])``."""
        out = self._net_out(context)
        L = self.latent_dim
        return out[..., :L], F.softplus(out[..., L : 2 * L])

    def forward(
        self, context: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``q(z | context)``: ``context [..., N, d]``, ``mask [..., N]`` -> ``(mu, var) [..., L]``
        (``precision_rank > 0``: ``(mu [..., L], scale [..., L, L])``)."""
        if self.precision_rank > 0:
            out = self._net_out(context)
            L = self.latent_dim
            u = out[..., 2 * L :].reshape(*out.shape[:-1], L, self.precision_rank)  # U_n [..., N, L, R]
            return low_rank_product_of_gaussians(out[..., :L], F.softplus(out[..., L : 2 * L]), u, mask, self.min_var)
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
    "low_rank_product_of_gaussians",
    "posterior_variance",
    "product_of_gaussians",
    "rsample_gaussian",
]
