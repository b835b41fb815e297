"""The exact Bayes-optimal policy of VariBAD's gridworld, by dynamic programming over the belief on the goal.

Task (Zintgraf et al. 2020, sec. 5.1; :mod:`fastadapt.tasks.rl.gridworld`): an ``N x N`` grid, start cell
``(0, 0)``, goal uniform over the cells other than ``(0,0), (0,1), (1,0), (1,1)`` (21 on the 5x5 grid),
5 actions (stay, up, right, down, left), reward ``+1`` on arriving at / staying on the goal and ``-0.1``
otherwise, episodes of ``H = 15`` steps, a trial (BAMDP episode) of ``E = 4`` episodes with the same goal.
The objective is the expected total (undiscounted) reward of the trial.

Belief. Dynamics are deterministic and the only unknown is the goal; a step onto a cell reveals whether it
is the goal. So the posterior is uniform over the goal cells not yet visited ("not yet ruled out") until the
goal is found, and a point mass afterwards. Once the goal is known the optimal continuation is fixed: go
there by a shortest path and stay (:meth:`Gridworld.optimal_episode_return` per later episode).

Reduction. Until the goal is found every observation is determined by the agent's own actions, so a
(deterministic) Bayes-optimal policy is an open-loop *search plan* ``a_1..a_{EH}`` followed until the goal is
found. If goal ``g`` is first visited at step ``s`` (1-based) of episode ``e`` (0-based), the trial return is

    f(g, e, s) = -0.1 (e H + s - 1) + (H - s + 1) + (E - 1 - e) * opt(g),

and ``-0.1 E H`` if it is never visited. The Bayes-optimal value is ``max_plan (1/|G|) sum_g R(plan, g)``,
i.e. a Bellman recursion on the state (visited-goal set ``m``, position ``p``, time ``k``):

    W_k(m, p) = max_a [ 1[q in G \\ m] f(q, e_k, s_k) + W_{k+1}(m u {q}, q) ],   q = move(p, a),

with ``W_{EH}(m, .) = -0.1 E H (|G| - |m|)`` and the position reset to the start at episode boundaries.
:func:`solve` runs this backward over *all* ``2^|G| x N^2`` states at once with vectorised numpy (exact integer
arithmetic in units of 0.1 reward; about 2^21 x 25 int32 states for the 5x5 grid), then extracts one optimal
plan episode by episode with a sparse forward/backward pass from the stored episode-boundary values, and
finally *simulates* that plan (search, then exploit) in the gymnasium env for every goal to get the exact
expected return of each episode. The simulated total must equal the DP value (checked).

The result is exact: the mean over all |G| goals, not a sample (``se = 0``). Several optimal plans may tie;
their per-episode split may differ while the total is the same.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastadapt.core.errors import ConfigError
from fastadapt.core.types import Row
from fastadapt.tasks.rl.gridworld import GOAL_REWARD, MOVES, STEP_REWARD, Gridworld, GridworldConfig

#: rewards in integer units of 0.1 (exact arithmetic)
_UNIT = 10


def _units(x: float) -> int:
    v = x * _UNIT
    if abs(v - round(v)) > 1e-9:
        raise ConfigError(f"gridworld DP: reward {x} is not a multiple of 0.1")
    return int(round(v))


@dataclass
class BayesOptimalResult:
    """Output of :func:`solve`.

    ``value``: expected trial return of the Bayes-optimal policy; ``episode_means[i]``: expected return of
    episode ``i+1``; ``per_goal[g]``: the returns per episode when the goal is ``g``; ``plan``: the search
    plan ``[E][H]`` action ids (followed until the goal is found); ``wall_s``: seconds.
    """

    value: float
    episode_means: list[float]
    per_goal: dict[tuple[int, int], list[float]]
    plan: list[list[int]]
    wall_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    def rows(self, method: str = "bayes_optimal") -> list[Row]:
        """Rows ``{"episode": i}`` (i = 1..E) and ``{"episodes": E}``; exact (``se = 0``, ``n`` = #goals)."""
        n = len(self.per_goal)
        ex = {"exact": True, "wall_s": round(self.wall_s, 3), "plan": self.plan}
        rows = [Row(method, {"episode": i + 1}, m, 0.0, n, {"exact": True}) for i, m in
                enumerate(self.episode_means)]
        rows.append(Row(method, {"episodes": len(self.episode_means)}, self.value, 0.0, n, ex))
        return rows


class _Grid:
    """Index bookkeeping: cells ``c = x * N + y``; goal bit ``i`` for the i-th goal cell."""

    def __init__(self, dist: Gridworld) -> None:
        n = dist.cfg.num_cells
        self.n = n
        self.cells = n * n
        self.H = dist.cfg.episode_steps
        self.E = dist.cfg.episodes_per_task
        self.goals = [tuple(g) for g in dist.goals]
        self.G = len(self.goals)
        self.bit_of_cell = np.full(self.cells, -1, dtype=np.int64)
        for i, (x, y) in enumerate(self.goals):
            self.bit_of_cell[x * n + y] = i
        self.succ = np.zeros((self.cells, len(MOVES)), dtype=np.int64)  # succ[p, a] = q
        for x in range(n):
            for y in range(n):
                for a, (dx, dy) in enumerate(MOVES):
                    qx, qy = min(max(x + dx, 0), n - 1), min(max(y + dy, 0), n - 1)
                    self.succ[x * n + y, a] = qx * n + qy
        self.start = 0
        self.opt = [_units(dist.optimal_episode_return({"goal": g})) for g in self.goals]
        self.step_u, self.goal_u = _units(STEP_REWARD), _units(GOAL_REWARD)

    def prize(self, bit: int, e: int, s: int) -> int:
        """``f(g, e, s)`` in units of 0.1 for goal bit ``bit`` first reached at step ``s`` of episode ``e``."""
        H, E = self.H, self.E
        return self.step_u * (e * H + s - 1) + self.goal_u * (H - s + 1) + (E - 1 - e) * self.opt[bit]

    def never(self) -> int:
        return self.step_u * self.E * self.H


def _backward_step(W: np.ndarray, grid: _Grid, e: int, s: int) -> np.ndarray:
    """One Bellman backup: ``W_{k+1} [cells, 2^G] -> W_k [cells, 2^G]`` for step ``s`` of episode ``e``."""
    G = grid.G
    gain = np.empty_like(W)  # gain[q, m] = reward of stepping onto q with mask m + W_{k+1}[q, m | bit(q)]
    for q in range(grid.cells):
        i = int(grid.bit_of_cell[q])
        if i < 0:
            gain[q] = W[q]
            continue
        v = W[q].reshape(1 << (G - 1 - i), 2, 1 << i)  # [hi, bit i, lo]
        g = gain[q].reshape(1 << (G - 1 - i), 2, 1 << i)
        g[:, 1, :] = v[:, 1, :]
        np.add(v[:, 1, :], grid.prize(i, e, s), out=g[:, 0, :])
    out = np.empty_like(W)
    for p in range(grid.cells):
        qs = sorted(set(int(q) for q in grid.succ[p]))
        np.copyto(out[p], gain[qs[0]])
        for q in qs[1:]:
            np.maximum(out[p], gain[q], out=out[p])
    return out


def _popcount(x: np.ndarray) -> np.ndarray:
    c = np.zeros_like(x)
    y = x.copy()
    while True:
        nz = y != 0
        if not nz.any():
            return c
        c += nz
        y &= y - 1


def _boundary_values(grid: _Grid) -> list[np.ndarray]:
    """``B[e][m]`` = optimal value-to-go at the start of episode ``e`` (at the start cell) with visited set
    ``m`` (units of 0.1, summed over the goals not in ``m``); ``B[E]`` is the terminal value."""
    G, E, H = grid.G, grid.E, grid.H
    masks = np.arange(1 << G, dtype=np.int64)
    terminal = (grid.never() * (G - _popcount(masks))).astype(np.int32)
    B: list[np.ndarray] = [None] * (E + 1)  # type: ignore[list-item]
    B[E] = terminal
    for e in range(E - 1, -1, -1):
        W = np.broadcast_to(B[e + 1], (grid.cells, 1 << G)).copy()  # position resets at the boundary
        for s in range(H, 0, -1):
            W = _backward_step(W, grid, e, s)
        B[e] = W[grid.start].copy()
        del W
    return B


def _episode_plan(grid: _Grid, e: int, mask0: int, B_next: np.ndarray) -> tuple[list[int], int, int]:
    """One optimal walk of episode ``e`` from visited set ``mask0`` given the next boundary values.

    Sparse: enumerate the reachable ``(mask, pos)`` states step by step, back up from ``B_next``, then follow
    the argmax forward. Returns ``(actions [H], mask after the episode, value-to-go from the start)``.
    """
    H = grid.H
    layers: list[np.ndarray] = [np.array([mask0 * grid.cells + grid.start], dtype=np.int64)]
    for _ in range(H):
        cur = layers[-1]
        m, p = cur // grid.cells, cur % grid.cells
        q = grid.succ[p]  # [S, A]
        bit = grid.bit_of_cell[q]
        nm = np.where(bit >= 0, m[:, None] | (np.int64(1) << np.maximum(bit, 0)), m[:, None])
        layers.append(np.unique(nm * grid.cells + q))
    # backward values over the layers
    last = layers[H]
    vals = [None] * (H + 1)
    vals[H] = B_next[last // grid.cells].astype(np.int64)
    choice: list[np.ndarray] = [None] * H  # type: ignore[list-item]
    for s in range(H, 0, -1):  # step s moves layer s-1 -> s
        cur = layers[s - 1]
        m, p = cur // grid.cells, cur % grid.cells
        q = grid.succ[p]
        bit = grid.bit_of_cell[q]
        new = (bit >= 0) & ((m[:, None] >> np.maximum(bit, 0)) & 1 == 0)
        nm = np.where(bit >= 0, m[:, None] | (np.int64(1) << np.maximum(bit, 0)), m[:, None])
        nxt = np.searchsorted(layers[s], nm * grid.cells + q)
        prize = np.zeros(q.shape, dtype=np.int64)
        for i in range(grid.G):
            sel = new & (bit == i)
            prize[sel] = grid.prize(i, e, s)
        tot = prize + vals[s][nxt]
        choice[s - 1] = np.argmax(tot, axis=1)  # first maximiser: ties broken by action order
        vals[s - 1] = tot.max(axis=1)
    # forward extraction
    actions, state = [], 0
    mask = mask0
    for s in range(1, H + 1):
        a = int(choice[s - 1][state])
        actions.append(a)
        p = int(layers[s - 1][state] % grid.cells)
        q = int(grid.succ[p, a])
        b = int(grid.bit_of_cell[q])
        if b >= 0:
            mask |= 1 << b
        state = int(np.searchsorted(layers[s], mask * grid.cells + q))
    return actions, mask, int(vals[0][0])


def simulate_plan(dist: Gridworld, plan: list[list[int]], goal: tuple[int, int]) -> list[float]:
    """Returns per episode of "follow ``plan`` until the goal is found, then exploit" in the gymnasium env."""
    env = dist.make_env()
    known = False
    out = []
    for e, acts in enumerate(plan):
        obs, _ = env.reset(seed=e, options={"task": {"goal": list(goal)}})
        total = 0.0
        for a in acts:
            if known:  # shortest path to the goal (x first, then y), then stay
                x, y = int(obs[0]), int(obs[1])
                if x < goal[0]:
                    a = 2
                elif x > goal[0]:
                    a = 4
                elif y < goal[1]:
                    a = 1
                elif y > goal[1]:
                    a = 3
                else:
                    a = 0
            obs, r, term, trunc, _ = env.step(a)
            total += r
            if r > 0:
                known = True
            if term or trunc:
                break
        out.append(total)
    env.close()
    return out


def solve(cfg: GridworldConfig | Gridworld | None = None) -> BayesOptimalResult:
    """The exact Bayes-optimal value and per-episode returns of the gridworld (see the module docstring)."""
    start = time.perf_counter()
    dist = cfg if isinstance(cfg, Gridworld) else Gridworld(cfg or GridworldConfig())
    grid = _Grid(dist)
    if grid.G > 24:
        raise ConfigError(f"gridworld DP: {grid.G} goal cells need 2^{grid.G} belief states; at most 24 supported")
    B = _boundary_values(grid)
    plan: list[list[int]] = []
    mask = 0
    for e in range(grid.E):
        acts, new_mask, v = _episode_plan(grid, e, mask, B[e + 1])
        if v != int(B[e][mask]):
            raise RuntimeError(f"gridworld DP: sparse pass {v} disagrees with dense value {int(B[e][mask])}")
        plan.append(acts)
        mask = new_mask
    per_goal = {g: simulate_plan(dist, plan, g) for g in grid.goals}
    value = float(B[0][0]) / _UNIT / grid.G
    ep = np.array(list(per_goal.values()), dtype=np.float64)  # [G, E]
    sim_total = float(ep.sum(1).mean())
    if not math.isclose(sim_total, value, abs_tol=1e-6):
        raise RuntimeError(f"gridworld DP: simulated plan returns {sim_total}, DP value {value}")
    return BayesOptimalResult(
        value=value,
        episode_means=[float(x) for x in ep.mean(0)],
        per_goal=per_goal,
        plan=plan,
        wall_s=time.perf_counter() - start,
        extra={"goals": grid.G, "states": int((1 << grid.G) * grid.cells)},
    )


__all__ = ["BayesOptimalResult", "simulate_plan", "solve"]
