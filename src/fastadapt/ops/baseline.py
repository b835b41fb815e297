"""Linear feature baseline of the rllab / MAML / ProMP code (Duan et al. 2016, "Benchmarking Deep RL").

Features of step ``t`` with observation ``o`` (clipped to [-10, 10]) are
``phi = [o, o^2, t/100, (t/100)^2, (t/100)^3, 1]`` (``2 obs_dim + 4`` numbers); the coefficients solve the
ridge regression ``(Phi^T Phi + reg I) w = Phi^T G`` on valid steps, with ``reg`` multiplied by 10 up to
five times if the solve is not finite. Finn et al. 2017 (MAML) and Rothfuss et al. 2019 (ProMP) refit it on
every task's fresh rollouts before computing advantages.

Functions work on ``[..., T, obs_dim]`` and fit one regression per leading index of the first
``batch_dims`` dims (``batch_dims=1`` with ``[tasks, envs, T, obs_dim]`` fits one baseline per task).
"""

from __future__ import annotations

import torch

from fastadapt.ops._checks import check_min_dims, check_shape


def linear_baseline_features(
    obs: torch.Tensor, timesteps: torch.Tensor | None = None, obs_clip: float = 10.0
) -> torch.Tensor:
    """``obs: [..., T, obs_dim] -> features [..., T, 2 obs_dim + 4]``.

    ``timesteps [..., T]`` are the steps within each episode (default ``0..T-1`` along the time dim).
    """
    check_min_dims("obs", obs, 2)
    T = obs.shape[-2]
    if timesteps is None:
        t = torch.arange(T, dtype=obs.dtype, device=obs.device).expand(obs.shape[:-1])
    else:
        check_shape("timesteps", timesteps, tuple(obs.shape[:-1]))
        t = timesteps.to(obs.dtype)
    o = obs.clamp(-obs_clip, obs_clip)
    al = (t / 100.0).unsqueeze(-1)
    return torch.cat([o, o * o, al, al**2, al**3, torch.ones_like(al)], dim=-1)


def fit_linear_baseline(
    features: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor | None = None,
    batch_dims: int = 0,
    reg_coeff: float = 1e-5,
) -> torch.Tensor:
    """Ridge-regression coefficients ``[*features.shape[:batch_dims], F]``.

    Args:
        features: ``[..., T, F]`` from :func:`linear_baseline_features`.
        returns: ``[..., T]`` regression targets (discounted returns).
        mask: ``[..., T]``, 1 on valid steps (padding is ignored).
        batch_dims: how many leading dims index separate regressions.
        reg_coeff: initial ridge coefficient (rllab's 1e-5).
    """
    check_min_dims("features", features, 2)
    check_shape("returns", returns, tuple(features.shape[:-1]))
    check_shape("mask", mask, tuple(features.shape[:-1]))
    if not 0 <= batch_dims <= features.dim() - 2:
        raise ValueError(f"batch_dims: expected in [0, {features.dim() - 2}], got {batch_dims}")
    F = features.shape[-1]
    lead = features.shape[:batch_dims]
    X = features.detach().to(torch.float64).reshape(*lead, -1, F)
    y = returns.detach().to(torch.float64).reshape(*lead, -1)
    if mask is not None:
        m = mask.detach().to(torch.float64).reshape(*lead, -1)
        X = X * m.unsqueeze(-1)
        y = y * m
    xtx = X.transpose(-1, -2) @ X
    xty = (X.transpose(-1, -2) @ y.unsqueeze(-1)).squeeze(-1)
    eye = torch.eye(F, dtype=torch.float64, device=X.device)
    reg = reg_coeff
    coeffs = torch.zeros_like(xty)
    for _ in range(5):
        coeffs = torch.linalg.lstsq(xtx + reg * eye, xty.unsqueeze(-1)).solution.squeeze(-1)
        if bool(torch.isfinite(coeffs).all()):
            break
        reg *= 10.0
    return coeffs.to(features.dtype)


def predict_linear_baseline(
    features: torch.Tensor, coeffs: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Baseline values ``[..., T]`` = ``features @ coeffs`` (coeffs broadcast over the non-batch dims).

    ``coeffs: [*batch, F]`` as returned by :func:`fit_linear_baseline`; padded steps get 0.
    """
    check_min_dims("features", features, 2)
    b = coeffs.dim() - 1
    if coeffs.shape[-1] != features.shape[-1] or tuple(coeffs.shape[:-1]) != tuple(features.shape[:b]):
        raise ValueError(
            f"coeffs: expected shape {tuple(features.shape[:b]) + (features.shape[-1],)}, "
            f"got {tuple(coeffs.shape)}"
        )
    c = coeffs.reshape(*coeffs.shape[:-1], *([1] * (features.dim() - 1 - b)), coeffs.shape[-1])
    out = (features * c).sum(-1)
    if mask is not None:
        check_shape("mask", mask, tuple(out.shape))
        out = out * mask.to(out.dtype)
    return out


class LinearFeatureBaseline:
    """Stateful convenience wrapper: ``fit(obs, returns, mask)`` then ``predict(obs, mask)``.

    ``obs: [..., T, obs_dim]``; with ``batch_dims=1`` one baseline per leading index (per task).
    """

    def __init__(self, reg_coeff: float = 1e-5, batch_dims: int = 0) -> None:
        self.reg_coeff = reg_coeff
        self.batch_dims = batch_dims
        self.coeffs: torch.Tensor | None = None

    def fit(
        self,
        obs: torch.Tensor,
        returns: torch.Tensor,
        mask: torch.Tensor | None = None,
        timesteps: torch.Tensor | None = None,
    ) -> None:
        feats = linear_baseline_features(obs, timesteps)
        self.coeffs = fit_linear_baseline(feats, returns, mask, self.batch_dims, self.reg_coeff)

    def predict(
        self,
        obs: torch.Tensor,
        mask: torch.Tensor | None = None,
        timesteps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        feats = linear_baseline_features(obs, timesteps)
        if self.coeffs is None:
            out = torch.zeros(feats.shape[:-1], dtype=feats.dtype, device=feats.device)
            return out
        return predict_linear_baseline(feats, self.coeffs, mask)


__all__ = [
    "LinearFeatureBaseline",
    "fit_linear_baseline",
    "linear_baseline_features",
    "predict_linear_baseline",
]
