"""Multi-armed bandit tasks: Bernoulli bandits (RL², Duan et al. 2016, arXiv 1611.02779, Sec. 4.1) and
Gaussian bandits.

A *task* is one bandit (the means of its ``k`` arms); a *trial* is ``n`` pulls of that bandit, after which
the task is redrawn. The three pieces every cheap task family provides:

- :class:`BanditDistribution` — the task distribution, ``sample(n, seed, split) -> list[BanditTask]``.
  Bernoulli: arm means ``p_i ~ U[0, 1]`` i.i.d. (as in RL²); Gaussian: ``mu_i ~ N(0, mean_std²)`` and rewards
  ``N(mu_i, noise_std²)``. There is no fixed train/test split in the literature; the two splits use
  independent random streams.
- :class:`BanditEnv` (gymnasium; ids ``fastadapt/BernoulliBandit-v0`` and ``fastadapt/GaussianBandit-v0``) —
  ONE trial of ``pulls`` steps is one gymnasium episode. The task is set by
  ``reset(seed=..., options={"task": task})``; without a task option a fresh task is drawn from the prior
  with the env's ``np_random``.
- :class:`BatchedBanditEnv` — ``[tasks, envs]`` trials stepped by a handful of torch ops
  (:class:`fastadapt.core.protocols.BatchedEnv`).

Observation (RL²'s input ``(a_{t-1}, r_{t-1}, d_{t-1})``; a bandit has no state), ``obs_dim = k + 2``::

    obs[..., :k]   one-hot of the previous action (all zeros right after reset)
    obs[..., k]    the previous reward (0 right after reset)
    obs[..., k+1]  done flag: 1 if the previous step ended an *episode*. In RL² each pull of a bandit is an
                   episode of length 1 inside the trial, so the flag is 1 after every pull and 0 after reset.

``terminated`` becomes True after the ``pulls``-th pull (the trial is a finite-horizon problem, nothing is
bootstrapped past it); ``truncated`` is always False. Stepping a finished trial raises :class:`EnvError`.

Randomness (same trajectories in the single and the batched env). Reward noise is drawn from a
*counter-based* generator: every uniform is a hash of ``(stream key, step, draw)``, so it does not depend
on how many envs are stepped together. A batched env reset with ``seed`` gives the env at position
``(t, e)`` the stream key ``stream_keys(seed, t, e)``; the gymnasium env reset with the same ``seed`` and
``options={"index": (t, e)}`` (default ``(0, 0)``) uses the same key, so, given the same task and actions,
it reproduces that env's rewards exactly. The hash (Wellons' "lowbias32" integer hash, evaluated with
exact 32-bit arithmetic inside int64 tensors) is applied twice per draw; it is for simulation, not
cryptography.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

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

__all__ = [
    "BanditTask",
    "BanditDistribution",
    "BanditEnv",
    "BatchedBanditEnv",
    "BanditConfig",
    "stream_keys",
    "counter_uniform",
    "counter_normal",
    "build_bandit",
]

# ------------------------------------------------------------------------------------ counter-based RNG
_MASK32 = 0xFFFFFFFF
_TWO32 = 4294967296.0


def _mul32(x: Any, c: int) -> Any:
    """``x * c mod 2**32`` for ``0 <= x < 2**32`` without overflowing int64 (16-bit split)."""
    return ((((x >> 16) * c) & 0xFFFF) << 16) + (x & 0xFFFF) * c & _MASK32


def _hash32(x: Any) -> Any:
    """Wellons' lowbias32 integer hash (a bijection of [0, 2**32)); works on Python ints and int64 tensors."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x21F0AAAD)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x735A2D97)
    x = x ^ (x >> 15)
    return x


def _seed_key(seed: int) -> int:
    if seed < 0:
        raise EnvError(f"seed must be >= 0, got {seed}")
    lo, hi = seed & _MASK32, (seed >> 32) & _MASK32
    return int(_hash32(_hash32(lo ^ 0x9E3779B9) ^ hi))


