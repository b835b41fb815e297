"""Advantage actor-critic, synchronous (A2C; Mnih et al. 2016 "Asynchronous methods for deep RL", the
synchronous variant of OpenAI baselines).

One ``train_step``: ``num_envs x num_steps`` steps, GAE(lambda) advantages (``gae_lambda = 1`` gives the
n-step returns of the paper), then ONE gradient step on

    L = -E[log pi(a|s) A] + vf_coef * 0.5 E[(V(s) - R)^2] - ent_coef * H[pi]

with RMSprop (as in the paper) or Adam, and gradient-norm clipping.

Metrics: ``env_steps``, ``episode_return``, ``policy_loss``, ``value_loss``, ``entropy``, ``lr``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from fastadapt.algos.rl.common import (
    OnPolicyConfig,
    OnPolicyLearner,
    RLEvalConfig,
    Rollout,
    check_finite,
    set_annealed_lr,
)
from fastadapt.core.registry import register_algo
from fastadapt.ops.returns import gae, normalize
from fastadapt.ops.surrogates import policy_gradient_loss, value_loss


class A2CConfig(OnPolicyConfig):
    """The ``algo:`` section of A2C."""

    num_steps: int = Field(5, ge=1, description="steps per env per update")
    gae_lambda: float = Field(1.0, ge=0, le=1)
    norm_adv: bool = Field(False, description="normalise advantages per batch")
    lr: float = Field(7e-4, gt=0)
    anneal_lr: bool = Field(False, description="anneal lr linearly to 0 over anneal_iterations")
    anneal_iterations: int = Field(10000, ge=1)
    optimizer: Literal["rmsprop", "adam"] = "rmsprop"
    ent_coef: float = Field(0.0, ge=0)
    vf_coef: float = Field(0.5, ge=0)
    max_grad_norm: float = Field(0.5, gt=0)


class A2C(OnPolicyLearner):
    """A2C learner (see the module docstring)."""

    name = "a2c"

    def __init__(self, cfg: A2CConfig, task: Any, seed: int) -> None:
        super().__init__(cfg, task, seed)
        self.cfg: A2CConfig = cfg
        params = list(self.policy.parameters()) + list(self.value.parameters())
        if cfg.optimizer == "rmsprop":
            self.opt: torch.optim.Optimizer = torch.optim.RMSprop(params, lr=cfg.lr, alpha=0.99, eps=1e-5)
        else:
            self.opt = torch.optim.Adam(params, lr=cfg.lr, eps=1e-5)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt}

    def update(self, ro: Rollout) -> dict[str, float]:
        cfg = self.cfg
        lr = set_annealed_lr(self.opt, cfg.lr, cfg.anneal_lr, self.updates, cfg.anneal_iterations)
        adv = gae(ro.rewards, ro.values, cfg.gamma, cfg.gae_lambda, dones=ro.dones, bootstrap=ro.bootstrap)
        returns = adv + ro.values
        if cfg.norm_adv:
            adv = normalize(adv)
        out = self.policy(ro.obs)
        logp = self.policy.log_prob(out, ro.actions)
        pg_loss = policy_gradient_loss(logp, adv)
        v_loss = value_loss(self.value(ro.obs), returns)
        ent = self.policy.entropy(out).mean()
        loss = pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * ent
        check_finite("loss", loss)
        self.opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(
            list(self.policy.parameters()) + list(self.value.parameters()), cfg.max_grad_norm
        )
        self.opt.step()
        return {
            "policy_loss": float(pg_loss.detach()),
            "value_loss": float(v_loss.detach()),
            "entropy": float(ent.detach()),
            "lr": lr,
        }


@register_algo("a2c", family="rl", config=A2CConfig, eval_config=RLEvalConfig)
def build_a2c(cfg: A2CConfig, task: Any, seed: int) -> A2C:
    """Synchronous advantage actor-critic (Mnih et al. 2016)."""
    return A2C(cfg, task, seed)


__all__ = ["A2C", "A2CConfig", "build_a2c"]
