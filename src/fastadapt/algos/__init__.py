"""Algorithms: single-task RL building blocks (``algos.rl``), meta-RL (``algos.metarl``) and few-shot
meta-learning (``algos.fewshot``). Each module registers its builders with :func:`fastadapt.core.registry.register_algo`."""
