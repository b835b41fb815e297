"""Twin Delayed DDPG (Fujimoto et al. 2018, arXiv 1802.09477).

Three changes to DDPG: clipped double-Q targets ``y = r + gamma (1 - terminated) min_j Q'_j(s', a')`` with
target policy smoothing ``a' = clip(mu'(s') + clip(N(0, target_noise), -noise_clip, noise_clip))``, and
delayed actor / target updates every ``policy_delay`` critic steps. Exploration adds Gaussian noise
``N(0, (exploration_noise * (high - low)/2)^2)`` to the deterministic actor.

Metrics: ``env_steps``, ``episode_return``, ``q_loss``, ``actor_loss``, ``q_mean``.
"""

from __future__ import annotations

import copy
from typing import Any

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


class TD3Config(OffPolicyConfig):
    """The ``algo:`` section of TD3."""

    actor_lr: float = Field(1e-3, gt=0)
    critic_lr: float = Field(1e-3, gt=0)
    tau: float = Field(0.005, gt=0, le=1)
    exploration_noise: float = Field(0.1, ge=0, description="std, as a fraction of the half action range")
    target_noise: float = Field(0.2, ge=0)
    noise_clip: float = Field(0.5, ge=0)
    policy_delay: int = Field(2, ge=1)


class TD3(OffPolicyLearner):
    """TD3 learner (see the module docstring)."""

    name = "td3"

    def __init__(self, cfg: TD3Config, task: Any, seed: int) -> None:
        super().__init__(cfg, task, seed)
        self.cfg: TD3Config = cfg
        if self.discrete:
            raise ConfigError(f"task.env_id: td3 needs a Box action space ({self.env_id} is discrete)")
        g = self.init_gen
        self.actor = DeterministicPolicy(self.obs_dim, self.act_n, self.low, self.high, cfg.hidden,
                                         cfg.activation, generator=g)
        self.q1 = QMLP(self.obs_dim, self.act_n, cfg.hidden, cfg.activation, generator=g)
        self.q2 = QMLP(self.obs_dim, self.act_n, cfg.hidden, cfg.activation, generator=g)
        self.actor_target = copy.deepcopy(self.actor)
        self.q1_target, self.q2_target = copy.deepcopy(self.q1), copy.deepcopy(self.q2)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.q_opt = torch.optim.Adam(list(self.q1.parameters()) + list(self.q2.parameters()), lr=cfg.critic_lr)
        self.scale = (self.high - self.low) / 2.0

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"actor": self.actor, "actor_target": self.actor_target, "q1": self.q1, "q2": self.q2,
                "q1_target": self.q1_target, "q2_target": self.q2_target}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor": self.actor_opt, "q": self.q_opt}

    def explore(self, obs: torch.Tensor) -> torch.Tensor:
        a = self.actor(obs)
        noise = torch.randn(a.shape, generator=self.gen) * self.cfg.exploration_noise * self.scale
        return torch.maximum(torch.minimum(a + noise, self.high), self.low)

    def greedy(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(obs)

    def train_batch(self) -> dict[str, float]:
        cfg = self.cfg
        b = self.buffer.sample(cfg.batch_size, self.batch_gen)
        with torch.no_grad():
            a_t = self.actor_target(b["next_obs"])
            eps = (torch.randn(a_t.shape, generator=self.gen) * cfg.target_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
            a_next = torch.maximum(torch.minimum(a_t + eps * self.scale, self.high), self.low)
            q_next = torch.minimum(self.q1_target(b["next_obs"], a_next), self.q2_target(b["next_obs"], a_next))
            y = td_targets(b["rewards"], q_next, cfg.gamma, b["terminated"])
        q1 = self.q1(b["obs"], b["actions"])
        q_loss = ((q1 - y) ** 2).mean() + ((self.q2(b["obs"], b["actions"]) - y) ** 2).mean()
        check_finite("q_loss", q_loss)
        self.q_opt.zero_grad()
        q_loss.backward()
        self.q_opt.step()
        out = {"q_loss": float(q_loss.detach()), "q_mean": float(q1.detach().mean())}
        if (self.grad_steps + 1) % cfg.policy_delay == 0:
            actor_loss = -self.q1(b["obs"], self.actor(b["obs"])).mean()
            check_finite("actor_loss", actor_loss)
            self.actor_opt.zero_grad()
            actor_loss.backward()
            self.actor_opt.step()
            soft_update(self.actor_target, self.actor, cfg.tau)
            soft_update(self.q1_target, self.q1, cfg.tau)
            soft_update(self.q2_target, self.q2, cfg.tau)
            out["actor_loss"] = float(actor_loss.detach())
        return out


@register_algo("td3", family="rl", config=TD3Config, eval_config=RLEvalConfig)
def build_td3(cfg: TD3Config, task: Any, seed: int) -> TD3:
    """Twin delayed DDPG (Fujimoto et al. 2018)."""
    return TD3(cfg, task, seed)


__all__ = ["TD3", "TD3Config", "build_td3"]
