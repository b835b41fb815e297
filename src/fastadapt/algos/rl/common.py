"""Shared pieces of the single-task RL algorithms: env pool, observation encoding, rollouts, replay buffer,
evaluation and checkpoint helpers.

Determinism and exact resume
----------------------------
Envs are stepped in a plain loop (:class:`EnvPool`), each episode reset with a seed drawn from the learner's
own ``numpy.random.Generator``. To continue bit-for-bit after a checkpoint the pool stores, for every env,
the seed of its current episode and the actions taken since; loading rebuilds the envs by resetting with
that seed and replaying the actions (gymnasium envs are deterministic given the reset seed and actions).
"""

from __future__ import annotations

import math
import copy
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from pydantic import Field

from fastadapt.core.config import Section
from fastadapt.core.errors import CheckpointError, ConfigError, EnvError, NumericError
from fastadapt.core.seeding import get_state, np_rng, set_state, torch_gen
from fastadapt.core.types import Row
from fastadapt.nn.policies import CategoricalMLPPolicy, GaussianMLPPolicy
from fastadapt.nn.values import ValueMLP
from fastadapt.ops.surrogates import value_loss


# ----------------------------------------------------------------------------------------- configs
class RLEvalConfig(Section):
    """The ``eval:`` section of single-task RL: average return over ``episodes`` fresh episodes."""

    episodes: int = Field(20, ge=1, description="evaluation episodes")
    deterministic: bool = Field(True, description="greedy / mean action instead of sampling")


# ------------------------------------------------------------------------------------- observations
def space_info(observation_space: Any, action_space: Any) -> tuple[int, bool, int]:
    """``(obs_dim, discrete_actions, act_dim_or_n)`` for flat Box / Discrete spaces."""

    if isinstance(observation_space, gym.spaces.Box):
        obs_dim = int(math.prod(observation_space.shape))
    elif isinstance(observation_space, gym.spaces.Discrete):
        obs_dim = int(observation_space.n)
    else:
        raise ConfigError(
            f"task.env_id: observation space {type(observation_space).__name__} is not supported "
            "(flat Box or Discrete only)"
        )
    if isinstance(action_space, gym.spaces.Discrete):
        return obs_dim, True, int(action_space.n)
    if isinstance(action_space, gym.spaces.Box):
        return obs_dim, False, int(math.prod(action_space.shape))
    raise ConfigError(f"task.env_id: action space {type(action_space).__name__} is not supported")


def encode_obs(observation_space: Any, obs: Sequence[Any]) -> np.ndarray:
    """Stack raw observations of several envs into ``[E, obs_dim]`` float32 (Discrete -> one-hot)."""

    if isinstance(observation_space, gym.spaces.Discrete):
        out = np.zeros((len(obs), int(observation_space.n)), dtype=np.float32)
        out[np.arange(len(obs)), np.asarray(obs, dtype=np.int64) - int(observation_space.start)] = 1.0
        return out
    return np.stack([np.asarray(o, dtype=np.float32).reshape(-1) for o in obs])


