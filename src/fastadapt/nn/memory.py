"""External memory with least-recently-used access (LRUA), the memory module of memory-augmented neural
networks (Santoro, Bartunov, Botvinick, Wierstra & Lillicrap 2016, "Meta-Learning with Memory-Augmented
Neural Networks", ICML; section 3.1, equations 2-8).

Everything here is a *pure* function of explicit state tensors (no module state, no in-place updates of
its inputs), so a recurrent model can carry :class:`LRUAState` through time, checkpoints never need to
hold it, and ``torch.func`` transforms apply. Shapes (``B`` batch, ``N`` memory slots, ``W`` slot width,
``H`` read/write heads)::

    memory     M_t    [B, N, W]
    read_w     w^r_t  [B, H, N]   read weights of every head
    usage      w^u_t  [B, N]      usage weights
    reads      r_t    [B, H, W]   read vectors

One step :func:`lrua_step` with keys ``k_t: [B, H, W]`` and write gates ``alpha_t: [B, H]`` (logits) does,
in the paper's order:

1. least-used weights of the *previous* usage: ``w^lu_{t-1}(i) = 1`` for the ``H`` slots of smallest
   ``w^u_{t-1}`` (``H`` = number of reads, the paper's ``n``), else 0. Ties are broken by slot index (a
   stable sort), so at ``t = 0`` (all usages 0) exactly slots ``0..H-1`` are least used; the paper's
   threshold definition would mark every tied slot;
2. write weights (eq. 7): ``w^w_t = sigmoid(alpha_t) w^r_{t-1} + (1 - sigmoid(alpha_t)) w^lu_{t-1}``;
3. erase + write (eq. 8): the single least-used slot ``argmin w^u_{t-1}`` is set to zero, then
   ``M_t(i) = M_{t-1}(i) + sum_h w^w_t(h, i) k_t(h)`` (every head writes its own key);
4. content read (eqs. 2-4): ``w^r_t(h, i) = softmax_i(beta_t(h) * cos(k_t(h), M_t(i)))`` and
   ``r_t(h) = sum_i w^r_t(h, i) M_t(i)``. The paper uses ``beta = 1``; a key strength ``beta_t > 0`` (as in
   the Neural Turing Machine, Graves et al. 2014) may be passed, ``None`` means 1;
5. usage (eq. 5): ``w^u_t = gamma w^u_{t-1} + sum_h (w^r_t(h) + w^w_t(h))``.

The initial state (:func:`lrua_init`) has ``M_0 = 1e-6`` everywhere (a non-zero constant so that cosine
similarities are defined), zero read weights, zero usage and zero read vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: Value of every memory cell at t = 0 (the paper does not specify it; any small constant works).
INIT_MEMORY = 1e-6


@dataclass(frozen=True)
class LRUAState:
    """The recurrent state of an LRUA memory (shapes in the module docstring)."""

    memory: torch.Tensor
    read_w: torch.Tensor
    usage: torch.Tensor
    reads: torch.Tensor

    @property
    def batch(self) -> int:
        return int(self.memory.shape[0])

    @property
    def slots(self) -> int:
        return int(self.memory.shape[1])

    @property
    def width(self) -> int:
        return int(self.memory.shape[2])

    @property
    def heads(self) -> int:
        return int(self.read_w.shape[1])

    def check(self) -> None:
        """Raise ValueError naming the first tensor whose shape disagrees with ``memory [B, N, W]``."""
        if self.memory.dim() != 3:
            raise ValueError(f"LRUA memory: expected [B, N, W], got shape {tuple(self.memory.shape)}")
        b, n, w = self.memory.shape
        h = self.read_w.shape[1] if self.read_w.dim() == 3 else -1
        want = {"read_w": (b, h, n), "usage": (b, n), "reads": (b, h, w)}
        for name, shape in want.items():
            got = tuple(getattr(self, name).shape)
            if got != shape or h < 1:
                raise ValueError(f"LRUA {name}: expected shape {shape} for memory {(b, n, w)}, got {got}")

    def detach(self) -> LRUAState:
        return LRUAState(self.memory.detach(), self.read_w.detach(), self.usage.detach(), self.reads.detach())


def lrua_init(
    batch: int, slots: int, width: int, heads: int, dtype: torch.dtype = torch.float32
) -> LRUAState:
    """The initial state (module docstring) for ``batch`` memories of ``slots x width`` with ``heads``."""
    if min(batch, slots, width, heads) < 1:
        raise ValueError(f"LRUA init: batch, slots, width, heads must be >= 1, got {batch, slots, width, heads}")
    if heads > slots:
        raise ValueError(f"LRUA init: {heads} heads need at least as many slots, got {slots}")
    return LRUAState(
        torch.full((batch, slots, width), INIT_MEMORY, dtype=dtype),
        torch.zeros(batch, heads, slots, dtype=dtype),
        torch.zeros(batch, slots, dtype=dtype),
        torch.zeros(batch, heads, width, dtype=dtype),
    )


def least_used(usage: torch.Tensor, n: int) -> torch.Tensor:
    """``w^lu``: ``usage: [B, N] -> [B, N]`` with 1.0 at the ``n`` least-used slots (ties -> lower index)."""
    if usage.dim() != 2:
        raise ValueError(f"LRUA usage: expected [B, N], got shape {tuple(usage.shape)}")
    idx = torch.sort(usage, dim=-1, stable=True).indices[:, :n]
    return torch.zeros_like(usage).scatter(1, idx, 1.0)


def content_weights(keys: torch.Tensor, memory: torch.Tensor, strength: torch.Tensor | None = None,
                    eps: float = 1e-8) -> torch.Tensor:
    """Content addressing (eqs. 2-3): ``softmax_i(beta * cos(k_h, M_i))``.

    ``keys: [B, H, W]``, ``memory: [B, N, W]``, ``strength: [B, H]`` or None (beta = 1) -> ``[B, H, N]``.
    """
    kn = keys / keys.norm(dim=-1, keepdim=True).clamp_min(eps)
    mn = memory / memory.norm(dim=-1, keepdim=True).clamp_min(eps)
    sim = kn @ mn.transpose(1, 2)  # [B, H, N]
    if strength is not None:
        sim = sim * strength[..., None]
    return torch.softmax(sim, dim=-1)


def lrua_step(
    state: LRUAState,
    keys: torch.Tensor,
    alpha: torch.Tensor,
    gamma: float,
    strength: torch.Tensor | None = None,
) -> tuple[torch.Tensor, LRUAState]:
    """One write-then-read step of the LRUA memory (module docstring, steps 1-5).

    Args:
        state: the state at ``t - 1``.
        keys: ``k_t: [B, H, W]``, one key per head (used both to write and to read, as in the paper).
        alpha: ``[B, H]`` write-gate logits (``sigmoid(alpha)`` interpolates previous read weights vs
            least-used slots).
        gamma: usage decay in [0, 1].
        strength: optional key strength ``beta_t: [B, H] > 0``; None is the paper's plain cosine.

    Returns:
        ``(r_t [B, H, W], state_t)``; the inputs are not modified.
    """
    state.check()
    b, n, w = state.memory.shape
    h = state.heads
    if tuple(keys.shape) != (b, h, w):
        raise ValueError(f"LRUA keys: expected shape {(b, h, w)}, got {tuple(keys.shape)}")
    if tuple(alpha.shape) != (b, h):
        raise ValueError(f"LRUA alpha: expected shape {(b, h)}, got {tuple(alpha.shape)}")
    if strength is not None and tuple(strength.shape) != (b, h):
        raise ValueError(f"LRUA strength: expected shape {(b, h)}, got {tuple(strength.shape)}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"LRUA gamma: expected a decay in [0, 1], got {gamma}")
    w_lu = least_used(state.usage, h)  # [B, N]
    gate = torch.sigmoid(alpha)[..., None]  # [B, H, 1]
    w_w = gate * state.read_w + (1.0 - gate) * w_lu[:, None, :]  # [B, H, N]
    erase = torch.zeros_like(state.usage).scatter(1, state.usage.argmin(-1, keepdim=True), 1.0)  # [B, N]
    memory = state.memory * (1.0 - erase)[..., None] + w_w.transpose(1, 2) @ keys  # [B, N, W]
    w_r = content_weights(keys, memory, strength)  # [B, H, N]
    reads = w_r @ memory  # [B, H, W]
    usage = gamma * state.usage + (w_r + w_w).sum(1)
    return reads, LRUAState(memory, w_r, usage, reads)
