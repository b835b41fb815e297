"""Explicit random generators: never the global RNG.

Every consumer of randomness derives its own generator from the run seed and a name, so adding a new
consumer does not shift the streams of the others::

    rng = np_rng(seed, "tasks")            # numpy.random.Generator
    gen = torch_gen(seed, "policy-init")    # torch.Generator

Generator states round-trip through checkpoints with :func:`get_state` / :func:`set_state`.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import torch


def _key(k: str | int) -> int:
    if isinstance(k, int):
        if k < 0:
            raise ValueError(f"seed keys must be >= 0, got {k}")
        return k
    return zlib.crc32(k.encode("utf-8"))


def seed_sequence(seed: int, *keys: str | int) -> np.random.SeedSequence:
    """A SeedSequence for ``seed`` specialised by ``keys`` (strings are hashed stably with CRC32)."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.SeedSequence(entropy=seed, spawn_key=tuple(_key(k) for k in keys))


def derive_seed(seed: int, *keys: str | int) -> int:
    """A 63-bit integer seed derived from ``seed`` and ``keys``."""
    return int(seed_sequence(seed, *keys).generate_state(2, dtype=np.uint32).astype(np.uint64).dot(
        np.array([1, 2**32], dtype=np.uint64)
    ) & np.uint64(2**63 - 1))


def np_rng(seed: int, *keys: str | int) -> np.random.Generator:
    """A numpy Generator (PCG64) for ``seed`` and ``keys``."""
    return np.random.Generator(np.random.PCG64(seed_sequence(seed, *keys)))


def torch_gen(seed: int, *keys: str | int, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch Generator seeded from ``seed`` and ``keys``."""
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, *keys))
    return g


def get_state(gen: np.random.Generator | torch.Generator) -> Any:
    """The generator's state: a JSON-able dict (numpy) or a uint8 tensor (torch)."""
    if isinstance(gen, np.random.Generator):
        return {"numpy_bit_generator": gen.bit_generator.state}
    return gen.get_state()


def set_state(gen: np.random.Generator | torch.Generator, state: Any) -> None:
    """Restore a state produced by :func:`get_state`."""
    if isinstance(gen, np.random.Generator):
        gen.bit_generator.state = state["numpy_bit_generator"]
    else:
        gen.set_state(state)
