"""Shared pieces of the gradient-based meta-RL family (MAML-RL, ProMP, E-MAML/DiCE, Reptile-RL).

Finn, Abbeel & Levine 2017 ("Model-Agnostic Meta-Learning", sec. 3.2 and 5.3); Rothfuss et al. 2019
("ProMP: Proximal Meta-Policy Search"); Stadie et al. 2018 ("Some Considerations on Learning to Explore
via Meta-Reinforcement Learning", E-MAML); Foerster et al. 2018 ("DiCE: The Infinitely Differentiable
Monte-Carlo Estimator"); Nichol, Achiam & Schulman 2018 ("On First-Order Meta-Learning Algorithms",
Reptile).

Layout of the data (one episode per env row, as the :class:`~fastadapt.samplers.vector.VectorSampler`
returns it): ``obs [tasks, envs, time, obs_dim]``, ``actions [tasks, envs, time, act_dim]``, ``rewards /
mask / advantages [tasks, envs, time]``.

Per-task parameters are plain dicts ``{name: [tasks, *shape]}``. The meta-initialisation ``theta`` enters
as ``theta.expand(tasks, ...)``; every task's inner loss only touches its own slice, so ONE backward pass
of the summed per-task losses w.r.t. the expanded tensors gives every task's inner gradient at once
(:func:`adapt_params`), and one ``vmap(functional_call)`` forward evaluates all tasks' policies
(:func:`batched_forward`) — no Python loop over tasks. With ``create_graph=True`` the adapted parameters
stay differentiable w.r.t. ``theta`` (second-order meta-gradient); with ``create_graph=False`` the inner
gradients are constants, which drops exactly the Hessian term (first-order MAML).

Also here: the linear-feature-baseline advantage pipeline, the inner-loop estimators (REINFORCE, LVC,
DiCE), the TRPO outer step over a closure, and the meta-test protocol of the MAML paper (k = 0..K
adaptation steps on held-out tasks, side by side with ``pretrained``, ``random-init`` and ``oracle``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator
from torch import nn

from fastadapt.core.config import Section
from fastadapt.core.errors import CheckpointError, ConfigError, NumericError
from fastadapt.core.seeding import derive_seed, get_state, np_rng, set_state, torch_gen
from fastadapt.core.types import EpisodeBatch, Row
from fastadapt.ops.baseline import fit_linear_baseline, linear_baseline_features, predict_linear_baseline
from fastadapt.ops.cg import conjugate_gradient, flat_grad, hessian_vector_product, set_flat_
from fastadapt.ops.linesearch import backtracking_line_search, trust_region_step_size
from fastadapt.ops.returns import discounted_returns, gae, masked_mean, normalize
from fastadapt.ops.surrogates import ppo_clip_loss

Params = dict[str, torch.Tensor]
Estimator = Literal["reinforce", "lvc", "dice"]

# ------------------------------------------------------------------------------------------- configs


class MetaRLConfig(Section):
    """Fields shared by the gradient-based meta-RL algorithms (the ``algo:`` section adds its own).

    Defaults follow MAML's 2D-navigation setup (cbfinn/maml_rl, tristandeleu/pytorch-maml-rl): a
    ``tanh`` MLP 64x64 Gaussian policy, 20 tasks x 20 episodes per meta-iteration, one inner step of
    size 0.1, gamma 0.99, GAE lambda 1 with the linear feature baseline refitted per task.
    """

    hidden: tuple[int, ...] = Field((64, 64), description="hidden widths of the policy MLP")
    activation: Literal["tanh", "relu", "elu", "gelu", "silu"] = "tanh"
    init_log_std: float = Field(0.0, description="initial log std of the Gaussian policy")
    meta_batch: int = Field(20, ge=1, description="tasks per meta-iteration")
    fast_batch: int = Field(20, ge=1, description="episodes per task per adaptation step")
    inner_steps: int = Field(1, ge=1, description="policy-gradient steps in the inner loop")
    inner_lr: float = Field(0.1, gt=0, description="inner-loop step size alpha")
    gamma: float = Field(0.99, ge=0, le=1)
    gae_lambda: float = Field(1.0, ge=0, le=1)
    normalize_adv: bool = Field(True, description="normalise advantages per task (as MAML/ProMP code)")
    baseline_reg: float = Field(1e-5, gt=0, description="ridge coefficient of the linear baseline")
    num_workers: int = Field(2, ge=0, description="sampler processes for non-batched envs (MuJoCo, ...)")

    @field_validator("hidden", mode="before")
    @classmethod
    def _wrap_hidden(cls, v: Any) -> Any:
        return (v,) if isinstance(v, int) else v


class MetaRLEvalConfig(Section):
    """The ``eval:`` section: the MAML paper's meta-test protocol (Finn et al. 2017, sec. 5.3).

    On ``test_tasks`` held-out tasks (``split="test"``), for k = 0..``adapt_steps`` the policy adapted with
    k inner steps (each step uses ``episodes`` fresh rollouts, default the algorithm's ``fast_batch``) is
    run and its mean return per episode recorded; the same rollouts feed the next step.
    """

    test_tasks: int = Field(40, ge=2, description="held-out tasks (MAML: 40)")
    adapt_steps: int = Field(3, ge=0, description="largest number of adaptation steps K")
    episodes: int | None = Field(None, ge=1, description="episodes per step; default: the algo's fast_batch")
    baselines: list[Literal["pretrained", "random-init", "oracle"]] = Field(
        default_factory=lambda: ["pretrained", "random-init", "oracle"]
    )
    pretrain_iterations: int = Field(
        100, ge=0, description="TRPO iterations of the jointly trained 'pretrained' policy"
    )
    baseline_inner_lrs: list[float] | None = Field(
        None,
        description="fine-tuning step sizes tried for pretrained/random-init (best final-step mean kept; "
        "default: the algo's inner_lr)",
    )

    @field_validator("baselines", "baseline_inner_lrs", mode="before")
    @classmethod
    def _wrap(cls, v: Any) -> Any:
        return [v] if isinstance(v, (str, int, float)) else v


class TRPOFields(Section):
    """TRPO outer-loop fields (Schulman et al. 2015; MAML's values for the meta-update)."""

    max_kl: float = Field(0.01, gt=0, description="trust-region radius delta on the adapted policies")
    cg_iters: int = Field(10, ge=1)
    cg_damping: float = Field(1e-5, ge=0)
    backtrack_ratio: float = Field(0.8, gt=0, lt=1)
    max_backtracks: int = Field(15, ge=1)
    fvp_second_order: bool = Field(
        True,
        description="Hessian-of-KL products differentiate through the inner update (exact J^T F J; "
        "~2.7x the CPU per MAML iteration on navigation2d). False: Fisher of the adapted policies with the "
        "inner gradient held constant; it underestimated the KL 2-150x and made a navigation2d seed diverge",
    )


# ---------------------------------------------------------------------------------------- building


def require_task_distribution(task: Any, algo: str) -> Any:
    """The task must be a meta-RL family: ``sample(n, seed, split)`` and ``batched_env`` or ``make_env``."""
    if not callable(getattr(task, "sample", None)) or not (
        hasattr(task, "batched_env") or hasattr(task, "make_env")
    ):
        raise ConfigError(
            f"task.name: {algo} needs a meta-RL task family (e.g. navigation2d, halfcheetah-vel), "
            f"got {type(task).__name__}"
        )
    return task


def task_spaces(task: Any) -> tuple[Any, Any]:
    """``(observation_space, action_space)`` of one env of the family."""
    if hasattr(task, "observation_space") and hasattr(task, "action_space"):
        return task.observation_space, task.action_space
    env = task.make_env()
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def make_policy(task: Any, cfg: MetaRLConfig, gen: torch.Generator) -> nn.Module:
    """A Gaussian (Box actions) or Categorical (Discrete actions) MLP policy for the family's spaces."""
    from fastadapt.nn.policies import policy_for_spaces

    obs_space, act_space = task_spaces(task)
    return policy_for_spaces(
        obs_space, act_space, cfg.hidden, cfg.activation, cfg.init_log_std, generator=gen
    )


def wants_success(task: Any) -> bool:
    """Meta-World families report a success rate (``info["success"]``)."""
    return "MetaWorld" in str(getattr(task, "env_id", ""))


def make_sampler(task: Any, policy: nn.Module, num_envs: int, num_workers: int) -> Any:
    """VectorSampler for families with a batched torch env, ProcessSampler otherwise (MuJoCo, Meta-World)."""
    if hasattr(task, "batched_env"):
        from fastadapt.samplers.vector import VectorSampler

        return VectorSampler(task, policy, num_envs=num_envs)
    from fastadapt.samplers.process import ProcessSampler

    keys = ("success",) if wants_success(task) else ()
    return ProcessSampler(task, policy, num_envs=num_envs, num_workers=num_workers, info_keys=keys)


# ------------------------------------------------------------------------------------ rollouts


@dataclass
class Rollouts:
    """One sampling round for every task, with advantages.

    obs ``[T, E, H, obs_dim]``; actions ``[T, E, H, act_dim]`` (or ``[T, E, H]``); rewards, mask,
    advantages (normalised per task if asked), values (linear baseline), returns (discounted reward-to-go)
    ``[T, E, H]``. ``success`` ``[T, E]`` when the env reports it.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    mask: torch.Tensor
    advantages: torch.Tensor
    values: torch.Tensor
    returns: torch.Tensor
    success: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def num_tasks(self) -> int:
        return int(self.rewards.shape[0])

    def episode_returns(self) -> torch.Tensor:
        """Undiscounted return of every episode ``[T, E]``."""
        return (self.rewards * self.mask).sum(-1)

    def task_returns(self) -> torch.Tensor:
        """Mean return per episode of every task ``[T]``."""
        return self.episode_returns().mean(-1)

    def env_steps(self) -> int:
        return int(self.mask.sum().item())


def process_batch(
    batch: EpisodeBatch, gamma: float, gae_lambda: float, normalize_adv: bool, reg: float = 1e-5
) -> Rollouts:
    """Fit the linear feature baseline per task (Duan et al. 2016) and compute GAE advantages.

    ``batch``: an EpisodeBatch ``[T, E, H, ...]`` with one episode per row. Targets of the baseline are the
    discounted returns; padded steps (after termination) carry no return and bootstrap nothing; episodes
    cut by the horizon are not bootstrapped (as in MAML's code).
    """
    rewards = batch.rewards.float()
    mask = batch.mask.float()
    obs = batch.obs.float()
    rets = discounted_returns(rewards, gamma, mask=mask)
    feats = linear_baseline_features(obs)
    coeffs = fit_linear_baseline(feats, rets, mask, batch_dims=1, reg_coeff=reg)
    values = predict_linear_baseline(feats, coeffs, mask)
    adv = gae(rewards, values, gamma, gae_lambda, mask=mask)
    if normalize_adv:
        adv = normalize(adv, mask, dim=(1, 2))
    success = None
    if "success" in batch.infos:
        success = (batch.infos["success"].float() * mask).amax(-1)
    return Rollouts(obs, batch.actions, rewards, mask, adv, values, rets, success)


# ---------------------------------------------------------------------------- functional policies


def shared_params(policy: nn.Module) -> Params:
    """The policy's live parameters ``{name: Parameter}`` (the meta-initialisation theta)."""
    return dict(policy.named_parameters())


def expand_params(params: Params, num_tasks: int) -> Params:
    """``{name: [*shape]} -> {name: [tasks, *shape]}`` as differentiable broadcasts of the shared tensors."""
    return {k: v.unsqueeze(0).expand(num_tasks, *v.shape) for k, v in params.items()}


def detach_params(params: Params) -> Params:
    return {k: v.detach() for k, v in params.items()}


def batched_forward(policy: nn.Module, params: Params, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Policy outputs of every task in one vmapped forward: ``obs [T, ...] -> out`` (each ``[T, ...]``).

    ``params`` are per-task ``{name: [T, *shape]}`` (``torch.func.functional_call`` under
    ``torch.func.vmap``); gradients flow to them by ordinary autograd.
    """

    def one(p: Params, o: torch.Tensor) -> Any:
        return torch.func.functional_call(policy, p, (o,), strict=False)

    out = torch.func.vmap(one, in_dims=(0, 0))(params, obs)
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def log_probs(policy: nn.Module, params: Params, ro: Rollouts) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """``(log pi(a|s) [T, E, H], policy outputs)`` of per-task ``params`` on ``ro``."""
    out = batched_forward(policy, params, ro.obs)
    return policy.log_prob(out, ro.actions), out


def magic_box(x: torch.Tensor) -> torch.Tensor:
    """DiCE's MagicBox ``exp(x - stop_grad(x))``: 1 in value, ``d/dx = 1 * MagicBox`` (Foerster et al. 2018)."""
    return torch.exp(x - x.detach())


def dice_objective(logp: torch.Tensor, ro: Rollouts, gamma: float) -> torch.Tensor:
    """DiCE surrogate per task ``[T]`` with the linear baseline as control variate.

    ``sum_t box(sum_{t'<=t} log pi_t') gamma^t r_t + sum_t (1 - box(log pi_t)) gamma^t b_t`` (Foerster et al.
    2018, eq. 5; baseline term of Mao et al. 2019), averaged over episodes and divided by the mean episode
    length so that its scale matches the per-step mean of the REINFORCE loss. Every derivative of it is an
    unbiased estimator of the same derivative of the expected discounted return (the ``baseline`` only
    reduces variance).
    """
    m = ro.mask
    H = logp.shape[-1]
    disc = gamma ** torch.arange(H, dtype=logp.dtype, device=logp.device)
    cum = torch.cumsum(logp * m, dim=-1)
    main = (magic_box(cum) * disc * ro.rewards * m).sum(-1)
    base = ((1.0 - magic_box(logp)) * disc * ro.values * m).sum(-1)
    length = m.sum(-1).mean(-1).clamp_min(1.0)  # [T]
    return (main + base).mean(-1) / length


def inner_losses(
    policy: nn.Module, params: Params, ro: Rollouts, estimator: Estimator, gamma: float
) -> torch.Tensor:
    """Per-task inner-loop losses ``[T]`` (to minimise) of per-task ``params`` on ``ro``.

    - ``reinforce``: ``-mean_t log pi(a_t|s_t) A_t`` (MAML; Finn et al. 2017, eq. 4 with a baseline);
    - ``lvc``: ``-mean_t pi(a_t|s_t) / stop_grad(pi(a_t|s_t)) A_t``, ProMP's low-variance curvature
      estimator (Rothfuss et al. 2019, eq. 11): same gradient, Hessian ``sum_t (grad^2 log pi + grad log pi
      grad log pi^T) A_t``;
    - ``dice``: minus :func:`dice_objective` (Foerster et al. 2018), unbiased Hessian, high variance.
    """
    logp, _ = log_probs(policy, params, ro)
    if estimator == "reinforce":
        return -masked_mean(logp * ro.advantages, ro.mask, dim=(1, 2))
    if estimator == "lvc":
        return -masked_mean(magic_box(logp) * ro.advantages, ro.mask, dim=(1, 2))
    if estimator == "dice":
        return -dice_objective(logp, ro, gamma)
    raise ConfigError(f"estimator: unknown {estimator!r}; allowed: reinforce, lvc, dice")


def adapt_params(
    policy: nn.Module,
    params: Params,
    ro: Rollouts,
    lr: float,
    estimator: Estimator = "reinforce",
    gamma: float = 0.99,
    create_graph: bool = False,
) -> Params:
    """One inner policy-gradient step for every task at once: ``phi_i = params_i - lr * grad L_i(params_i)``.

    ``params`` are per-task ``{name: [T, *shape]}`` that require grad (or are functions of tensors that do);
    gradients of ``sum_i L_i`` w.r.t. them are the per-task gradients. ``create_graph=True`` keeps the inner
    gradient differentiable (second-order MAML); ``False`` treats it as a constant (first order).
    """
    # under no_grad, views of Parameters still report requires_grad (and are leaves): never take those
    in_graph = torch.is_grad_enabled() and any(v.requires_grad for v in params.values())
    with torch.enable_grad():
        leaves = params
        if not in_graph:
            leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        loss = inner_losses(policy, leaves, ro, estimator, gamma).sum()
        names = list(leaves)
        grads = torch.autograd.grad(loss, [leaves[k] for k in names], create_graph=create_graph, allow_unused=True)
    out: Params = {}
    for k, g in zip(names, grads):
        base = params[k] if leaves is params else params[k].detach()
        if g is None:
            out[k] = base
        else:
            out[k] = base - lr * (g if create_graph else g.detach())
    return out


def adapt_sequence(
    policy: nn.Module,
    theta: Params,
    train: Sequence[Rollouts],
    lr: float,
    estimator: Estimator,
    gamma: float,
    create_graph: bool,
) -> Params:
    """Adapted parameters after ``len(train)`` inner steps from the shared ``theta`` (``[T, ...]`` each)."""
    num_tasks = train[0].num_tasks if train else 1
    p = expand_params(theta, num_tasks)
    for ro in train:
        p = adapt_params(policy, p, ro, lr, estimator, gamma, create_graph=create_graph)
    return p


def adapt_trajectory(
    policy: nn.Module,
    theta: Params,
    train: Sequence[Rollouts],
    lr: float,
    estimator: Estimator,
    gamma: float,
    create_graph: bool,
) -> list[Params]:
    """Per-task parameters before every inner step and after the last: ``[phi_0 = theta, ..., phi_S]``."""
    num_tasks = train[0].num_tasks if train else 1
    traj = [expand_params(theta, num_tasks)]
    for ro in train:
        traj.append(adapt_params(policy, traj[-1], ro, lr, estimator, gamma, create_graph=create_graph))
    return traj


def sample_rollouts(
    sampler: Any, tasks: Sequence[Any], params: Params | None, seed: int, cfg: MetaRLConfig
) -> Rollouts:
    """Collect ``fast_batch`` episodes per task with per-task ``params`` (None: shared weights)."""
    p = None if params is None else detach_params(params)
    batch = sampler.sample(tasks, params=p, seed=seed)
    ro = process_batch(batch, cfg.gamma, cfg.gae_lambda, cfg.normalize_adv, cfg.baseline_reg)
    if not torch.isfinite(ro.advantages).all():
        raise NumericError("advantages")
    return ro


# ----------------------------------------------------------------------------------------- TRPO


@dataclass
class TRPOResult:
    """``kl_model``: the KL that the quadratic model ``1/2 s^T H s`` (H from the Hessian-vector products
    used for the step) predicts at the accepted step ``s``; ``kl / kl_model`` far from 1 means the
    curvature model is wrong (e.g. the Fisher of the adapted policies without the inner-update Jacobian)."""

    loss_before: float
    loss_after: float
    kl: float
    step_frac: float
    kl_model: float = 0.0


def trpo_step(
    params: list[nn.Parameter],
    surrogate_and_kl: Callable[[bool], tuple[torch.Tensor, torch.Tensor]],
    cfg: TRPOFields,
    kl_fn: Callable[[], torch.Tensor] | None = None,
) -> TRPOResult:
    """One TRPO update of ``params`` (Schulman et al. 2015, appendix C; MAML's meta-update).

    ``surrogate_and_kl(with_graph)`` returns ``(loss, mean KL)`` at the current values of ``params``;
    with ``with_graph`` both must be differentiable w.r.t. ``params`` (for MAML: through the inner update).
    The natural-gradient direction comes from conjugate gradient with Hessian-of-KL products; the step is
    scaled to the trust region and backtracked until the loss improves with KL <= ``max_kl``.
    ``kl_fn`` (optional) gives a differentiable KL for the Hessian products that differs from the one of
    ``surrogate_and_kl`` (e.g. with the inner gradient held constant, ``fvp_second_order: false``).
    """
    loss, kl = surrogate_and_kl(True)
    if kl_fn is not None:
        kl = kl_fn()
    if not torch.isfinite(loss):
        raise NumericError("meta surrogate")
    grad = flat_grad(loss, params, retain_graph=True)
    fvp = hessian_vector_product(kl, params, damping=cfg.cg_damping)
    direction = conjugate_gradient(fvp, -grad, iters=cfg.cg_iters)
    scale = trust_region_step_size(direction, fvp(direction), cfg.max_kl)
    full_step = scale * direction
    flat = torch.nn.utils.parameters_to_vector(params).detach()
    loss_before = float(loss.detach())
    del loss, kl, fvp

    def evaluate(candidate: torch.Tensor) -> tuple[float, float]:
        set_flat_(params, candidate)
        l2, k2 = surrogate_and_kl(False)
        return float(l2.detach()), float(k2.detach())

    res = backtracking_line_search(
        evaluate, flat, full_step, loss_before, cfg.max_kl,
        backtrack_ratio=cfg.backtrack_ratio, max_backtracks=cfg.max_backtracks,
    )
    set_flat_(params, res.params)
    kl_model = cfg.max_kl * res.step_frac**2 if scale > 0 else 0.0
    return TRPOResult(loss_before, res.loss, res.kl, res.step_frac, kl_model)


def per_task_kl(policy: nn.Module, old_out: tuple[torch.Tensor, ...], out: tuple[torch.Tensor, ...],
                mask: torch.Tensor) -> torch.Tensor:
    """Mean ``KL(old || new)`` over valid steps, averaged over tasks (scalar)."""
    return masked_mean(policy.kl(old_out, out), mask, dim=(1, 2)).mean()


def maml_surrogate(
    policy: nn.Module,
    theta: Params,
    train: Sequence[Rollouts],
    valid: Rollouts,
    old_logp: torch.Tensor,
    old_out: tuple[torch.Tensor, ...],
    lr: float,
    estimator: Estimator,
    gamma: float,
    create_graph: bool,
) -> tuple[torch.Tensor, torch.Tensor, Params]:
    """MAML-TRPO's meta-objective: ``(surrogate loss, mean KL, adapted params)``.

    Adapts ``theta`` on ``train`` (differentiably if ``create_graph``), then evaluates the importance-sampled
    surrogate ``-mean_t pi_phi(a|s)/pi_phi_old(a|s) A_t`` per task on the post-update rollouts ``valid``
    (averaged over tasks) and the KL between the old and the new adapted policies (Finn et al. 2017).
    With no ``train`` rollouts this is plain TRPO on the task mixture (the ``pretrained`` baseline).
    """
    if train:
        phi = adapt_sequence(policy, theta, train, lr, estimator, gamma, create_graph)
    else:
        phi = expand_params(theta, valid.num_tasks)
    with torch.set_grad_enabled(create_graph or torch.is_grad_enabled()):
        logp, out = log_probs(policy, phi, valid)
        ratio = torch.exp(logp - old_logp)
        loss = -masked_mean(ratio * valid.advantages, valid.mask, dim=(1, 2)).mean()
        kl = per_task_kl(policy, old_out, out, valid.mask)
    return loss, kl, phi


def clipped_surrogate(
    policy: nn.Module, phi: Params, valid: Rollouts, old_logp: torch.Tensor, clip_eps: float
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """PPO's clipped surrogate (Schulman et al. 2017, eq. 7) of the adapted policies on the post-update
    rollouts, per-task mean then mean over tasks: ``(loss, outputs)``."""
    logp, out = log_probs(policy, phi, valid)
    loss = ppo_clip_loss(logp, old_logp, valid.advantages, clip_eps, valid.mask, dim=(1, 2)).mean()
    return loss, out


# ------------------------------------------------------------------------------- meta-test protocol


def adaptation_curve(
    policy: nn.Module,
    theta: Params,
    sampler: Any,
    tasks: Sequence[Any],
    steps: int,
    lr: float,
    estimator: Estimator,
    cfg: MetaRLConfig,
    seed: int,
) -> tuple[list[torch.Tensor], list[torch.Tensor | None], int]:
    """Returns ``([per-task mean return [T]] for k = 0..steps, [success rates or None], env_steps)``.

    Step k's rollouts (``sampler.num_envs`` episodes per task, policy adapted k times) are measured and
    then used for step k+1's adaptation (MAML's protocol). Sampling seeds depend on ``(seed, k)`` only,
    so methods evaluated with the same seed see the same env randomness.
    """
    p = detach_params(expand_params(theta, len(tasks)))
    rets: list[torch.Tensor] = []
    succ: list[torch.Tensor | None] = []
    steps_used = 0
    for k in range(steps + 1):
        ro = sample_rollouts(sampler, tasks, p, derive_seed(seed, "meta-test", k), cfg)
        steps_used += ro.env_steps()
        rets.append(ro.task_returns().double())
        succ.append(None if ro.success is None else ro.success.mean(-1).double())
        if k < steps:
            p = detach_params(adapt_params(policy, p, ro, lr, estimator, cfg.gamma, create_graph=False))
    return rets, succ, steps_used


def _rows_from_curve(
    method: str, rets: list[torch.Tensor], succ: list[torch.Tensor | None], extra: dict[str, Any]
) -> list[Row]:
    rows = []
    for k, r in enumerate(rets):
        n = int(r.numel())
        mean = float(r.mean())
        se = float(r.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")
        ex = dict(extra)
        if succ[k] is not None:
            ex["success_rate"] = float(succ[k].mean())  # type: ignore[union-attr]
        rows.append(Row(method=method, setting={"adapt_steps": k}, mean=mean, se=se, n=n, extra=ex))
    return rows


def train_pretrained(
    task: Any,
    cfg: MetaRLConfig,
    trpo: TRPOFields,
    iterations: int,
    seed: int,
    sampler_workers: int,
) -> tuple[nn.Module, int]:
    """The ``pretrained`` baseline of Finn et al. 2017: ONE policy trained with TRPO on batches of
    meta-train tasks jointly (no inner loop), ``meta_batch x fast_batch`` episodes per iteration.

    Returns ``(policy, env_steps)``.
    """
    policy = make_policy(task, cfg, torch_gen(seed, "pretrained-init"))
    sampler = make_sampler(task, policy, cfg.fast_batch, sampler_workers)
    rng = np_rng(seed, "pretrained-iterations")
    params = list(policy.parameters())
    env_steps = 0
    try:
        for _ in range(iterations):
            tasks = task.sample(cfg.meta_batch, int(rng.integers(2**62)), "train")
            ro = sample_rollouts(sampler, tasks, None, int(rng.integers(2**62)), cfg)
            env_steps += ro.env_steps()
            theta = shared_params(policy)
            with torch.no_grad():
                logp0, out0 = log_probs(policy, detach_params(expand_params(theta, len(tasks))), ro)
                out0 = tuple(o.detach() for o in out0)

            def sk(with_graph: bool, ro: Rollouts = ro, logp0: torch.Tensor = logp0,
                   out0: tuple[torch.Tensor, ...] = out0) -> tuple[torch.Tensor, torch.Tensor]:
                with torch.set_grad_enabled(with_graph):
                    loss, kl, _ = maml_surrogate(policy, shared_params(policy), [], ro, logp0, out0,
                                                 cfg.inner_lr, "reinforce", cfg.gamma, with_graph)
                return loss, kl

            trpo_step(params, sk, trpo)
    finally:
        if hasattr(sampler, "close"):
            sampler.close()
    return policy, env_steps


def gradient_meta_test(
    method: str,
    policy: nn.Module,
    task: Any,
    cfg: MetaRLConfig,
    ecfg: MetaRLEvalConfig,
    seed: int,
    estimator: Estimator = "reinforce",
    trpo: TRPOFields | None = None,
    extra: dict[str, Any] | None = None,
) -> list[Row]:
    """The meta-test protocol for gradient-based methods (Finn et al. 2017, sec. 5.3, Fig. 5).

    Rows ``method`` / ``pretrained`` / ``random-init`` / ``oracle`` with ``setting {"adapt_steps": k}``,
    ``mean`` = return per episode averaged over the held-out tasks, ``se`` over tasks, ``n`` = tasks.
    Every method is adapted with the same inner update (step size ``cfg.inner_lr``, or the best of
    ``ecfg.baseline_inner_lrs`` for the baselines — chosen by the final-step mean, which favours the
    baselines) on the same tasks with the same sampling seeds.
    """
    t0 = time.perf_counter()
    tasks = task.sample(ecfg.test_tasks, derive_seed(seed, "meta-test-tasks"), "test")
    episodes = ecfg.episodes or cfg.fast_batch
    base_extra = dict(extra or {})
    rows: list[Row] = []
    K = ecfg.adapt_steps

    def curve(pol: nn.Module, lr: float) -> tuple[list[torch.Tensor], list[torch.Tensor | None], int]:
        sampler = make_sampler(task, pol, episodes, cfg.num_workers)
        try:
            return adaptation_curve(pol, detach_params(shared_params(pol)), sampler, tasks, K, lr,
                                    estimator, cfg, seed)
        finally:
            if hasattr(sampler, "close"):
                sampler.close()

    rets, succ, used = curve(policy, cfg.inner_lr)
    rows += _rows_from_curve(method, rets, succ, {**base_extra, "inner_lr": cfg.inner_lr, "eval_env_steps": used})
    lrs = ecfg.baseline_inner_lrs or [cfg.inner_lr]

    def best_curve(pol: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor | None], float]:
        best: tuple[list[torch.Tensor], list[torch.Tensor | None], float] | None = None
        for lr in lrs:
            r, s, _ = curve(pol, lr)
            if best is None or float(r[-1].mean()) > float(best[0][-1].mean()):
                best = (r, s, lr)
        assert best is not None
        return best

    if "pretrained" in ecfg.baselines:
        pre, pre_steps = train_pretrained(task, cfg, trpo or TRPOFields(), ecfg.pretrain_iterations, seed,
                                          cfg.num_workers)
        r, s, lr = best_curve(pre)
        rows += _rows_from_curve("pretrained", r, s, {"inner_lr": lr, "pretrain_iterations":
                                                      ecfg.pretrain_iterations, "pretrain_env_steps": pre_steps})
    if "random-init" in ecfg.baselines:
        rnd = make_policy(task, cfg, torch_gen(seed, "random-init"))
        r, s, lr = best_curve(rnd)
        rows += _rows_from_curve("random-init", r, s, {"inner_lr": lr})
    if "oracle" in ecfg.baselines and callable(getattr(task, "oracle_returns", None)):
        o = task.oracle_returns(tasks).double()
        rows += _rows_from_curve("oracle", [o] * (K + 1), [None] * (K + 1), {"note": "knows the goal; no adaptation"})
    wall = round(time.perf_counter() - t0, 2)
    for r in rows:
        r.extra.setdefault("eval_wall_s", wall)
    return rows


# ----------------------------------------------------------------------------------- checkpointing


def optimizer_state(opt: torch.optim.Optimizer | None) -> dict[str, Any]:
    """Optimizer state with string keys and lists (JSON/safetensors friendly)."""
    if opt is None:
        return {}
    s = opt.state_dict()
    return {
        "state": {
            str(k): {n: (t.detach().clone() if isinstance(t, torch.Tensor) else t) for n, t in v.items()}
            for k, v in s["state"].items()
        },
        "param_groups": [
            {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in s["param_groups"]
        ],
    }


def load_optimizer_state(opt: torch.optim.Optimizer | None, state: dict[str, Any]) -> None:
    if opt is None:
        return
    groups = []
    for g in state["param_groups"]:
        g2 = dict(g)
        if "betas" in g2:
            g2["betas"] = tuple(float(b) for b in g2["betas"])
        g2["params"] = [int(p) for p in g2["params"]]
        groups.append(g2)
    opt.load_state_dict({"state": {int(k): dict(v) for k, v in state["state"].items()}, "param_groups": groups})


# -------------------------------------------------------------------------------- learner base


class GradientMetaLearner:
    """Scaffolding shared by MAML-RL, ProMP and Reptile-RL: policy, sampler, task/seed stream, counters,
    checkpoint state and the meta-test protocol. Subclasses implement :meth:`meta_step`.

    Randomness: ``init`` generator for the weights; a numpy generator ``meta`` draws each iteration's task
    seed and sampling seeds (its state is checkpointed); actions come from generators derived from those
    seeds inside the sampler.
    """

    key_metric = "post_return"
    name = "gradient-meta-rl"
    estimator: Estimator = "reinforce"

    def __init__(self, cfg: MetaRLConfig, task: Any, seed: int) -> None:
        self.cfg = cfg
        self.task = require_task_distribution(task, self.name)
        self.seed = int(seed)
        self.policy = make_policy(task, cfg, torch_gen(seed, "init"))
        self.sampler = make_sampler(task, self.policy, cfg.fast_batch, cfg.num_workers)
        self.rng = np_rng(seed, "meta-iterations")
        self.env_steps = 0
        self.iterations_done = 0

    # -- subclasses
    def optimizer(self) -> torch.optim.Optimizer | None:
        return None

    def meta_step(self, tasks: Sequence[Any], seeds: Sequence[int]) -> dict[str, float]:
        raise NotImplementedError

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def trpo_fields(self) -> TRPOFields | None:
        return None

    # -- Learner protocol
    def sample_iteration(self) -> tuple[list[Any], list[int]]:
        """This iteration's tasks and the sampling seeds of its ``inner_steps + 1`` rounds."""
        task_seed = int(self.rng.integers(2**62))
        seeds = [int(self.rng.integers(2**62)) for _ in range(self.cfg.inner_steps + 2)]
        return list(self.task.sample(self.cfg.meta_batch, task_seed, "train")), seeds

    def train_step(self, iteration: int) -> dict[str, float]:
        """One meta-iteration; metrics include cumulative ``env_steps``, ``pre_return``, ``post_return``."""
        tasks, seeds = self.sample_iteration()
        metrics = self.meta_step(tasks, seeds)
        self.iterations_done += 1
        out = {"env_steps": float(self.env_steps), **metrics}
        for k, v in out.items():
            if not math.isfinite(v):
                raise NumericError(k, iteration)
        return out

    def meta_train_step(self, iteration: int) -> dict[str, float]:
        """MetaLearner protocol name of :meth:`train_step`."""
        return self.train_step(iteration)

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": {k: v.detach().clone() for k, v in self.policy.state_dict().items()},
            "optimizer": optimizer_state(self.optimizer()),
            "rng": get_state(self.rng),
            "env_steps": int(self.env_steps),
            "iterations_done": int(self.iterations_done),
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            self.policy.load_state_dict(state["policy"])
            load_optimizer_state(self.optimizer(), state["optimizer"])
            set_state(self.rng, state["rng"])
            self.env_steps = int(state["env_steps"])
            self.iterations_done = int(state["iterations_done"])
            self.load_extra_state(state.get("extra", {}))
        except KeyError as e:
            raise CheckpointError(f"{self.name} checkpoint: missing key {e.args[0]!r}") from None
        except (RuntimeError, ValueError, TypeError) as e:
            raise CheckpointError(f"{self.name} checkpoint: incompatible state ({str(e).splitlines()[0]})") from None

    def evaluate(self, cfg: MetaRLEvalConfig | None = None, seed: int = 0) -> list[Row]:
        """The MAML paper's meta-test protocol (see :func:`gradient_meta_test`)."""
        ecfg = cfg if cfg is not None else MetaRLEvalConfig()
        return gradient_meta_test(
            self.name, self.policy, self.task, self.cfg, ecfg, seed, self.estimator, self.trpo_fields(),
            {"train_env_steps": int(self.env_steps), "train_iterations": int(self.iterations_done)},
        )

    # -- MetaLearner protocol (single-task adaptation)
    def adapt(self, task: Any, budget: int, seed: int = 0) -> Params:
        """Parameters ``{name: [1, *shape]}`` after ``budget`` inner steps on ``task``."""
        p = detach_params(expand_params(shared_params(self.policy), 1))
        for k in range(budget):
            ro = sample_rollouts(self.sampler, [task], p, derive_seed(seed, "adapt", k), self.cfg)
            p = detach_params(adapt_params(self.policy, p, ro, self.cfg.inner_lr, self.estimator,
                                           self.cfg.gamma))
        return p

    def act(self, adapted: Params, obs: torch.Tensor) -> torch.Tensor:
        """Mean actions of the adapted policy for ``obs [B, obs_dim]``."""
        with torch.no_grad():
            out = batched_forward(self.policy, adapted, obs.unsqueeze(0))
            return self.policy.mode(tuple(o[0] for o in out))

    def close(self) -> None:
        if hasattr(self.sampler, "close"):
            self.sampler.close()


def mean_or_zero(x: Sequence[float]) -> float:
    return float(np.mean(x)) if len(x) else 0.0


__all__ = [
    "GradientMetaLearner",
    "MetaRLConfig",
    "MetaRLEvalConfig",
    "Rollouts",
    "TRPOFields",
    "TRPOResult",
    "adapt_params",
    "adapt_sequence",
    "adapt_trajectory",
    "adaptation_curve",
    "batched_forward",
    "clipped_surrogate",
    "dice_objective",
    "expand_params",
    "gradient_meta_test",
    "inner_losses",
    "log_probs",
    "magic_box",
    "maml_surrogate",
    "make_policy",
    "make_sampler",
    "process_batch",
    "sample_rollouts",
    "shared_params",
    "train_pretrained",
    "trpo_step",
]
