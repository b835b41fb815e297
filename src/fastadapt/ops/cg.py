"""Conjugate gradient and Hessian / Fisher-vector products (Schulman et al. 2015, TRPO, appendix C).

TRPO's natural-gradient direction solves ``F x = g`` with ``F`` the Fisher matrix (the Hessian of the mean
KL between the old and new policy at the old parameters) without forming ``F``: conjugate gradient only
needs products ``F v``, computed by double back-propagation through the KL (Pearlmutter 1994).
Vectors are flat ``[P]`` tensors over a list of parameters (see :func:`flatten` / :func:`unflatten`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def flatten(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate tensors into one flat ``[P]`` vector."""
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(vector: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Split a flat ``[P]`` vector into tensors shaped like ``like``."""
    total = sum(t.numel() for t in like)
    if vector.dim() != 1 or vector.numel() != total:
        raise ValueError(f"vector: expected shape ({total},), got {tuple(vector.shape)}")
    out, i = [], 0
    for t in like:
        out.append(vector[i : i + t.numel()].view_as(t))
        i += t.numel()
    return out


def set_flat_(params: Sequence[torch.Tensor], vector: torch.Tensor) -> None:
    """Copy a flat ``[P]`` vector into ``params`` in place (keeps each parameter's own storage, unlike
    ``torch.nn.utils.vector_to_parameters``, so results do not depend on memory layout)."""
    with torch.no_grad():
        for p, v in zip(params, unflatten(vector, params)):
            p.copy_(v)


def flat_grad(
    output: torch.Tensor,
    params: Sequence[torch.Tensor],
    retain_graph: bool | None = None,
    create_graph: bool = False,
) -> torch.Tensor:
    """Gradient of the scalar ``output`` w.r.t. ``params`` as one flat vector (zeros for unused params)."""
    if output.dim() != 0:
        raise ValueError(f"output: expected a scalar, got shape {tuple(output.shape)}")
    grads = torch.autograd.grad(
        output, list(params), retain_graph=retain_graph, create_graph=create_graph, allow_unused=True
    )
    return flatten([torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)])


def hessian_vector_product(
    scalar: torch.Tensor, params: Sequence[torch.Tensor], damping: float = 0.0
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``v -> (H + damping I) v`` with ``H`` the Hessian of ``scalar`` w.r.t. ``params``.

    The first-order gradient graph is built once; each product is one extra backward pass. With
    ``scalar`` = mean ``KL(pi_old || pi_theta)`` (old detached) at ``theta = theta_old`` this is the
    Fisher-vector product of TRPO; MAML-TRPO passes the KL of the *adapted* policies, differentiated
    through the inner update, w.r.t. the meta-parameters (Finn et al. 2017).
    """
    params = list(params)
    grad = flat_grad(scalar, params, retain_graph=True, create_graph=True)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        if v.shape != grad.shape:
            raise ValueError(f"v: expected shape {tuple(grad.shape)}, got {tuple(v.shape)}")
        gv = torch.dot(grad, v.detach())
        hv = flat_grad(gv, params, retain_graph=True)
        return hv.detach() + damping * v.detach()

    return hvp


fisher_vector_product = hessian_vector_product


def conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    iters: int = 10,
    residual_tol: float = 1e-10,
) -> torch.Tensor:
    """Approximately solve ``A x = b`` for symmetric positive-definite ``A`` given ``matvec(v) = A v``.

    Hestenes & Stiefel 1952; Nocedal & Wright 2006, Algorithm 5.2. Starts at ``x = 0`` and stops after
    ``iters`` iterations or when ``||r||^2 < residual_tol``. ``b: [P]`` -> ``x: [P]``.
    """
    if b.dim() != 1:
        raise ValueError(f"b: expected a flat vector [P], got shape {tuple(b.shape)}")
    if iters < 1:
        raise ValueError(f"iters: expected >= 1, got {iters}")
    b = b.detach()
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = torch.dot(r, r)
    for _ in range(iters):
        if rr < residual_tol:
            break
        Ap = matvec(p)
        if Ap.shape != b.shape:
            raise ValueError(f"matvec: returned shape {tuple(Ap.shape)}, expected {tuple(b.shape)}")
        pAp = torch.dot(p, Ap)
        if pAp <= 0:
            break  # not positive definite along p: keep the current iterate
        alpha = rr / pAp
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = torch.dot(r, r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


__all__ = [
    "conjugate_gradient",
    "fisher_vector_product",
    "flat_grad",
    "flatten",
    "hessian_vector_product",
    "set_flat_",
    "unflatten",
]
