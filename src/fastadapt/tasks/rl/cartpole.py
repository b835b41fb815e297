"""CartPole with varied physics: pole length, pole mass, cart mass and gravity drawn per task.

Dynamics, reward and termination are those of gymnasium's ``CartPole-v1`` (Barto, Sutton & Anderson 1983,
"Neuronlike adaptive elements that can solve difficult learning control problems"; equations of Florian
2007, explicit Euler with ``tau = 0.02``, force ``+-10 N``): ``+1`` per step including the step on which the
pole falls, termination when ``|x| > 2.4`` or ``|theta| > 12 deg``, truncation after 500 steps; initial state
``U[-0.05, 0.05]^4``.

Task distribution: each of ``length`` (half the pole length, default 0.5 m), ``masspole`` (0.1 kg),
``masscart`` (1.0 kg) and ``gravity`` (9.8 m/s^2) is its default times an independent factor drawn
log-uniformly from ``[scale_low, scale_high]`` (default ``[0.5, 2]``), in the spirit of the log-scale
"random physical parameters" tasks of PEARL (Rakelly et al. 2019) / rand_param_envs. There is no canonical
split in the literature: "train" and "test" are independent streams of the same distribution.

API::

    dist = CartPolePhysics(CartPoleConfig())
    tasks = dist.sample(n, seed, split)              # list[CartPoleTask]
    env = dist.batched_env(num_tasks, num_envs)      # obs [T, E, 4], actions [T, E] in {0, 1}
    single = dist.make_env()                         # gymnasium "fastadapt/CartPolePhysics-v0"

The batched env integrates in float64 (like gymnasium's Python floats) and freezes an env once its pole has
fallen (reward 0 afterwards), so stepping past the end stays finite; it has no auto-reset.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from pydantic import Field, model_validator

from fastadapt.core.config import Section
from fastadapt.core.errors import ConfigError, EnvError
from fastadapt.core.registry import register_task
from fastadapt.core.seeding import np_rng
from fastadapt.tasks.rl.action_checks import check_discrete_action, check_discrete_actions, env_label

ENV_ID = "fastadapt/CartPolePhysics-v0"
SPLITS = ("train", "test")
FORCE_MAG = 10.0
TAU = 0.02
X_THRESHOLD = 2.4
THETA_THRESHOLD = 12 * 2 * math.pi / 360


@dataclass(frozen=True)
class CartPoleTask:
    """Physical parameters of one task (gymnasium CartPole-v1 defaults)."""

    length: float = 0.5
    masspole: float = 0.1
    masscart: float = 1.0
    gravity: float = 9.8

    def to_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_any(cls, task: Any) -> CartPoleTask:
        """From itself or a dict of the four parameters; EnvError if missing, non-positive or non-finite."""
        if isinstance(task, CartPoleTask):
            return task
        if not isinstance(task, Mapping):
            raise EnvError(f"cartpole task: expected a dict of length/masspole/masscart/gravity, got {task!r}")
        try:
            vals = {f.name: float(task[f.name]) for f in fields(cls)}
        except (KeyError, TypeError, ValueError):
            raise EnvError(f"cartpole task: expected keys length, masspole, masscart, gravity; got {task!r}") from None
        if not all(math.isfinite(v) and v > 0 for v in vals.values()):
            raise EnvError(f"cartpole task: parameters must be finite and > 0, got {vals}")
        return cls(**vals)


class CartPoleConfig(Section):
    """The ``task:`` section for ``cartpole-physics``."""

    horizon: int = Field(500, gt=0, description="steps per episode (CartPole-v1: 500)")
    scale_low: float = Field(0.5, gt=0, description="smallest factor applied to a default parameter")
    scale_high: float = Field(2.0, gt=0, description="largest factor applied to a default parameter")
    vary: list[str] = Field(
        default_factory=lambda: ["length", "masspole", "masscart", "gravity"],
        description="which parameters vary per task",
    )

    @model_validator(mode="after")
    def _check(self) -> CartPoleConfig:
        if self.scale_high < self.scale_low:
            raise ValueError("scale_high must be >= scale_low")
        allowed = {f.name for f in fields(CartPoleTask)}
        bad = [v for v in self.vary if v not in allowed]
        if bad:
            raise ValueError(f"vary: unknown parameters {bad}; allowed: {sorted(allowed)}")
        return self


def _spaces() -> tuple[gym.spaces.Box, gym.spaces.Discrete]:
    high = np.array(
        [X_THRESHOLD * 2, np.finfo(np.float32).max, THETA_THRESHOLD * 2, np.finfo(np.float32).max],
        dtype=np.float32,
    )
    return gym.spaces.Box(-high, high, dtype=np.float32), gym.spaces.Discrete(2)


class CartPolePhysics:
    """Task distribution + env factories for CartPole with per-task physics."""

    env_id = ENV_ID

    def __init__(self, cfg: CartPoleConfig | None = None, **overrides: Any) -> None:
        if cfg is None:
            cfg = CartPoleConfig(**overrides)
        elif overrides:
            cfg = CartPoleConfig(**{**cfg.model_dump(), **overrides})
        self.cfg = cfg
        self.horizon = self.cfg.horizon
        self.max_episode_steps = self.horizon
        self.observation_space, self.action_space = _spaces()
        self.obs_dim = 4
        self.n_actions = 2
        self.discrete = True

    def sample(self, n: int, seed: int, split: str = "train") -> list[CartPoleTask]:
        """``n`` tasks; each varied parameter = default x log-uniform factor in ``[scale_low, scale_high]``."""
        if split not in SPLITS:
            raise ConfigError(f"split: expected one of {SPLITS}, got {split!r}")
        if n < 0:
            raise ConfigError(f"n: expected >= 0, got {n}")
        rng = np_rng(seed, "cartpole-physics", split)
        lo, hi = math.log(self.cfg.scale_low), math.log(self.cfg.scale_high)
        names = [f.name for f in fields(CartPoleTask)]
        factors = np.exp(rng.uniform(lo, hi, size=(n, len(names))))
        default = CartPoleTask()
        out = []
        for row in factors:
            vals = {
                k: getattr(default, k) * (float(f) if k in self.cfg.vary else 1.0) for k, f in zip(names, row)
            }
            out.append(CartPoleTask(**vals))
        return out

    def make_env(self, **kwargs: Any) -> gym.Env:
        """A single gymnasium env ``fastadapt/CartPolePhysics-v0``."""
        return gym.make(ENV_ID, **{"horizon": self.horizon, **kwargs})

    def batched_env(
        self, num_tasks: int, num_envs: int, device: str | torch.device = "cpu"
    ) -> CartPoleBatchedEnv:
        return CartPoleBatchedEnv(num_tasks, num_envs, horizon=self.horizon, device=device)


class CartPolePhysicsEnv(gym.Env):
    """Single gymnasium env ``fastadapt/CartPolePhysics-v0``: CartPole-v1 with the task's physics.

    ``reset(seed, options={"task": CartPoleTask | dict})`` sets the physics (kept for later resets; default
    physics until one is given); ``options={"state": [x, x_dot, theta, theta_dot]}`` overrides the random
    initial state (used by tests to compare with the batched env). Actions: an int (or NumPy integer / 0-d
    integer array) in ``{0, 1}``; anything else raises :class:`EnvError` naming the env and the action.
    """

    metadata = {"render_modes": []}

    def __init__(self, horizon: int = 500, render_mode: str | None = None) -> None:
        super().__init__()
        self.horizon = int(horizon)
        self.observation_space, self.action_space = _spaces()
        self.render_mode = render_mode
        self.task = CartPoleTask()
        self.state = np.zeros(4)
        self._t = 0
        self._fallen = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        if options.get("task") is not None:
            self.task = CartPoleTask.from_any(options["task"])
        if options.get("state") is not None:
            self.state = np.asarray(options["state"], dtype=np.float64).reshape(4).copy()
        else:
            self.state = self.np_random.uniform(-0.05, 0.05, size=4).astype(np.float64)
        self._t = 0
        self._fallen = False
        return self.state.astype(np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = check_discrete_action(action, 2, env_label(self, ENV_ID))
        p = self.task
        x, x_dot, theta, theta_dot = (float(v) for v in self.state)
        force = FORCE_MAG if a == 1 else -FORCE_MAG
        total_mass = p.masspole + p.masscart
        polemass_length = p.masspole * p.length
        cos, sin = math.cos(theta), math.sin(theta)
        temp = (force + polemass_length * theta_dot * theta_dot * sin) / total_mass
        thetaacc = (p.gravity * sin - cos * temp) / (
            p.length * (4.0 / 3.0 - p.masspole * cos * cos / total_mass)
        )
        xacc = temp - polemass_length * thetaacc * cos / total_mass
        x = x + TAU * x_dot
        x_dot = x_dot + TAU * xacc
        theta = theta + TAU * theta_dot
        theta_dot = theta_dot + TAU * thetaacc
        was_fallen = self._fallen
        if not was_fallen:
            self.state = np.array([x, x_dot, theta, theta_dot], dtype=np.float64)
        terminated = bool(
            abs(self.state[0]) > X_THRESHOLD or abs(self.state[2]) > THETA_THRESHOLD
        )
        self._fallen = self._fallen or terminated
        reward = 0.0 if was_fallen else 1.0
        self._t += 1
        truncated = self._t >= self.horizon and not terminated
        return self.state.astype(np.float32), reward, terminated, truncated, {}


class CartPoleBatchedEnv:
    """``num_tasks x num_envs`` carts in one tensor op (core.protocols.BatchedEnv).

    ``reset(seed) -> obs [T, E, 4]`` with initial states ``U[-0.05, 0.05]`` from a generator seeded by
    ``seed`` (or ``state [T, E, 4]``); ``step(actions [T, E] in {0, 1})``. Physics per task: ``[T, 1]``
    tensors ``length, masspole, masscart, gravity``.
    """

    def __init__(
        self, num_tasks: int, num_envs: int, horizon: int = 500, device: str | torch.device = "cpu"
    ) -> None:
        if num_tasks < 1 or num_envs < 1:
            raise ConfigError(f"batched env: num_tasks and num_envs must be >= 1, got {num_tasks}, {num_envs}")
        self.num_tasks, self.num_envs = int(num_tasks), int(num_envs)
        self.max_episode_steps = int(horizon)
        self.device = torch.device(device)
        self.observation_space, self.action_space = _spaces()
        self.generator = torch.Generator(device=self.device)
        self.params: dict[str, torch.Tensor] = {}
        self.state = torch.zeros(self.num_tasks, self.num_envs, 4, dtype=torch.float64, device=self.device)
        self.fallen = torch.zeros(self.num_tasks, self.num_envs, dtype=torch.bool, device=self.device)
        self._t = 0

    def set_tasks(self, tasks: Sequence[Any]) -> None:
        if len(tasks) != self.num_tasks:
            raise EnvError(f"cartpole batched env: expected {self.num_tasks} tasks, got {len(tasks)}")
        ts = [CartPoleTask.from_any(t) for t in tasks]
        self.params = {
            f.name: torch.tensor([getattr(t, f.name) for t in ts], dtype=torch.float64, device=self.device)[:, None]
            for f in fields(CartPoleTask)
        }

    def reset(self, seed: int | None = None, state: torch.Tensor | None = None) -> torch.Tensor:
        if not self.params:
            raise EnvError("cartpole batched env: call set_tasks() before reset()")
        if seed is not None:
            self.generator.manual_seed(int(seed))
        shape = (self.num_tasks, self.num_envs, 4)
        if state is not None:
            self.state = state.to(self.device, torch.float64).expand(shape).clone()
        else:
            u = torch.rand(shape, generator=self.generator, dtype=torch.float64, device=self.device)
            self.state = u * 0.1 - 0.05
        self.fallen = torch.zeros(self.num_tasks, self.num_envs, dtype=torch.bool, device=self.device)
        self._t = 0
        return self.state.float()

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """``actions``: an integer tensor ``[tasks, envs]`` in ``{0, 1}``; floats, bools, other values and
        shapes raise :class:`EnvError` naming the position, leaving the env unchanged."""
        a = check_discrete_actions(actions, (self.num_tasks, self.num_envs), 2, "cartpole batched env")
        p = self.params
        x, x_dot, theta, theta_dot = self.state.unbind(-1)
        force = torch.where(a == 1, FORCE_MAG, -FORCE_MAG).to(torch.float64)
        total_mass = p["masspole"] + p["masscart"]
        polemass_length = p["masspole"] * p["length"]
        cos, sin = torch.cos(theta), torch.sin(theta)
        temp = (force + polemass_length * theta_dot * theta_dot * sin) / total_mass
        thetaacc = (p["gravity"] * sin - cos * temp) / (
            p["length"] * (4.0 / 3.0 - p["masspole"] * cos * cos / total_mass)
        )
        xacc = temp - polemass_length * thetaacc * cos / total_mass
        new = torch.stack(
            [x + TAU * x_dot, x_dot + TAU * xacc, theta + TAU * theta_dot, theta_dot + TAU * thetaacc], -1
        )
        was_fallen = self.fallen
        self.state = torch.where(was_fallen[..., None], self.state, new)
        terminated = (self.state[..., 0].abs() > X_THRESHOLD) | (self.state[..., 2].abs() > THETA_THRESHOLD)
        self.fallen = was_fallen | terminated
        reward = (~was_fallen).to(torch.float32)
        self._t += 1
        truncated = ~terminated & (self._t >= self.max_episode_steps)
        return self.state.float(), reward, terminated, truncated, {}


if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point=CartPolePhysicsEnv)


@register_task("cartpole-physics", family="metarl", config=CartPoleConfig)
def build_cartpole_physics(cfg: CartPoleConfig) -> CartPolePhysics:
    """CartPole-v1 with pole length, pole mass, cart mass and gravity drawn per task (log-uniform factors)."""
    return CartPolePhysics(cfg)


__all__ = [
    "ENV_ID",
    "CartPoleBatchedEnv",
    "CartPoleConfig",
    "CartPolePhysics",
    "CartPolePhysicsEnv",
    "CartPoleTask",
    "build_cartpole_physics",
]
