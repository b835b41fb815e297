"""Trust Region Policy Optimization (Schulman et al. 2015, arXiv 1502.05477) with GAE (Schulman et al. 2016).

One ``train_step``: collect ``num_envs x num_steps`` steps; advantages by GAE(lambda); the policy step solves

    maximise  E[pi(a|s)/pi_old(a|s) A]   subject to   mean KL(pi_old || pi) <= max_kl

approximately: conjugate gradient on ``(F + damping I) s = g`` with Fisher-vector products by double
backprop through the mean KL (:mod:`fastadapt.ops.cg`), step ``sqrt(2 max_kl / s^T F s) s``, then a
backtracking line search that accepts only candidates that improve the surrogate AND keep the measured KL
at most ``max_kl`` (:mod:`fastadapt.ops.linesearch`); otherwise the policy is left unchanged. The value
function is regressed on the lambda-returns with Adam.

Metrics: ``env_steps``, ``episode_return``, ``surrogate``, ``kl`` (of the accepted step), ``step_frac``
(0 when rejected), ``value_loss``, ``entropy``.
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
    fit_value_regression,
)
from fastadapt.core.registry import register_algo
from fastadapt.ops.cg import conjugate_gradient, flat_grad, flatten, hessian_vector_product, set_flat_
from fastadapt.ops.linesearch import backtracking_line_search, trust_region_step_size
from fastadapt.ops.returns import gae, normalize
from fastadapt.ops.surrogates import importance_sampled_loss


class TRPOConfig(OnPolicyConfig):
    """The ``algo:`` section of TRPO."""

    num_steps: int = Field(256, ge=1)
    max_kl: float = Field(0.01, gt=0, description="trust-region radius delta (mean KL)")
    cg_iters: int = Field(10, ge=1)
    cg_damping: float = Field(0.1, ge=0)
    backtrack_ratio: float = Field(0.8, gt=0, lt=1)
    max_backtracks: int = Field(15, ge=1)
    accept_ratio: float = Field(0.1, ge=0, description="min fraction of the predicted improvement")
    vf_lr: float = Field(1e-3, gt=0)
    vf_epochs: int = Field(5, ge=1)
    vf_minibatch_size: int = Field(64, ge=1)


class TRPO(OnPolicyLearner):
    """TRPO learner (see the module docstring)."""

    name = "trpo"

    def __init__(self, cfg: TRPOConfig, task: Any, seed: int) -> None:
        super().__init__(cfg, task, seed)
        self.cfg: TRPOConfig = cfg
        self.vf_opt = torch.optim.Adam(self.value.parameters(), lr=cfg.vf_lr)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"vf": self.vf_opt}

    def update(self, ro: Rollout) -> dict[str, float]:
        cfg = self.cfg
        adv = gae(ro.rewards, ro.values, cfg.gamma, cfg.gae_lambda, dones=ro.dones, bootstrap=ro.bootstrap)
        returns = adv + ro.values
        if cfg.norm_adv:
            adv = normalize(adv)
        params = list(self.policy.parameters())
        with torch.no_grad():
            old_out = tuple(t.detach() for t in self.policy(ro.obs))

        def surrogate_and_kl() -> tuple[torch.Tensor, torch.Tensor]:
            out = self.policy(ro.obs)
            loss = importance_sampled_loss(self.policy.log_prob(out, ro.actions), ro.log_probs, adv)
            return loss, self.policy.kl(old_out, out).mean()

        loss, kl = surrogate_and_kl()
        check_finite("surrogate", loss)
        grad = flat_grad(loss, params, retain_graph=True)
        fvp = hessian_vector_product(kl, params, damping=cfg.cg_damping)
        direction = conjugate_gradient(fvp, -grad, iters=cfg.cg_iters)
        full_step = trust_region_step_size(direction, fvp(direction), cfg.max_kl) * direction
        flat = flatten([p.detach() for p in params])

        def evaluate(candidate: torch.Tensor) -> tuple[float, float]:
            set_flat_(params, candidate)
            with torch.no_grad():
                l2, k2 = surrogate_and_kl()
            return float(l2), float(k2)

        res = backtracking_line_search(
            evaluate, flat, full_step, float(loss.detach()), cfg.max_kl,
            backtrack_ratio=cfg.backtrack_ratio, max_backtracks=cfg.max_backtracks,
            expected_improve=float(-(grad @ full_step)), accept_ratio=cfg.accept_ratio,
        )
        set_flat_(params, res.params)
        with torch.no_grad():
            ent = float(self.policy.entropy(self.policy(ro.obs)).mean())
        v_loss = fit_value_regression(
            self.value, self.vf_opt, ro.obs.reshape(-1, ro.obs.shape[-1]), returns.reshape(-1),
            cfg.vf_epochs, cfg.vf_minibatch_size, self.mb_gen,
        )
        return {
            "surrogate": float(-res.loss),
            "kl": res.kl,
            "step_frac": res.step_frac,
            "value_loss": v_loss,
            "entropy": ent,
        }


@register_algo("trpo", family="rl", config=TRPOConfig, eval_config=RLEvalConfig)
def build_trpo(cfg: TRPOConfig, task: Any, seed: int) -> TRPO:
    """TRPO: conjugate gradient + KL-constrained line search (Schulman et al. 2015)."""
    return TRPO(cfg, task, seed)


__all__ = ["TRPO", "TRPOConfig", "build_trpo"]
