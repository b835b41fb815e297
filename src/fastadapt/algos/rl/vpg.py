"""Vanilla policy gradient / REINFORCE with a baseline (Williams 1992; Sutton et al. 2000).

One ``train_step``: ``num_envs x num_steps`` steps, advantages ``A_t = G_t - b(s_t)`` (or GAE(lambda) with
``gae_lambda < 1``), ONE Adam step on ``-E[log pi(a|s) A] - ent_coef H[pi]``, then the baseline is refit.

Baselines (``baseline``):
- ``value``: an MLP ``V(s)`` regressed on the returns for ``vf_epochs`` passes (also bootstraps truncated
  windows);
- ``linear``: the linear feature baseline of rllab / MAML (:mod:`fastadapt.ops.baseline`), refit on every
  batch before computing its advantages; windows cut by the end of collection bootstrap nothing;
- ``none``: plain REINFORCE on discounted returns.

Metrics: ``env_steps``, ``episode_return``, ``policy_loss``, ``value_loss``, ``entropy``.
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
    fit_value_regression,
)
from fastadapt.core.registry import register_algo
from fastadapt.ops.baseline import fit_linear_baseline, linear_baseline_features, predict_linear_baseline
from fastadapt.ops.returns import discounted_returns, gae, normalize
from fastadapt.ops.surrogates import policy_gradient_loss


class VPGConfig(OnPolicyConfig):
    """The ``algo:`` section of VPG."""

    num_steps: int = Field(256, ge=1)
    gae_lambda: float = Field(1.0, ge=0, le=1, description="1.0 = Monte-Carlo returns minus baseline")
    baseline: Literal["value", "linear", "none"] = "value"
    lr: float = Field(1e-2, gt=0, description="policy learning rate (Adam)")
    vf_lr: float = Field(1e-3, gt=0)
    vf_epochs: int = Field(5, ge=1)
    vf_minibatch_size: int = Field(256, ge=1)
    ent_coef: float = Field(0.0, ge=0)
    max_grad_norm: float | None = Field(None, gt=0)


class VPG(OnPolicyLearner):
    """REINFORCE with a baseline (see the module docstring)."""

    name = "vpg"

    def __init__(self, cfg: VPGConfig, task: Any, seed: int) -> None:
        super().__init__(cfg, task, seed)
        self.cfg: VPGConfig = cfg
        self.pi_opt = torch.optim.Adam(self.policy.parameters(), lr=cfg.lr)
        self.vf_opt = torch.optim.Adam(self.value.parameters(), lr=cfg.vf_lr)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"pi": self.pi_opt, "vf": self.vf_opt}

    def value_fn(self, obs: torch.Tensor) -> torch.Tensor:
        if self.cfg.baseline == "value":
            return self.value(obs)
        return torch.zeros(obs.shape[:-1])

    def update(self, ro: Rollout) -> dict[str, float]:
        cfg = self.cfg
        v_loss = 0.0
        if cfg.baseline == "value":
            adv = gae(ro.rewards, ro.values, cfg.gamma, cfg.gae_lambda, dones=ro.dones, bootstrap=ro.bootstrap)
            returns = adv + ro.values
        else:
            returns = discounted_returns(ro.rewards, cfg.gamma, dones=ro.dones)
            if cfg.baseline == "linear":
                feats = linear_baseline_features(ro.obs, ro.timesteps)
                coeffs = fit_linear_baseline(feats, returns)
                base = predict_linear_baseline(feats, coeffs)
                v_loss = float(0.5 * ((base - returns) ** 2).mean())
                adv = gae(ro.rewards, base, cfg.gamma, cfg.gae_lambda, dones=ro.dones)
            else:
                adv = returns
        if cfg.norm_adv:
            adv = normalize(adv)
        out = self.policy(ro.obs)
        pg_loss = policy_gradient_loss(self.policy.log_prob(out, ro.actions), adv)
        ent = self.policy.entropy(out).mean()
        loss = pg_loss - cfg.ent_coef * ent
        check_finite("policy_loss", loss)
        self.pi_opt.zero_grad()
        loss.backward()
        if cfg.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
        self.pi_opt.step()
        if cfg.baseline == "value":
            v_loss = fit_value_regression(
                self.value, self.vf_opt, ro.obs.reshape(-1, ro.obs.shape[-1]), returns.reshape(-1),
                cfg.vf_epochs, cfg.vf_minibatch_size, self.mb_gen,
            )
        return {"policy_loss": float(pg_loss.detach()), "value_loss": v_loss, "entropy": float(ent.detach())}


@register_algo("vpg", family="rl", config=VPGConfig, eval_config=RLEvalConfig)
def build_vpg(cfg: VPGConfig, task: Any, seed: int) -> VPG:
    """Vanilla policy gradient (REINFORCE) with a value, linear or no baseline."""
    return VPG(cfg, task, seed)


__all__ = ["VPG", "VPGConfig", "build_vpg"]
