"""Gittins indices of Bernoulli arms with Beta posteriors (Gittins 1979; Gittins, Glazebrook & Weber 2011).

The index of an arm in state ``Beta(a, b)`` under discount ``gamma`` is the reward ``lam`` of a known
("safe") arm that makes us indifferent between pulling the unknown arm now and retiring to the safe arm
forever. It is found by *calibration*: for a given ``lam``, a truncated dynamic programme gives the value of
the one-armed bandit (pull the unknown arm or retire), and ``lam`` is bisected until continuing is no
longer strictly better than retiring. The DP is truncated ``horizon`` pulls after the arm's current state;
at the horizon the arm is valued as ``max(mu, lam) / (1 - gamma)`` (no further learning), the convention of
J. Edwards' ``gittins`` R package (``bmab_gi``; Edwards 2019, "Practical calculation of Gittins indices
for multi-armed bandits", arXiv 1909.05075).

Two ways to compute indices, both vectorised with numpy:

- :func:`gittins_indices` / :func:`gittins_table`: the exact per-state calibration (bisection on ``lam``,
  one DP of depth ``horizon`` below each state per step). Cost ~ states x horizon^2 x bisection steps:
  fine for the test values and n <= 100, hours for the n = 500 table.
- :func:`gittins_table_calibrated` (used by the Gittins bandit policy in
  :mod:`fastadapt.baselines.bandits`): ONE backward DP per retirement reward over the whole triangle of
  states (vectorised over a grid of ``lam`` and over each anti-diagonal), indices by certified convex
  interpolation between grid values, then exact bisection only for the few states whose bracket is still
  wider than ``refine_tol``. The n = 500 table (125,751 states, truncation level 1000) takes ~5-10 s.
"""

from __future__ import annotations

import numpy as np

from fastadapt.core.errors import ConfigError

__all__ = ["gittins_index", "gittins_indices", "gittins_table", "gittins_table_calibrated"]


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


