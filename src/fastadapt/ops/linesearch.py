"""Backtracking line search under a KL trust region (Schulman et al. 2015, TRPO, appendix C).

Given a search direction ``s`` (e.g. the CG solution of ``F s = g``), TRPO scales it to the trust-region
boundary, ``beta = sqrt(2 delta / s^T F s)`` (:func:`trust_region_step_size`), then shrinks the step
``beta s`` by ``backtrack_ratio`` until the surrogate loss improves and the mean KL is at most ``delta``
(:func:`backtracking_line_search`). If no candidate is accepted the parameters are left unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch


def trust_region_step_size(direction: torch.Tensor, fvp_direction: torch.Tensor, max_kl: float) -> float:
    """``sqrt(2 max_kl / (s^T F s))``: the largest multiple of ``s`` with quadratic KL model <= ``max_kl``."""
    if direction.shape != fvp_direction.shape:
        raise ValueError(
            f"fvp_direction: expected shape {tuple(direction.shape)}, got {tuple(fvp_direction.shape)}"
        )
    if max_kl <= 0:
        raise ValueError(f"max_kl: expected > 0, got {max_kl}")
    shs = float(torch.dot(direction, fvp_direction))
    if not math.isfinite(shs) or shs <= 0:
        return 0.0
    return math.sqrt(2.0 * max_kl / shs)


@dataclass
class LineSearchResult:
    """Outcome: ``params`` (flat, the accepted candidate or the original), the accepted ``step_frac``
    (0 if rejected), the loss and KL at the returned params, and the number of candidates tried."""

    params: torch.Tensor
    accepted: bool
    step_frac: float
    loss: float
    kl: float
    tries: int


def backtracking_line_search(
    evaluate: Callable[[torch.Tensor], tuple[float | torch.Tensor, float | torch.Tensor]],
    params: torch.Tensor,
    full_step: torch.Tensor,
    loss_before: float,
    max_kl: float,
    backtrack_ratio: float = 0.5,
    max_backtracks: int = 10,
    expected_improve: float | None = None,
    accept_ratio: float = 0.0,
) -> LineSearchResult:
    """Try ``params + backtrack_ratio^k full_step`` for ``k = 0..max_backtracks-1``.

    A candidate is accepted when it is finite, its loss is below ``loss_before`` (and, if
    ``expected_improve`` — the linear model's predicted decrease ``-g^T full_step`` — is given, the actual
    decrease is at least ``accept_ratio`` times the predicted one) and its KL is ``<= max_kl``.

    Args:
        evaluate: ``candidate [P] -> (loss, kl)``: the surrogate loss to minimise and the mean KL from the
            old policy, computed with the candidate parameters (without gradients).
        params: current flat parameters ``[P]``.
        full_step: step ``[P]`` at fraction 1.
        loss_before: the loss at ``params``.
        max_kl: trust-region radius ``delta``.
    """
    if params.dim() != 1:
        raise ValueError(f"params: expected a flat vector [P], got shape {tuple(params.shape)}")
    if full_step.shape != params.shape:
        raise ValueError(f"full_step: expected shape {tuple(params.shape)}, got {tuple(full_step.shape)}")
    if not 0.0 < backtrack_ratio < 1.0:
        raise ValueError(f"backtrack_ratio: expected in (0, 1), got {backtrack_ratio}")
    if max_backtracks < 1:
        raise ValueError(f"max_backtracks: expected >= 1, got {max_backtracks}")
    if max_kl <= 0:
        raise ValueError(f"max_kl: expected > 0, got {max_kl}")
    frac = 1.0
    for k in range(max_backtracks):
        candidate = params + frac * full_step
        loss, kl = evaluate(candidate)
        loss, kl = float(loss), float(kl)
        improve = loss_before - loss
        ok = math.isfinite(loss) and math.isfinite(kl) and improve > 0 and kl <= max_kl
        if ok and expected_improve is not None and expected_improve > 0:
            ok = improve >= accept_ratio * frac * expected_improve
        if ok:
            return LineSearchResult(candidate.detach(), True, frac, loss, kl, k + 1)
        frac *= backtrack_ratio
    return LineSearchResult(params.detach().clone(), False, 0.0, float(loss_before), 0.0, max_backtracks)


__all__ = ["LineSearchResult", "backtracking_line_search", "trust_region_step_size"]
