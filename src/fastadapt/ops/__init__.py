"""Pure, shape-checked tensor functions shared by every RL algorithm (rlax style).

- :mod:`~fastadapt.ops.returns`: discounted returns, GAE(lambda), TD targets, masked mean/normalise.
- :mod:`~fastadapt.ops.baseline`: linear feature baseline (rllab / MAML / ProMP).
- :mod:`~fastadapt.ops.surrogates`: VPG, importance-sampled (TRPO) and PPO-clip losses, value loss.
- :mod:`~fastadapt.ops.kl`: closed-form and sample-based KL divergences.
- :mod:`~fastadapt.ops.cg`: conjugate gradient, Hessian/Fisher-vector products, flat gradients.
- :mod:`~fastadapt.ops.linesearch`: TRPO's step size and backtracking line search with a KL constraint.

All functions accept arbitrary leading dims (``[tasks, envs, time]``...) and raise ``ValueError`` naming the
argument whose shape is wrong.
"""

from fastadapt.ops.baseline import (
    LinearFeatureBaseline,
    fit_linear_baseline,
    linear_baseline_features,
    predict_linear_baseline,
)
from fastadapt.ops.cg import (
    conjugate_gradient,
    fisher_vector_product,
    flat_grad,
    flatten,
    hessian_vector_product,
    set_flat_,
    unflatten,
)
from fastadapt.ops.kl import categorical_kl, diag_gaussian_kl, sample_kl
from fastadapt.ops.linesearch import LineSearchResult, backtracking_line_search, trust_region_step_size
from fastadapt.ops.returns import discounted_returns, gae, masked_mean, normalize, td_targets
from fastadapt.ops.surrogates import (
    clip_fraction,
    entropy_bonus,
    importance_sampled_loss,
    policy_gradient_loss,
    ppo_clip_loss,
    value_loss,
)

__all__ = [
    "LineSearchResult",
    "LinearFeatureBaseline",
    "backtracking_line_search",
    "categorical_kl",
    "clip_fraction",
    "conjugate_gradient",
    "diag_gaussian_kl",
    "discounted_returns",
    "entropy_bonus",
    "fisher_vector_product",
    "fit_linear_baseline",
    "flat_grad",
    "flatten",
    "gae",
    "hessian_vector_product",
    "importance_sampled_loss",
    "linear_baseline_features",
    "masked_mean",
    "normalize",
    "policy_gradient_loss",
    "ppo_clip_loss",
    "predict_linear_baseline",
    "sample_kl",
    "set_flat_",
    "td_targets",
    "trust_region_step_size",
    "unflatten",
    "value_loss",
]