def gittins_table_calibrated(
    max_total: int,
    gamma: float,
    depth: int | None = None,
    a0: float = 1.0,
    b0: float = 1.0,
    grid: int = 256,
    refine_tol: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray]:
    """Index table for every state ``s + f <= max_total`` by one backward DP per retirement reward ``lam``.

    The one-armed retirement problem (pull the unknown arm or retire to a known arm paying ``lam``) has the
    same recursion in every state, so a *single* backward DP over the whole triangle of states
    ``(s, f)``, ``s + f <= max_total + depth`` (the truncation level), gives the continuation advantage
    ``A(lam; s, f) = Q_continue - lam / (1 - gamma)`` of every state at once; it is vectorised over a
    grid of ``grid + 1`` values ``lam = 0, 1/grid, ..., 1`` and over each anti-diagonal ``s + f = d``.
    At the truncation level the arm is valued ``max(mu, lam) / (1 - gamma)`` (as in
    :func:`gittins_indices`). Unlike :func:`gittins_indices`, truncation is at an *absolute* level: a
    state with ``s + f = d`` is looked ahead ``max_total + depth - d >= depth`` pulls (default ``depth =
    max_total``, i.e. at least the trial length). Each state's index therefore equals
    ``gittins_indices(a0 + s, b0 + f, gamma, horizon=max_total + depth - d)``.

    Index from the grid: ``A`` is decreasing and convex in ``lam`` (a maximum of linear functions, one
    per stopping rule), so between the last grid value with ``A > 0`` and the next one the root is
    bounded above by the chord's root and below by the roots of the tangents at both ends (slopes
    ``-(1 - E[gamma^tau]) / (1 - gamma)``, ``tau`` the retirement time, from a second DP). Refinement:
    states whose bracket is wider than ``refine_tol`` are re-calibrated by vectorised bisection inside
    their bracket with the exact per-state DP (:func:`_continue_advantage`, grouped by level).

    Returns ``(table, width)``, both ``[max_total + 1, max_total + 1]``: ``table[s, f]`` the index of
    ``Beta(a0 + s, b0 + f)`` (the bracket midpoint), ``width[s, f]`` the final certified bracket width;
    NaN where ``s + f > max_total``.
    """
    if not 0.0 < gamma < 1.0:
        raise ConfigError(f"gittins: discount must be in (0, 1), got {gamma}")
    if max_total < 0:
        raise ConfigError(f"gittins: max_total must be >= 0, got {max_total}")
    depth = max(int(max_total if depth is None else depth), 1)
    if grid < 2:
        raise ConfigError(f"gittins: grid must be >= 2, got {grid}")
    top = max_total + depth  # truncation level
    lam = np.linspace(0.0, 1.0, grid + 1)[:, None]  # [G, 1]
    retire = lam / (1.0 - gamma)
    table = np.full((max_total + 1, max_total + 1), np.nan)
    width = np.full((max_total + 1, max_total + 1), np.nan)
    j = np.arange(top + 1, dtype=np.float64)
    mu = (a0 + j) / (a0 + b0 + top)  # [top+1] posterior means on the truncation level
    w = np.maximum(mu[None, :], lam) / (1.0 - gamma)  # [G, d+1] values V(lam; s, f)
    disc = (lam >= mu[None, :]).astype(np.float64)  # E[gamma^tau] from each state (1: retire now)
    for d in range(top - 1, -1, -1):
        s = j[: d + 1]
        mu = (a0 + s) / (a0 + b0 + d)  # [d+1]
        cont = mu + gamma * (mu * w[:, 1 : d + 2] + (1.0 - mu) * w[:, : d + 1])  # [G, d+1]
        dcont = gamma * (mu * disc[:, 1 : d + 2] + (1.0 - mu) * disc[:, : d + 1])
        adv = cont - retire  # [G, d+1]
        if d <= max_total:
            si = np.arange(d + 1)
            table[si, d - si], width[si, d - si] = _bracket(adv, dcont, lam[:, 0], gamma)
        stop = adv <= 0.0
        w = np.where(stop, retire, cont)
        disc = np.where(stop, 1.0, dcont)
    # refinement of wide brackets with the exact per-state calibration DP (same truncation level)
    wide = np.argwhere(width > refine_tol)
    for d in np.unique(wide.sum(axis=1)) if len(wide) else []:
        sel = wide[wide.sum(axis=1) == d]
        s_, f_ = sel[:, 0], sel[:, 1]
        mid = table[s_, f_]
        lo, hi = mid - 0.5 * width[s_, f_], mid + 0.5 * width[s_, f_]
        a, b = a0 + s_, b0 + f_
        while float(np.max(hi - lo)) > refine_tol:
            m = 0.5 * (lo + hi)
            better = _continue_advantage(a, b, m, gamma, top - int(d)) > 0.0
            lo, hi = np.where(better, m, lo), np.where(better, hi, m)
        table[s_, f_], width[s_, f_] = 0.5 * (lo + hi), hi - lo
    return table, width


def _bracket(
    adv: np.ndarray, dcont: np.ndarray, lam: np.ndarray, gamma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Root of ``adv[:, x]`` (decreasing, convex in ``lam``) for every state ``x``: (midpoint, width).

    adv, dcont: ``[G, S]`` continuation advantage and ``E[gamma^tau]`` of continuing; lam: ``[G]``.
    """
    g = len(lam)
    pos = (adv > 0.0).sum(axis=0)  # number of grid values below the root (adv(0) > 0 always)
    i = np.clip(pos - 1, 0, g - 2)
    cols = np.arange(adv.shape[1])
    a_lo, a_hi = adv[i, cols], adv[i + 1, cols]
    l_lo, l_hi = lam[i], lam[i + 1]
    # chord root: upper bound (the convex function lies below its chord)
    denom = a_lo - a_hi
    chord = np.where(denom > 0, l_lo + a_lo * (l_hi - l_lo) / np.where(denom > 0, denom, 1.0), l_hi)
    # tangent roots: lower bounds (the convex function lies above its tangents); slope = -(1-D)/(1-gamma)
    slope_lo = np.maximum((1.0 - dcont[i, cols]) / (1.0 - gamma), 1e-300)
    slope_hi = np.maximum((1.0 - dcont[i + 1, cols]) / (1.0 - gamma), 1e-300)
    low = np.maximum(l_lo + np.maximum(a_lo, 0.0) / slope_lo, l_hi - np.maximum(-a_hi, 0.0) / slope_hi)
    low = np.clip(low, l_lo, l_hi)
    up = np.clip(np.maximum(chord, low), l_lo, l_hi)
    return 0.5 * (low + up), up - low
