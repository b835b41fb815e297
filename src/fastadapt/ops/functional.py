"""Functional inner-loop adaptation over ``torch.func`` (MAML and its relatives).

Parameters are plain dicts ``{name: tensor}`` (as returned by :func:`params_of`) so that one module can be
run with many parameter sets through :func:`torch.func.functional_call`. Two code paths compute *identical*
math (a test checks it to float64 round-off):

- **vmap** (:func:`adapt_vmap`): the inner loop of one task is written with :func:`torch.func.grad` and
  vectorised over the meta-batch with :func:`torch.func.vmap`; adapted parameters come out stacked,
  ``[tasks, *param_shape]``.
- **loop** (:func:`adapt_loop`): a Python loop over tasks with :func:`torch.autograd.grad`, results stacked
  the same way.

Both are differentiable by ordinary autograd from the outside: calling ``loss.backward()`` on a query loss
of the adapted parameters gives the full second-order MAML meta-gradient (Finn, Abbeel & Levine 2017,
"Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks", eq. 1) when ``first_order=False``, and
the first-order approximation (FOMAML, same paper sec. 5.2) when ``first_order=True``: the inner gradients
are then treated as constants, which drops exactly the Hessian term ``-alpha * H_support @ g_query``.

Inner learning rates (``lrs``) may be

- a float: one fixed rate (MAML);
- a tensor ``[steps]``: one rate per step (learned per-step rates, Antoniou et al. 2019, "How to train
  your MAML", LSLR);
- a dict ``{name: tensor [steps, *broadcastable to param]}``: per-step, per-layer (shape ``[steps]`` padded
  with ones) or per-parameter (shape ``[steps, *param_shape]``, Meta-SGD, Li et al. 2017, "Meta-SGD:
  Learning to Learn Quickly for Few-Shot Learning") rates.

A step index past the last row reuses the last row, so a model meta-trained with ``S`` steps can be
adapted for more. Tensors that require grad receive meta-gradients like the initial weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal, Union

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

Params = dict[str, torch.Tensor]
LRSpec = Union[float, torch.Tensor, Mapping[str, torch.Tensor]]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = [
    "Params",
    "LRSpec",
    "params_of",
    "detached_params",
    "lr_at",
    "init_inner_lrs",
    "sgd_update",
    "same_layout",
    "task_loss",
    "adapt_task",
    "adapt_task_func",
    "adapt_vmap",
    "adapt_loop",
    "adapt",
    "forward_batched",
    "stack_params",
    "unstack_params",
    "grad_batched",
    "adaptation_curve",
    "hvp",
]


def params_of(module: nn.Module, names: Sequence[str] | None = None) -> Params:
    """The module's parameters as ``{name: tensor}`` (the live ``nn.Parameter`` objects, not copies).

    ``names`` restricts the dict to those parameters (e.g. the head only, for ANIL).
    """
    all_params = dict(module.named_parameters())
    if names is None:
        return all_params
    missing = [n for n in names if n not in all_params]
    if missing:
        raise KeyError(f"unknown parameter names {missing}; module has {sorted(all_params)}")
    return {n: all_params[n] for n in names}


def detached_params(params: Mapping[str, torch.Tensor], requires_grad: bool = True) -> Params:
    """Copies of ``params`` cut from any graph (leaves that require grad if ``requires_grad``)."""
    return {k: v.detach().clone().requires_grad_(requires_grad) for k, v in params.items()}


def lr_at(lrs: LRSpec, step: int, name: str) -> torch.Tensor | float:
    """The inner learning rate of parameter ``name`` at inner step ``step`` (0-based).

    Returns a float or a tensor broadcastable to the parameter's shape (see the module docstring).
    """
    if isinstance(lrs, (float, int)):
        return float(lrs)
    if isinstance(lrs, torch.Tensor):
        if lrs.dim() == 0:
            return lrs
        return lrs[min(step, lrs.shape[0] - 1)]
    try:
        v = lrs[name]
    except KeyError:
        raise KeyError(f"lrs: no learning rate for parameter {name!r}; have {sorted(lrs)}") from None
    if isinstance(v, (float, int)):
        return float(v)
    if v.dim() == 0:
        return v
    return v[min(step, v.shape[0] - 1)]


def init_inner_lrs(
    params: Mapping[str, torch.Tensor],
    steps: int,
    init: float,
    granularity: Literal["scalar", "layer", "parameter"] = "layer",
    per_step: bool = True,
    requires_grad: bool = True,
) -> dict[str, torch.Tensor]:
    """Fresh learnable inner learning rates, all equal to ``init``.

    Returns ``{name: tensor}`` with shapes ``[S, 1, ..., 1]`` ("layer": one rate per tensor and step),
    ``[S, *param_shape]`` ("parameter": Meta-SGD) or, for "scalar", the key ``"*"`` with shape ``[S]``
    shared by every parameter (use :func:`expand_scalar_lrs` to view it as a per-name dict). ``S = steps``
    if ``per_step`` else 1.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    s = steps if per_step else 1
    out: dict[str, torch.Tensor] = {}
    if granularity == "scalar":
        dtype = next(iter(params.values())).dtype if params else torch.get_default_dtype()
        out["*"] = torch.full((s,), float(init), dtype=dtype).requires_grad_(requires_grad)
        return out
    for name, p in params.items():
        if granularity == "layer":
            shape = (s,) + (1,) * p.dim()
        elif granularity == "parameter":
            shape = (s,) + tuple(p.shape)
        else:
            raise ValueError(f"granularity: unknown {granularity!r}; allowed: scalar, layer, parameter")
        out[name] = torch.full(shape, float(init), dtype=p.dtype).requires_grad_(requires_grad)
    return out


