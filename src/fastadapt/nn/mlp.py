"""Multi-layer perceptrons with deterministic, generator-driven initialisation.

Every module in :mod:`fastadapt.nn` is initialised from an explicit ``torch.Generator`` (never the global
RNG), so two modules built with the same generator state have identical weights. Weights use orthogonal
initialisation (Saxe et al. 2014), the default of PPO implementations (Engstrom et al. 2020, "Implementation
Matters in Deep Policy Gradients"); biases start at zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def default_generator(generator: torch.Generator | None) -> torch.Generator:
    """``generator`` itself, or a fresh generator seeded with 0 (deterministic default, no global RNG)."""
    if generator is not None:
        return generator
    g = torch.Generator()
    g.manual_seed(0)
    return g


def activation_module(name: str) -> nn.Module:
    """The activation called ``name`` (one of :data:`ACTIVATIONS`); ValueError naming ``activation`` otherwise."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(
            f"activation: unknown {name!r}; allowed: {', '.join(sorted(ACTIVATIONS))}"
        ) from None


def _linear(in_features: int, out_features: int) -> nn.Linear:
    """An uninitialised ``nn.Linear`` (``skip_init`` avoids the global RNG of the default init)."""
    return torch.nn.utils.skip_init(nn.Linear, in_features, out_features)


def init_linear(
    layer: nn.Linear, gain: float, generator: torch.Generator, bias: float = 0.0
) -> nn.Linear:
    """Orthogonal weights scaled by ``gain`` and constant bias, drawn from ``generator``."""
    with torch.no_grad():
        nn.init.orthogonal_(layer.weight, gain=gain, generator=generator)
        if layer.bias is not None:
            layer.bias.fill_(bias)
    return layer


class MLP(nn.Module):
    """``in_dim -> hidden... -> out_dim`` with an activation between layers, none after the last one.

    Args:
        in_dim: input features; the input is ``x: [..., in_dim]``.
        out_dim: output features; the output is ``[..., out_dim]``.
        hidden: widths of the hidden layers (may be empty: a linear map).
        activation: one of ``tanh``, ``relu``, ``elu``, ``gelu``, ``silu``.
        out_gain: orthogonal gain of the last layer (0.01 for policy heads, 1.0 for values).
        generator: initialisation randomness (``None``: a generator seeded with 0).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        out_gain: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if in_dim <= 0:
            raise ValueError(f"in_dim must be > 0, got {in_dim}")
        if out_dim <= 0:
            raise ValueError(f"out_dim must be > 0, got {out_dim}")
        if any(h <= 0 for h in hidden):
            raise ValueError(f"hidden widths must be > 0, got {tuple(hidden)}")
        gen = default_generator(generator)
        self.in_dim = int(in_dim)
        self.out_dim = int(out_dim)
        layers: list[nn.Module] = []
        prev = in_dim
        hidden_gain = math.sqrt(2.0)  # the PPO-implementation default, for tanh and relu alike
        for h in hidden:
            layers.append(init_linear(_linear(prev, h), hidden_gain, gen))
            layers.append(activation_module(activation))
            prev = h
        layers.append(init_linear(_linear(prev, out_dim), out_gain, gen))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [..., in_dim] -> [..., out_dim]``."""
        if x.shape[-1:] != (self.in_dim,):
            raise ValueError(f"x: expected [..., {self.in_dim}], got {tuple(x.shape)}")
        return self.net(x)
