"""Samplers: one protocol (``core.protocols.Sampler``), three engines.

``sampler.sample(tasks, params, seed) -> core.types.EpisodeBatch`` with ``[tasks, envs, time, ...]`` tensors
and the behaviour policy's ``log_probs``; ``params`` are per-task policy parameters ``{name: [tasks, ...]}``
or ``None`` (the policy's own weights for every task).

- :class:`~fastadapt.samplers.vector.VectorSampler` — in-process, one batched env step and one vmapped
  policy forward per time step for all tasks (the cheap families' batched torch envs).
- :class:`~fastadapt.samplers.process.ProcessSampler` — worker processes stepping single gymnasium envs
  (MuJoCo, Meta-World); dead workers are restarted and their share re-collected (logged).
- :class:`~fastadapt.samplers.ray_sampler.RaySampler` — the same collection on Ray actors (``ray`` is
  imported lazily); same seeds => same batch as ``ProcessSampler``.
"""

from fastadapt.samplers.process import ProcessSampler
from fastadapt.samplers.ray_sampler import RaySampler
from fastadapt.samplers.vector import VectorSampler

__all__ = ["ProcessSampler", "RaySampler", "VectorSampler"]