def expand_scalar_lrs(lrs: Mapping[str, torch.Tensor], names: Sequence[str]) -> LRSpec:
    """Turn ``{"*": [S]}`` (from :func:`init_inner_lrs` with "scalar") into a per-step tensor ``[S]``."""
    if "*" in lrs:
        return lrs["*"]
    return {n: lrs[n] for n in names}


def sgd_update(
    params: Mapping[str, torch.Tensor],
    grads: Mapping[str, torch.Tensor],
    lrs: LRSpec,
    step: int,
) -> Params:
    """One inner SGD step ``theta_i <- theta_i - lr_i(step) * g_i`` for every name (shapes unchanged)."""
    return {k: p - lr_at(lrs, step, k) * grads[k] for k, p in params.items()}


def _first_order_at(step: int, first_order: bool, second_order_steps: int | None) -> bool:
    return first_order or (second_order_steps is not None and step >= second_order_steps)


def same_layout(t: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``t`` laid out with ``ref``'s strides (a differentiable copy, only when they differ; an overlapping
    ``ref``, e.g. an expanded tensor, is matched by a contiguous layout).

    Loop-path only (strides cannot be queried inside ``vmap``). Why it matters: an inner SGD step or a
    ``torch.stack``/slice round trip returns the first conv weight of a channels-last Conv4, ``[64, 1, 3, 3]``,
    with strides ``(9, 9, 3, 1)`` instead of the module's ``(9, 1, 3, 1)``. Both count as channels-last, yet
    the convolution then takes a slower path and the whole forward ran ~1.6-1.9x slower on this CPU
    (benchmarks/maml-speed/README.md, session 6).
    """
    if t.shape != ref.shape or t.stride() == ref.stride():
        return t
    out = torch.empty_like(ref, dtype=t.dtype, device=t.device)  # ref's strides if ref is dense, else contiguous
    return t if out.stride() == t.stride() else out.copy_(t)


def _module_layout(own: Mapping[str, torch.Tensor], params: Mapping[str, torch.Tensor]) -> Params:
    """``params`` (one task's) restrided like ``own`` (the module's named parameters) of the same names."""
    return {k: (same_layout(v, own[k]) if k in own else v) for k, v in params.items()}


def _merge(params: Mapping[str, torch.Tensor], frozen: Mapping[str, torch.Tensor] | None) -> Params:
    if not frozen:
        return dict(params)
    merged = dict(frozen)
    merged.update(params)
    return merged


def task_loss(
    model: nn.Module,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    frozen: Mapping[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Scalar loss of ONE task: ``loss_fn(model(x; params ∪ frozen), y)``; ``x: [examples, *x_shape]``."""
    out = functional_call(model, _merge(params, frozen), (x,))
    return loss_fn(out, y)


def adapt_task(
    model: nn.Module,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    steps: int,
    lrs: LRSpec,
    first_order: bool = False,
    frozen: Mapping[str, torch.Tensor] | None = None,
    trajectory: bool = False,
    second_order_steps: int | None = None,
) -> Params | list[Params]:
    """Adapt ONE task with ``steps`` SGD steps using :func:`torch.autograd.grad` (the loop reference).

    ``x: [examples, *x_shape]``, ``y: [examples, ...]``. Second order (``first_order=False``) builds the graph
    of every inner gradient (``create_graph=True``) so the result is differentiable w.r.t. ``params`` and
    tensor ``lrs``; first order uses detached gradients. Parameters in ``frozen`` are used in the forward
    pass but not adapted (ANIL: the body). With ``trajectory`` the list of parameters after steps
    ``0..steps`` is returned instead of the last one. ``second_order_steps=m`` differentiates only the first
    ``m`` inner gradients (later steps are first order; their learning rates still get meta-gradients). Outside ``torch.enable_grad`` contexts (evaluation
    under ``no_grad``) gradients are still computed, on detached copies.
    """
    outer_grad = torch.is_grad_enabled()
    cur: Params = dict(params)
    traj = [cur]
    for s in range(steps):
        with torch.enable_grad():
            leaves = cur
            if not any(v.requires_grad for v in cur.values()):
                leaves = {k: v.detach().requires_grad_(True) for k, v in cur.items()}
            loss = task_loss(model, leaves, x, y, loss_fn, frozen)
            keys = list(leaves)
            fo = _first_order_at(s, first_order, second_order_steps)
            create = (not fo) and outer_grad
            gs = torch.autograd.grad(loss, [leaves[k] for k in keys], create_graph=create)
        g = {k: (gk.detach() if fo else gk) for k, gk in zip(keys, gs)}
        base = cur if leaves is cur else {k: v.detach() for k, v in cur.items()}
        cur = {k: same_layout(v, base[k]) for k, v in sgd_update(base, g, lrs, s).items()}
        traj.append(cur)
    return traj if trajectory else cur


