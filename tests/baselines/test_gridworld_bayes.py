"""Exact Bayes-optimal gridworld policy (baselines/gridworld.py) against brute-force belief-MDP expectimax."""

from __future__ import annotations

import math
from functools import lru_cache

import pytest

from fastadapt.baselines.gridworld import simulate_plan, solve
from fastadapt.tasks.rl.gridworld import GOAL_REWARD, MOVES, STEP_REWARD, Gridworld, GridworldConfig


def _brute_force(cfg: GridworldConfig) -> float:
    """Expectimax over the belief MDP with every action at every step (no open-loop reduction, no closed
    form): state = (set of goals still possible, position, time); the goal is revealed by the reward.
    Returns the Bayes-optimal expected trial return."""
    dist = Gridworld(cfg)
    n, H, E = cfg.num_cells, cfg.episode_steps, cfg.episodes_per_task
    goals = frozenset(dist.goals)

    def move(p: tuple[int, int], a: int) -> tuple[int, int]:
        dx, dy = MOVES[a]
        return (min(max(p[0] + dx, 0), n - 1), min(max(p[1] + dy, 0), n - 1))

    @lru_cache(maxsize=None)
    def known(goal: tuple[int, int], p: tuple[int, int], k: int) -> float:
        if k == E * H:
            return 0.0
        if k % H == 0:
            p = (0, 0)
        best = -math.inf
        for a in range(len(MOVES)):
            q = move(p, a)
            r = GOAL_REWARD if q == goal else STEP_REWARD
            best = max(best, r + known(goal, q, k + 1))
        return best

    @lru_cache(maxsize=None)
    def value(belief: frozenset, p: tuple[int, int], k: int) -> float:
        if k == E * H:
            return 0.0
        if k % H == 0:
            p = (0, 0)
        best = -math.inf
        for a in range(len(MOVES)):
            q = move(p, a)
            if q in belief:
                pf = 1.0 / len(belief)
                v = pf * (GOAL_REWARD + known(q, q, k + 1))
                if len(belief) > 1:
                    v += (1 - pf) * (STEP_REWARD + value(belief - {q}, q, k + 1))
            else:
                v = STEP_REWARD + value(belief, q, k + 1)
            best = max(best, v)
        return best

    return value(goals, (0, 0), 0)


@pytest.mark.parametrize(
    "cells,steps,episodes",
    [(3, 3, 2), (3, 4, 3), (4, 4, 2), (4, 6, 3), (3, 2, 4)],
)
def test_dp_matches_brute_force(cells: int, steps: int, episodes: int) -> None:
    cfg = GridworldConfig(num_cells=cells, episode_steps=steps, episodes_per_task=episodes)
    res = solve(cfg)
    bf = _brute_force(cfg)
    assert res.value == pytest.approx(bf, abs=1e-9)
    # the per-episode returns are exact expectations over all goals and add up to the value
    assert len(res.episode_means) == episodes
    assert sum(res.episode_means) == pytest.approx(res.value, abs=1e-9)
    assert len(res.per_goal) == len(Gridworld(cfg).goals)


def test_plan_simulation_and_rows() -> None:
    cfg = GridworldConfig(num_cells=4, episode_steps=6, episodes_per_task=3)
    dist = Gridworld(cfg)
    res = solve(cfg)
    assert len(res.plan) == 3 and all(len(p) == 6 for p in res.plan)
    # once the goal is known, every later episode is the known-goal optimum
    for g, rets in res.per_goal.items():
        assert rets == simulate_plan(dist, res.plan, g)
        opt = dist.optimal_episode_return({"goal": g})
        assert all(r <= opt + 1e-9 for r in rets)
        if any(r > STEP_REWARD * 6 + 1e-9 for r in rets[:-1]):  # found before the last episode
            assert rets[-1] == pytest.approx(opt, abs=1e-9)
    # learning happens: later episodes are better on average
    assert res.episode_means[0] < res.episode_means[-1]
    rows = res.rows()
    assert [r.setting for r in rows] == [{"episode": 1}, {"episode": 2}, {"episode": 3}, {"episodes": 3}]
    assert all(r.se == 0.0 and r.n == len(dist.goals) for r in rows)
    assert rows[-1].mean == pytest.approx(res.value)


def test_bayes_optimal_beats_fixed_plans() -> None:
    """Sanity: no random open-loop search plan scores above the DP value (it is a maximum)."""
    import numpy as np

    cfg = GridworldConfig(num_cells=3, episode_steps=4, episodes_per_task=2)
    dist = Gridworld(cfg)
    res = solve(cfg)
    rng = np.random.default_rng(0)
    for _ in range(200):
        plan = rng.integers(0, 5, size=(2, 4)).tolist()
        tot = np.mean([sum(simulate_plan(dist, plan, g)) for g in dist.goals])
        assert tot <= res.value + 1e-9


@pytest.mark.slow
def test_full_5x5_gridworld_solution_is_consistent() -> None:
    """The paper's grid (2^21 belief sets x 25 cells, ~30 CPU-s, ~1 GB): the plan's simulated returns add up to
    the DP value, later episodes are at the known-goal optimum once the goal has been found."""
    dist = Gridworld(GridworldConfig())
    res = solve(dist)
    assert len(res.per_goal) == 21 and len(res.episode_means) == 4
    assert sum(res.episode_means) == pytest.approx(res.value, abs=1e-9)
    mean_opt = sum(dist.optimal_episode_return({"goal": g}) for g in dist.goals) / 21
    assert res.episode_means[0] < res.episode_means[1] <= mean_opt + 1e-9
    assert res.episode_means[-1] <= mean_opt + 1e-9  # nobody beats knowing the goal
