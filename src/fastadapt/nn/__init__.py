"""Neural-network modules: MLP policies (pure API over distribution parameters), value/Q networks.

Other submodules (``recurrent``, ``backbones``, ...) are imported directly from their own modules.
"""

from fastadapt.nn.mlp import MLP
from fastadapt.nn.policies import (
    CategoricalMLPPolicy,
    DeterministicPolicy,
    GaussianMLPPolicy,
    TanhGaussianPolicy,
    policy_for_spaces,
)
from fastadapt.nn.values import DiscreteQMLP, QMLP, ValueMLP

__all__ = [
    "MLP",
    "CategoricalMLPPolicy",
    "DeterministicPolicy",
    "DiscreteQMLP",
    "GaussianMLPPolicy",
    "QMLP",
    "TanhGaussianPolicy",
    "ValueMLP",
    "policy_for_spaces",
]
