"""Tabular Q-learning (Watkins & Dayan 1992) and SARSA (Rummery & Niranjan 1994; Sutton & Barto 2018,
sections 6.4-6.5) for gymnasium envs with ``Discrete`` observations and actions (FrozenLake-v1,
CliffWalking-v1, or any such env id).

Both act epsilon-greedily (epsilon decays linearly from ``eps_start`` to ``eps_end`` over
``exploration_steps`` env steps) and update after every step with step size
``alpha_t(s, a) = alpha / n(s, a)^alpha_power`` (``alpha_power = 0``: constant; in (0.5, 1] the
Robbins-Monro conditions hold, so Q-learning converges to ``Q*`` when every pair is visited infinitely often):

- Q-learning: ``Q(s,a) += alpha_t (r + gamma (1 - terminated) max_a' Q(s',a') - Q(s,a))``;
- SARSA: ``Q(s,a) += alpha_t (r + gamma (1 - terminated) Q(s',a') - Q(s,a))`` with ``a'`` the action taken
  next (converges to ``Q*`` as epsilon -> 0, Singh et al. 2000).

Time-limit truncations bootstrap like non-terminal steps. :func:`q_value_iteration` computes ``Q*`` from a
gymnasium toy-text transition table ``P[s][a] = [(prob, next_state, reward, terminated), ...]`` for tests.

Metrics: ``env_steps``, ``episode_return`` (mean of the last 20 episodes), ``epsilon``, ``q_mean``.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from pydantic import Field

from fastadapt.algos.rl.common import (
    EnvPool,
    EpisodeStats,
    RLEvalConfig,
    encode_obs,
    evaluate_policy,
    linear_schedule,
    load_section,
    require_gym_task,
    returns_row,
)
from fastadapt.core.config import Section
from fastadapt.core.errors import CheckpointError, ConfigError, NumericError
from fastadapt.core.registry import register_algo
from fastadapt.core.seeding import get_state, np_rng, set_state
from fastadapt.core.types import Row


class TabularConfig(Section):
    """The ``algo:`` section of tabular Q-learning and SARSA."""

    alpha: float = Field(0.1, gt=0, le=1, description="step size (scale)")
    alpha_power: float = Field(0.0, ge=0, le=1, description="step size alpha / n(s,a)^alpha_power")
    gamma: float = Field(0.99, ge=0, le=1)
    eps_start: float = Field(1.0, ge=0, le=1)
    eps_end: float = Field(0.05, ge=0, le=1)
    exploration_steps: int = Field(10_000, ge=1)
    steps_per_iter: int = Field(1000, ge=1, description="env steps per train_step")
    init_q: float = Field(0.0, description="initial Q values")


def q_value_iteration(
    P: dict[int, dict[int, list[tuple[float, int, float, bool]]]],
    n_states: int,
    n_actions: int,
    gamma: float,
    tol: float = 1e-12,
    max_iters: int = 100_000,
) -> np.ndarray:
    """Optimal action values ``Q* [S, A]`` of a finite MDP by value iteration (Bellman 1957).

    ``P[s][a]`` lists ``(prob, next_state, reward, terminated)`` as in gymnasium's toy-text envs.
    """
    q = np.zeros((n_states, n_actions))
    for _ in range(max_iters):
        v = q.max(axis=1)
        new = np.zeros_like(q)
        for s in range(n_states):
            for a in range(n_actions):
                new[s, a] = sum(p * (r + (0.0 if term else gamma * v[s2])) for p, s2, r, term in P[s][a])
        if np.max(np.abs(new - q)) < tol:
            return new
        q = new
    return q


class TabularLearner:
    """Q-learning (``sarsa=False``) or SARSA (``sarsa=True``) on one env (see the module docstring)."""

    key_metric = "episode_return"

    def __init__(self, cfg: TabularConfig, task: Any, seed: int, sarsa: bool) -> None:
        self.name = "sarsa" if sarsa else "q_learning"
        self.cfg, self.sarsa, self.seed = cfg, sarsa, seed
        self.task = require_gym_task(task, self.name)
        self.env_id = str(getattr(task, "env_id", "env"))
        if not isinstance(task.observation_space, gym.spaces.Discrete) or not isinstance(
            task.action_space, gym.spaces.Discrete
        ):
            raise ConfigError(
                f"task.env_id: {self.name} needs Discrete observations and actions ({self.env_id} has "
                f"{type(task.observation_space).__name__}/{type(task.action_space).__name__})"
            )
        self.n_states, self.n_actions = int(task.observation_space.n), int(task.action_space.n)
        self.s0 = int(task.observation_space.start)
        self.q = np.full((self.n_states, self.n_actions), float(cfg.init_q))
        self.visits = np.zeros((self.n_states, self.n_actions), dtype=np.int64)
        self.rng = np_rng(seed, "explore")
        self.pool = EnvPool(task.make, 1, seed, "train-envs")
        self.stats = EpisodeStats()
        self.env_steps = 0
        self.pending: int | None = None  # SARSA: the action already chosen for the current state

    def epsilon(self) -> float:
        c = self.cfg
        return linear_schedule(c.eps_start, c.eps_end, self.env_steps / c.exploration_steps)

    def _policy(self, s: int) -> int:
        if self.rng.random() < self.epsilon():
            return int(self.rng.integers(self.n_actions))
        return int(np.argmax(self.q[s]))

    def train_step(self, iteration: int) -> dict[str, float]:
        cfg = self.cfg
        if not self.pool.started:
            self.pool.reset()
            self.pending = None
        for _ in range(cfg.steps_per_iter):
            s = int(self.pool.obs[0]) - self.s0
            a = self.pending if (self.sarsa and self.pending is not None) else self._policy(s)
            res = self.pool.step([a])
            r, term = float(res.rewards[0]), bool(res.terminated[0])
            ended = term or bool(res.truncated[0])
            s2 = int(res.final_obs[0]) - self.s0
            if self.sarsa:
                a2 = self._policy(s2)
                nxt = self.q[s2, a2]
                self.pending = None if ended else a2
            else:
                nxt = self.q[s2].max()
            target = r + (0.0 if term else cfg.gamma * nxt)
            self.visits[s, a] += 1
            step = cfg.alpha / self.visits[s, a] ** cfg.alpha_power
            self.q[s, a] += step * (target - self.q[s, a])
            self.stats.add(res.finished)
            self.env_steps += 1
        return {"env_steps": float(self.env_steps), **self.stats.metrics(), "epsilon": self.epsilon(),
                "q_mean": float(self.q.mean())}

    def state_dict(self) -> dict[str, Any]:
        return copy.deepcopy({
            "q": torch.from_numpy(self.q.copy()),
            "visits": torch.from_numpy(self.visits.copy()),
            "rng": get_state(self.rng),
            "pool": self.pool.state_dict(),
            "stats": self.stats.state_dict(),
            "env_steps": self.env_steps,
            "pending": -1 if self.pending is None else self.pending,
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        q = np.asarray(torch.as_tensor(load_section(state, "q")).numpy(), dtype=np.float64)
        if q.shape != self.q.shape:
            raise CheckpointError(f"learner state: q has shape {q.shape}, expected {self.q.shape}")
        self.q = q.copy()
        self.visits = np.asarray(torch.as_tensor(load_section(state, "visits")).numpy(), dtype=np.int64).copy()
        set_state(self.rng, load_section(state, "rng"))
        self.stats.load_state_dict(load_section(state, "stats"))
        self.env_steps = int(load_section(state, "env_steps"))
        p = int(load_section(state, "pending"))
        self.pending = None if p < 0 else p
        self.pool.load_state_dict(load_section(state, "pool"))

    def evaluate(self, cfg: RLEvalConfig | None, seed: int) -> list[Row]:
        """Average return of the greedy policy (or epsilon_end-greedy with ``deterministic: false``)."""
        cfg = cfg if cfg is not None else RLEvalConfig()
        rng = np_rng(seed, "eval-actions")

        def act(obs: torch.Tensor) -> np.ndarray:
            s = int(obs[0].argmax())  # one-hot encoded by evaluate_policy's obs pipeline
            if not cfg.deterministic and rng.random() < self.cfg.eps_end:
                return np.array([rng.integers(self.n_actions)])
            return np.array([int(np.argmax(self.q[s]))])

        rets = evaluate_policy(
            self.task.make, act, lambda o: torch.from_numpy(encode_obs(self.task.observation_space, o)),
            cfg.episodes, seed, "eval-episodes",
        )
        if not all(math.isfinite(x) for x in rets):
            raise NumericError("eval return")
        return [returns_row(self.name, self.env_id, rets, env_steps=self.env_steps)]


@register_algo("q_learning", family="rl", config=TabularConfig, eval_config=RLEvalConfig)
def build_q_learning(cfg: TabularConfig, task: Any, seed: int) -> TabularLearner:
    """Tabular Q-learning with epsilon-greedy exploration (Watkins & Dayan 1992)."""
    return TabularLearner(cfg, task, seed, sarsa=False)


@register_algo("sarsa", family="rl", config=TabularConfig, eval_config=RLEvalConfig)
def build_sarsa(cfg: TabularConfig, task: Any, seed: int) -> TabularLearner:
    """Tabular SARSA with epsilon-greedy exploration (Rummery & Niranjan 1994)."""
    return TabularLearner(cfg, task, seed, sarsa=True)


__all__ = ["TabularConfig", "TabularLearner", "build_q_learning", "build_sarsa", "q_value_iteration"]
