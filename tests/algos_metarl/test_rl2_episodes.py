"""RL² evaluation of multi-episode trials: one row per episode of the trial next to the trial total.

A stub task whose reward depends only on the task and on how many times the env was reset gives known
per-episode returns, so the rows are checked against values computed by hand, not by the same code path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from fastadapt.algos.metarl.rl2 import RL2, RL2Config, RL2EvalConfig
from fastadapt.tasks.rl.bandit import BanditDistribution

HORIZON = 3


class _CountingEnv:
    """Batched env whose every step pays ``reset_count + task_value``: episode i of a trial returns
    ``HORIZON * (i + value)`` whatever the agent does."""

    def __init__(self, num_tasks: int) -> None:
        self.num_tasks, self.num_envs = num_tasks, 1
        self.max_episode_steps = HORIZON
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(3)
        self.values = torch.zeros(num_tasks, 1)
        self.resets = 0
        self.t = 0

    def set_tasks(self, tasks: Sequence[float]) -> None:
        self.values = torch.tensor([[float(v)] for v in tasks])
        self.resets = 0

    def reset(self, seed: int | None = None) -> torch.Tensor:
        self.resets += 1
        self.t = 0
        return torch.zeros(self.num_tasks, 1, 2)

    def step(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        self.t += 1
        r = (self.resets - 1) + self.values
        trunc = torch.full((self.num_tasks, 1), self.t >= HORIZON)
        return torch.zeros(self.num_tasks, 1, 2), r, torch.zeros_like(trunc), trunc, {}


class _CountingTasks:
    """Task values 0 (train) or, on the test split, 0 for even and 1 for odd task indices."""

    episodes_per_task = 4

    def sample(self, n: int, seed: int, split: str = "train") -> list[float]:
        return [float(i % 2) if split == "test" else 0.0 for i in range(n)]

    def batched_env(self, num_tasks: int, num_envs: int) -> Any:
        return _CountingEnv(num_tasks)


def _small(**kw: Any) -> RL2Config:
    return RL2Config(**{"trials_per_iter": 16, "hidden": 8, "epochs": 1, "minibatches": 2, **kw})


def test_per_episode_rows_match_known_returns() -> None:
    learner = RL2(_small(), _CountingTasks(), seed=0)
    assert learner.episodes == 4 and learner.trial_len == 4 * HORIZON
    rows = learner.evaluate(RL2EvalConfig(trials=10, batch_trials=4), seed=0)
    assert [r.setting for r in rows] == [{"episodes": 4}] + [{"episode": i} for i in range(1, 5)]
    assert all(r.method == "rl2" and r.n == 10 for r in rows)
    # test values: 0,1,0,1 | 0,1,0,1 | 0,1 -> mean 0.5, sample std sqrt(10/36), in every episode
    se = math.sqrt(10 / 36) * HORIZON / math.sqrt(10)
    for i, r in enumerate(rows[1:]):
        assert r.mean == pytest.approx(HORIZON * (i + 0.5)), (i, r)
        assert r.se == pytest.approx(se)
    total = rows[0]
    assert total.mean == pytest.approx(HORIZON * (0 + 1 + 2 + 3 + 4 * 0.5))
    assert total.se == pytest.approx(4 * se)
    assert total.extra["train_env_steps"] == 0 and "wall_s" in total.extra
    assert rows[1].extra["greedy"] is False


def test_eval_returns_shapes_and_totals() -> None:
    learner = RL2(_small(), _CountingTasks(), seed=0)
    tot, per_ep = learner.eval_returns(RL2EvalConfig(trials=7, batch_trials=3), seed=1)
    assert tot.shape == (7,) and per_ep.shape == (7, 4) and tot.dtype == per_ep.dtype == torch.float64
    assert torch.allclose(per_ep.sum(1), tot)
    assert torch.equal(per_ep[:, 2] - per_ep[:, 1], torch.full((7,), float(HORIZON), dtype=torch.float64))


def test_single_episode_trials_keep_one_row() -> None:
    """Bandit (and tabular-MDP) trials are one env episode: exactly the one total row, as before."""
    dist = BanditDistribution(arms=3, pulls=4)
    rows = RL2(_small(), dist, seed=0).evaluate(RL2EvalConfig(trials=50), seed=0)
    assert len(rows) == 1 and rows[0].setting == {"arms": 3, "pulls": 4}
    two = RL2(_small(episodes_per_trial=2), dist, seed=0).evaluate(RL2EvalConfig(trials=50), seed=0)
    assert [r.setting for r in two] == [{"arms": 3, "pulls": 4}, {"episode": 1}, {"episode": 2}]
    assert two[1].mean + two[2].mean == pytest.approx(two[0].mean)


def test_gridworld_rows() -> None:
    from fastadapt.tasks.rl.gridworld import Gridworld

    learner = RL2(_small(), Gridworld(), seed=0)
    rows = learner.evaluate(RL2EvalConfig(trials=40, batch_trials=40), seed=0)
    total = {"episodes": 4, "horizon": 15}
    assert [r.setting for r in rows] == [total] + [{"episode": i} for i in range(1, 5)]
    assert sum(r.mean for r in rows[1:]) == pytest.approx(rows[0].mean)
    for r in rows[1:]:
        assert -1.5 - 1e-6 <= r.mean <= 15.0 and r.se >= 0.0  # 15 steps of -0.1 .. +1 per episode