def adapt_task_func(
    model: nn.Module,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    steps: int,
    lrs: LRSpec,
    first_order: bool = False,
    frozen: Mapping[str, torch.Tensor] | None = None,
    trajectory: bool = False,
    second_order_steps: int | None = None,
) -> Params | list[Params]:
    """Same math as :func:`adapt_task`, written with :func:`torch.func.grad` so that it can be vmapped."""

    def loss_of(p: Params) -> torch.Tensor:
        return task_loss(model, p, x, y, loss_fn, frozen)

    cur: Params = dict(params)
    traj = [cur]
    for s in range(steps):
        g = grad(loss_of)(cur)
        if _first_order_at(s, first_order, second_order_steps):
            g = {k: v.detach() for k, v in g.items()}
        cur = sgd_update(cur, g, lrs, s)
        traj.append(cur)
    return traj if trajectory else cur


def stack_params(per_task: Sequence[Mapping[str, torch.Tensor]]) -> Params:
    """``[{name: [*shape]}] * tasks -> {name: [tasks, *shape]}``."""
    return {k: torch.stack([p[k] for p in per_task]) for k in per_task[0]}


def unstack_params(batched: Mapping[str, torch.Tensor]) -> list[Params]:
    """Inverse of :func:`stack_params`."""
    n = next(iter(batched.values())).shape[0]
    return [{k: v[i] for k, v in batched.items()} for i in range(n)]


def adapt_vmap(
    model: nn.Module,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    steps: int,
    lrs: LRSpec,
    first_order: bool = False,
    frozen: Mapping[str, torch.Tensor] | None = None,
    trajectory: bool = False,
    chunk_size: int | None = None,
    second_order_steps: int | None = None,
    batched_params: bool = False,
) -> Params | list[Params]:
    """Adapt a meta-batch at once: ``x: [tasks, examples, *x_shape]``, ``y: [tasks, examples, ...]``.

    ``params`` are shared by all tasks (the meta-initialisation), or per task ``{name: [tasks, *shape]}``
    with ``batched_params``; returns ``{name: [tasks, *shape]}`` (or a list of those, steps ``0..steps``,
    with ``trajectory``; entry 0 is the initial params, expanded if shared).
    """
    if steps == 0 and batched_params:
        out_b = dict(params)
        return [out_b] if trajectory else out_b
    if steps == 0:
        t = x.shape[0]
        out0 = {k: v.unsqueeze(0).expand(t, *v.shape) for k, v in params.items()}
        return [out0] if trajectory else out0

    if batched_params:

        def one_b(p: Params, xi: torch.Tensor, yi: torch.Tensor) -> Params | list[Params]:
            return adapt_task_func(
                model, p, xi, yi, loss_fn, steps, lrs, first_order, frozen, trajectory, second_order_steps
            )

        return vmap(one_b, chunk_size=chunk_size)(dict(params), x, y)

    def one(xi: torch.Tensor, yi: torch.Tensor) -> Params | list[Params]:
        return adapt_task_func(
            model, params, xi, yi, loss_fn, steps, lrs, first_order, frozen, trajectory, second_order_steps
        )

    return vmap(one, chunk_size=chunk_size)(x, y)


def adapt_loop(
    model: nn.Module,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    steps: int,
    lrs: LRSpec,
    first_order: bool = False,
    frozen: Mapping[str, torch.Tensor] | None = None,
    trajectory: bool = False,
    second_order_steps: int | None = None,
) -> Params | list[Params]:
    """Per-task loop with the same inputs, outputs and math as :func:`adapt_vmap`."""
    runs = [
        adapt_task(
            model, params, x[i], y[i], loss_fn, steps, lrs, first_order, frozen, True, second_order_steps
        )
        for i in range(x.shape[0])
    ]
    traj = [stack_params([r[s] for r in runs]) for s in range(steps + 1)]  # type: ignore[index]
    return traj if trajectory else traj[-1]