def stream_keys(
    seed: int, task_index: torch.Tensor | int, env_index: torch.Tensor | int
) -> torch.Tensor:
    """The 32-bit stream key of the env at ``(task_index, env_index)`` for a reset with ``seed``.

    Tensors broadcast: ``stream_keys(s, arange(T)[:, None], arange(E)[None, :]) -> [T, E]`` int64.
    """
    t = torch.as_tensor(task_index, dtype=torch.int64)
    e = torch.as_tensor(env_index, dtype=torch.int64, device=t.device)
    k0 = _seed_key(int(seed))
    return _hash32(_hash32((t & _MASK32) ^ k0) ^ (e & _MASK32))


def counter_uniform(keys: torch.Tensor, step: int, draw: int) -> torch.Tensor:
    """Uniforms in (0, 1), float64, same shape as ``keys``: a pure function of ``(key, step, draw)``."""
    c = _hash32(((int(step) * 8 + int(draw)) & _MASK32) ^ 0x85EBCA6B)
    h = _hash32(_hash32(keys ^ c) ^ 0x27D4EB2F)
    return (h.to(torch.float64) + 0.5) / _TWO32


def counter_normal(keys: torch.Tensor, step: int, draw: int) -> torch.Tensor:
    """Standard normals (Box-Muller on draws ``draw`` and ``draw + 1``), float64, shape of ``keys``."""
    u1 = counter_uniform(keys, step, draw)
    u2 = counter_uniform(keys, step, draw + 1)
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * math.pi) * u2)


# ------------------------------------------------------------------------------------------- tasks
Distribution = Literal["bernoulli", "gaussian"]


@dataclass(frozen=True)
class BanditTask:
    """One bandit: the arm means (Bernoulli success probabilities or Gaussian means) and the reward law."""

    means: tuple[float, ...]
    distribution: Distribution = "bernoulli"
    noise_std: float = 1.0

    @property
    def arms(self) -> int:
        return len(self.means)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["means"] = list(self.means)
        return d

    @classmethod
    def coerce(cls, task: Any) -> BanditTask:
        """Accept a :class:`BanditTask`, a mapping with ``means`` (JSON form) or a 1-d array of means."""
        if isinstance(task, BanditTask):
            return task
        if isinstance(task, Mapping):
            if "means" not in task:
                raise EnvError(f"bandit task: expected a 'means' entry, got keys {sorted(task)}")
            return cls(
                means=tuple(float(m) for m in np.asarray(task["means"], dtype=np.float64).ravel()),
                distribution=task.get("distribution", "bernoulli"),
                noise_std=float(task.get("noise_std", 1.0)),
            )
        arr = np.asarray(task, dtype=np.float64)
        if arr.ndim != 1:
            raise EnvError(f"bandit task: expected a BanditTask, a dict or 1-d means, got shape {arr.shape}")
        return cls(means=tuple(float(m) for m in arr))