class RunningMeanStd:
    """Running mean/variance (parallel algorithm of Chan et al. 1979) for observation normalisation."""

    def __init__(self, shape: tuple[int, ...], clip: float = 10.0) -> None:
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = 1e-4
        self.clip = clip

    def update(self, x: np.ndarray) -> None:
        bm, bv, n = x.mean(axis=0), x.var(axis=0), x.shape[0]
        delta = bm - self.mean
        tot = self.count + n
        self.mean = self.mean + delta * n / tot
        m2 = self.var * self.count + bv * n + delta**2 * self.count * n / tot
        self.var = m2 / tot
        self.count = tot

    def normalize(self, x: np.ndarray) -> np.ndarray:
        return np.clip((x - self.mean) / np.sqrt(self.var + 1e-8), -self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": float(self.count)}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.mean = np.asarray(s["mean"], dtype=np.float64).copy()
        self.var = np.asarray(s["var"], dtype=np.float64).copy()
        self.count = float(s["count"])


# ------------------------------------------------------------------------------------------ env pool
def to_env_action(action_space: Any, action: Any) -> Any:
    """An int for ``Discrete`` spaces, else a float32 array clipped to the ``Box`` bounds."""

    if isinstance(action_space, gym.spaces.Discrete):
        return int(action)
    a = np.asarray(action, dtype=np.float32).reshape(action_space.shape)
    return np.clip(a, action_space.low, action_space.high)


@dataclass
class StepResult:
    """One step of every env of a pool.

    ``next_obs`` are the observations to act on next (already reset where an episode ended);
    ``final_obs`` the observations actually reached by this step (differs from ``next_obs`` only where
    ``terminated | truncated``; used to bootstrap truncated episodes). ``finished`` lists
    ``(env_index, episode_return, episode_length)`` of episodes that ended at this step.
    """

    next_obs: list[Any]
    final_obs: list[Any]
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    finished: list[tuple[int, float, int]] = field(default_factory=list)


class EnvPool:
    """``num_envs`` instances of one env stepped in a loop, auto-reset with explicit per-episode seeds.

    Args:
        make_env: callable returning a new ``gymnasium.Env``.
        num_envs: number of env copies.
        seed, key: the episode-seed stream is ``np_rng(seed, key)``.
    """

    def __init__(self, make_env: Callable[[], Any], num_envs: int, seed: int, key: str = "envs") -> None:

        self._make_env = make_env
        self.envs = [make_env() for _ in range(num_envs)]
        self.num_envs = num_envs
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space
        self._discrete = isinstance(self.action_space, gym.spaces.Discrete)
        self.rng = np_rng(seed, key)
        self.obs: list[Any] = [None] * num_envs
        self._ep_seed = [0] * num_envs
        self._ep_actions: list[list[Any]] = [[] for _ in range(num_envs)]
        self._ep_return = [0.0] * num_envs
        self._ep_len = [0] * num_envs
        self.started = False

    def _reset_env(self, i: int) -> None:
        s = int(self.rng.integers(0, 2**31 - 1))
        self._ep_seed[i] = s
        self.obs[i], _ = self.envs[i].reset(seed=s)
        self._ep_actions[i] = []
        self._ep_return[i] = 0.0
        self._ep_len[i] = 0

    def reset(self) -> list[Any]:
        """Start a fresh episode in every env; returns the raw observations."""
        for i in range(self.num_envs):
            self._reset_env(i)
        self.started = True
        return list(self.obs)

    def env_action(self, action: Any) -> Any:
        """The action passed to the env (see :func:`to_env_action`)."""
        return to_env_action(self.action_space, action)

    def step(self, actions: Sequence[Any] | np.ndarray) -> StepResult:
        """Step every env with its action (``[E]`` ints or ``[E, act_dim]`` floats); auto-reset ended ones."""
        if not self.started:
            self.reset()
        if len(actions) != self.num_envs:
            raise EnvError(f"actions: expected {self.num_envs} actions, got {len(actions)}")
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        term = np.zeros(self.num_envs, dtype=bool)
        trunc = np.zeros(self.num_envs, dtype=bool)
        final_obs: list[Any] = [None] * self.num_envs
        finished: list[tuple[int, float, int]] = []
        for i, env in enumerate(self.envs):
            a = self.env_action(actions[i])
            try:
                o, r, te, tr, _ = env.step(a)
            except Exception as exc:  # noqa: BLE001 - re-raised with the env named
                raise EnvError(f"env {i} ({env.spec.id if env.spec else env}) raised in step: {exc}") from exc
            r = float(r)
            if not math.isfinite(r):
                raise NumericError("reward", detail=f"env {i}")
            self._ep_actions[i].append(a.tolist() if isinstance(a, np.ndarray) else a)
            self._ep_return[i] += r
            self._ep_len[i] += 1
            rewards[i], term[i], trunc[i] = r, bool(te), bool(tr)
            final_obs[i] = o
            if te or tr:
                finished.append((i, self._ep_return[i], self._ep_len[i]))
                self._reset_env(i)
            else:
                self.obs[i] = o
        return StepResult(list(self.obs), final_obs, rewards, term, trunc, finished)

    def state_dict(self) -> dict[str, Any]:
        return {
            "rng": get_state(self.rng),
            "started": self.started,
            "ep_seed": list(self._ep_seed),
            "ep_actions": [list(a) for a in self._ep_actions],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Rebuild every env's current episode by resetting with its seed and replaying its actions."""
        try:
            self.started = bool(state["started"])
            seeds = [int(s) for s in state["ep_seed"]]
            actions = state["ep_actions"]
            if len(seeds) != self.num_envs or len(actions) != self.num_envs:
                raise CheckpointError(f"env pool state: expected {self.num_envs} envs, got {len(seeds)}")
            for i in range(self.num_envs):
                self._ep_seed[i] = seeds[i]
                self._ep_actions[i] = []
                self._ep_return[i] = 0.0
                self._ep_len[i] = 0
                if not self.started:
                    continue
                self.obs[i], _ = self.envs[i].reset(seed=seeds[i])
                for a in actions[i]:
                    a_env = self.env_action(a)
                    o, r, te, tr, _ = self.envs[i].step(a_env)
                    if te or tr:
                        raise CheckpointError(f"env pool state: replay of env {i} ended early")
                    self._ep_actions[i].append(a_env.tolist() if isinstance(a_env, np.ndarray) else a_env)
                    self._ep_return[i] += float(r)
                    self._ep_len[i] += 1
                    self.obs[i] = o
            set_state(self.rng, state["rng"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"env pool state: malformed ({exc})") from None

    def close(self) -> None:
        for env in self.envs:
            env.close()


# ----------------------------------------------------------------------------------- episode stats
class EpisodeStats:
    """Completed-episode returns/lengths: the last ``window`` kept for the ``episode_return`` metric."""

    def __init__(self, window: int = 20) -> None:
        self.returns: deque[float] = deque(maxlen=window)
        self.lengths: deque[int] = deque(maxlen=window)
        self.episodes = 0

    def add(self, finished: Sequence[tuple[int, float, int]]) -> None:
        for _, ret, length in finished:
            self.returns.append(float(ret))
            self.lengths.append(int(length))
            self.episodes += 1

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {"episodes": float(self.episodes)}
        if self.returns:
            out["episode_return"] = float(np.mean(self.returns))
            out["episode_length"] = float(np.mean(self.lengths))
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"returns": list(self.returns), "lengths": list(self.lengths), "episodes": self.episodes}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.returns.clear()
        self.lengths.clear()
        self.returns.extend(float(x) for x in s["returns"])
        self.lengths.extend(int(x) for x in s["lengths"])
        self.episodes = int(s["episodes"])


# ------------------------------------------------------------------------------- on-policy rollouts
@dataclass
class Rollout:
    """``num_steps`` steps of ``E`` envs, time LAST as :mod:`fastadapt.ops` expects.

    obs ``[E, T, obs_dim]``; actions ``[E, T]`` (int64) or ``[E, T, act_dim]``; log_probs, values, rewards,
    dones, timesteps ``[E, T]``; bootstrap ``[E]`` = V(obs after the last step). ``rewards`` already include
    ``gamma * V(final_obs)`` on time-limit truncations (Pardo et al. 2018), and ``dones`` mark every episode
    end (terminated or truncated).
    """

    obs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor
    dones: torch.Tensor
    timesteps: torch.Tensor
    bootstrap: torch.Tensor


class ObsPipeline:
    """Raw env observations -> float32 tensors ``[E, obs_dim]``, optionally normalised with running stats."""

    def __init__(self, observation_space: Any, obs_dim: int, normalize: bool) -> None:
        self.space = observation_space
        self.rms = RunningMeanStd((obs_dim,)) if normalize else None

    def __call__(self, raw: Sequence[Any], update: bool = False) -> torch.Tensor:
        x = encode_obs(self.space, raw)
        if self.rms is not None:
            if update:
                self.rms.update(x.astype(np.float64))
            x = self.rms.normalize(x)
        return torch.from_numpy(x)

    def state_dict(self) -> dict[str, Any]:
        return {} if self.rms is None else self.rms.state_dict()

    def load_state_dict(self, s: dict[str, Any]) -> None:
        if self.rms is not None:
            self.rms.load_state_dict(s)


class RewardScaler:
    """Divide rewards by the running std of each env's discounted return (the ``VecNormalize`` reward
    scaling used by PPO implementations; Engstrom et al. 2020). State is checkpointed."""

    def __init__(self, num_envs: int, gamma: float) -> None:
        self.gamma = gamma
        self.ret = np.zeros(num_envs, dtype=np.float64)
        self.rms = RunningMeanStd(())

    def __call__(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        self.ret = self.ret * self.gamma + rewards
        self.rms.update(self.ret.reshape(-1, 1)[:, 0])
        self.ret[dones] = 0.0
        return rewards / np.sqrt(self.rms.var + 1e-8)

    def state_dict(self) -> dict[str, Any]:
        return {"ret": self.ret.copy(), "rms": self.rms.state_dict()}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.ret = np.asarray(s["ret"], dtype=np.float64).copy()
        self.rms.load_state_dict(s["rms"])


def collect_rollout(
    pool: EnvPool,
    obs_fn: ObsPipeline,
    policy: Any,
    value_fn: Callable[[torch.Tensor], torch.Tensor] | None,
    num_steps: int,
    gamma: float,
    generator: torch.Generator,
    stats: EpisodeStats,
    step_in_episode: np.ndarray,
    reward_scaler: RewardScaler | None = None,
) -> Rollout:
    """Run ``policy`` (a :mod:`fastadapt.nn.policies` module) for ``num_steps`` steps in every env.

    ``value_fn`` (``obs [E, obs_dim] -> [E]``) gives the values stored in the rollout and bootstraps time-limit
    truncations; with ``None`` values are zero. ``step_in_episode [E]`` (in/out) counts steps within the
    current episode (for the linear feature baseline's time features).
    """
    if not pool.started:
        pool.reset()
    E = pool.num_envs
    obs_l, act_l, logp_l, val_l, rew_l, done_l, ts_l = [], [], [], [], [], [], []
    # the first observations were already counted by the running statistics at the end of the last rollout
    obs_t = obs_fn(pool.obs, update=False)
    for _ in range(num_steps):
        with torch.no_grad():
            out = policy(obs_t)
            action = policy.sample(out, generator)
            logp = policy.log_prob(out, action)
            value = value_fn(obs_t) if value_fn is not None else torch.zeros(E)
        res = pool.step(action.numpy())
        raw = res.rewards
        if reward_scaler is not None:
            raw = reward_scaler(raw, res.terminated | res.truncated)
        rewards = torch.as_tensor(raw, dtype=torch.float32)
        trunc_only = res.truncated & ~res.terminated
        if value_fn is not None and trunc_only.any():
            idx = np.nonzero(trunc_only)[0]
            with torch.no_grad():
                fin = obs_fn([res.final_obs[i] for i in idx])
                rewards[idx] += gamma * value_fn(fin)
        obs_l.append(obs_t)
        act_l.append(action)
        logp_l.append(logp)
        val_l.append(value)
        rew_l.append(rewards)
        done_l.append(torch.as_tensor(res.terminated | res.truncated))
        ts_l.append(torch.as_tensor(step_in_episode.copy(), dtype=torch.float32))
        ended = res.terminated | res.truncated
        step_in_episode += 1
        step_in_episode[ended] = 0
        stats.add(res.finished)
        obs_t = obs_fn(res.next_obs, update=True)
    with torch.no_grad():
        bootstrap = value_fn(obs_t) if value_fn is not None else torch.zeros(E)
    return Rollout(
        obs=torch.stack(obs_l, 1),
        actions=torch.stack(act_l, 1),
        log_probs=torch.stack(logp_l, 1),
        values=torch.stack(val_l, 1),
        rewards=torch.stack(rew_l, 1),
        dones=torch.stack(done_l, 1),
        timesteps=torch.stack(ts_l, 1),
        bootstrap=bootstrap,
    )


# ------------------------------------------------------------------------------------ replay buffer
class ReplayBuffer:
    """Uniform replay (Lin 1992; Mnih et al. 2015) with a fixed capacity, stored as tensors.

    ``add(obs [E, D], actions, rewards [E], next_obs [E, D], terminated [E], discount [E])``;
    ``sample(n, generator)`` returns a dict of ``[n, ...]`` tensors. ``discount`` (the bootstrap factor
    gamma^k of an n-step transition) is stored and sampled only with ``with_discount=True``. Only the
    filled part is checkpointed.
    """

    def __init__(
        self,
        capacity: int,
        obs_dim: int,
        act_shape: tuple[int, ...],
        act_dtype: torch.dtype,
        with_discount: bool = False,
    ) -> None:
        self.capacity = capacity
        self.obs = torch.zeros(capacity, obs_dim)
        self.next_obs = torch.zeros(capacity, obs_dim)
        self.actions = torch.zeros((capacity, *act_shape), dtype=act_dtype)
        self.rewards = torch.zeros(capacity)
        self.terminated = torch.zeros(capacity)
        # per-transition bootstrap discount gamma^k (n-step returns); absent for one-step transitions
        self.discount: torch.Tensor | None = torch.zeros(capacity) if with_discount else None
        self.pos = 0
        self.size = 0

    def _fields(self) -> tuple[str, ...]:
        base = ("obs", "next_obs", "actions", "rewards", "terminated")
        return base if self.discount is None else (*base, "discount")

    def add(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor,
        discount: torch.Tensor | None = None,
    ) -> None:
        if (discount is None) != (self.discount is None):
            raise ValueError("discount: pass it exactly when the buffer was built with with_discount=True")
        for i in range(obs.shape[0]):
            p = self.pos
            self.obs[p] = obs[i]
            self.actions[p] = actions[i]
            self.rewards[p] = rewards[i]
            self.next_obs[p] = next_obs[i]
            self.terminated[p] = terminated[i]
            if self.discount is not None and discount is not None:
                self.discount[p] = discount[i]
            self.pos = (p + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def sample(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        idx = torch.randint(0, self.size, (n,), generator=generator)
        return {k: getattr(self, k)[idx] for k in self._fields()}

    def state_dict(self) -> dict[str, Any]:
        n = self.size
        return {"pos": self.pos, "size": n, **{k: getattr(self, k)[:n].clone() for k in self._fields()}}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        n = int(s["size"])
        if n > self.capacity:
            raise CheckpointError(f"replay buffer: {n} transitions exceed capacity {self.capacity}")
        self.pos, self.size = int(s["pos"]), n
        for k in self._fields():
            if k not in s:
                raise CheckpointError(f"replay buffer: field '{k}' missing (n_step differs from the checkpoint's?)")
            getattr(self, k)[:n] = torch.as_tensor(s[k])


class NStepAccumulator:
    """Turns one-step experience into n-step transitions (Sutton 1988; Mnih et al. 2016; Hessel et al. 2018).

    Per env, the last ``n`` steps wait in a window. A full window emits its oldest step as

        (s_t, a_t, R = sum_{i<n} gamma^i r_{t+i}, s_{t+n}, terminated = 0, discount = gamma^n)

    and an episode end (termination or time-limit truncation) flushes every waiting step ``t`` as
    ``(s_t, a_t, sum_{i<k} gamma^i r_{t+i}, s_final, terminated, gamma^k)`` with ``k`` the steps left, so a
    target ``R + discount (1 - terminated) V(s')`` bootstraps truncated episodes from their true final state.
    Rewards are summed in float64. The windows are part of the learner's checkpoint (:meth:`state_dict`).
    """

    def __init__(self, n: int, gamma: float, num_envs: int) -> None:
        if n < 1:
            raise ValueError(f"n_step: must be >= 1, got {n}")
        self.n, self.gamma = n, gamma
        # per env: list of (obs [D] floats, action (int or floats), reward float)
        self.windows: list[list[tuple[list[float], Any, float]]] = [[] for _ in range(num_envs)]

    def _emit(self, window: list[tuple[list[float], Any, float]], j: int, next_obs: list[float], term: float,
              out: dict[str, list[Any]]) -> None:
        rewards = [w[2] for w in window[j:]]
        out["obs"].append(window[j][0])
        out["actions"].append(window[j][1])
        out["rewards"].append(sum(self.gamma**i * r for i, r in enumerate(rewards)))
        out["next_obs"].append(next_obs)
        out["terminated"].append(term)
        out["discount"].append(self.gamma ** len(rewards))

    def push(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        rewards: np.ndarray,
        next_obs: torch.Tensor,
        terminated: np.ndarray,
        done: np.ndarray,
    ) -> dict[str, torch.Tensor] | None:
        """Add one vector step (``obs``/``next_obs`` ``[E, D]`` encoded, ``next_obs`` = the state reached,
        ``done = terminated | truncated`` ``[E]``); returns the finished n-step transitions as tensors
        (``obs, actions, rewards, next_obs, terminated, discount``, leading dim = their count) or None."""
        out: dict[str, list[Any]] = {k: [] for k in ("obs", "actions", "rewards", "next_obs", "terminated",
                                                     "discount")}
        for i, window in enumerate(self.windows):
            window.append((obs[i].tolist(), actions[i].tolist(), float(rewards[i])))
            nxt = next_obs[i].tolist()
            if done[i]:
                for j in range(len(window)):
                    self._emit(window, j, nxt, float(terminated[i]), out)
                window.clear()
            elif len(window) == self.n:
                self._emit(window, 0, nxt, 0.0, out)
                window.pop(0)
        if not out["obs"]:
            return None
        return {
            "obs": torch.tensor(out["obs"], dtype=torch.float32),
            "actions": torch.tensor(out["actions"], dtype=actions.dtype),
            "rewards": torch.tensor(out["rewards"], dtype=torch.float32),
            "next_obs": torch.tensor(out["next_obs"], dtype=torch.float32),
            "terminated": torch.tensor(out["terminated"], dtype=torch.float32),
            "discount": torch.tensor(out["discount"], dtype=torch.float32),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"windows": [[[o, a, r] for o, a, r in w] for w in self.windows]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        windows = state.get("windows")
        if not isinstance(windows, list) or len(windows) != len(self.windows):
            raise CheckpointError(f"n-step state: expected {len(self.windows)} env windows")
        self.windows = [[(list(o), a, float(r)) for o, a, r in w] for w in windows]


# --------------------------------------------------------------------------------------- evaluation
def evaluate_policy(
    make_env: Callable[[], Any],
    act: Callable[[torch.Tensor], Any],
    obs_fn: Callable[[Sequence[Any]], torch.Tensor],
    episodes: int,
    seed: int,
    key: str = "eval",
    lengths: list[int] | None = None,
) -> list[float]:
    """Returns of ``episodes`` episodes of one env, each reset with a seed from ``np_rng(seed, key)``.

    ``act(obs [1, obs_dim]) -> actions [1, ...]`` (a batch of one, numpy or tensor). If ``lengths`` is
    given, the episode lengths (env steps) are appended to it.
    """
    rng = np_rng(seed, key)
    env = make_env()
    returns: list[float] = []
    try:
        for _ in range(episodes):
            o, _ = env.reset(seed=int(rng.integers(0, 2**31 - 1)))
            total, done, steps = 0.0, False, 0
            while not done:
                with torch.no_grad():
                    a = act(obs_fn([o]))
                if isinstance(a, torch.Tensor):
                    a = a.numpy()
                o, r, te, tr, _ = env.step(to_env_action(env.action_space, np.asarray(a)[0]))
                total += float(r)
                steps += 1
                done = bool(te or tr)
            returns.append(total)
            if lengths is not None:
                lengths.append(steps)
    finally:
        env.close()
    return returns


def returns_row(method: str, env_id: str, returns: Sequence[float], **extra: Any) -> Row:
    """``Row(method, {"env": env_id}, mean, se = std/sqrt(n), n)`` from episode returns."""
    arr = np.asarray(returns, dtype=np.float64)
    n = len(arr)
    se = float(arr.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return Row(method, {"env": env_id}, float(arr.mean()), se, n, dict(extra))


# ----------------------------------------------------------------------------------- misc helpers
def linear_schedule(start: float, end: float, progress: float) -> float:
    """``start + (end - start) * clip(progress, 0, 1)``."""
    p = min(max(progress, 0.0), 1.0)
    return start + (end - start) * p


def set_annealed_lr(
    opt: torch.optim.Optimizer, base_lr: float, anneal: bool, updates: int, anneal_iterations: int
) -> float:
    """Set (and return) the learning rate of every group of ``opt``: ``base_lr`` annealed linearly to
    0 over ``anneal_iterations`` updates when ``anneal``, never below ``1e-3 * base_lr``."""
    lr = base_lr * linear_schedule(1.0, 0.0, updates / anneal_iterations) if anneal else base_lr
    lr = max(lr, 1e-3 * base_lr)
    for group in opt.param_groups:
        group["lr"] = lr
    return lr


def check_finite(name: str, value: torch.Tensor | float) -> None:
    """Raise NumericError naming ``name`` when ``value`` (a loss or gradient norm) is NaN/Inf."""
    v = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
    if not math.isfinite(v):
        raise NumericError(name)


def soft_update(target: torch.nn.Module, source: torch.nn.Module, tau: float) -> None:
    """Polyak averaging ``target <- tau * source + (1 - tau) * target`` (Lillicrap et al. 2016)."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters()):
            t.mul_(1.0 - tau).add_(s, alpha=tau)


def load_section(state: dict[str, Any], key: str) -> Any:
    """``state[key]`` or a CheckpointError naming the missing key."""
    try:
        return state[key]
    except (KeyError, TypeError):
        raise CheckpointError(f"learner state: missing {key!r}") from None


# ------------------------------------------------------------------------------ on-policy learners
class OnPolicyConfig(Section):
    """Fields shared by VPG, A2C, PPO and TRPO (each algorithm adds its own)."""

    num_envs: int = Field(8, ge=1, description="envs stepped in a loop")
    num_steps: int = Field(32, ge=1, description="steps per env per iteration")
    gamma: float = Field(0.99, ge=0, le=1)
    gae_lambda: float = Field(0.95, ge=0, le=1)
    hidden: tuple[int, ...] = Field((64, 64), description="hidden widths of policy and value MLPs")
    activation: Literal["tanh", "relu", "elu", "gelu", "silu"] = "tanh"
    init_log_std: float = Field(0.0, description="initial log std of Gaussian policies")
    normalize_obs: bool = Field(False, description="running mean/std observation normalisation")
    normalize_reward: bool = Field(False, description="scale rewards by the running return std")
    norm_adv: bool = Field(True, description="normalise advantages per batch")


def require_gym_task(task: Any, algo: str) -> Any:
    """The task object must make gymnasium envs (``task.make()``, ``observation_space``, ``action_space``)."""
    if not (callable(getattr(task, "make", None)) and hasattr(task, "observation_space")
            and hasattr(task, "action_space")):
        raise ConfigError(
            f"task.name: {algo} needs a task that makes gymnasium envs (e.g. name: gym), "
            f"got {type(task).__name__}"
        )
    return task


class OnPolicyLearner:
    """Actor-critic scaffolding (SB3's ``OnPolicyAlgorithm`` in spirit): builds the policy (Categorical or
    Gaussian MLP), the value MLP, the env pool and generators; ``train_step`` collects one rollout and
    calls the subclass's :meth:`update`. Checkpoint state and evaluation are shared.

    Generators (all derived from the run seed): ``init`` (weights), ``actions`` (sampling), ``minibatch``
    (shuffling); episode seeds come from the pool's ``np_rng(seed, "train-envs")``.
    """

    key_metric = "episode_return"
    name = "on-policy"

    def __init__(self, cfg: OnPolicyConfig, task: Any, seed: int) -> None:
        self.cfg = cfg
        self.task = require_gym_task(task, self.name)
        self.seed = seed
        self.env_id = str(getattr(task, "env_id", "env"))
        obs_dim, discrete, n = space_info(task.observation_space, task.action_space)
        init = torch_gen(seed, "init")
        if discrete:
            self.policy: Any = CategoricalMLPPolicy(obs_dim, n, cfg.hidden, cfg.activation, generator=init)
        else:
            self.policy = GaussianMLPPolicy(
                obs_dim, n, cfg.hidden, cfg.activation, cfg.init_log_std, generator=init
            )
        self.value = ValueMLP(obs_dim, cfg.hidden, cfg.activation, generator=init)
        self.pool = EnvPool(task.make, cfg.num_envs, seed, "train-envs")
        self.obs_fn = ObsPipeline(task.observation_space, obs_dim, cfg.normalize_obs)
        self.reward_scaler = RewardScaler(cfg.num_envs, cfg.gamma) if cfg.normalize_reward else None
        self.gen = torch_gen(seed, "actions")
        self.mb_gen = torch_gen(seed, "minibatch")
        self.stats = EpisodeStats()
        self.step_in_episode = np.zeros(cfg.num_envs, dtype=np.int64)
        self.env_steps = 0
        self.updates = 0

    # -- subclasses
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Named optimizers whose state is checkpointed."""
        return {}

    def update(self, rollout: Rollout) -> dict[str, float]:
        raise NotImplementedError

    def value_fn(self, obs: torch.Tensor) -> torch.Tensor:
        return self.value(obs)

    # -- Learner protocol
    def train_step(self, iteration: int) -> dict[str, float]:
        """Collect ``num_envs x num_steps`` steps, then one :meth:`update`."""
        rollout = collect_rollout(
            self.pool, self.obs_fn, self.policy, self.value_fn, self.cfg.num_steps, self.cfg.gamma,
            self.gen, self.stats, self.step_in_episode, self.reward_scaler,
        )
        self.env_steps += self.cfg.num_envs * self.cfg.num_steps
        metrics = self.update(rollout)
        self.updates += 1
        for k, v in metrics.items():
            if not math.isfinite(v):
                raise NumericError(k)
        return {"env_steps": float(self.env_steps), **self.stats.metrics(), **metrics}

    def state_dict(self) -> dict[str, Any]:
        state = {
            "policy": self.policy.state_dict(),
            "value": self.value.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers().items()},
            "gen": get_state(self.gen),
            "mb_gen": get_state(self.mb_gen),
            "pool": self.pool.state_dict(),
            "obs_fn": self.obs_fn.state_dict(),
            "reward_scaler": self.reward_scaler.state_dict() if self.reward_scaler else {},
            "stats": self.stats.state_dict(),
            "step_in_episode": self.step_in_episode.copy(),
            "env_steps": self.env_steps,
            "updates": self.updates,
        }
        return copy.deepcopy(state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            self.policy.load_state_dict(load_section(state, "policy"))
            self.value.load_state_dict(load_section(state, "value"))
            opts = load_section(state, "optimizers")
            for k, o in self.optimizers().items():
                o.load_state_dict(opts[k])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"learner state: weights do not fit this config ({exc})") from None
        set_state(self.gen, load_section(state, "gen"))
        set_state(self.mb_gen, load_section(state, "mb_gen"))
        self.obs_fn.load_state_dict(load_section(state, "obs_fn"))
        if self.reward_scaler is not None:
            self.reward_scaler.load_state_dict(load_section(state, "reward_scaler"))
        self.stats.load_state_dict(load_section(state, "stats"))
        self.step_in_episode = np.asarray(load_section(state, "step_in_episode"), dtype=np.int64).copy()
        self.env_steps = int(load_section(state, "env_steps"))
        self.updates = int(load_section(state, "updates"))
        self.pool.load_state_dict(load_section(state, "pool"))

    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """Actions for encoded observations ``[B, obs_dim]`` (mode or a sample from the eval generator)."""
        out = self.policy(obs)
        return self.policy.mode(out) if deterministic else self.policy.sample(out, self._eval_gen)

    def evaluate(self, cfg: RLEvalConfig | None, seed: int) -> list[Row]:
        """Average return over ``cfg.episodes`` episodes (fresh env seeds from ``seed``)."""
        cfg = cfg if cfg is not None else RLEvalConfig()
        self._eval_gen = torch_gen(seed, "eval-actions")
        rets = evaluate_policy(
            self.task.make, lambda o: self.act(o, cfg.deterministic), self.obs_fn, cfg.episodes, seed,
            "eval-episodes",
        )
        return [returns_row(self.name, self.env_id, rets, env_steps=self.env_steps)]


def fit_value_regression(
    value: torch.nn.Module,
    opt: torch.optim.Optimizer,
    obs: torch.Tensor,
    returns: torch.Tensor,
    epochs: int,
    minibatch_size: int,
    generator: torch.Generator,
    max_grad_norm: float | None = None,
) -> float:
    """Regress ``value(obs [N, D]) -> returns [N]`` by minibatch MSE for ``epochs`` passes; mean loss."""

    n = obs.shape[0]
    mb = min(minibatch_size, n)
    total, count = 0.0, 0
    for _ in range(epochs):
        perm = torch.randperm(n, generator=generator)
        for start in range(0, n - mb + 1, mb):
            idx = perm[start : start + mb]
            loss = value_loss(value(obs[idx]), returns[idx])
            check_finite("value_loss", loss)
            opt.zero_grad()
            loss.backward()
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(value.parameters(), max_grad_norm)
            opt.step()
            total += float(loss.detach())
            count += 1
    return total / max(count, 1)


# ----------------------------------------------------------------------------- off-policy learners
class OffPolicyConfig(Section):
    """Fields shared by DQN, DDPG, TD3 and SAC (each algorithm adds its own)."""

    num_envs: int = Field(1, ge=1, description="envs stepped in a loop")
    steps_per_iter: int = Field(1000, ge=1, description="env steps per train_step (all envs together)")
    buffer_size: int = Field(100_000, ge=1)
    batch_size: int = Field(256, ge=1)
    learning_starts: int = Field(1000, ge=0, description="uniform-random actions and no updates before")
    train_freq: int = Field(1, ge=1, description="update every this many vector steps")
    gradient_steps: int = Field(1, ge=1, description="gradient steps per update")
    gamma: float = Field(0.99, ge=0, le=1)
    hidden: tuple[int, ...] = Field((256, 256))
    activation: Literal["tanh", "relu", "elu", "gelu", "silu"] = "relu"


class OffPolicyLearner:
    """Replay-based scaffolding: an env pool, a replay buffer and the collection loop of one
    ``train_step`` (``steps_per_iter`` env steps, updates every ``train_freq`` vector steps once
    ``learning_starts`` steps are stored). Subclasses build networks and implement :meth:`explore`
    (actions for encoded observations), :meth:`train_batch` (one gradient step), :meth:`greedy`,
    :meth:`modules` and :meth:`optimizers` (checkpointed by name).

    Transitions store ``terminated`` only (time-limit truncations bootstrap), and the true final
    observation of an episode as ``next_obs``. With ``n_step > 1`` (passed by the subclass) they are
    n-step transitions with a stored bootstrap ``discount`` (:class:`NStepAccumulator`); ``train_batch``
    must then use ``batch["discount"]`` instead of ``gamma``.
    """

    key_metric = "episode_return"
    name = "off-policy"

    def __init__(self, cfg: OffPolicyConfig, task: Any, seed: int, n_step: int = 1) -> None:

        self.cfg = cfg
        self.task = require_gym_task(task, self.name)
        self.seed = seed
        self.env_id = str(getattr(task, "env_id", "env"))
        self.obs_dim, self.discrete, self.act_n = space_info(task.observation_space, task.action_space)
        self.action_space = task.action_space
        if not self.discrete:
            self.low = torch.as_tensor(task.action_space.low, dtype=torch.float32).reshape(-1)
            self.high = torch.as_tensor(task.action_space.high, dtype=torch.float32).reshape(-1)
            if not (torch.isfinite(self.low).all() and torch.isfinite(self.high).all()):
                raise ConfigError(f"task.env_id: {self.env_id} has unbounded actions; {self.name} needs bounds")
        assert isinstance(task.action_space, (gym.spaces.Discrete, gym.spaces.Box))
        self.init_gen = torch_gen(seed, "init")
        self.gen = torch_gen(seed, "actions")
        self.batch_gen = torch_gen(seed, "replay")
        self.pool = EnvPool(task.make, cfg.num_envs, seed, "train-envs")
        self.obs_fn = ObsPipeline(task.observation_space, self.obs_dim, False)
        act_shape: tuple[int, ...] = () if self.discrete else (self.act_n,)
        self.buffer = ReplayBuffer(
            cfg.buffer_size, self.obs_dim, act_shape, torch.int64 if self.discrete else torch.float32,
            with_discount=n_step > 1,
        )
        self.nstep = NStepAccumulator(n_step, cfg.gamma, cfg.num_envs) if n_step > 1 else None
        self.stats = EpisodeStats()
        self.env_steps = 0
        self.vector_steps = 0
        self.grad_steps = 0
        self._last: dict[str, float] = {}

    # -- subclasses
    def modules(self) -> dict[str, torch.nn.Module]:
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def explore(self, obs: torch.Tensor) -> torch.Tensor:
        """Exploration actions ``[E]`` (int64) or ``[E, act_dim]`` for encoded observations ``[E, D]``."""
        raise NotImplementedError

    def greedy(self, obs: torch.Tensor) -> torch.Tensor:
        """Evaluation actions for ``[B, D]`` observations."""
        raise NotImplementedError

    def train_batch(self) -> dict[str, float]:
        """One gradient step on a replay minibatch; returns loss metrics."""
        raise NotImplementedError

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    # -- shared
    def random_actions(self, n: int) -> torch.Tensor:
        """Uniform actions from the ``actions`` generator (before ``learning_starts``)."""
        if self.discrete:
            return torch.randint(0, self.act_n, (n,), generator=self.gen)
        u = torch.rand(n, self.act_n, generator=self.gen)
        return self.low + u * (self.high - self.low)

    def train_step(self, iteration: int) -> dict[str, float]:
        """``steps_per_iter`` env steps with updates interleaved; metrics averaged over the updates."""
        cfg = self.cfg
        sums: dict[str, float] = {}
        n_updates = 0
        target = self.env_steps + cfg.steps_per_iter
        if not self.pool.started:
            self.pool.reset()
        while self.env_steps < target:
            obs = self.obs_fn(self.pool.obs)
            if self.env_steps < cfg.learning_starts:
                actions = self.random_actions(cfg.num_envs)
            else:
                with torch.no_grad():
                    actions = self.explore(obs)
            res = self.pool.step(actions.numpy())
            next_obs = self.obs_fn(res.final_obs)
            if self.nstep is None:
                self.buffer.add(
                    obs, actions, torch.as_tensor(res.rewards, dtype=torch.float32), next_obs,
                    torch.as_tensor(res.terminated, dtype=torch.float32),
                )
            else:
                done = np.logical_or(res.terminated, res.truncated)
                out = self.nstep.push(obs, actions, res.rewards, next_obs, res.terminated, done)
                if out is not None:
                    self.buffer.add(out["obs"], out["actions"], out["rewards"], out["next_obs"],
                                    out["terminated"], out["discount"])
            self.stats.add(res.finished)
            self.env_steps += cfg.num_envs
            self.vector_steps += 1
            if (
                self.env_steps >= cfg.learning_starts
                and self.buffer.size >= cfg.batch_size
                and self.vector_steps % cfg.train_freq == 0
            ):
                for _ in range(cfg.gradient_steps):
                    m = self.train_batch()
                    self.grad_steps += 1
                    for k, v in m.items():
                        if not math.isfinite(v):
                            raise NumericError(k)
                        sums[k] = sums.get(k, 0.0) + v
                    n_updates += 1
        if n_updates:
            self._last = {k: v / n_updates for k, v in sums.items()}
        return {
            "env_steps": float(self.env_steps),
            **self.stats.metrics(),
            "grad_steps": float(self.grad_steps),
            **self._last,
        }

    def state_dict(self) -> dict[str, Any]:
        state = {
            "modules": {k: m.state_dict() for k, m in self.modules().items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers().items()},
            "gen": get_state(self.gen),
            "batch_gen": get_state(self.batch_gen),
            "pool": self.pool.state_dict(),
            "buffer": self.buffer.state_dict(),
            "stats": self.stats.state_dict(),
            "counters": {"env_steps": self.env_steps, "vector_steps": self.vector_steps,
                         "grad_steps": self.grad_steps},
            "last": dict(self._last),
            "extra": self.extra_state(),
        }
        if self.nstep is not None:
            state["nstep"] = self.nstep.state_dict()
        return copy.deepcopy(state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            mods = load_section(state, "modules")
            for k, m in self.modules().items():
                m.load_state_dict(mods[k])
            opts = load_section(state, "optimizers")
            for k, o in self.optimizers().items():
                o.load_state_dict(opts[k])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"learner state: weights do not fit this config ({exc})") from None
        set_state(self.gen, load_section(state, "gen"))
        set_state(self.batch_gen, load_section(state, "batch_gen"))
        self.buffer.load_state_dict(load_section(state, "buffer"))
        self.stats.load_state_dict(load_section(state, "stats"))
        c = load_section(state, "counters")
        self.env_steps, self.vector_steps = int(c["env_steps"]), int(c["vector_steps"])
        self.grad_steps = int(c["grad_steps"])
        self._last = {k: float(v) for k, v in load_section(state, "last").items()}
        self.load_extra_state(load_section(state, "extra"))
        if self.nstep is not None:
            self.nstep.load_state_dict(load_section(state, "nstep"))
        self.pool.load_state_dict(load_section(state, "pool"))

    def evaluate(self, cfg: RLEvalConfig | None, seed: int) -> list[Row]:
        """Average return over ``cfg.episodes`` episodes with :meth:`greedy` actions
        (``deterministic: false`` uses :meth:`explore` noise instead)."""
        cfg = cfg if cfg is not None else RLEvalConfig()
        saved = get_state(self.gen)
        try:
            act = self.greedy if cfg.deterministic else self.explore
            rets = evaluate_policy(self.task.make, act, self.obs_fn, cfg.episodes, seed, "eval-episodes")
        finally:
            set_state(self.gen, saved)  # evaluation never shifts the training streams
        return [returns_row(self.name, self.env_id, rets, env_steps=self.env_steps)]


__all__ = [
    "OffPolicyConfig",
    "OffPolicyLearner",
    "fit_value_regression",
    "OnPolicyConfig",
    "OnPolicyLearner",
    "RewardScaler",
    "require_gym_task",
    "EnvPool",
    "EpisodeStats",
    "NStepAccumulator",
    "ObsPipeline",
    "RLEvalConfig",
    "ReplayBuffer",
    "Rollout",
    "RunningMeanStd",
    "StepResult",
    "check_finite",
    "collect_rollout",
    "encode_obs",
    "evaluate_policy",
    "linear_schedule",
    "load_section",
    "returns_row",
    "soft_update",
    "space_info",
    "to_env_action",
]
