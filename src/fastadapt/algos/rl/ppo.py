"""Proximal Policy Optimization with the clipped surrogate (Schulman et al. 2017, arXiv 1707.06347).

One ``train_step``: collect ``num_envs x num_steps`` steps with the current policy, compute GAE(lambda)
advantages (Schulman et al. 2016), then ``epochs`` passes of minibatch Adam updates on

    L = -E[min(r A, clip(r, 1 - eps, 1 + eps) A)] + vf_coef * L_V - ent_coef * H[pi],   r = pi / pi_old,

with optional value clipping, advantage normalisation, gradient clipping, linear learning-rate annealing and
early stopping at ``target_kl`` (implementation details of Engstrom et al. 2020 / Huang et al. 2022, "The 37
implementation details of PPO").

Metrics: ``env_steps``, ``episode_return`` (mean of the last 20 finished episodes), ``policy_loss``,
``value_loss``, ``entropy``, ``approx_kl``, ``clip_frac``, ``lr``.
"""

from __future__ import annotations

from typing import Any

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
from fastadapt.ops.kl import sample_kl
from fastadapt.ops.returns import gae, normalize
from fastadapt.ops.surrogates import clip_fraction, ppo_clip_loss, value_loss


class PPOConfig(OnPolicyConfig):
    """The ``algo:`` section of PPO."""

    lr: float = Field(3e-4, gt=0)
    anneal_lr: bool = Field(True, description="anneal lr linearly to 0 over anneal_iterations")
    anneal_iterations: int = Field(500, ge=1)
    epochs: int = Field(10, ge=1, description="passes over each rollout")
    minibatch_size: int = Field(64, ge=1)
    clip: float = Field(0.2, gt=0, description="clip range epsilon of the ratio")
    clip_vloss: bool = Field(False, description="PPO2-style clipped value loss")
    ent_coef: float = Field(0.0, ge=0)
    vf_coef: float = Field(0.5, ge=0)
    max_grad_norm: float = Field(0.5, gt=0)
    target_kl: float | None = Field(None, gt=0, description="stop the epochs early above this KL")


class PPO(OnPolicyLearner):
    """PPO-clip learner (see the module docstring)."""

    name = "ppo"

    def __init__(self, cfg: PPOConfig, task: Any, seed: int) -> None:
        super().__init__(cfg, task, seed)
        self.cfg: PPOConfig = cfg
        params = list(self.policy.parameters()) + list(self.value.parameters())
        self.opt = torch.optim.Adam(params, lr=cfg.lr, eps=1e-5)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt}

    def update(self, ro: Rollout) -> dict[str, float]:
        cfg = self.cfg
        lr = set_annealed_lr(self.opt, cfg.lr, cfg.anneal_lr, self.updates, cfg.anneal_iterations)

        adv = gae(ro.rewards, ro.values, cfg.gamma, cfg.gae_lambda, dones=ro.dones, bootstrap=ro.bootstrap)
        returns = adv + ro.values
        # flatten [E, T, ...] -> [N, ...]
        n = ro.rewards.numel()
        b_obs = ro.obs.reshape(n, -1)
        b_act = ro.actions.reshape(n, *ro.actions.shape[2:])
        b_logp, b_adv = ro.log_probs.reshape(n), adv.reshape(n)
        b_ret, b_val = returns.reshape(n), ro.values.reshape(n)

        mb = min(cfg.minibatch_size, n)
        stats = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "approx_kl": 0.0, "clip_frac": 0.0}
        count = 0
        for _epoch in range(cfg.epochs):
            perm = torch.randperm(n, generator=self.mb_gen)
            kls = []
            for start in range(0, n - mb + 1, mb):
                idx = perm[start : start + mb]
                out = self.policy(b_obs[idx])
                logp = self.policy.log_prob(out, b_act[idx])
                a = normalize(b_adv[idx]) if cfg.norm_adv else b_adv[idx]
                pg_loss = ppo_clip_loss(logp, b_logp[idx], a, cfg.clip)
                v = self.value(b_obs[idx])
                v_loss = value_loss(
                    v, b_ret[idx], old_values=b_val[idx], clip_eps=cfg.clip if cfg.clip_vloss else None
                )
                ent = self.policy.entropy(out).mean()
                loss = pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * ent
                check_finite("loss", loss)
                self.opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(
                    list(self.policy.parameters()) + list(self.value.parameters()), cfg.max_grad_norm
                )
                self.opt.step()
                with torch.no_grad():
                    kl = float(sample_kl(b_logp[idx], logp).mean())
                    stats["clip_frac"] += float(clip_fraction(logp, b_logp[idx], cfg.clip))
                kls.append(kl)
                stats["policy_loss"] += float(pg_loss.detach())
                stats["value_loss"] += float(v_loss.detach())
                stats["entropy"] += float(ent.detach())
                stats["approx_kl"] += kl
                count += 1
            if cfg.target_kl is not None and kls and sum(kls) / len(kls) > cfg.target_kl:
                break
        out_stats = {k: v / max(count, 1) for k, v in stats.items()}
        out_stats["lr"] = lr
        return out_stats


@register_algo("ppo", family="rl", config=PPOConfig, eval_config=RLEvalConfig)
def build_ppo(cfg: PPOConfig, task: Any, seed: int) -> PPO:
    """PPO with the clipped surrogate and GAE (Schulman et al. 2017)."""
    return PPO(cfg, task, seed)


__all__ = ["PPO", "PPOConfig", "build_ppo"]
