"""Value and action-value networks.

- :class:`ValueMLP` — state value ``V(s)``: ``obs [..., obs_dim] -> [...]`` (critics of A2C/PPO/TRPO).
- :class:`QMLP` — continuous-action ``Q(s, a)``: ``(obs [..., obs_dim], act [..., act_dim]) -> [...]``
  (DDPG, TD3, SAC critics; Lillicrap et al. 2016, Fujimoto et al. 2018, Haarnoja et al. 2018).
- :class:`DiscreteQMLP` — all action values at once ``Q(s, .)``: ``obs [..., obs_dim] -> [..., n_actions]``
  (DQN; Mnih et al. 2015).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fastadapt.nn.mlp import MLP


class ValueMLP(nn.Module):
    """``V(s)``: ``obs [..., obs_dim] -> [...]``."""

    def __init__(
        self,
        obs_dim: int,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.obs_dim = int(obs_dim)
        self.net = MLP(obs_dim, 1, hidden, activation, out_gain=1.0, generator=generator)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if obs.shape[-1:] != (self.obs_dim,):
            raise ValueError(f"obs: expected [..., {self.obs_dim}], got {tuple(obs.shape)}")
        return self.net(obs).squeeze(-1)


class QMLP(nn.Module):
    """``Q(s, a)``: ``(obs [..., obs_dim], act [..., act_dim]) -> [...]`` on the concatenated input."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (256, 256),
        activation: str = "relu",
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.obs_dim = int(obs_dim)
        self.act_dim = int(act_dim)
        self.net = MLP(obs_dim + act_dim, 1, hidden, activation, out_gain=1.0, generator=generator)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        if obs.shape[-1:] != (self.obs_dim,):
            raise ValueError(f"obs: expected [..., {self.obs_dim}], got {tuple(obs.shape)}")
        if act.shape[-1:] != (self.act_dim,) or act.shape[:-1] != obs.shape[:-1]:
            raise ValueError(
                f"act: expected {tuple(obs.shape[:-1]) + (self.act_dim,)}, got {tuple(act.shape)}"
            )
        return self.net(torch.cat([obs, act], dim=-1)).squeeze(-1)


class DiscreteQMLP(nn.Module):
    """``Q(s, .)``: ``obs [..., obs_dim] -> [..., n_actions]``."""

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden: Sequence[int] = (120, 84),
        activation: str = "relu",
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.obs_dim = int(obs_dim)
        self.n_actions = int(n_actions)
        self.net = MLP(obs_dim, n_actions, hidden, activation, out_gain=1.0, generator=generator)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if obs.shape[-1:] != (self.obs_dim,):
            raise ValueError(f"obs: expected [..., {self.obs_dim}], got {tuple(obs.shape)}")
        return self.net(obs)


__all__ = ["DiscreteQMLP", "QMLP", "ValueMLP"]
