"""ProMP: Proximal Meta-Policy Search (Rothfuss, Lee, Clavera, Asfour & Abbeel 2019, arXiv 1810.06784).

One meta-iteration on ``meta_batch`` tasks:

1. inner loop as in MAML, but the inner objective is the *low-variance curvature* (LVC) estimator
   ``J^LVC(theta) = mean_t pi_theta(a_t|s_t) / stop_grad(pi_theta(a_t|s_t)) A_t`` (paper eq. 11): the same
   first-order step as MAML's, but differentiating it twice gives the curvature term
   ``sum_t (grad^2 log pi + grad log pi grad log pi^T) A_t`` instead of MAML's ``sum_t grad^2 log pi A_t``,
   accounting for the pre-update sampling distribution with low variance (sec. 5);
2. post-update episodes with the adapted policies;
3. ``promp_steps`` Adam steps (no resampling) on the ProMP objective (eq. 13):
   ``-J^CLIP(theta') + sum_s eta_s KL(pi_theta_o,s || pi_theta,s)`` — PPO's clipped surrogate of the adapted
   policies (re-adapted from the current theta in every step, differentiating through the LVC inner
   update) plus a KL penalty between the old and the current *pre-update* policy of every inner step on
   that step's episodes. ``adaptive_kl`` halves/doubles each ``eta_s`` when its KL falls below/above
   ``target_kl / 1.5`` / ``target_kl * 1.5`` (the reference implementation's option; off by default there).

Defaults follow the reference implementation (jonasrothfuss/ProMP run scripts): Adam 1e-3, 5 ProMP steps,
clip 0.3, eta = 5e-4, inner step 0.1. Metrics: ``env_steps``, ``pre_return``, ``post_return``,
``surrogate``, ``inner_kl``, ``kl_coef``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from pydantic import Field

from fastadapt.algos.metarl.common import (
    Estimator,
    GradientMetaLearner,
    MetaRLConfig,
    MetaRLEvalConfig,
    Rollouts,
    TRPOFields,
    adapt_params,
    adapt_trajectory,
    batched_forward,
    clipped_surrogate,
    detach_params,
    expand_params,
    log_probs,
    per_task_kl,
    sample_rollouts,
    shared_params,
)
from fastadapt.core.errors import CheckpointError
from fastadapt.core.registry import register_algo


class ProMPConfig(MetaRLConfig):
    """The ``algo:`` section of ProMP."""

    outer_lr: float = Field(1e-3, gt=0, description="Adam step size of the meta-update")
    promp_steps: int = Field(5, ge=1, description="optimisation steps per meta-iteration (no resampling)")
    clip_eps: float = Field(0.3, gt=0, description="PPO clip range of the outer objective")
    kl_coef: float = Field(5e-4, ge=0, description="initial KL penalty eta on the pre-update policies")
    adaptive_kl: bool = Field(False, description="adapt eta per inner step towards target_kl")
    target_kl: float = Field(0.01, gt=0)


class ProMP(GradientMetaLearner):
    """ProMP learner (see the module docstring)."""

    name = "promp"
    estimator: Estimator = "lvc"

    def __init__(self, cfg: ProMPConfig, task: Any, seed: int) -> None:
        super().__init__(cfg, task, seed)
        self.cfg: ProMPConfig = cfg
        self.opt = torch.optim.Adam(self.policy.parameters(), lr=cfg.outer_lr)
        self.kl_coefs = [float(cfg.kl_coef)] * cfg.inner_steps

    def optimizer(self) -> torch.optim.Optimizer:
        return self.opt

    def trpo_fields(self) -> TRPOFields:
        return TRPOFields()

    def extra_state(self) -> dict[str, Any]:
        return {"kl_coefs": list(self.kl_coefs)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        coefs = state.get("kl_coefs")
        if coefs is None or len(coefs) != self.cfg.inner_steps:
            raise CheckpointError("promp checkpoint: kl_coefs missing or of the wrong length")
        self.kl_coefs = [float(c) for c in coefs]

    def meta_step(self, tasks: Sequence[Any], seeds: Sequence[int]) -> dict[str, float]:
        cfg = self.cfg
        # -- sampling: inner rollouts and post-update rollouts, remembering the pre-update policies
        p = detach_params(expand_params(shared_params(self.policy), len(tasks)))
        train: list[Rollouts] = []
        old_pre_out: list[tuple[torch.Tensor, ...]] = []
        for s in range(cfg.inner_steps):
            ro = sample_rollouts(self.sampler, tasks, None if s == 0 else p, seeds[s], cfg)
            train.append(ro)
            with torch.no_grad():
                old_pre_out.append(tuple(o.detach() for o in batched_forward(self.policy, p, ro.obs)))
            p = detach_params(adapt_params(self.policy, p, ro, cfg.inner_lr, "lvc", cfg.gamma))
        valid = sample_rollouts(self.sampler, tasks, p, seeds[cfg.inner_steps], cfg)
        self.env_steps += sum(r.env_steps() for r in train) + valid.env_steps()
        with torch.no_grad():
            old_logp, _ = log_probs(self.policy, p, valid)

        # -- ProMP steps
        loss_v, kls = 0.0, [0.0] * cfg.inner_steps
        for _ in range(cfg.promp_steps):
            traj = adapt_trajectory(self.policy, shared_params(self.policy), train, cfg.inner_lr, "lvc",
                                    cfg.gamma, create_graph=True)
            loss, _ = clipped_surrogate(self.policy, traj[-1], valid, old_logp, cfg.clip_eps)
            inner_kl = [
                per_task_kl(self.policy, old_pre_out[s], batched_forward(self.policy, traj[s], train[s].obs),
                            train[s].mask)
                for s in range(cfg.inner_steps)
            ]
            total = loss + sum(c * k for c, k in zip(self.kl_coefs, inner_kl))
            self.opt.zero_grad(set_to_none=True)
            total.backward()
            self.opt.step()
            loss_v = float(loss.detach())
            kls = [float(k.detach()) for k in inner_kl]
        if cfg.adaptive_kl:
            for s, k in enumerate(kls):
                if k < cfg.target_kl / 1.5:
                    self.kl_coefs[s] /= 2.0
                elif k > cfg.target_kl * 1.5:
                    self.kl_coefs[s] *= 2.0
        out = {
            "pre_return": float(train[0].task_returns().mean()),
            "post_return": float(valid.task_returns().mean()),
            "surrogate": -loss_v,
            "inner_kl": float(sum(kls) / len(kls)),
            "kl_coef": float(sum(self.kl_coefs) / len(self.kl_coefs)),
        }
        if valid.success is not None:
            out["post_success"] = float(valid.success.mean())
        return out


@register_algo("promp", family="metarl", config=ProMPConfig, eval_config=MetaRLEvalConfig)
def build_promp(cfg: ProMPConfig, task: Any, seed: int) -> ProMP:
    """ProMP (Rothfuss et al. 2019): LVC inner estimator, clipped outer objective + KL penalty."""
    return ProMP(cfg, task, seed)


__all__ = ["ProMP", "ProMPConfig", "build_promp"]
