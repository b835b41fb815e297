"""Random tabular MDPs (RL², Duan et al. 2016, arXiv 1611.02779, Sec. 4.2).

A task is one MDP with ``S`` states and ``A`` actions (defaults 10 and 5): transition distributions
``P(s, a, .) ~ Dirichlet(1)`` and mean rewards ``R(s, a) ~ N(1, 1)``; the observed reward is
``N(R(s, a), 1)``. An *episode* has ``horizon`` steps (default 10) and starts in state 0; a *trial* is
``episodes`` episodes of the same MDP.

- :class:`TabularMDPDistribution` — ``sample(n, seed, split) -> list[TabularMDPTask]``.
- :class:`TabularMDPEnv` (gymnasium id ``fastadapt/TabularMDP-v0``) — ONE trial (``episodes * horizon``
  steps) is one gymnasium episode; the task is set by ``reset(seed=..., options={"task": task})``
  (omitted: a fresh MDP from the prior, drawn with ``np_random``).
- :class:`BatchedTabularMDPEnv` — ``[tasks, envs]`` trials stepped with torch ops (BatchedEnv protocol).

Observation (RL²'s input ``(s_t, a_{t-1}, r_{t-1}, d_{t-1})``), ``obs_dim = S + A + 2``::

    obs[..., :S]        one-hot of the current state (state 0 at the start of every episode)
    obs[..., S:S+A]     one-hot of the previous action (zeros right after reset)
    obs[..., S+A]       previous reward (0 right after reset)
    obs[..., S+A+1]     done flag: 1 if the previous step ended an episode (then the state part is the next
                        episode's start state 0)

``terminated`` becomes True after the last step of the last episode; ``truncated`` is always False;
``info["episode_done"]`` marks episode ends inside the trial. Noise is drawn with the counter-based
generator of :mod:`fastadapt.tasks.rl.bandit` (draw 0: next state by inverse CDF, draws 1-2: reward
noise), so the gymnasium env reset with ``seed`` and ``options={"index": (t, e)}`` reproduces position
``(t, e)`` of a batched env reset with ``seed``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from pydantic import Field

from fastadapt.core.config import Section
from fastadapt.core.errors import EnvError
from fastadapt.core.registry import register_task
from fastadapt.core.seeding import np_rng, torch_gen
from fastadapt.tasks.rl.action_checks import check_discrete_action, check_discrete_actions, env_label
from fastadapt.tasks.rl.bandit import counter_normal, counter_uniform, stream_keys

__all__ = [
    "TabularMDPTask",
    "TabularMDPDistribution",
    "TabularMDPEnv",
    "BatchedTabularMDPEnv",
    "TabularMDPConfig",
    "build_tabular_mdp",
]


@dataclass(frozen=True)
class TabularMDPTask:
    """One MDP: ``transitions [S, A, S]`` (rows sum to 1) and mean ``rewards [S, A]`` as nested tuples."""

    transitions: tuple[tuple[tuple[float, ...], ...], ...]
    rewards: tuple[tuple[float, ...], ...]

    @property
    def P(self) -> np.ndarray:  # noqa: N802 - the usual symbol
        return np.asarray(self.transitions, dtype=np.float64)

    @property
    def R(self) -> np.ndarray:  # noqa: N802
        return np.asarray(self.rewards, dtype=np.float64)

    @classmethod
    def from_arrays(cls, P: np.ndarray, R: np.ndarray) -> TabularMDPTask:  # noqa: N803
        return cls(
            tuple(tuple(tuple(float(x) for x in row) for row in sa) for sa in np.asarray(P)),
            tuple(tuple(float(x) for x in row) for row in np.asarray(R)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"transitions": self.P.tolist(), "rewards": self.R.tolist()}

    @classmethod
    def coerce(cls, task: Any) -> TabularMDPTask:
        """Accept a :class:`TabularMDPTask` or a mapping with ``transitions`` and ``rewards``."""
        if isinstance(task, TabularMDPTask):
            return task
        if isinstance(task, Mapping) and "transitions" in task and "rewards" in task:
            return cls.from_arrays(np.asarray(task["transitions"]), np.asarray(task["rewards"]))
        raise EnvError("tabular MDP task: expected a TabularMDPTask or a dict with transitions and rewards")


class TabularMDPDistribution:
    """Random MDPs of RL² Sec. 4.2: ``P(s,a,.) ~ Dirichlet(1)``, ``R(s,a) ~ N(1, 1)``, reward noise N(0, 1)."""

    def __init__(
        self,
        states: int = 10,
        actions: int = 5,
        horizon: int = 10,
        episodes: int = 10,
        reward_mean: float = 1.0,
        reward_std: float = 1.0,
        noise_std: float = 1.0,
    ) -> None:
        if min(states, actions, horizon, episodes) < 1:
            raise EnvError("tabular MDP: states, actions, horizon and episodes must be >= 1")
        self.states, self.actions = int(states), int(actions)
        self.horizon, self.episodes = int(horizon), int(episodes)
        self.reward_mean, self.reward_std = float(reward_mean), float(reward_std)
        self.noise_std = float(noise_std)

    def sample_arrays(self, n: int, seed: int, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """``P [n, S, A, S]`` and ``R [n, S, A]`` (float64); the same tasks as :meth:`sample`."""
        if split not in ("train", "test"):
            raise EnvError(f"split must be 'train' or 'test', got {split!r}")
        rng = np_rng(seed, "tabular-mdp-tasks", split)
        S, A = self.states, self.actions
        P = rng.dirichlet(np.ones(S), size=(n, S, A))
        R = rng.normal(self.reward_mean, self.reward_std, size=(n, S, A))
        return P, R

    def sample(self, n: int, seed: int, split: str = "train") -> list[TabularMDPTask]:
        P, R = self.sample_arrays(n, seed, split)
        return [TabularMDPTask.from_arrays(P[i], R[i]) for i in range(n)]

    def batched_env(
        self, num_tasks: int, num_envs: int = 1, device: str | torch.device = "cpu"
    ) -> BatchedTabularMDPEnv:
        return BatchedTabularMDPEnv(
            num_tasks, num_envs, self.states, self.actions, self.horizon, self.episodes, self.noise_std, device
        )

    def make_env(self) -> TabularMDPEnv:
        return TabularMDPEnv(
            self.states, self.actions, self.horizon, self.episodes, self.reward_mean, self.reward_std,
            self.noise_std,
        )


class BatchedTabularMDPEnv:
    """``num_tasks x num_envs`` tabular-MDP trials stepped with torch ops (BatchedEnv protocol).

    ``reset(seed) -> obs [T, E, S+A+2]``; ``step(actions [T, E] int64) -> (obs, reward [T, E] float32,
    terminated [T, E], truncated [T, E], info)`` with ``info["state"]`` the state the action was taken in,
    ``info["next_state"]`` and ``info["episode_done"]`` (bool ``[T, E]``). ``max_episode_steps`` is the trial
    length ``episodes * horizon``.
    """

    def __init__(
        self,
        num_tasks: int,
        num_envs: int,
        states: int = 10,
        actions: int = 5,
        horizon: int = 10,
        episodes: int = 10,
        noise_std: float = 1.0,
        device: str | torch.device = "cpu",
    ) -> None:
        if num_tasks < 1 or num_envs < 1:
            raise EnvError(f"tabular MDP: num_tasks and num_envs must be >= 1, got {num_tasks}, {num_envs}")
        self.num_tasks, self.num_envs = int(num_tasks), int(num_envs)
        self.states, self.actions = int(states), int(actions)
        self.horizon, self.episodes = int(horizon), int(episodes)
        self.max_episode_steps = self.horizon * self.episodes
        self.noise_std = float(noise_std)
        self.device = torch.device(device)
        self.obs_dim = self.states + self.actions + 2
        low = np.zeros(self.obs_dim, dtype=np.float32)
        high = np.ones(self.obs_dim, dtype=np.float32)
        low[self.states + self.actions], high[self.states + self.actions] = -np.inf, np.inf
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self.action_space = spaces.Discrete(self.actions)
        self._cdf: torch.Tensor | None = None  # [T, S, A, S] float64
        self._R: torch.Tensor | None = None  # [T, S, A] float64
        self._keys: torch.Tensor | None = None
        self._state = torch.zeros(self.num_tasks, self.num_envs, dtype=torch.int64, device=self.device)
        self._t = 0
        self._seed_gen = torch_gen(0, "tabular-mdp-batched-env")
        self._t_idx = torch.arange(self.num_tasks, device=self.device)[:, None]
        self._e_idx = torch.arange(self.num_envs, device=self.device)[None, :]

    def set_tasks(self, tasks: Sequence[Any]) -> None:
        parsed = [TabularMDPTask.coerce(t) for t in tasks]
        if len(parsed) != self.num_tasks:
            raise EnvError(f"set_tasks: expected {self.num_tasks} tasks, got {len(parsed)}")
        P = torch.tensor(np.stack([p.P for p in parsed]), dtype=torch.float64)
        R = torch.tensor(np.stack([p.R for p in parsed]), dtype=torch.float64)
        S, A = self.states, self.actions
        if P.shape[1:] != (S, A, S) or R.shape[1:] != (S, A):
            raise EnvError(f"set_tasks: expected P [*, {S}, {A}, {S}] and R [*, {S}, {A}], got "
                           f"{tuple(P.shape)} and {tuple(R.shape)}")
        if (P < 0).any() or not bool(((P.sum(-1) - 1.0).abs() <= 1e-6).all()):
            raise EnvError("set_tasks: transition rows must be probability vectors")
        self._cdf = torch.cumsum(P, dim=-1).to(self.device)
        self._R = R.to(self.device)
        self._keys = None

    def reset(self, seed: int | None = None) -> torch.Tensor:
        if self._cdf is None:
            raise EnvError("reset: call set_tasks(tasks) first")
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,), generator=self._seed_gen).item())
        self._reset_keys(stream_keys(int(seed), self._t_idx, self._e_idx))
        obs = torch.zeros(self.num_tasks, self.num_envs, self.obs_dim, device=self.device)
        obs[..., 0] = 1.0
        return obs

    def _reset_keys(self, keys: torch.Tensor) -> None:
        self._keys = keys.to(self.device)
        self._state = torch.zeros(self.num_tasks, self.num_envs, dtype=torch.int64, device=self.device)
        self._t = 0

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """``actions``: an integer tensor ``[tasks, envs]`` in ``[0, actions)``; floats, bools, out-of-range
        entries and other shapes raise :class:`EnvError` naming the position, leaving the env unchanged."""
        if self._keys is None or self._cdf is None or self._R is None:
            raise EnvError("step: call reset() first")
        if self._t >= self.max_episode_steps:
            raise EnvError(f"step: the trial of {self.max_episode_steps} steps is over; call reset()")
        a = check_discrete_actions(
            actions, (self.num_tasks, self.num_envs), self.actions, "tabular MDP batched env"
        ).to(self.device)
        s = self._state
        cdf = self._cdf[self._t_idx, s, a]  # [T, E, S]
        u = counter_uniform(self._keys, self._t, 0)
        nxt = (cdf < u.unsqueeze(-1)).sum(-1).clamp_(max=self.states - 1)
        mean_r = self._R[self._t_idx, s, a]
        reward = (mean_r + self.noise_std * counter_normal(self._keys, self._t, 1)).to(torch.float32)
        self._t += 1
        episode_done = self._t % self.horizon == 0
        shown = torch.zeros_like(nxt) if episode_done else nxt
        self._state = shown
        S, A = self.states, self.actions
        obs = torch.zeros(self.num_tasks, self.num_envs, self.obs_dim, device=self.device)
        obs.scatter_(2, shown.unsqueeze(-1), 1.0)
        obs.scatter_(2, (S + a).unsqueeze(-1), 1.0)
        obs[..., S + A] = reward
        obs[..., S + A + 1] = float(episode_done)
        term = torch.full(
            (self.num_tasks, self.num_envs), self._t >= self.max_episode_steps, dtype=torch.bool, device=self.device
        )
        info = {
            "state": s,
            "next_state": nxt,
            "episode_done": torch.full_like(term, episode_done),
            "expected_reward": mean_r.to(torch.float32),
        }
        return obs, reward, term, torch.zeros_like(term), info


class TabularMDPEnv(gym.Env):
    """One trial of a random tabular MDP as a gymnasium episode (module docstring for the layout)."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        states: int = 10,
        actions: int = 5,
        horizon: int = 10,
        episodes: int = 10,
        reward_mean: float = 1.0,
        reward_std: float = 1.0,
        noise_std: float = 1.0,
    ) -> None:
        super().__init__()
        self.dist = TabularMDPDistribution(states, actions, horizon, episodes, reward_mean, reward_std, noise_std)
        self._inner = BatchedTabularMDPEnv(1, 1, states, actions, horizon, episodes, noise_std)
        self.observation_space = self._inner.observation_space
        self.action_space = self._inner.action_space
        self.task: TabularMDPTask | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        d = self.dist
        if options.get("task") is not None:
            task = TabularMDPTask.coerce(options["task"])
        else:
            P = self.np_random.dirichlet(np.ones(d.states), size=(d.states, d.actions))
            R = self.np_random.normal(d.reward_mean, d.reward_std, size=(d.states, d.actions))
            task = TabularMDPTask.from_arrays(P, R)
        self.task = task
        self._inner.set_tasks([task])
        t_idx, e_idx = options.get("index", (0, 0))
        if seed is not None:
            keys = stream_keys(int(seed), int(t_idx), int(e_idx)).reshape(1, 1)
        else:
            keys = torch.tensor([[int(self.np_random.integers(0, 2**32))]], dtype=torch.int64)
        self._inner._reset_keys(keys)
        obs = np.zeros(self._inner.obs_dim, dtype=np.float32)
        obs[0] = 1.0
        return obs, {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """``action``: an int (or NumPy integer / 0-d integer array) in ``[0, actions)``; anything else
        raises :class:`EnvError` naming the env and the action."""
        a = check_discrete_action(action, self._inner.actions, env_label(self, "tabular MDP env"))
        obs, rew, term, trunc, info = self._inner.step(torch.tensor([[a]], dtype=torch.int64))
        return (
            obs[0, 0].numpy().astype(np.float32),
            float(rew[0, 0]),
            bool(term[0, 0]),
            bool(trunc[0, 0]),
            {
                "state": int(info["state"][0, 0]),
                "next_state": int(info["next_state"][0, 0]),
                "episode_done": bool(info["episode_done"][0, 0]),
            },
        )


if "fastadapt/TabularMDP-v0" not in gym.registry:
    gym.register(id="fastadapt/TabularMDP-v0", entry_point="fastadapt.tasks.rl.tabular_mdp:TabularMDPEnv")


class TabularMDPConfig(Section):
    """``task:`` section of the random tabular MDP family (RL² Sec. 4.2)."""

    episodes: int = Field(10, ge=1, description="episodes per trial n")
    states: int = Field(10, ge=1, description="number of states")
    actions: int = Field(5, ge=1, description="number of actions")
    horizon: int = Field(10, ge=1, description="steps per episode")


@register_task("tabular-mdp", family="metarl", config=TabularMDPConfig)
def build_tabular_mdp(cfg: TabularMDPConfig) -> TabularMDPDistribution:
    """Random tabular MDPs (RL²): Dirichlet(1) transitions, N(1,1) mean rewards, n episodes per trial."""
    return TabularMDPDistribution(cfg.states, cfg.actions, cfg.horizon, cfg.episodes)
