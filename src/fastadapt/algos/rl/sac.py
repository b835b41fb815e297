"""Soft Actor-Critic with twin Q-networks and a learned temperature (Haarnoja et al. 2018, arXiv
1801.01290 and 1812.05905).

Each gradient step on a replay minibatch:

- critics: ``y = r + gamma (1 - terminated) (min_j Q'_j(s', a') - alpha log pi(a'|s'))``, ``a' ~ pi(.|s')``;
  MSE for both ``Q_1, Q_2``;
- actor (every ``policy_frequency`` steps): minimise ``E[alpha log pi(a|s) - min_j Q_j(s, a)]`` with
  reparameterised tanh-Gaussian actions (:class:`fastadapt.nn.policies.TanhGaussianPolicy`);
- temperature: minimise ``E[-alpha (log pi(a|s) + target_entropy)]`` over ``log alpha``
  (``target_entropy = -act_dim`` by default);
- target critics: Polyak averaging with ``tau``.

Metrics: ``env_steps``, ``episode_return``, ``q_loss``, ``actor_loss``, ``alpha``, ``entropy``.
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
from fastadapt.nn.policies import TanhGaussianPolicy
from fastadapt.nn.values import QMLP
from fastadapt.ops.returns import td_targets


class SACConfig(OffPolicyConfig):
    """The ``algo:`` section of SAC."""

    actor_lr: float = Field(3e-4, gt=0)
    critic_lr: float = Field(1e-3, gt=0)
    alpha_lr: float = Field(1e-3, gt=0)
    tau: float = Field(0.005, gt=0, le=1)
    init_alpha: float = Field(1.0, gt=0)
    autotune: bool = Field(True, description="learn alpha towards target_entropy")
    target_entropy: float | None = Field(None, description="default: -act_dim")
    policy_frequency: int = Field(1, ge=1, description="actor/alpha update every this many critic steps")


class SAC(OffPolicyLearner):
    """SAC learner (see the module docstring)."""

    name = "sac"

    def __init__(self, cfg: SACConfig, task: Any, seed: int) -> None:
        super().__init__(cfg, task, seed)
        self.cfg: SACConfig = cfg
        if self.discrete:
            raise ConfigError(f"task.env_id: sac needs a Box action space ({self.env_id} is discrete)")
        g = self.init_gen
        self.actor = TanhGaussianPolicy(
            self.obs_dim, self.act_n, self.low, self.high, cfg.hidden, cfg.activation, generator=g
        )
        self.q1 = QMLP(self.obs_dim, self.act_n, cfg.hidden, cfg.activation, generator=g)
        self.q2 = QMLP(self.obs_dim, self.act_n, cfg.hidden, cfg.activation, generator=g)
        self.q1_target, self.q2_target = copy.deepcopy(self.q1), copy.deepcopy(self.q2)
        self.log_alpha = torch.nn.Parameter(torch.tensor(float(cfg.init_alpha)).log())
        self.target_entropy = float(cfg.target_entropy if cfg.target_entropy is not None else -self.act_n)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.q_opt = torch.optim.Adam(list(self.q1.parameters()) + list(self.q2.parameters()), lr=cfg.critic_lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"actor": self.actor, "q1": self.q1, "q2": self.q2,
                "q1_target": self.q1_target, "q2_target": self.q2_target}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor": self.actor_opt, "q": self.q_opt, "alpha": self.alpha_opt}

    def extra_state(self) -> dict[str, Any]:
        return {"log_alpha": self.log_alpha.detach().clone()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.log_alpha.copy_(torch.as_tensor(state["log_alpha"]))

    def explore(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor.sample(self.actor(obs), self.gen)

    def greedy(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor.mode(self.actor(obs))

    def train_batch(self) -> dict[str, float]:
        cfg = self.cfg
        b = self.buffer.sample(cfg.batch_size, self.batch_gen)
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            a_next, logp_next = self.actor.rsample(self.actor(b["next_obs"]), self.gen)
            q_next = torch.minimum(self.q1_target(b["next_obs"], a_next), self.q2_target(b["next_obs"], a_next))
            y = td_targets(b["rewards"], q_next - alpha * logp_next, cfg.gamma, b["terminated"])
        q_loss = ((self.q1(b["obs"], b["actions"]) - y) ** 2).mean() + (
            (self.q2(b["obs"], b["actions"]) - y) ** 2
        ).mean()
        check_finite("q_loss", q_loss)
        self.q_opt.zero_grad()
        q_loss.backward()
        self.q_opt.step()
        out = {"q_loss": float(q_loss.detach())}
        if (self.grad_steps + 1) % cfg.policy_frequency == 0:
            for _ in range(cfg.policy_frequency):  # compensate for the delay (as in CleanRL)
                a, logp = self.actor.rsample(self.actor(b["obs"]), self.gen)
                q_pi = torch.minimum(self.q1(b["obs"], a), self.q2(b["obs"], a))
                actor_loss = (alpha * logp - q_pi).mean()
                check_finite("actor_loss", actor_loss)
                self.actor_opt.zero_grad()
                actor_loss.backward()
                self.actor_opt.step()
                if cfg.autotune:
                    alpha_loss = -(self.log_alpha.exp() * (logp.detach() + self.target_entropy)).mean()
                    self.alpha_opt.zero_grad()
                    alpha_loss.backward()
                    self.alpha_opt.step()
                    alpha = self.log_alpha.exp().detach()
            out.update(actor_loss=float(actor_loss.detach()), entropy=float(-logp.detach().mean()))
        out["alpha"] = float(self.log_alpha.exp().detach())
        soft_update(self.q1_target, self.q1, cfg.tau)
        soft_update(self.q2_target, self.q2, cfg.tau)
        return out


@register_algo("sac", family="rl", config=SACConfig, eval_config=RLEvalConfig)
def build_sac(cfg: SACConfig, task: Any, seed: int) -> SAC:
    """Soft actor-critic with twin critics and automatic temperature (Haarnoja et al. 2018)."""
    return SAC(cfg, task, seed)


__all__ = ["SAC", "SACConfig", "build_sac"]
