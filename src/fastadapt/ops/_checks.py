"""Shape checks shared by the ops (ValueError naming the argument)."""

from __future__ import annotations

import torch


def check_same_shape(ref_name: str, ref: torch.Tensor, **others: torch.Tensor | None) -> None:
    """Raise ValueError naming the first argument in ``others`` whose shape differs from ``ref``'s."""
    for name, t in others.items():
        if t is not None and t.shape != ref.shape:
            raise ValueError(
                f"{name}: expected the shape of {ref_name} {tuple(ref.shape)}, got {tuple(t.shape)}"
            )


def check_min_dims(name: str, t: torch.Tensor, n: int) -> None:
    if t.dim() < n:
        raise ValueError(f"{name}: expected at least {n} dims, got shape {tuple(t.shape)}")


def check_shape(name: str, t: torch.Tensor | None, shape: tuple[int, ...]) -> None:
    if t is not None and tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(t.shape)}")