class BanditDistribution:
    """Distribution over k-armed bandits (RL² Sec. 4.1: Bernoulli arms with ``p ~ U[0, 1]``).

    Args:
        arms: number of arms ``k``.
        pulls: pulls per trial ``n`` (the env's ``max_episode_steps``).
        distribution: ``"bernoulli"`` (means ``U[0, 1]``, rewards in {0, 1}) or ``"gaussian"`` (means
            ``N(0, mean_std²)``, rewards ``N(mu, noise_std²)``).
    """

    def __init__(
        self,
        arms: int = 5,
        pulls: int = 10,
        distribution: Distribution = "bernoulli",
        noise_std: float = 1.0,
        mean_std: float = 1.0,
    ) -> None:
        if arms < 1 or pulls < 1:
            raise EnvError(f"bandit: arms and pulls must be >= 1, got arms={arms}, pulls={pulls}")
        if distribution not in ("bernoulli", "gaussian"):
            raise EnvError(f"bandit: distribution must be bernoulli or gaussian, got {distribution!r}")
        self.arms = int(arms)
        self.pulls = int(pulls)
        self.distribution: Distribution = distribution
        self.noise_std = float(noise_std)
        self.mean_std = float(mean_std)

    def sample_means(self, n: int, seed: int, split: str = "train") -> np.ndarray:
        """Arm means of ``n`` tasks as an array ``[n, arms]`` (float64); same as :meth:`sample`."""
        if split not in ("train", "test"):
            raise EnvError(f"split must be 'train' or 'test', got {split!r}")
        rng = np_rng(seed, "bandit-tasks", self.distribution, split)
        if self.distribution == "bernoulli":
            return rng.uniform(0.0, 1.0, size=(n, self.arms))
        return rng.normal(0.0, self.mean_std, size=(n, self.arms))

    def sample(self, n: int, seed: int, split: str = "train") -> list[BanditTask]:
        """``n`` tasks; the same ``(n, seed, split)`` always gives the same tasks."""
        means = self.sample_means(n, seed, split)
        return [
            BanditTask(tuple(float(m) for m in row), self.distribution, self.noise_std) for row in means
        ]

    def batched_env(
        self, num_tasks: int, num_envs: int = 1, device: str | torch.device = "cpu"
    ) -> BatchedBanditEnv:
        """A :class:`BatchedBanditEnv` matching this distribution (call ``set_tasks`` before ``reset``)."""
        return BatchedBanditEnv(
            num_tasks, num_envs, self.arms, self.pulls, self.distribution, self.noise_std, device
        )

    def make_env(self) -> BanditEnv:
        """A single gymnasium env of this family."""
        return BanditEnv(self.arms, self.pulls, self.distribution, self.noise_std, self.mean_std)

    def __repr__(self) -> str:
        return (
            f"BanditDistribution(arms={self.arms}, pulls={self.pulls}, "
            f"distribution={self.distribution!r})"
        )


def _obs_bounds(arms: int, distribution: str) -> tuple[np.ndarray, np.ndarray]:
    low = np.zeros(arms + 2, dtype=np.float32)
    high = np.ones(arms + 2, dtype=np.float32)
    if distribution == "gaussian":
        low[arms], high[arms] = -np.inf, np.inf
    return low, high


