"""Stochastic MLP policies with a pure, generator-driven API.

Every policy maps observations to *distribution parameters* and exposes the distribution's operations as
functions of those parameters::

    out = policy(obs)                       # tuple of tensors, e.g. (logits,) or (mean, log_std)
    a = policy.sample(out, generator)       # explicit torch.Generator, never the global RNG
    logp = policy.log_prob(out, a)          # [...]
    ent = policy.entropy(out)               # [...]
    a_det = policy.mode(out)                # greedy / mean action
    kl = policy.kl(out_p, out_q)            # KL(p || q), [...]

Only ``forward`` touches the module's parameters, so ``torch.func.functional_call(policy, params, (obs,))``
with per-task ``params`` (optionally under ``torch.func.vmap``) gives per-task distributions, and the other
methods work on the result unchanged (gradient-based meta-RL: MAML, Finn et al. 2017; ProMP, Rothfuss et
al. 2019). Shapes: ``obs: [..., obs_dim]`` with any leading dims, e.g. ``[tasks, envs, time, obs_dim]``.

Policies:

- :class:`CategoricalMLPPolicy` — discrete actions, ``out = (logits [..., n_actions],)``.
- :class:`GaussianMLPPolicy` — continuous actions with a state-independent diagonal std, as in TRPO/MAML/
  ProMP/PPO, ``out = (mean [..., act_dim], log_std [..., act_dim])``.
- :class:`TanhGaussianPolicy` — SAC's squashed Gaussian (Haarnoja et al. 2018, appendix C) with a
  state-dependent std and actions rescaled to ``[low, high]``.
- :class:`DeterministicPolicy` — DDPG/TD3 actor ``tanh`` rescaled to ``[low, high]`` (Lillicrap et al. 2016;
  Fujimoto et al. 2018).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fastadapt.nn.mlp import MLP, default_generator
from fastadapt.ops.kl import categorical_kl, diag_gaussian_kl

_LOG_2PI = math.log(2.0 * math.pi)


def _check_obs(obs: torch.Tensor, obs_dim: int) -> None:
    if obs.shape[-1:] != (obs_dim,):
        raise ValueError(f"obs: expected [..., {obs_dim}], got {tuple(obs.shape)}")


class CategoricalMLPPolicy(nn.Module):
    """Discrete-action policy ``pi(a|s) = softmax(MLP(s))_a``.

    Args:
        obs_dim: observation features.
        n_actions: number of discrete actions.
        hidden: hidden layer widths.
        activation: ``tanh`` (default, as in TRPO/MAML) or ``relu``/``elu``/``gelu``/``silu``.
        generator: initialisation randomness (``None``: a generator seeded with 0).

    ``forward(obs [..., obs_dim]) -> (logits [..., n_actions],)``; actions are int64 tensors ``[...]``.
    """

    discrete = True

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if n_actions < 1:
            raise ValueError(f"n_actions must be >= 1, got {n_actions}")
        self.obs_dim = int(obs_dim)
        self.n_actions = int(n_actions)
        self.net = MLP(obs_dim, n_actions, hidden, activation, out_gain=0.01, generator=generator)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor]:
        """``obs: [..., obs_dim] -> (logits [..., n_actions],)`` (unnormalised log-probabilities)."""
        _check_obs(obs, self.obs_dim)
        return (self.net(obs),)

    def _check_out(self, out: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if len(out) != 1 or out[0].shape[-1:] != (self.n_actions,):
            raise ValueError(f"out: expected (logits [..., {self.n_actions}],)")
        return out[0]

    def sample(self, out: tuple[torch.Tensor, ...], generator: torch.Generator) -> torch.Tensor:
        """Actions ``[...]`` (int64) by the Gumbel-max trick with uniforms drawn from ``generator``."""
        logits = self._check_out(out)
        u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype, device=logits.device)
        gumbel = -torch.log((-torch.log(u.clamp_min(1e-20))).clamp_min(1e-20))
        return torch.argmax(logits.detach() + gumbel, dim=-1)

    def log_prob(self, out: tuple[torch.Tensor, ...], actions: torch.Tensor) -> torch.Tensor:
        """``log pi(a|s)``: ``[...]`` for ``actions: [...]`` (integer ids)."""
        logits = self._check_out(out)
        if actions.shape != logits.shape[:-1]:
            raise ValueError(
                f"actions: expected shape {tuple(logits.shape[:-1])}, got {tuple(actions.shape)}"
            )
        logp = F.log_softmax(logits, dim=-1)
        return logp.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self, out: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """``H[pi(.|s)] = -sum_a p log p``: ``[...]``."""
        logp = F.log_softmax(self._check_out(out), dim=-1)
        return -(logp.exp() * logp).sum(-1)

    def mode(self, out: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Greedy actions ``argmax_a logits``: ``[...]``."""
        return torch.argmax(self._check_out(out), dim=-1)

    def kl(self, out_p: tuple[torch.Tensor, ...], out_q: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """``KL(p || q) = sum_a p(a) (log p(a) - log q(a))``: ``[...]``."""
        return categorical_kl(self._check_out(out_p), self._check_out(out_q))

    def distribution(self, out: tuple[torch.Tensor, ...]) -> torch.distributions.Categorical:
        """The equivalent ``torch.distributions.Categorical`` (for code that wants one)."""
        return torch.distributions.Categorical(logits=self._check_out(out))


class GaussianMLPPolicy(nn.Module):
    """Continuous-action policy ``pi(a|s) = N(MLP(s), diag(exp(log_std))^2)`` with a learned,
    state-independent ``log_std`` (Schulman et al. 2015, TRPO; Finn et al. 2017, MAML).

    Args:
        obs_dim: observation features.
        act_dim: action dimensions.
        hidden: hidden layer widths.
        activation: ``tanh`` (default) or ``relu``/``elu``/``gelu``/``silu``.
        init_log_std: initial value of every ``log_std`` entry.
        generator: initialisation randomness (``None``: a generator seeded with 0).

    ``forward(obs [..., obs_dim]) -> (mean [..., act_dim], log_std [..., act_dim])``; ``log_std`` is the
    parameter broadcast to the mean's shape so that every method is a pure function of ``out``.
    Actions are unbounded; environments clip them to their bounds.
    """

    discrete = False

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        init_log_std: float = 0.0,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if act_dim < 1:
            raise ValueError(f"act_dim must be >= 1, got {act_dim}")
        self.obs_dim = int(obs_dim)
        self.act_dim = int(act_dim)
        self.mean_net = MLP(obs_dim, act_dim, hidden, activation, out_gain=0.01, generator=generator)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(init_log_std)))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``obs: [..., obs_dim] -> (mean [..., act_dim], log_std [..., act_dim])``."""
        _check_obs(obs, self.obs_dim)
        mean = self.mean_net(obs)
        return mean, self.log_std.expand_as(mean)

    def _check_out(self, out: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        if len(out) != 2 or out[0].shape[-1:] != (self.act_dim,) or out[0].shape != out[1].shape:
            raise ValueError(
                f"out: expected (mean [..., {self.act_dim}], log_std of the same shape)"
            )
        return out[0], out[1]

    def sample(self, out: tuple[torch.Tensor, ...], generator: torch.Generator) -> torch.Tensor:
        """Actions ``mean + std * eps``, ``eps ~ N(0, I)`` from ``generator``: ``[..., act_dim]`` (no grad)."""
        mean, log_std = self._check_out(out)
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        return (mean + log_std.exp() * eps).detach()

    def log_prob(self, out: tuple[torch.Tensor, ...], actions: torch.Tensor) -> torch.Tensor:
        """``sum_i log N(a_i; mean_i, std_i^2)``: ``[...]`` for ``actions: [..., act_dim]``."""
        mean, log_std = self._check_out(out)
        if actions.shape != mean.shape:
            raise ValueError(f"actions: expected shape {tuple(mean.shape)}, got {tuple(actions.shape)}")
        z = (actions - mean) * torch.exp(-log_std)
        return (-0.5 * z.pow(2) - log_std - 0.5 * _LOG_2PI).sum(-1)

    def entropy(self, out: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """``sum_i (log std_i + 0.5 log(2 pi e))``: ``[...]``."""
        _, log_std = self._check_out(out)
        return (log_std + 0.5 * (_LOG_2PI + 1.0)).sum(-1)

    def mode(self, out: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The mean action ``[..., act_dim]``."""
        return self._check_out(out)[0]

    def kl(self, out_p: tuple[torch.Tensor, ...], out_q: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Diagonal-Gaussian ``KL(p || q) = sum_i [log(s_q/s_p) + (s_p^2 + (m_p-m_q)^2)/(2 s_q^2) - 1/2]``."""
        mp, lsp = self._check_out(out_p)
        mq, lsq = self._check_out(out_q)
        return diag_gaussian_kl(mp, lsp, mq, lsq)

    def distribution(self, out: tuple[torch.Tensor, ...]) -> torch.distributions.Distribution:
        """The equivalent ``Independent(Normal(mean, std), 1)``."""
        mean, log_std = self._check_out(out)
        return torch.distributions.Independent(torch.distributions.Normal(mean, log_std.exp()), 1)


class TanhGaussianPolicy(nn.Module):
    """SAC actor: ``a = low + (tanh(u) + 1) (high - low) / 2``, ``u ~ N(mu(s), sigma(s)^2)``.

    Haarnoja et al. 2018, "Soft Actor-Critic", appendix C: the log-density includes the change of variables
    ``log pi(a|s) = log N(u) - sum_i log(scale_i (1 - tanh(u_i)^2))``. ``forward(obs) -> (mean, log_std)``,
    both ``[..., act_dim]`` with ``log_std`` clipped to ``[log_std_min, log_std_max]``.
    :meth:`rsample` returns reparameterised actions and their log-probabilities (for the actor loss).
    """

    discrete = False

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        low: Sequence[float] | torch.Tensor,
        high: Sequence[float] | torch.Tensor,
        hidden: Sequence[int] = (256, 256),
        activation: str = "relu",
        log_std_min: float = -5.0,
        log_std_max: float = 2.0,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.obs_dim = int(obs_dim)
        self.act_dim = int(act_dim)
        gen = default_generator(generator)
        self.net = MLP(obs_dim, 2 * act_dim, hidden, activation, out_gain=0.01, generator=gen)
        low_t = torch.as_tensor(low, dtype=torch.float32).reshape(act_dim)
        high_t = torch.as_tensor(high, dtype=torch.float32).reshape(act_dim)
        self.register_buffer("action_scale", (high_t - low_t) / 2.0)
        self.register_buffer("action_bias", (high_t + low_t) / 2.0)
        self.log_std_min = float(log_std_min)
        self.log_std_max = float(log_std_max)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``obs: [..., obs_dim] -> (mean [..., act_dim], log_std [..., act_dim])`` of the pre-tanh Gaussian."""
        _check_obs(obs, self.obs_dim)
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        # smooth squashing of log_std into [min, max] (as in SpinningUp / CleanRL)
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (torch.tanh(log_std) + 1)
        return mean, log_std

    def rsample(
        self, out: tuple[torch.Tensor, ...], generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised ``(actions [..., act_dim], log_prob [...])`` (gradients flow to ``out``)."""
        mean, log_std = out
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        u = mean + log_std.exp() * eps
        t = torch.tanh(u)
        logp = (-0.5 * eps.pow(2) - log_std - 0.5 * _LOG_2PI).sum(-1)
        # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), numerically stable
        log_det = (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u)) + torch.log(self.action_scale)).sum(-1)
        return t * self.action_scale + self.action_bias, logp - log_det

    def sample(self, out: tuple[torch.Tensor, ...], generator: torch.Generator) -> torch.Tensor:
        """Actions ``[..., act_dim]`` within ``[low, high]`` (no grad)."""
        return self.rsample(out, generator)[0].detach()

    def mode(self, out: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """``low + (tanh(mean) + 1)(high - low)/2``: ``[..., act_dim]``."""
        return torch.tanh(out[0]) * self.action_scale + self.action_bias


class DeterministicPolicy(nn.Module):
    """DDPG/TD3 actor ``mu(s) = low + (tanh(MLP(s)) + 1)(high - low)/2``: ``[..., act_dim]``.

    Lillicrap et al. 2016 ("Continuous control with deep reinforcement learning"); Fujimoto et al. 2018
    (TD3). Exploration noise is added by the algorithm.
    """

    discrete = False

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        low: Sequence[float] | torch.Tensor,
        high: Sequence[float] | torch.Tensor,
        hidden: Sequence[int] = (256, 256),
        activation: str = "relu",
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.obs_dim = int(obs_dim)
        self.act_dim = int(act_dim)
        self.net = MLP(obs_dim, act_dim, hidden, activation, out_gain=0.01, generator=generator)
        low_t = torch.as_tensor(low, dtype=torch.float32).reshape(act_dim)
        high_t = torch.as_tensor(high, dtype=torch.float32).reshape(act_dim)
        self.register_buffer("action_scale", (high_t - low_t) / 2.0)
        self.register_buffer("action_bias", (high_t + low_t) / 2.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """``obs: [..., obs_dim] -> actions [..., act_dim]`` within ``[low, high]``."""
        _check_obs(obs, self.obs_dim)
        return torch.tanh(self.net(obs)) * self.action_scale + self.action_bias


def policy_for_spaces(
    observation_space: Any,
    action_space: Any,
    hidden: Sequence[int] = (64, 64),
    activation: str = "tanh",
    init_log_std: float = 0.0,
    *,
    generator: torch.Generator | None = None,
) -> CategoricalMLPPolicy | GaussianMLPPolicy:
    """A Categorical (``Discrete`` actions) or Gaussian (``Box`` actions) MLP policy for gymnasium spaces.

    The observation space must be a flat ``Box`` (or ``Discrete``, which callers one-hot encode).
    """
    import gymnasium as gym

    if isinstance(observation_space, gym.spaces.Box):
        obs_dim = int(math.prod(observation_space.shape))
    elif isinstance(observation_space, gym.spaces.Discrete):
        obs_dim = int(observation_space.n)
    else:
        raise ValueError(f"observation_space: unsupported {type(observation_space).__name__}")
    if isinstance(action_space, gym.spaces.Discrete):
        return CategoricalMLPPolicy(obs_dim, int(action_space.n), hidden, activation, generator=generator)
    if isinstance(action_space, gym.spaces.Box):
        act_dim = int(math.prod(action_space.shape))
        return GaussianMLPPolicy(obs_dim, act_dim, hidden, activation, init_log_std, generator=generator)
    raise ValueError(f"action_space: unsupported {type(action_space).__name__}")


__all__ = [
    "CategoricalMLPPolicy",
    "DeterministicPolicy",
    "GaussianMLPPolicy",
    "TanhGaussianPolicy",
    "policy_for_spaces",
]