def adapt(
    model: nn.Module,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    steps: int,
    lrs: LRSpec,
    first_order: bool = False,
    frozen: Mapping[str, torch.Tensor] | None = None,
    trajectory: bool = False,
    mode: Literal["vmap", "loop"] = "vmap",
    second_order_steps: int | None = None,
) -> Params | list[Params]:
    """Dispatch to :func:`adapt_vmap` or :func:`adapt_loop` (identical math; speed differs per model)."""
    if mode == "vmap":
        return adapt_vmap(
            model, params, x, y, loss_fn, steps, lrs, first_order, frozen, trajectory,
            second_order_steps=second_order_steps,
        )
    if mode == "loop":
        return adapt_loop(
            model, params, x, y, loss_fn, steps, lrs, first_order, frozen, trajectory, second_order_steps
        )
    raise ValueError(f"mode: unknown {mode!r}; allowed: vmap, loop")


def forward_batched(
    model: nn.Module,
    batched: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    frozen: Mapping[str, torch.Tensor] | None = None,
    mode: Literal["vmap", "loop"] = "vmap",
) -> torch.Tensor:
    """Run per-task parameters ``{name: [tasks, *shape]}`` on ``x: [tasks, examples, *x_shape]``.

    Returns ``[tasks, examples, *out_shape]``. ``frozen`` parameters are shared by all tasks. ``mode="loop"``
    calls the module once per task (same values; needed for e.g. channels-last convolutions).
    """
    if mode == "loop":
        own = dict(model.named_parameters())
        return torch.stack([
            functional_call(model, _merge(_module_layout(own, {k: v[i] for k, v in batched.items()}), frozen),
                            (x[i],))
            for i in range(x.shape[0])
        ])

    def one(p: Params, xi: torch.Tensor) -> torch.Tensor:
        return functional_call(model, _merge(p, frozen), (xi,))

    return vmap(one)(dict(batched), x)


def grad_batched(
    model: nn.Module,
    batched: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    frozen: Mapping[str, torch.Tensor] | None = None,
) -> Params:
    """Per-task gradients of per-task parameters: ``{name: [tasks, *shape]}`` on ``x: [tasks, ...]``."""

    def one(p: Params, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        return task_loss(model, p, xi, yi, loss_fn, frozen)

    return vmap(grad(one))(dict(batched), x, y)


def adaptation_curve(
    model: nn.Module,
    fast: Mapping[str, torch.Tensor],
    lrs: LRSpec,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    query_x: torch.Tensor,
    query_y: torch.Tensor,
    loss_fn: LossFn,
    per_task_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    max_steps: int,
    frozen: Mapping[str, torch.Tensor] | None = None,
    chunk: int = 256,
) -> torch.Tensor:
    """Per-task query loss after ``0..max_steps`` inner steps, without gradients: ``[max_steps+1, tasks]``.

    ``support_x: [tasks, n, ...]``; ``per_task_loss(pred [tasks, m, ...], y [tasks, m, ...]) -> [tasks]``.
    Tasks are processed ``chunk`` at a time (vmapped).
    """
    fast_d = {k: v.detach() for k, v in fast.items()}
    frozen_d = {k: v.detach() for k, v in (frozen or {}).items()}
    if isinstance(lrs, torch.Tensor):
        lrs = lrs.detach()
    elif isinstance(lrs, Mapping):
        lrs = {k: v.detach() for k, v in lrs.items()}
    out = []
    with torch.no_grad():
        for i in range(0, support_x.shape[0], chunk):
            sl = slice(i, i + chunk)
            traj = adapt_vmap(
                model, fast_d, support_x[sl], support_y[sl], loss_fn, max_steps, lrs, frozen=frozen_d,
                trajectory=True,
            )
            assert isinstance(traj, list)
            out.append(torch.stack([
                per_task_loss(forward_batched(model, p, query_x[sl], frozen_d), query_y[sl]) for p in traj
            ]))
    return torch.cat(out, 1)


def hvp(
    loss_of: Callable[[Params], torch.Tensor], params: Mapping[str, torch.Tensor], v: Mapping[str, torch.Tensor]
) -> Params:
    """Hessian-vector product ``H(params) @ v`` of a scalar function (double backward)."""
    leaves = {k: t.detach().requires_grad_(True) for k, t in params.items()}
    with torch.enable_grad():
        loss = loss_of(leaves)
        g = torch.autograd.grad(loss, list(leaves.values()), create_graph=True)
        dot = sum((gi * v[k]).sum() for gi, k in zip(g, leaves))
        hv = torch.autograd.grad(dot, list(leaves.values()))
    return dict(zip(leaves, hv))
