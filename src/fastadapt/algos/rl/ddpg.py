"""Deep Deterministic Policy Gradient (Lillicrap et al. 2016, arXiv 1509.02971).

A deterministic actor ``mu(s)`` and a critic ``Q(s, a)`` with target copies updated by Polyak averaging
(``tau``); critic target ``y = r + gamma (1 - terminated) Q'(s', mu'(s'))``; actor loss ``-Q(s, mu(s))``.
Exploration noise (scaled by the half action range) is either Gaussian or Ornstein-Uhlenbeck
(``theta = 0.15``, as in the paper), reset at the start of every episode.

Metrics: ``env_steps``, ``episode_return``, ``q_loss``, ``actor_loss``, ``q_mean``.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
from pydantic import Field

from fastadapt.algos.rl.common import (
    OffPolicyConfig,
    OffPolicyLearner,
    RLEvalConfig,
    check_finite,
    soft_update,
)
from fastadapt.core.errors import ConfigError
from fastadapt.core.registry import register_algo
from fastadapt.nn.policies import DeterministicPolicy
from fastadapt.nn.values import QMLP
from fastadapt.ops.returns import td_targets


class DDPGConfig(OffPolicyConfig):
    """The ``algo:`` section of DDPG."""

    actor_lr: float = Field(1e-3, gt=0)
    critic_lr: float = Field(1e-3, gt=0)
    tau: float = Field(0.005, gt=0, le=1)
    noise: Literal["gaussian", "ou"] = "gaussian"
    exploration_noise: float = Field(0.1, ge=0, description="noise std as a fraction of the half range")
    ou_theta: float = Field(0.15, ge=0)


class DDPG(OffPolicyLearner):
    """DDPG learner (see the module docstring)."""

    name = "ddpg"

    def __init__(self, cfg: DDPGConfig, task: Any, seed: int) -> None:
        super().__init__(cfg, task, seed)
        self.cfg: DDPGConfig = cfg
        if self.discrete:
            raise ConfigError(f"task.env_id: ddpg needs a Box action space ({self.env_id} is discrete)")
        g = self.init_gen
        self.actor = DeterministicPolicy(self.obs_dim, self.act_n, self.low, self.high, cfg.hidden,
                                         cfg.activation, generator=g)
        self.q = QMLP(self.obs_dim, self.act_n, cfg.hidden, cfg.activation, generator=g)
        self.actor_target, self.q_target = copy.deepcopy(self.actor), copy.deepcopy(self.q)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.q_opt = torch.optim.Adam(self.q.parameters(), lr=cfg.critic_lr)
        self.scale = (self.high - self.low) / 2.0
        self.ou_state = torch.zeros(cfg.num_envs, self.act_n)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"actor": self.actor, "actor_target": self.actor_target, "q": self.q, "q_target": self.q_target}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor": self.actor_opt, "q": self.q_opt}

    def extra_state(self) -> dict[str, Any]:
        return {"ou_state": self.ou_state.clone()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.ou_state = torch.as_tensor(state["ou_state"]).clone()

    def explore(self, obs: torch.Tensor) -> torch.Tensor:
        a = self.actor(obs)
        eps = torch.randn(a.shape, generator=self.gen)
        if self.cfg.noise == "ou" and a.shape[0] == self.ou_state.shape[0]:
            # reset the process of envs that just started an episode
            fresh = torch.as_tensor([len(x) == 0 for x in self.pool._ep_actions]).unsqueeze(-1)
            self.ou_state = torch.where(fresh, torch.zeros_like(self.ou_state), self.ou_state)
            self.ou_state = self.ou_state - self.cfg.ou_theta * self.ou_state + eps
            noise = self.ou_state
        else:
            noise = eps
        a = a + noise * self.cfg.exploration_noise * self.scale
        return torch.maximum(torch.minimum(a, self.high), self.low)

    def greedy(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(obs)

    def train_batch(self) -> dict[str, float]:
        cfg = self.cfg
        b = self.buffer.sample(cfg.batch_size, self.batch_gen)
        with torch.no_grad():
            y = td_targets(b["rewards"], self.q_target(b["next_obs"], self.actor_target(b["next_obs"])),
                           cfg.gamma, b["terminated"])
        q = self.q(b["obs"], b["actions"])
        q_loss = ((q - y) ** 2).mean()
        check_finite("q_loss", q_loss)
        self.q_opt.zero_grad()
        q_loss.backward()
        self.q_opt.step()
        actor_loss = -self.q(b["obs"], self.actor(b["obs"])).mean()
        check_finite("actor_loss", actor_loss)
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        soft_update(self.actor_target, self.actor, cfg.tau)
        soft_update(self.q_target, self.q, cfg.tau)
        return {"q_loss": float(q_loss.detach()), "actor_loss": float(actor_loss.detach()),
                "q_mean": float(q.detach().mean())}


@register_algo("ddpg", family="rl", config=DDPGConfig, eval_config=RLEvalConfig)
def build_ddpg(cfg: DDPGConfig, task: Any, seed: int) -> DDPG:
    """Deep deterministic policy gradient (Lillicrap et al. 2016)."""
    return DDPG(cfg, task, seed)


__all__ = ["DDPG", "DDPGConfig", "build_ddpg"]
