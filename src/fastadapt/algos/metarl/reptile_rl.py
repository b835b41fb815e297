"""Reptile for reinforcement learning (Nichol, Achiam & Schulman 2018, arXiv 1803.02999, Algorithm 2).

One meta-iteration on ``meta_batch`` tasks: starting from the shared initialisation theta, every task takes
``inner_steps`` vanilla policy-gradient steps (step size ``inner_lr``, linear feature baseline, fresh
``fast_batch`` episodes per step — all tasks at once, per-task parameters through ``torch.func``); then
theta moves toward the adapted parameters, ``theta <- theta + outer_lr * mean_i (phi_i - theta)``
(the batched version of Reptile). No second derivatives and no post-update sampling beyond the inner loop.

Metrics: ``env_steps``, ``pre_return`` (episodes of theta), ``post_return`` (episodes after one inner step,
the quantity the meta-test reports at ``adapt_steps = 1``; sampled separately when ``inner_steps = 1``),
``final_return`` (episodes before the last inner step), ``outer_lr``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from pydantic import Field

from fastadapt.algos.metarl.common import (
    GradientMetaLearner,
    MetaRLConfig,
    MetaRLEvalConfig,
    adapt_params,
    detach_params,
    expand_params,
    sample_rollouts,
    shared_params,
)
from fastadapt.core.registry import register_algo


class ReptileRLConfig(MetaRLConfig):
    """The ``algo:`` section of Reptile-RL."""

    inner_steps: int = Field(3, ge=1, description="policy-gradient steps per task before the Reptile move")
    outer_lr: float = Field(0.5, gt=0, le=1, description="Reptile step size epsilon")
    outer_lr_final: float | None = Field(
        None, gt=0, le=1, description="anneal epsilon linearly to this over anneal_iterations (Nichol et al.)"
    )
    anneal_iterations: int = Field(500, ge=1)


class ReptileRL(GradientMetaLearner):
    """Reptile-RL learner (see the module docstring)."""

    name = "reptile-rl"

    def __init__(self, cfg: ReptileRLConfig, task: Any, seed: int) -> None:
        super().__init__(cfg, task, seed)
        self.cfg: ReptileRLConfig = cfg

    def epsilon(self) -> float:
        cfg = self.cfg
        if cfg.outer_lr_final is None:
            return float(cfg.outer_lr)
        frac = min(1.0, self.iterations_done / cfg.anneal_iterations)
        return float(cfg.outer_lr + frac * (cfg.outer_lr_final - cfg.outer_lr))

    def meta_step(self, tasks: Sequence[Any], seeds: Sequence[int]) -> dict[str, float]:
        cfg = self.cfg
        theta = shared_params(self.policy)
        p = detach_params(expand_params(theta, len(tasks)))
        rets: list[float] = []
        for s in range(cfg.inner_steps):
            ro = sample_rollouts(self.sampler, tasks, None if s == 0 else p, seeds[s], cfg)
            self.env_steps += ro.env_steps()
            rets.append(float(ro.task_returns().mean()))
            p = detach_params(adapt_params(self.policy, p, ro, cfg.inner_lr, self.estimator, cfg.gamma))
        if cfg.inner_steps == 1:
            ro = sample_rollouts(self.sampler, tasks, p, seeds[1], cfg)
            self.env_steps += ro.env_steps()
            rets.append(float(ro.task_returns().mean()))
        eps = self.epsilon()
        with torch.no_grad():
            for k, v in theta.items():
                v.add_(eps * (p[k].mean(0) - v))
        return {
            "pre_return": rets[0],
            "post_return": rets[1],
            "final_return": rets[-1],
            "outer_lr": eps,
        }


@register_algo("reptile-rl", family="metarl", config=ReptileRLConfig, eval_config=MetaRLEvalConfig)
def build_reptile_rl(cfg: ReptileRLConfig, task: Any, seed: int) -> ReptileRL:
    """Reptile for RL (Nichol et al. 2018): policy-gradient inner steps, move theta toward the results."""
    return ReptileRL(cfg, task, seed)


__all__ = ["ReptileRL", "ReptileRLConfig", "build_reptile_rl"]