# ----------------------------------------------------------------------------------- batched env
class BatchedBanditEnv:
    """``num_tasks x num_envs`` bandit trials stepped at once with torch ops (BatchedEnv protocol).

    ``set_tasks(tasks)`` (``num_tasks`` tasks) -> ``reset(seed) -> obs [tasks, envs, k+2]`` ->
    ``step(actions [tasks, envs] int64) -> (obs [T, E, k+2] float32, reward [T, E] float32, terminated
    [T, E] bool, truncated [T, E] bool, info)``; ``info["expected_reward"]`` is the chosen arm's mean
    ``[T, E]``. All envs share the step counter (trials have a fixed length ``pulls``); there is no
    auto-reset. The env at ``(t, e)`` draws from stream ``stream_keys(seed, t, e)`` (module docstring).
    """

    def __init__(
        self,
        num_tasks: int,
        num_envs: int,
        arms: int,
        pulls: int,
        distribution: Distribution = "bernoulli",
        noise_std: float = 1.0,
        device: str | torch.device = "cpu",
    ) -> None:
        if num_tasks < 1 or num_envs < 1:
            raise EnvError(f"bandit: num_tasks and num_envs must be >= 1, got {num_tasks}, {num_envs}")
        self.num_tasks = int(num_tasks)
        self.num_envs = int(num_envs)
        self.arms = int(arms)
        self.max_episode_steps = int(pulls)
        self.distribution: Distribution = distribution
        self.noise_std = float(noise_std)
        self.device = torch.device(device)
        low, high = _obs_bounds(self.arms, distribution)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self.action_space = spaces.Discrete(self.arms)
        self.obs_dim = self.arms + 2
        self._means: torch.Tensor | None = None  # [T, k] float64
        self._noise: torch.Tensor | None = None  # [T] float64
        self._keys: torch.Tensor | None = None  # [T, E] int64
        self._t = 0
        self._seed_gen = torch_gen(0, "bandit-batched-env", device="cpu")
        self._act_shape = (self.num_tasks, self.num_envs)
        t_idx = torch.arange(self.num_tasks, device=self.device)[:, None]
        e_idx = torch.arange(self.num_envs, device=self.device)[None, :]
        self._t_idx, self._e_idx = t_idx, e_idx

    # -- protocol
    def set_tasks(self, tasks: Sequence[Any]) -> None:
        """Set the ``num_tasks`` bandits (BanditTask, dicts with ``means``, or an array ``[T, k]``)."""
        if isinstance(tasks, (np.ndarray, torch.Tensor)):
            means = torch.as_tensor(tasks, dtype=torch.float64)
            noise = torch.full((means.shape[0],), self.noise_std, dtype=torch.float64)
        else:
            parsed = [BanditTask.coerce(t) for t in tasks]
            for i, p in enumerate(parsed):
                if p.arms != self.arms:
                    raise EnvError(f"task {i}: expected {self.arms} arms, got {p.arms}")
                if p.distribution != self.distribution:
                    raise EnvError(
                        f"task {i}: distribution {p.distribution!r} but the env is {self.distribution!r}"
                    )
            means = torch.tensor([p.means for p in parsed], dtype=torch.float64).reshape(-1, self.arms)
            noise = torch.tensor([p.noise_std for p in parsed], dtype=torch.float64)
        if means.shape != (self.num_tasks, self.arms):
            raise EnvError(f"set_tasks: expected means [{self.num_tasks}, {self.arms}], got {tuple(means.shape)}")
        if not torch.isfinite(means).all():
            raise EnvError("set_tasks: non-finite arm means")
        self._means = means.to(self.device)
        self._noise = noise.to(self.device)
        self._keys = None

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Start a new trial in every env; returns ``obs [tasks, envs, k+2]`` (zeros)."""
        if self._means is None:
            raise EnvError("reset: call set_tasks(tasks) first")
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,), generator=self._seed_gen).item())
        keys = stream_keys(int(seed), self._t_idx, self._e_idx)
        self._reset_keys(keys)
        return torch.zeros(self.num_tasks, self.num_envs, self.obs_dim, device=self.device)

    def _reset_keys(self, keys: torch.Tensor) -> None:
        self._keys = keys.to(self.device)
        self._t = 0

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Pull arm ``actions[t, e]`` in every env (see class docstring for shapes).

        ``actions`` must be an integer tensor ``[tasks, envs]`` with entries in ``[0, arms)``; anything else
        (floats, bools, out-of-range arms, other shapes) raises :class:`EnvError` naming the position and
        leaves the env unchanged (:mod:`fastadapt.tasks.rl.action_checks`).
        """
        if self._keys is None or self._means is None:
            raise EnvError("step: call reset() first")
        if self._t >= self.max_episode_steps:
            raise EnvError(f"step: the trial of {self.max_episode_steps} pulls is over; call reset()")
        a = check_discrete_actions(actions, self._act_shape, self.arms, "bandit batched env").to(self.device)
        mu = torch.gather(self._means, 1, a)  # [T, E] float64
        if self.distribution == "bernoulli":
            u = counter_uniform(self._keys, self._t, 0)
            reward = (u < mu).to(torch.float32)
        else:
            z = counter_normal(self._keys, self._t, 0)
            reward = (mu + self._noise[:, None] * z).to(torch.float32)
        self._t += 1
        obs = torch.zeros(self.num_tasks, self.num_envs, self.obs_dim, device=self.device)
        obs.scatter_(2, a.unsqueeze(-1), 1.0)
        obs[..., self.arms] = reward
        obs[..., self.arms + 1] = 1.0
        done = self._t >= self.max_episode_steps
        terminated = torch.full((self.num_tasks, self.num_envs), done, dtype=torch.bool, device=self.device)
        truncated = torch.zeros_like(terminated)
        return obs, reward, terminated, truncated, {"expected_reward": mu.to(torch.float32)}

    @property
    def means(self) -> torch.Tensor:
        """Arm means of the current tasks ``[tasks, arms]`` (float64)."""
        if self._means is None:
            raise EnvError("no tasks set")
        return self._means


