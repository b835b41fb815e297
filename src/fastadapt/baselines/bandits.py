"""Non-learned baselines for Bernoulli bandits (the reference columns of RL² Table 1, Duan et al. 2016).

Every policy is simulated for all trials at once with numpy (arrays ``[trials, arms]``), following the
conventions of the RL² paper's evaluation code (florensacc/rllab-curriculum,
``sandbox/rocky/neural_learner``):

- counts start from Beta(1, 1) pseudo-counts: the *greedy index* of an arm is ``(1 + s) / (2 + m)``
  (``s`` successes in ``m`` pulls); ties go to the lowest arm index (``argmax``);
- **ucb1**: greedy index ``+ c * sqrt(2 ln t / (2 + m))`` with ``t`` counted from 0 (at ``t = 0`` the
  bonus is undefined and the first arm is pulled, at ``t = 1`` the bonus is 0); ``c`` tuned over
  ``{0, 0.1, ..., 1}``;
- **eps_greedy**: a uniformly random arm with probability ``eps``, else greedy; ``eps`` in ``{0, ..., 1}``;
- **greedy**, **random** (uniform arm);
- **thompson**: one draw from each arm's ``Beta(1 + s, 1 + f)`` posterior, pull the argmax;
- **ots** ("optimistic" Thompson sampling as the RL² code defines it): draw ``samples`` joint posterior
  samples and act on the one with the highest posterior density; ``samples`` in ``1..20``;
- **gittins**: the Gittins index of each arm's ``Beta(1 + s, 1 + f)`` posterior, discount tuned over
  ``{0.9, 0.99, 0.999, 0.9999}``. The whole index table (all ``s + f <= n``) comes from one calibration
  DP per retirement reward over the triangle of states, truncated at the absolute level ``s + f = 2n``
  (every state looks at least ``n`` pulls ahead), indices certified to within ``GITTINS_REFINE_TOL / 2``
  (:func:`fastadapt.baselines.gittins.gittins_table_calibrated`);
- **bayes_optimal**: the exact Bayes-optimal policy for the finite horizon ``n`` and the uniform prior,
  by dynamic programming over posterior states. Arms are exchangeable, so a state is the *multiset* of
  ``(successes, failures)`` of the pulled arms (untouched arms are all alike); the value of the empty
  state is the exact expected total reward (k=5, n=10: 6.660). When the number of states exceeds
  ``max_states`` it raises :class:`NotComputable` instead of approximating.

Rewards use common random numbers across methods: the reward of pull ``t`` in trial ``i`` is
``u[i, t] < p[i, a_t]`` with one uniform tape ``u [trials, n]`` per (seed, arms, pulls). Parameters are
tuned on *separate* tuning trials (split "train"), then the chosen value is evaluated on the evaluation
trials (split "test"); the RL² paper tuned on its evaluation trials.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import xlogy

from fastadapt.baselines.gittins import gittins_table_calibrated
from fastadapt.core.errors import ConfigError
from fastadapt.core.seeding import np_rng
from fastadapt.tasks.rl.bandit import BanditDistribution

__all__ = [
    "BANDIT_METHODS",
    "PARAM_GRIDS",
    "NotComputable",
    "BayesOptimalBandit",
    "simulate",
    "evaluate_bandit_method",
    "BanditResult",
]

BANDIT_METHODS = ("bayes_optimal", "gittins", "ucb1", "thompson", "ots", "eps_greedy", "greedy", "random")

#: method -> (parameter name, grid) as in the RL² evaluation code.
PARAM_GRIDS: dict[str, tuple[str, tuple[float, ...]]] = {
    "ucb1": ("c", tuple(round(0.1 * i, 1) for i in range(11))),
    "eps_greedy": ("epsilon", tuple(round(0.1 * i, 1) for i in range(11))),
    "ots": ("samples", tuple(float(i) for i in range(1, 21))),
    "gittins": ("discount", (0.9, 0.99, 0.999, 0.9999)),
}


class NotComputable(Exception):
    """An exact baseline that cannot be computed for this setting (the message says why)."""


# ------------------------------------------------------------------------------------ Bayes-optimal
def count_posterior_states(arms: int, pulls: int, cap: int | None = None) -> int:
    """Number of multiset states the Bayes-optimal DP visits (states with 1..pulls-1 pulls + the root).

    A state is a multiset of at most ``arms`` pairs ``(s, f)`` with ``s + f >= 1``; a pair with ``m``
    pulls has ``m + 1`` kinds. Counted with a generating-function DP over (total pulls, parts), adding
    the kinds of size ``m = 1, 2, ...`` in turn. The partial counts only grow, so with ``cap`` the count
    stops as soon as it exceeds ``cap`` and that partial count (a lower bound ``> cap``) is returned
    (the full count costs O(pulls^3 arms) big-integer operations: minutes for n = 500).
    """
    # ways[t][j]: multisets with total t and j parts
    ways = np.zeros((pulls + 1, arms + 1), dtype=object)
    ways[0, 0] = 1

    def total() -> int:
        return int(sum(ways[t, j] for t in range(pulls) for j in range(arms + 1)))

    for m in range(1, pulls):  # parts of size >= pulls never occur in states with < pulls pulls
        for _kind in range(m + 1):  # each kind of size m can be used any number of times
            for t in range(m, pulls + 1):
                for j in range(1, arms + 1):
                    ways[t, j] += ways[t - m, j - 1]
        if cap is not None and total() > cap:
            return total()
    return total()


class BayesOptimalBandit:
    """Exact Bayes-optimal play of a k-armed Bernoulli bandit with uniform priors over ``n`` pulls.

    ``value`` is the exact expected total reward; ``q_values(state)`` the value of each distinct arm kind
    in a state (a sorted tuple of ``(s, f)`` pairs of the pulled arms).
    """

    def __init__(self, arms: int, pulls: int, max_states: int = 2_000_000) -> None:
        self.arms, self.pulls = int(arms), int(pulls)
        n_states = count_posterior_states(self.arms, self.pulls, cap=max_states)
        if n_states > max_states:
            raise NotComputable(
                f"Bayes-optimal DP for k={arms}, n={pulls} needs more than {n_states:.3g} posterior states "
                f"(limit {max_states:.3g}); not computed (no approximation is substituted)"
            )
        self.n_states = n_states
        self._memo: dict[tuple[tuple[int, int], ...], float] = {}
        self.value = self._v((), self.pulls)

    @staticmethod
    def _succ(
        state: tuple[tuple[int, int], ...], pair: tuple[int, int], new: tuple[int, int]
    ) -> tuple[tuple[int, int], ...]:
        lst = list(state)
        if pair != (0, 0):
            lst.remove(pair)
        lst.append(new)
        return tuple(sorted(lst))

    def _options(self, state: tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
        opts = sorted(set(state))
        if len(state) < self.arms:
            opts.insert(0, (0, 0))
        return opts

    def _q(self, state: tuple[tuple[int, int], ...], pair: tuple[int, int], r: int) -> float:
        s, f = pair
        p = (s + 1) / (s + f + 2)
        win = self._v(self._succ(state, pair, (s + 1, f)), r - 1)
        lose = self._v(self._succ(state, pair, (s, f + 1)), r - 1)
        return p * (1.0 + win) + (1.0 - p) * lose

    def _v(self, state: tuple[tuple[int, int], ...], r: int) -> float:
        if r == 0:
            return 0.0
        v = self._memo.get(state)
        if v is None:
            v = max(self._q(state, pair, r) for pair in self._options(state))
            self._memo[state] = v
        return v

    def act(self, counts: np.ndarray) -> int:
        """Bayes-optimal arm for per-arm ``counts [arms, 2]`` (successes, failures); lowest index on ties."""
        pairs = [(int(s), int(f)) for s, f in counts]
        state = tuple(sorted(p for p in pairs if p != (0, 0)))
        r = self.pulls - sum(s + f for s, f in pairs)
        best_pair, best_q = None, -math.inf
        for pair in self._options(state):
            q = self._q(state, pair, r)
            if q > best_q + 1e-12:
                best_pair, best_q = pair, q
        return pairs.index(best_pair)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------- policies
#: largest trial length for which the Gittins index table is built (the calibration DP costs
#: ``GITTINS_GRID * (2 n)^2 / 2`` state updates per discount: ~5 s of CPU for n = 500)
GITTINS_MAX_PULLS = 1000
#: retirement-reward grid and refinement tolerance of the Gittins calibration
#: (:func:`fastadapt.baselines.gittins.gittins_table_calibrated`); every index is certified to within
#: ``GITTINS_REFINE_TOL / 2``
GITTINS_GRID = 1024
GITTINS_REFINE_TOL = 5e-4


@functools.lru_cache(maxsize=16)
def _gittins_table_cached(pulls: int, gamma: float) -> tuple[np.ndarray, float]:
    """(index table ``[n+1, n+1]``, its largest certified bracket width) for trial length ``n``."""
    if pulls > GITTINS_MAX_PULLS:
        raise NotComputable(
            f"Gittins index table for n={pulls} needs a calibration DP over {(2 * pulls + 1) * (pulls + 1)} "
            f"states per retirement reward (limit n <= {GITTINS_MAX_PULLS}); not computed"
        )
    table, width = gittins_table_calibrated(
        pulls, gamma, depth=max(pulls, 1), grid=GITTINS_GRID, refine_tol=GITTINS_REFINE_TOL
    )
    return table, float(np.nanmax(width))


Chooser = Callable[[int, np.ndarray, np.ndarray], np.ndarray]


def _greedy_index(s: np.ndarray, m: np.ndarray) -> np.ndarray:
    return (1.0 + s) / (2.0 + m)


#: UCB1 conventions (``ucb_choose``); "rl2" is the RL² evaluation code's and the default everywhere.
UCB_VARIANTS = ("rl2", "t_from_1", "classic")


def ucb_choose(t: int, s: np.ndarray, m: np.ndarray, c: float, variant: str = "rl2") -> np.ndarray:
    """UCB1 arm choice at step ``t`` (0-based) from successes ``s`` and pulls ``m`` (``[trials, k]``).

    - ``"rl2"`` (RL² code): ``(1+s)/(2+m) + c sqrt(2 ln t / (2+m))``; at ``t = 0`` the index is NaN for
      every arm and ``argmax`` returns arm 0; ties to the lowest arm.
    - ``"t_from_1"``: the same with ``ln(t + 1)`` (time counted from 1; a diagnostic variant).
    - ``"classic"`` (Auer et al. 2002): pull each arm once, then ``s/m + c sqrt(2 ln t / m)``.
    Returns actions ``[trials]``.
    """
    if variant == "rl2":
        if t == 0:  # ln 0: the RL² code's index is NaN everywhere and argmax picks arm 0
            return np.zeros(s.shape[0], dtype=np.int64)
        return np.argmax(_greedy_index(s, m) + c * np.sqrt(2.0 * math.log(t) / (2.0 + m)), axis=1)
    if variant == "t_from_1":
        return np.argmax(_greedy_index(s, m) + c * np.sqrt(2.0 * math.log(t + 1) / (2.0 + m)), axis=1)
    if variant == "classic":
        k = s.shape[1]
        if t < k:
            return np.full(s.shape[0], t, dtype=np.int64)
        return np.argmax(s / m + c * np.sqrt(2.0 * math.log(t) / m), axis=1)
    raise ConfigError(f"ucb variant {variant!r} unknown; allowed: {', '.join(UCB_VARIANTS)}")


def _make_chooser(
    method: str, arms: int, pulls: int, param: float | None, rng: np.random.Generator
) -> Chooser:
    """``choose(t, s [trials, k], m [trials, k]) -> actions [trials]``."""
    if method == "random":
        return lambda t, s, m: rng.integers(0, arms, size=s.shape[0])
    if method == "greedy":
        return lambda t, s, m: np.argmax(_greedy_index(s, m), axis=1)
    if method == "eps_greedy":
        eps = float(param if param is not None else 0.1)

        def eps_greedy(t: int, s: np.ndarray, m: np.ndarray) -> np.ndarray:
            explore = rng.random(s.shape[0]) < eps
            rand = rng.integers(0, arms, size=s.shape[0])
            return np.where(explore, rand, np.argmax(_greedy_index(s, m), axis=1))

        return eps_greedy
    if method == "ucb1":
        c = float(param if param is not None else 1.0)
        return lambda t, s, m: ucb_choose(t, s, m, c)
    if method == "thompson":
        return lambda t, s, m: np.argmax(rng.beta(1.0 + s, 1.0 + m - s), axis=1)
    if method == "ots":
        n_samples = int(param if param is not None else 1)

        def ots(t: int, s: np.ndarray, m: np.ndarray) -> np.ndarray:
            a, b = 1.0 + s, 1.0 + m - s
            if n_samples == 1:  # one joint draw: nothing to compare (= Thompson sampling)
                return np.argmax(rng.beta(a, b), axis=1)
            x = rng.beta(a, b, size=(n_samples, *s.shape))  # [samples, trials, k]
            # joint log-density up to the per-trial constant (the Beta normalisers)
            logp = (xlogy(a - 1.0, x) + xlogy(b - 1.0, 1.0 - x)).sum(-1)  # [samples, trials]
            best = np.argmax(logp, axis=0)
            chosen = np.take_along_axis(x, best[None, :, None], axis=0)[0]
            return np.argmax(chosen, axis=1)

        return ots
    if method == "gittins":
        gamma = float(param if param is not None else 0.99)
        table = _gittins_table_cached(pulls, gamma)[0]

        def gittins(t: int, s: np.ndarray, m: np.ndarray) -> np.ndarray:
            si = s.astype(np.int64)
            return np.argmax(table[si, m.astype(np.int64) - si], axis=1)

        return gittins
    if method == "bayes_optimal":
        bo = BayesOptimalBandit(arms, pulls)

        def bayes(t: int, s: np.ndarray, m: np.ndarray) -> np.ndarray:
            counts = np.stack([s, m - s], axis=-1).astype(np.int64)
            return np.array([bo.act(c) for c in counts], dtype=np.int64)

        return bayes
    raise ConfigError(f"methods: unknown bandit method {method!r}; allowed: {', '.join(BANDIT_METHODS)}")


def simulate(
    method: str,
    means: np.ndarray,
    pulls: int,
    reward_uniforms: np.ndarray,
    rng: np.random.Generator,
    param: float | None = None,
) -> np.ndarray:
    """Play ``method`` on every trial; returns total rewards ``[trials]``.

    means: ``[trials, arms]`` Bernoulli means; reward_uniforms: ``[trials, pulls]`` (reward of pull t is
    ``u[:, t] < p[a_t]``); rng: the policy's own randomness.
    """
    trials, arms = means.shape
    choose = _make_chooser(method, arms, pulls, param, rng)
    s = np.zeros((trials, arms))
    m = np.zeros((trials, arms))
    total = np.zeros(trials)
    rows = np.arange(trials)
    for t in range(pulls):
        a = choose(t, s, m)
        r = (reward_uniforms[:, t] < means[rows, a]).astype(np.float64)
        s[rows, a] += r
        m[rows, a] += 1.0
        total += r
    return total


@dataclass
class BanditResult:
    """Mean total reward over ``n`` trials, ``se = std / sqrt(n - 1)`` (RL² code), tuned parameter."""

    method: str
    arms: int
    pulls: int
    mean: float
    se: float
    n: int
    wall_s: float
    tuned: dict[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    tuning: list[dict[str, float]] = field(default_factory=list)


def _trials(arms: int, pulls: int, trials: int, seed: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    means = BanditDistribution(arms, pulls).sample_means(trials, seed, split)
    u = np_rng(seed, "bandit-reward-tape", split, arms, pulls).random((trials, pulls))
    return means, u


def _stats(x: np.ndarray) -> tuple[float, float]:
    n = len(x)
    return float(x.mean()), float(x.std() / math.sqrt(max(n - 1, 1)))


def evaluate_bandit_method(
    method: str,
    arms: int,
    pulls: int,
    trials: int = 1000,
    seed: int = 0,
    grid: Sequence[float] | None = None,
    tune_trials: int | None = None,
) -> BanditResult:
    """Evaluate one method on one ``(arms, pulls)`` cell.

    Methods with a parameter are first run for every value of ``grid`` (default ``PARAM_GRIDS``) on
    ``tune_trials`` separate trials (default: ``trials``); the best value is then evaluated on the
    evaluation trials. Raises
    :class:`NotComputable` for Bayes-optimal settings too large to solve exactly and for Gittins
    above ``GITTINS_MAX_PULLS``.
    """
    if method not in BANDIT_METHODS:
        raise ConfigError(f"methods: unknown bandit method {method!r}; allowed: {', '.join(BANDIT_METHODS)}")
    t0 = time.perf_counter()
    tuned: dict[str, float] | None = None
    tuning: list[dict[str, float]] = []
    extra: dict[str, Any] = {}
    param: float | None = None
    if method == "gittins" and pulls > GITTINS_MAX_PULLS:
        _gittins_table_cached(pulls, 0.9)  # raises NotComputable before any tuning work
    if method in PARAM_GRIDS:
        name, default_grid = PARAM_GRIDS[method]
        values = tuple(grid) if grid is not None else default_grid
        tm, tu = _trials(arms, pulls, tune_trials or trials, seed, "train")
        best = -math.inf
        for i, v in enumerate(values):
            rng = np_rng(seed, "bandit-policy-tune", method, i, arms, pulls)
            mean_v, se_v = _stats(simulate(method, tm, pulls, tu, rng, v))
            tuning.append({name: float(v), "mean": mean_v, "se": se_v})
            if mean_v > best:
                best, param = mean_v, float(v)
        tuned = {name: int(param) if name == "samples" else param}  # type: ignore[arg-type]
    if method == "gittins":
        extra["index_max_bracket_width"] = _gittins_table_cached(pulls, float(param))[1]  # type: ignore[arg-type]
        extra["truncation_level"] = 2 * max(pulls, 1)
    if method == "bayes_optimal":
        bo = BayesOptimalBandit(arms, pulls)
        extra["exact_value"] = bo.value
        extra["posterior_states"] = bo.n_states
    means, u = _trials(arms, pulls, trials, seed, "test")
    rng = np_rng(seed, "bandit-policy", method, arms, pulls)
    totals = simulate(method, means, pulls, u, rng, param)
    mean, se = _stats(totals)
    return BanditResult(
        method, arms, pulls, mean, se, trials, time.perf_counter() - t0, tuned, extra, tuning
    )
