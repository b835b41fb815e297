"""Action validation shared by fastadapt's envs: one gymnasium convention per kind of action space.

**Discrete envs** (bandits, tabular MDPs, gridworld, CartPole-physics) *reject* every action that is not a
valid index: the single gymnasium env takes a Python ``int``, a NumPy integer scalar or a 0-d integer
array/tensor in ``[0, n)`` (what ``gymnasium.spaces.Discrete.contains`` accepts, minus ``bool``); a float
(even ``1.0``), NaN, bool, string, ``None`` or an array of another shape is refused. A batched env takes an
integer tensor ``[tasks, envs]`` (any integer dtype) with every entry in ``[0, n)``; float and bool tensors
are refused rather than truncated.

**Continuous envs** (navigation2d, the MuJoCo families, Meta-World) *clip* finite out-of-bounds actions to
the ``Box`` (as gymnasium's ``ClipAction`` wrapper and the original MAML/PEARL code do) and *reject*
non-finite actions (NaN, +-Inf) and wrong shapes: the single env takes a numeric array-like of exactly the
action space's shape (integer inputs are cast), a batched env a float or integer tensor ``[tasks, envs,
act_dim]``.

Every rejection raises :class:`~fastadapt.core.errors.EnvError` with one line naming the env and the
offending action (and, in a batched env, its ``[task, env]`` position), before any state changes: a
rejected action leaves the env as it was. ``tests/reliability/test_action_fuzz.py`` fuzzes all of this
with hypothesis for every env fastadapt registers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fastadapt.core.errors import EnvError

__all__ = [
    "check_box_action",
    "check_box_actions",
    "check_discrete_action",
    "check_discrete_actions",
    "env_label",
    "nonfinite_error",
]


def env_label(env: Any, default: str) -> str:
    """The env's registered gymnasium id if it has one, else ``default``."""
    spec = getattr(env, "spec", None)
    return spec.id if spec is not None and getattr(spec, "id", None) else default


def _show(action: Any) -> str:
    """A short repr of an action for an error message."""
    try:
        if isinstance(action, torch.Tensor):
            text = f"tensor({action.detach().cpu().numpy().tolist()!r}, dtype={action.dtype})"
        elif isinstance(action, np.ndarray):
            text = f"array({action.tolist()!r}, dtype={action.dtype})"
        else:
            text = f"{action!r} ({type(action).__name__})"
    except Exception:  # noqa: BLE001 - a repr must never fail
        text = f"<{type(action).__name__}>"
    return text if len(text) <= 120 else text[:117] + "..."


# ------------------------------------------------------------------------------------ single envs
def check_discrete_action(action: Any, n: int, env: str) -> int:
    """``action`` as a Python int in ``[0, n)``; EnvError naming ``env`` and the action otherwise."""
    if isinstance(action, (int, np.integer)) and not isinstance(action, (bool, np.bool_)):
        a = int(action)
    elif (
        isinstance(action, np.ndarray) and action.shape == () and action.dtype.kind in "iu"
    ) or (
        isinstance(action, torch.Tensor)
        and action.dim() == 0
        and not action.dtype.is_floating_point
        and not action.dtype.is_complex
        and action.dtype != torch.bool
    ):
        a = int(action.item())
    else:
        raise EnvError(f"{env}: invalid action {_show(action)}: expected an int in [0, {n})")
    if not 0 <= a < n:
        raise EnvError(f"{env}: action {a} out of range: expected an int in [0, {n})")
    return a


def check_box_action(action: Any, low: Any, high: Any, shape: tuple[int, ...], env: str) -> np.ndarray:
    """``action`` clipped to ``[low, high]`` (same float dtype as given; integers become float64).

    EnvError naming ``env`` and the action if it is not numeric, not of ``shape`` or not finite.
    """
    try:
        a = np.asarray(action)
    except Exception:  # noqa: BLE001 - ragged lists, tensors that need grad, ...
        raise EnvError(f"{env}: invalid action {_show(action)}: expected a numeric array of shape {shape}") from None
    if a.dtype.kind not in "iuf":
        raise EnvError(f"{env}: invalid action {_show(action)}: expected a numeric array of shape {shape}")
    if a.shape != shape:
        raise EnvError(f"{env}: action of shape {a.shape}, expected {shape}: {_show(action)}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise EnvError(f"{env}: non-finite action {_show(action)} (NaN/Inf actions are rejected, not clipped)")
    return np.clip(a, low, high)


# ----------------------------------------------------------------------------------- batched envs
def _as_tensor(actions: Any, shape: tuple[int, ...], env: str) -> torch.Tensor:
    if isinstance(actions, torch.Tensor):
        return actions
    try:
        return torch.as_tensor(np.asarray(actions))
    except Exception:  # noqa: BLE001
        raise EnvError(f"{env}: invalid actions {_show(actions)}: expected a tensor of shape {list(shape)}") from None


def _where(mask: torch.Tensor) -> str:
    idx = mask.nonzero()[0].tolist()
    names = ("task", "env", "dim")
    return ", ".join(f"{names[i] if i < 3 else 'dim'} {v}" for i, v in enumerate(idx))


def check_discrete_actions(actions: Any, shape: tuple[int, ...], n: int, env: str) -> torch.Tensor:
    """``actions [tasks, envs]`` as int64 with every entry in ``[0, n)``; EnvError otherwise."""
    a = _as_tensor(actions, shape, env)
    if tuple(a.shape) != shape:
        raise EnvError(f"{env}: actions must be {list(shape)}, got {list(a.shape)}")
    if a.dtype.is_floating_point or a.dtype.is_complex or a.dtype == torch.bool:
        raise EnvError(f"{env}: actions must be an integer tensor, got dtype {a.dtype}")
    if a.dtype != torch.int64:
        a = a.long()
    lo, hi = torch.aminmax(a)
    if int(lo) < 0 or int(hi) >= n:
        bad = (a < 0) | (a >= n)
        value = int(a[bad][0])
        raise EnvError(f"{env}: action {value} at [{_where(bad)}] out of range: expected ints in [0, {n})")
    return a


def nonfinite_error(actions: torch.Tensor, env: str) -> EnvError:
    """The EnvError for a batched action tensor known to hold a NaN/Inf (names the first position)."""
    bad = ~torch.isfinite(actions)
    value = float(actions[bad][0])
    return EnvError(
        f"{env}: non-finite action {value} at [{_where(bad)}] (NaN/Inf actions are rejected, not clipped)"
    )


def check_box_actions(actions: Any, shape: tuple[int, ...], env: str) -> torch.Tensor:
    """``actions [tasks, envs, act_dim]`` as a float tensor (not clipped); EnvError on a wrong shape or dtype
    or a NaN/Inf entry."""
    a = _as_tensor(actions, shape, env)
    if tuple(a.shape) != shape:
        raise EnvError(f"{env}: actions must be {list(shape)}, got {list(a.shape)}")
    if not a.dtype.is_floating_point:
        if a.dtype.is_complex or a.dtype == torch.bool:
            raise EnvError(f"{env}: actions must be a float tensor, got dtype {a.dtype}")
        a = a.to(torch.float32)
    if not bool(torch.isfinite(a).all()):
        raise nonfinite_error(a, env)
    return a
