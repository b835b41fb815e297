"""Non-learned baselines for random tabular MDPs (the reference columns of RL² Table 2, Duan et al. 2016).

All agents are simulated for every trial at once with numpy (``[trials, S, A, S]`` count arrays, batched
finite-horizon value iteration). Their definitions follow I. Osband's TabulaRL
(``src/finite_tabular_agents.py``), which the RL² paper used for this table; the policy is recomputed at
the start of every episode and actions maximise ``Q[h, s, .]`` with ties broken uniformly at random:

- **psrl** (Osband et al. 2013): sample ``P ~ Dirichlet(alpha0 + counts)`` and
  ``R ~ N(mu_post, 1/tau_post)`` from the posterior (prior ``alpha0=1, mu0=0, tau0=1``, noise precision
  ``tau=1``), solve it by value iteration, act greedily.
- **opsrl**: ``samples`` posterior MDPs, act on the elementwise maximum of their Q-values; tuned over
  ``{1, 2, 3, 5, 7, 10, 15, 20}`` (the paper: every value in 1..20).
- **ucrl2** (Jaksch et al. 2010), finite-horizon version with extended value iteration: near-empirical
  estimates (``alpha0=1e-5, tau0=1e-4``), reward slack ``c sqrt(4 ln(2SA(ep+1)/0.05) / max(n,1))``,
  L1 transition slack ``c sqrt(4 S ln(2SA(ep+1)/0.05) / max(n,1))``; ``c`` tuned over 21 log-spaced values
  in ``[1e-4, 1]``.
- **beb** (Kolter & Ng 2009) as in TabulaRL: MAP MDP plus reward bonus ``1/(tau_post+1)`` and a transition
  bonus ``beta H / (1 + n_sa + S alpha0)`` with ``beta = 2 H² c`` accumulated over the remaining steps;
  ``c`` tuned on the same grid as UCRL2.
- **eps_greedy** / **greedy**: value iteration on the MAP MDP (``alpha0 = tau0 = 1e-4``), random action
  with probability ``epsilon`` (tuned over ``{0.1, ..., 1}``; greedy is ``epsilon = 0``).
- **random**: uniform actions (expected total exactly ``episodes * horizon * E[R] = 10 n``).
- **oracle**: value iteration on the *true* MDP (an upper line, not a learner).

Common random numbers: next states and reward noise come from one tape per (seed, split, episodes), shared
by all methods. Parameters are tuned on separate tuning trials (split "train", ``tune_trials`` of them),
then the chosen value is evaluated on the evaluation trials (split "test").
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastadapt.core.errors import ConfigError
from fastadapt.core.seeding import np_rng
from fastadapt.tasks.rl.tabular_mdp import TabularMDPDistribution

__all__ = [
    "MDP_METHODS",
    "MDP_PARAM_GRIDS",
    "value_iteration",
    "simulate_mdp",
    "evaluate_mdp_method",
    "MDPResult",
]

MDP_METHODS = ("psrl", "opsrl", "ucrl2", "beb", "eps_greedy", "greedy", "random", "oracle")

_SCALES = tuple(float(x) for x in np.logspace(-4, 0, 21))
MDP_PARAM_GRIDS: dict[str, tuple[str, tuple[float, ...]]] = {
    # the paper tuned 1..20; a subset keeps the tuning cost (sum of the samples) 3x lower
    "opsrl": ("samples", (1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 15.0, 20.0)),
    "ucrl2": ("scaling", _SCALES),
    "beb": ("scaling", _SCALES),
    "eps_greedy": ("epsilon", tuple(round(0.1 * i, 1) for i in range(1, 11))),
}


def value_iteration(
    R: np.ndarray,  # noqa: N803
    P: np.ndarray,  # noqa: N803
    horizon: int,
    step_bonus: np.ndarray | None = None,
) -> np.ndarray:
    """Finite-horizon value iteration for a batch of MDPs.

    R: ``[N, S, A]`` mean rewards; P: ``[N, S, A, S]``; step_bonus: optional ``[N, S, A]`` added to ``Q[h]``
    multiplied by the number of steps remaining after ``h`` (TabulaRL's BEB form). Returns
    ``Q [N, horizon, S, A]`` (``Q[:, h]`` is the value of acting at step ``h`` of the episode).
    """
    N, S, A = R.shape
    Q = np.empty((N, horizon, S, A))
    v = np.zeros((N, S))
    for h in range(horizon - 1, -1, -1):
        q = R + (P.reshape(N, S * A, S) @ v[:, :, None]).reshape(N, S, A)
        if step_bonus is not None:
            q = q + step_bonus * (horizon - 1 - h)
        Q[:, h] = q
        v = q.max(-1)
    return Q


def _extended_vi(
    R: np.ndarray, P: np.ndarray, r_slack: np.ndarray, p_slack: np.ndarray, horizon: int  # noqa: N803
) -> np.ndarray:
    """UCRL2's extended value iteration: optimistic rewards and the most optimistic P in an L1 ball."""
    N, S, A = R.shape
    Q = np.empty((N, horizon, S, A))
    v = np.zeros((N, S))
    r_opt = R + r_slack
    rows = np.arange(N)
    p_flat = P.reshape(N, S * A, S)
    half = (p_slack * 0.5).reshape(N, S * A)
    for h in range(horizon - 1, -1, -1):
        rank = np.argsort(np.argsort(v, axis=1, kind="stable"), axis=1, kind="stable")  # [N, S]
        best = np.argmax(rank, axis=1)
        p_best = p_flat[rows, :, best]  # [N, SA]
        add = np.minimum(half, 1.0 - p_best)  # mass moved onto the best next state
        # mass of the states ranked below each state: before[n, sa, z] = sum_{y: rank y < rank z} p[y]
        lower = (rank[:, :, None] < rank[:, None, :]).astype(np.float64)  # [N, y, z]
        before = p_flat @ lower
        removed = np.clip(add[..., None] - before, 0.0, p_flat)  # taken from the worst states first
        removed[rows, :, best] = 0.0
        p_opt = p_flat - removed
        p_opt[rows, :, best] += add
        q = r_opt + (p_opt @ v[:, :, None]).reshape(N, S, A)
        Q[:, h] = q
        v = q.max(-1)
    return Q


def _argmax_random_ties(q: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``q [N, A]`` -> an argmax per row, uniformly among ties (TabulaRL's ``egreedy``)."""
    ismax = q >= q.max(-1, keepdims=True) - 1e-12
    return np.argmax(ismax * (1.0 + rng.random(q.shape)), axis=-1)


@dataclass
class _Posterior:
    """Sufficient statistics of every trial: counts ``[N, S, A, S]``, reward sums and visits ``[N, S, A]``."""

    counts: np.ndarray
    rsum: np.ndarray
    visits: np.ndarray

    def map_mdp(self, alpha0: float, mu0: float, tau0: float, tau: float = 1.0) -> tuple[np.ndarray, ...]:
        alpha = self.counts + alpha0
        p_hat = alpha / alpha.sum(-1, keepdims=True)
        tau_n = tau0 + self.visits * tau
        mu_n = (mu0 * tau0 + self.rsum * tau) / tau_n
        return mu_n, p_hat, tau_n, alpha

    def sample_mdp(
        self, rng: np.random.Generator, alpha0: float = 1.0, mu0: float = 0.0, tau0: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray]:
        mu_n, _, tau_n, alpha = self.map_mdp(alpha0, mu0, tau0)
        r = mu_n + rng.standard_normal(mu_n.shape) / np.sqrt(tau_n)
        g = rng.standard_gamma(alpha)
        g_sum = g.sum(-1, keepdims=True)
        p = np.where(g_sum > 0, g / np.maximum(g_sum, 1e-300), 1.0 / alpha.shape[-1])
        return r, p


def _policy_q(
    method: str,
    post: _Posterior,
    episode: int,
    horizon: int,
    param: float | None,
    rng: np.random.Generator,
    true_q: np.ndarray | None,
) -> np.ndarray:
    S = post.counts.shape[1]
    A = post.counts.shape[2]
    if method == "oracle":
        assert true_q is not None
        return true_q
    if method == "psrl":
        r, p = post.sample_mdp(rng)
        return value_iteration(r, p, horizon)
    if method == "opsrl":
        k = int(param if param is not None else 10)
        q = None
        for _ in range(k):
            r, p = post.sample_mdp(rng)
            qi = value_iteration(r, p, horizon)
            q = qi if q is None else np.maximum(q, qi)
        assert q is not None
        return q
    if method in ("greedy", "eps_greedy"):
        r, p, _, _ = post.map_mdp(1e-4, 0.0, 1e-4)
        return value_iteration(r, p, horizon)
    if method == "beb":
        c = float(param if param is not None else 1.0)
        r, p, tau_n, alpha = post.map_mdp(1.0, 0.0, 1.0)
        beta = 2.0 * horizon * horizon * c
        r_bonus = 1.0 / (tau_n + 1.0)
        p_bonus = beta * horizon / (1.0 + alpha.sum(-1))
        return value_iteration(r + r_bonus, p, horizon, step_bonus=p_bonus)
    if method == "ucrl2":
        c = float(param if param is not None else 1.0)
        r, p, _, _ = post.map_mdp(1e-5, 0.0, 1e-4)
        n = np.maximum(post.visits, 1.0)
        log_term = math.log(2.0 * S * A * (episode + 1) / 0.05)
        r_slack = c * np.sqrt(4.0 * log_term / n)
        p_slack = c * np.sqrt(4.0 * S * log_term / n)
        return _extended_vi(r, p, r_slack, p_slack, horizon)
    raise ConfigError(f"methods: unknown MDP method {method!r}; allowed: {', '.join(MDP_METHODS)}")


def simulate_mdp(
    method: str,
    P: np.ndarray,  # noqa: N803
    R: np.ndarray,  # noqa: N803
    episodes: int,
    horizon: int,
    u_next: np.ndarray,
    z_reward: np.ndarray,
    rng: np.random.Generator,
    param: float | None = None,
) -> np.ndarray:
    """Run ``method`` on every trial; returns total rewards over all episodes ``[N]``.

    P: ``[N, S, A, S]``, R: ``[N, S, A]``; u_next, z_reward: ``[N, episodes, horizon]`` tapes (uniform for the
    next state by inverse CDF, standard normal reward noise); rng: the agent's own randomness.
    """
    if method not in MDP_METHODS:
        raise ConfigError(f"methods: unknown MDP method {method!r}; allowed: {', '.join(MDP_METHODS)}")
    N, S, A, _ = P.shape
    cdf = np.cumsum(P, axis=-1)
    post = _Posterior(np.zeros((N, S, A, S)), np.zeros((N, S, A)), np.zeros((N, S, A)))
    true_q = value_iteration(R, P, horizon) if method == "oracle" else None
    total = np.zeros(N)
    rows = np.arange(N)
    eps = float(param) if (method == "eps_greedy" and param is not None) else 0.0
    for ep in range(episodes):
        q = None if method == "random" else _policy_q(method, post, ep, horizon, param, rng, true_q)
        s = np.zeros(N, dtype=np.int64)
        for h in range(horizon):
            if q is None:
                a = rng.integers(0, A, size=N)
            else:
                a = _argmax_random_ties(q[rows, h, s], rng)
                if eps > 0.0:
                    explore = rng.random(N) < eps
                    a = np.where(explore, rng.integers(0, A, size=N), a)
            r = R[rows, s, a] + z_reward[:, ep, h]
            nxt = np.minimum((cdf[rows, s, a] < u_next[:, ep, h, None]).sum(-1), S - 1)
            post.counts[rows, s, a, nxt] += 1.0
            post.rsum[rows, s, a] += r
            post.visits[rows, s, a] += 1.0
            total += r
            s = nxt
    return total


@dataclass
class MDPResult:
    """Mean total reward over ``n`` trials, ``se = std / sqrt(n - 1)``, tuned parameter, wall time."""

    method: str
    episodes: int
    mean: float
    se: float
    n: int
    wall_s: float
    tuned: dict[str, float] | None = None
    tuning: list[dict[str, float]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def _trials(
    episodes: int, trials: int, seed: int, split: str, states: int = 10, actions: int = 5, horizon: int = 10
) -> tuple[np.ndarray, ...]:
    dist = TabularMDPDistribution(states, actions, horizon, episodes)
    P, R = dist.sample_arrays(trials, seed, split)
    tape = np_rng(seed, "mdp-tape", split, episodes)
    u = tape.random((trials, episodes, horizon))
    z = tape.standard_normal((trials, episodes, horizon))
    return P, R, u, z


def _stats(x: np.ndarray) -> tuple[float, float]:
    return float(x.mean()), float(x.std() / math.sqrt(max(len(x) - 1, 1)))


def evaluate_mdp_method(
    method: str,
    episodes: int,
    trials: int = 1000,
    seed: int = 0,
    grid: Sequence[float] | None = None,
    tune_trials: int | None = 200,
    horizon: int = 10,
) -> MDPResult:
    """Evaluate one method for one number of episodes (tuning its parameter first, see module doc)."""
    if method not in MDP_METHODS:
        raise ConfigError(f"methods: unknown MDP method {method!r}; allowed: {', '.join(MDP_METHODS)}")
    t0 = time.perf_counter()
    param: float | None = None
    tuned: dict[str, float] | None = None
    tuning: list[dict[str, float]] = []
    if method in MDP_PARAM_GRIDS:
        name, default_grid = MDP_PARAM_GRIDS[method]
        values = tuple(grid) if grid is not None else default_grid
        P, R, u, z = _trials(episodes, tune_trials or trials, seed, "train", horizon=horizon)
        best = -math.inf
        for i, v in enumerate(values):
            rng = np_rng(seed, "mdp-policy-tune", method, i, episodes)
            m, se = _stats(simulate_mdp(method, P, R, episodes, horizon, u, z, rng, v))
            tuning.append({name: float(v), "mean": m, "se": se})
            if m > best:
                best, param = m, float(v)
        tuned = {name: int(param) if name == "samples" else param}  # type: ignore[arg-type]
    P, R, u, z = _trials(episodes, trials, seed, "test", horizon=horizon)
    rng = np_rng(seed, "mdp-policy", method, episodes)
    mean, se = _stats(simulate_mdp(method, P, R, episodes, horizon, u, z, rng, param))
    return MDPResult(method, episodes, mean, se, trials, time.perf_counter() - t0, tuned, tuning)
