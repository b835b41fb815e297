"""fastadapt: meta-reinforcement learning and few-shot meta-learning on PyTorch.

The package is layered (see DESIGN.md): ``core`` <- ``ops`` <- ``tasks``, ``nn`` <- ``samplers`` <- ``algos``
<- ``baselines``/``eval`` <- ``experiment`` <- ``cli``. Importing ``fastadapt`` itself is cheap; the
registries are filled by :func:`fastadapt.experiment.catalog.load_all`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
