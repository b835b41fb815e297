"""MAML for reinforcement learning (Finn, Abbeel & Levine 2017, arXiv 1703.03400, sec. 3.2 / 5.3).

One meta-iteration (:meth:`MAMLRL.meta_step`) on ``meta_batch`` meta-train tasks:

1. for each of ``inner_steps`` steps, collect ``fast_batch`` episodes per task with the current per-task
   policies (one batched env step and one vmapped policy forward for all tasks), fit the linear feature
   baseline per task and take one vanilla policy-gradient step of size ``inner_lr`` per task;
2. collect ``fast_batch`` post-update episodes per task with the adapted policies;
3. meta-update theta on the post-update episodes, differentiating through the inner update(s):

   - ``outer: trpo`` (MAML-TRPO, the paper's choice): conjugate gradient with Hessian-of-KL products of the
     KL between old and new *adapted* policies, then a backtracking line search (KL <= ``max_kl``);
   - ``outer: ppo``: ``ppo_epochs`` Adam steps on PPO's clipped surrogate of the adapted policies;
   - ``outer: vpg``: one Adam step on the policy-gradient surrogate.

Options:

- ``first_order: true`` treats the inner gradients as constants (first-order MAML, sec. 5.2): exactly the
  Hessian term of the meta-gradient is dropped;
- ``estimator``: ``reinforce`` (MAML's inner loss ``-mean log pi A``), ``dice`` (DiCE inner objective,
  Foerster et al. 2018, whose Hessian is unbiased), or ``emaml`` (E-MAML, Stadie et al. 2018: adds the
  exploration term ``E[R(tau') grad log pi_theta(tau)]`` that credits the pre-update episodes ``tau`` with
  the post-update returns ``R(tau')``, weighted by ``emaml_coef``; the post-update task returns are
  normalised across tasks as a baseline, and the term is applied to the first inner step's episodes).

Registered names: ``maml-trpo``, ``maml-ppo``, ``maml-vpg`` (same learner, different default ``outer``) and
``emaml-trpo`` (``estimator: emaml``). Metrics: cumulative ``env_steps``, ``pre_return`` / ``post_return``
(mean return per episode before / after adaptation), ``surrogate``, ``kl``, ``step_frac`` (TRPO).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from pydantic import Field

from fastadapt.algos.metarl.common import (
    Estimator,
    GradientMetaLearner,
    MetaRLConfig,
    MetaRLEvalConfig,
    Params,
    Rollouts,
    TRPOFields,
    adapt_params,
    adapt_sequence,
    clipped_surrogate,
    detach_params,
    expand_params,
    log_probs,
    magic_box,
    maml_surrogate,
    per_task_kl,
    sample_rollouts,
    shared_params,
    trpo_step,
)
from fastadapt.core.registry import register_algo
from fastadapt.ops.returns import masked_mean


class MAMLRLConfig(MetaRLConfig, TRPOFields):
    """The ``algo:`` section of MAML-RL (``maml-trpo``; ``maml-ppo``/``maml-vpg`` change ``outer``)."""

    outer: Literal["trpo", "ppo", "vpg"] = Field("trpo", description="outer-loop optimiser")
    first_order: bool = Field(False, description="drop the Hessian term (first-order MAML)")
    estimator: Literal["reinforce", "dice", "emaml"] = Field("reinforce", description="gradient estimator")
    emaml_coef: float = Field(1.0, ge=0, description="weight of E-MAML's exploration term")
    outer_lr: float = Field(1e-3, gt=0, description="Adam step size of the ppo/vpg outer loops")
    ppo_epochs: int = Field(5, ge=1, description="outer PPO epochs per meta-iteration (no resampling)")
    clip_eps: float = Field(0.2, gt=0, description="outer PPO clip range")


class MAMLPPOConfig(MAMLRLConfig):
    outer: Literal["trpo", "ppo", "vpg"] = "ppo"


class MAMLVPGConfig(MAMLRLConfig):
    outer: Literal["trpo", "ppo", "vpg"] = "vpg"


class EMAMLConfig(MAMLRLConfig):
    estimator: Literal["reinforce", "dice", "emaml"] = "emaml"


def inner_step_norm(phi: Params, theta: Params) -> float:
    """Mean over tasks of ``||phi_i - theta||`` (all parameters): the size of the inner update."""
    sq = sum(((phi[k] - theta[k]) ** 2).flatten(1).sum(1) for k in theta)
    return float(torch.as_tensor(sq).sqrt().mean())


class MAMLRL(GradientMetaLearner):
    """MAML-RL learner (see the module docstring)."""

    def __init__(self, cfg: MAMLRLConfig, task: Any, seed: int, name: str = "maml-trpo") -> None:
        self.name = name
        super().__init__(cfg, task, seed)
        self.cfg: MAMLRLConfig = cfg
        self.estimator: Estimator = "dice" if cfg.estimator == "dice" else "reinforce"
        self.opt = (
            torch.optim.Adam(self.policy.parameters(), lr=cfg.outer_lr) if cfg.outer in ("ppo", "vpg") else None
        )

    def optimizer(self) -> torch.optim.Optimizer | None:
        return self.opt

    def trpo_fields(self) -> TRPOFields:
        return TRPOFields(**{k: getattr(self.cfg, k) for k in TRPOFields.model_fields})

    # ------------------------------------------------------------------------------------------------
    def collect(self, tasks: Sequence[Any], seeds: Sequence[int]) -> tuple[list[Rollouts], Rollouts, Params]:
        """Inner-loop rollouts ``[inner_steps]``, post-update rollouts and the (detached) adapted params."""
        cfg = self.cfg
        p = detach_params(expand_params(shared_params(self.policy), len(tasks)))
        train: list[Rollouts] = []
        for s in range(cfg.inner_steps):
            ro = sample_rollouts(self.sampler, tasks, None if s == 0 else p, seeds[s], cfg)
            train.append(ro)
            p = detach_params(adapt_params(self.policy, p, ro, cfg.inner_lr, self.estimator, cfg.gamma))
        valid = sample_rollouts(self.sampler, tasks, p, seeds[cfg.inner_steps], cfg)
        self.env_steps += sum(r.env_steps() for r in train) + valid.env_steps()
        return train, valid, p

    def emaml_term(self, train: list[Rollouts], valid: Rollouts, old_pre_logp: torch.Tensor) -> torch.Tensor:
        """E-MAML's exploration surrogate (to minimise): ``-mean_tasks mean_t ratio_t(theta) R_hat_task``.

        ``ratio_t = pi_theta(a_t|s_t) / pi_theta_old(a_t|s_t)`` on the first inner step's episodes (its
        gradient at theta_old is ``mean_t grad log pi_theta(a_t|s_t)``); ``R_hat`` is the post-update mean
        return of each task, normalised across tasks (Stadie et al. 2018, eq. 3 with a baseline).
        """
        r = valid.task_returns()
        r_hat = (r - r.mean()) / (r.std() + 1e-8) if r.numel() > 1 else torch.zeros_like(r)
        ro = train[0]
        logp, _ = log_probs(self.policy, expand_params(shared_params(self.policy), ro.num_tasks), ro)
        ratio = magic_box(logp) if old_pre_logp is None else torch.exp(logp - old_pre_logp)
        per_task = masked_mean(ratio, ro.mask, dim=(1, 2))
        return -(per_task * r_hat.detach()).mean()

    def pre_update_kl(self, ro: Rollouts, old_out: tuple[torch.Tensor, ...]) -> float:
        """Mean ``KL(pi_theta_old || pi_theta)`` of the *pre-update* policies on the first inner step's
        episodes: how far the meta-update moved the initialisation itself (the trust region only bounds the
        adapted policies)."""
        with torch.no_grad():
            _, out = log_probs(self.policy, expand_params(shared_params(self.policy), ro.num_tasks), ro)
            return float(per_task_kl(self.policy, old_out, out, ro.mask))

    def trpo_closures(
        self,
        train: list[Rollouts],
        valid: Rollouts,
        old_logp: torch.Tensor,
        old_out: tuple[torch.Tensor, ...],
        pre_logp: torch.Tensor,
    ) -> tuple[Callable[[bool], tuple[torch.Tensor, torch.Tensor]], Callable[[], torch.Tensor] | None]:
        """``(objective, kl_fn)`` for :func:`trpo_step` at the policy's current parameters.

        ``objective(with_graph) -> (loss, KL)``: the meta-surrogate of the adapted policies on ``valid``
        and their mean ``KL(pi_phi_old || pi_phi(theta))``; every call re-runs the inner adaptation from
        the current theta on the (fixed) ``train`` rollouts, so the line search measures the KL and the
        surrogate of the policies that theta actually adapts to. With ``with_graph`` the adaptation is
        differentiable (second order unless ``first_order``), so the Hessian-vector products of the KL are
        those of ``theta -> KL(phi(theta))``, i.e. ``J^T F J`` with ``J = dphi/dtheta`` (Finn et al. 2017;
        the reference implementations). ``kl_fn`` is None then; with ``fvp_second_order: false`` it is the
        KL with the inner gradient held constant (``J`` replaced by the identity: the Fisher of the adapted
        policies), a cheaper curvature that ignores how the inner step amplifies changes of theta.
        """
        cfg = self.cfg
        second_order = not cfg.first_order
        use_emaml = cfg.estimator == "emaml" and cfg.emaml_coef > 0

        def objective(with_graph: bool) -> tuple[torch.Tensor, torch.Tensor]:
            with torch.set_grad_enabled(with_graph):
                loss, kl, _ = maml_surrogate(
                    self.policy, shared_params(self.policy), train, valid, old_logp, old_out,
                    cfg.inner_lr, self.estimator, cfg.gamma, with_graph and second_order,
                )
                if use_emaml:
                    loss = loss + cfg.emaml_coef * self.emaml_term(train, valid, pre_logp)
            return loss, kl

        def kl_first_order() -> torch.Tensor:
            _, kl, _ = maml_surrogate(
                self.policy, shared_params(self.policy), train, valid, old_logp, old_out,
                cfg.inner_lr, self.estimator, cfg.gamma, False,
            )
            return kl

        return objective, (kl_first_order if (second_order and not cfg.fvp_second_order) else None)

    def meta_step(self, tasks: Sequence[Any], seeds: Sequence[int]) -> dict[str, float]:
        cfg = self.cfg
        train, valid, phi_old = self.collect(tasks, seeds)
        theta0 = detach_params(expand_params(shared_params(self.policy), len(tasks)))
        with torch.no_grad():
            old_logp, old_out = log_probs(self.policy, phi_old, valid)
            old_out = tuple(o.detach() for o in old_out)
            pre_logp, pre_out = log_probs(self.policy, theta0, train[0])
            pre_out = tuple(o.detach() for o in pre_out)
        second_order = not cfg.first_order
        use_emaml = cfg.estimator == "emaml" and cfg.emaml_coef > 0
        params = list(self.policy.parameters())
        metrics: dict[str, float] = {
            "pre_return": float(train[0].task_returns().mean()),
            "post_return": float(valid.task_returns().mean()),
        }
        if valid.success is not None:
            metrics["post_success"] = float(valid.success.mean())

        objective, kl_fn = self.trpo_closures(train, valid, old_logp, old_out, pre_logp)
        metrics["inner_step_norm"] = inner_step_norm(phi_old, theta0)

        if cfg.outer == "trpo":
            res = trpo_step(params, objective, self.trpo_fields(), kl_fn)
            metrics.update(surrogate=-res.loss_after, kl=res.kl, step_frac=res.step_frac,
                           kl_model=res.kl_model, pre_kl=self.pre_update_kl(train[0], pre_out))
            return metrics
        assert self.opt is not None
        epochs = cfg.ppo_epochs if cfg.outer == "ppo" else 1
        loss_v = 0.0
        for _ in range(epochs):
            phi = adapt_sequence(self.policy, shared_params(self.policy), train, cfg.inner_lr, self.estimator,
                                 cfg.gamma, second_order)
            if cfg.outer == "ppo":
                loss, _ = clipped_surrogate(self.policy, phi, valid, old_logp, cfg.clip_eps)
            else:
                logp, _ = log_probs(self.policy, phi, valid)
                loss = -masked_mean(torch.exp(logp - old_logp) * valid.advantages, valid.mask, dim=(1, 2)).mean()
            if use_emaml:
                loss = loss + cfg.emaml_coef * self.emaml_term(train, valid, pre_logp)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            loss_v = float(loss.detach())
        with torch.no_grad():
            _, kl = objective(False)
        metrics.update(surrogate=-loss_v, kl=float(kl))
        return metrics


@register_algo("maml-trpo", family="metarl", config=MAMLRLConfig, eval_config=MetaRLEvalConfig)
def build_maml_trpo(cfg: MAMLRLConfig, task: Any, seed: int) -> MAMLRL:
    """MAML-RL with a TRPO meta-update (Finn et al. 2017); options: first_order, estimator, outer."""
    return MAMLRL(cfg, task, seed, "maml-trpo")


@register_algo("maml-ppo", family="metarl", config=MAMLPPOConfig, eval_config=MetaRLEvalConfig)
def build_maml_ppo(cfg: MAMLRLConfig, task: Any, seed: int) -> MAMLRL:
    """MAML-RL with a PPO-clip meta-update (Adam, several epochs per batch)."""
    return MAMLRL(cfg, task, seed, "maml-ppo")


@register_algo("maml-vpg", family="metarl", config=MAMLVPGConfig, eval_config=MetaRLEvalConfig)
def build_maml_vpg(cfg: MAMLRLConfig, task: Any, seed: int) -> MAMLRL:
    """MAML-RL with a vanilla policy-gradient (Adam) meta-update."""
    return MAMLRL(cfg, task, seed, "maml-vpg")


@register_algo("emaml-trpo", family="metarl", config=EMAMLConfig, eval_config=MetaRLEvalConfig)
def build_emaml_trpo(cfg: MAMLRLConfig, task: Any, seed: int) -> MAMLRL:
    """E-MAML (Stadie et al. 2018): MAML-TRPO plus the exploration term on pre-update episodes."""
    return MAMLRL(cfg, task, seed, "emaml-trpo")


__all__ = [
    "EMAMLConfig",
    "MAMLPPOConfig",
    "MAMLRL",
    "MAMLRLConfig",
    "MAMLVPGConfig",
    "build_emaml_trpo",
    "build_maml_ppo",
    "build_maml_trpo",
    "build_maml_vpg",
]
