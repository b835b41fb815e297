"""Gittins indices of Bernoulli arms with Beta posteriors (Gittins 1979; Gittins, Glazebrook & Weber 2011).

The index of an arm in state ``Beta(a, b)`` under discount ``gamma`` is the reward ``lam`` of a known
("safe") arm that makes us indifferent between pulling the unknown arm now and retiring to the safe arm
forever. It is found by *calibration*: for a given ``lam``, a truncated dynamic programme gives the value of
the one-armed bandit (pull the unknown arm or retire), and ``lam`` is bisected until continuing is no
longer strictly better than retiring. The DP is truncated ``horizon`` pulls after the arm's current state;
at the horizon the arm is valued as ``max(mu, lam) / (1 - gamma)`` (no further learning), the convention of
J. Edwards' ``gittins`` R package (``bmab_gi``; Edwards 2019, "Practical calculation of Gittins indices
for multi-armed bandits", arXiv 1909.05075).

Everything is vectorised over a batch of arm states with numpy; ``gittins_table`` fills the whole table
of states ``a + b <= max_total`` at once (used by the Gittins bandit policy in
:mod:`fastadapt.baselines.bandits`).
"""

from __future__ import annotations

import numpy as np

from fastadapt.core.errors import ConfigError

__all__ = ["gittins_index", "gittins_indices", "gittins_table"]


def _continue_advantage(
    a: np.ndarray, b: np.ndarray, lam: np.ndarray, gamma: float, horizon: int
) -> np.ndarray:
    """Value of pulling the unknown arm once and then acting optimally, minus retiring now.

    a, b, lam: ``[S]``; returns ``[S]`` (in units of the current step, no discounting to a start).
    """
    retire = lam / (1.0 - gamma)  # [S]
    n0 = a + b
    j = horizon
    s = np.arange(j + 1, dtype=np.float64)[None, :]
    mu = (a[:, None] + s) / (n0[:, None] + j)
    w = np.maximum(mu, lam[:, None]) / (1.0 - gamma)  # [S, j+1] values at depth `horizon`
    for j in range(horizon - 1, -1, -1):
        s = np.arange(j + 1, dtype=np.float64)[None, :]
        mu = (a[:, None] + s) / (n0[:, None] + j)
        cont = mu + gamma * (mu * w[:, 1 : j + 2] + (1.0 - mu) * w[:, : j + 1])
        if j == 0:
            return cont[:, 0] - retire
        w = np.maximum(cont, retire[:, None])
    raise AssertionError("unreachable")


def gittins_indices(
    a: np.ndarray, b: np.ndarray, gamma: float, horizon: int, tol: float = 1e-7
) -> np.ndarray:
    """Gittins indices of Bernoulli arms in states ``Beta(a, b)`` (arrays ``[S]``), discount ``gamma``.

    ``horizon`` is the truncation depth of the calibration DP; bisection on ``lam`` in ``[a/(a+b), 1]``
    stops when the bracket is narrower than ``tol``; the midpoint is returned.
    """
    if not 0.0 < gamma < 1.0:
        raise ConfigError(f"gittins: discount must be in (0, 1), got {gamma}")
    if horizon < 1:
        raise ConfigError(f"gittins: horizon must be >= 1, got {horizon}")
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if (a <= 0).any() or (b <= 0).any():
        raise ConfigError("gittins: Beta parameters must be > 0")
    lo = a / (a + b)
    hi = np.ones_like(lo)
    while float(np.max(hi - lo)) > tol:
        mid = 0.5 * (lo + hi)
        better = _continue_advantage(a, b, mid, gamma, horizon) > 0.0
        lo = np.where(better, mid, lo)
        hi = np.where(better, hi, mid)
    return 0.5 * (lo + hi)


def gittins_index(a: float, b: float, gamma: float, horizon: int, tol: float = 1e-7) -> float:
    """Gittins index of one Bernoulli arm with posterior ``Beta(a, b)`` (see :func:`gittins_indices`)."""
    return float(gittins_indices(np.array([a]), np.array([b]), gamma, horizon, tol)[0])


def gittins_table(
    max_total: int, gamma: float, horizon: int, a0: float = 1.0, b0: float = 1.0, tol: float = 1e-6
) -> np.ndarray:
    """Indices for every arm state reachable from the prior ``Beta(a0, b0)`` in ``max_total`` pulls.

    Returns ``table [max_total + 1, max_total + 1]`` with ``table[s, f]`` the index of
    ``Beta(a0 + s, b0 + f)`` for ``s + f <= max_total`` (NaN elsewhere).
    """
    s, f = np.meshgrid(np.arange(max_total + 1), np.arange(max_total + 1), indexing="ij")
    keep = (s + f) <= max_total
    table = np.full((max_total + 1, max_total + 1), np.nan)
    table[keep] = gittins_indices(a0 + s[keep], b0 + f[keep], gamma, horizon, tol)
    return table