# ---------------------------------------------------------------------------------- gymnasium env
class BanditEnv(gym.Env):
    """One bandit trial as a gymnasium episode (module docstring for the observation layout).

    ``reset(seed=s, options={"task": task, "index": (t, e)})``: ``task`` is a :class:`BanditTask`, a dict
    with ``means`` or an array of means (omitted: a fresh task from the prior, drawn with ``np_random``);
    ``index`` selects the noise stream so that the env reproduces position ``(t, e)`` of a
    :class:`BatchedBanditEnv` reset with the same seed.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        arms: int = 5,
        pulls: int = 10,
        distribution: Distribution = "bernoulli",
        noise_std: float = 1.0,
        mean_std: float = 1.0,
    ) -> None:
        super().__init__()
        self.dist = BanditDistribution(arms, pulls, distribution, noise_std, mean_std)
        self.arms = int(arms)
        self.pulls = int(pulls)
        self.distribution: Distribution = distribution
        low, high = _obs_bounds(self.arms, distribution)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self.action_space = spaces.Discrete(self.arms)
        self._inner = BatchedBanditEnv(1, 1, arms, pulls, distribution, noise_std)
        self.task: BanditTask | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        if options.get("task") is not None:
            task = BanditTask.coerce(options["task"])
            if task.arms != self.arms:
                raise EnvError(f"reset: task has {task.arms} arms, env has {self.arms}")
        else:
            if self.distribution == "bernoulli":
                means = self.np_random.uniform(0.0, 1.0, size=self.arms)
            else:
                means = self.np_random.normal(0.0, self.dist.mean_std, size=self.arms)
            task = BanditTask(tuple(float(m) for m in means), self.distribution, self.dist.noise_std)
        self.task = task
        self._inner.set_tasks([task])
        t_idx, e_idx = options.get("index", (0, 0))
        if seed is not None:
            keys = stream_keys(int(seed), int(t_idx), int(e_idx)).reshape(1, 1)
        else:
            keys = torch.tensor([[int(self.np_random.integers(0, 2**32))]], dtype=torch.int64)
        self._inner._reset_keys(keys)
        return np.zeros(self.arms + 2, dtype=np.float32), {"means": np.asarray(task.means)}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Pull arm ``action``: an int (or NumPy integer / 0-d integer array) in ``[0, arms)``; anything else
        raises :class:`EnvError` naming the env and the action (no truncation of floats)."""
        arm = check_discrete_action(action, self.arms, env_label(self, "bandit env"))
        a = torch.tensor([[arm]], dtype=torch.int64)
        obs, rew, term, trunc, info = self._inner.step(a)
        return (
            obs[0, 0].numpy().astype(np.float32),
            float(rew[0, 0]),
            bool(term[0, 0]),
            bool(trunc[0, 0]),
            {"expected_reward": float(info["expected_reward"][0, 0])},
        )


def _register_gym() -> None:
    for env_id, kwargs in (
        ("fastadapt/BernoulliBandit-v0", {"distribution": "bernoulli"}),
        ("fastadapt/GaussianBandit-v0", {"distribution": "gaussian"}),
    ):
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point="fastadapt.tasks.rl.bandit:BanditEnv", kwargs=kwargs)


_register_gym()


# ------------------------------------------------------------------------------------- task registry
class BanditConfig(Section):
    """``task:`` section of the bandit family (RL² Sec. 4.1)."""

    arms: int = Field(5, ge=2, description="number of arms k")
    pulls: int = Field(10, ge=1, description="pulls per trial n")
    distribution: Distribution = Field("bernoulli", description="bernoulli (p ~ U[0,1]) or gaussian")
    noise_std: float = Field(1.0, gt=0, description="reward noise std (gaussian only)")
    mean_std: float = Field(1.0, gt=0, description="std of the arm means (gaussian only)")


@register_task("bandit", family="metarl", config=BanditConfig)
def build_bandit(cfg: BanditConfig) -> BanditDistribution:
    """k-armed Bernoulli (RL²) or Gaussian bandits; a trial is n pulls."""
    return BanditDistribution(cfg.arms, cfg.pulls, cfg.distribution, cfg.noise_std, cfg.mean_std)
