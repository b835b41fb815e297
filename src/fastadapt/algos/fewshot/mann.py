"""Memory-augmented neural networks (Santoro, Bartunov, Botvinick, Wierstra & Lillicrap 2016,
"Meta-Learning with Memory-Augmented Neural Networks", ICML).

Model (section 3.1): an LSTM controller reads ``[e(x_t), onehot(y_{t-1}), r_{t-1}]`` (``e`` the image
encoder: raw pixels as in the paper, or a Conv4; ``r_{t-1}`` the previous step's read vectors) and emits,
per head, a key ``k_t = tanh(W_k h_t)`` and a write-gate logit ``alpha_t`` (plus, optionally, a key strength
``beta_t = 1 + softplus(.)``, see :mod:`fastadapt.nn.memory`); the LRUA memory
(:func:`fastadapt.nn.memory.lrua_step`) writes then reads; the class scores are
``W_o [h_t, r_t] + b_o`` over ``max_way`` label slots.

Sequence protocol (section 4 of the paper): examples are presented one at a time, each together with the
**previous** example's label (offset by one; a zero vector at t = 0), and the model predicts the
**current** example's label. Episodes come from the shared N-way K-shot sampler; the episode's ``way``
classes are bound to ``way`` of the ``max_way`` label slots drawn at random per training episode (the paper
shuffles the label assignment per episode; drawing slots from a larger space lets a model trained 5-way be
tested 20-way), and every softmax is over the episode's slots only. Two training sequences
(``algo.train_sequence``):

- ``episode`` (default): the support in random order as a sequence, then every query scored as the next
  step after it, exactly as in evaluation (below); the loss is the cross-entropy at every support step
  and every query. Training metrics: ``accuracy`` = query accuracy, ``support_accuracy``.
- ``shuffled`` (the paper's episodes): support and query shuffled into one sequence of ``way*(shot+query)``
  steps, loss at every step. Metrics: ``accuracy`` over every presentation of a class after its first,
  ``acc_inst1``/``acc_inst2``/``acc_inst5`` at the 1st/2nd/5th presentation (the paper's Table 1
  columns). Caveat: every class appears equally often in such a sequence, so label *counting* alone
  predicts some late steps; this metric can exceed what matching images explains.

**N-way K-shot query accuracy (how MANN enters the shared table).** For an evaluation episode the
``way*shot`` support examples are presented as a sequence with offset labels (label ``c`` of the episode
in slot ``c``); the order is ``eval.order``: ``interleaved`` (default, deterministic: round ``r = 1..K``
shows the ``r``-th example of every class, classes in label order) or ``shuffled`` (a random order per
task from ``torch_gen(seed, "mann-order")``; numbers then depend on ``eval.batch``). Every query is then
scored as *the next element of that sequence*: input ``[e(x_q), onehot(y_last_support), r]`` from the
state after the support, one step of controller + memory, scores restricted to the ``way`` slots.
Queries are scored independently and in parallel (none is written into the memory another query sees, and
no query label is ever fed). So "K-shot" means "the query's class has been presented K times". The same
rule scores the official Omniglot runs (20 support images, one per class, then each of the 20 items), which
needs ``max_way >= 20``; asking for more ways than ``max_way`` is a ConfigError.

Deviations (all configurable): Adam instead of RMSProp; ``key_strength=True`` adds the NTM key strength
(``False`` is the paper's plain cosine softmax, eq. 2-3); ``encoder=conv4`` is an option (the paper feeds
flattened 20x20 pixels).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from fastadapt.algos.fewshot.common import (
    FewShotAlgoConfig,
    FewShotEvalConfig,
    FewShotLearner,
    episode_way,
    label_slot_count,
    random_label_slots,
    require_classification_task,
)
from fastadapt.core.errors import ConfigError
from fastadapt.core.registry import register_algo
from fastadapt.core.seeding import get_state, set_state, torch_gen
from fastadapt.core.types import FewShotEpisode
from fastadapt.nn.backbones import make_backbone, reset_parameters_
from fastadapt.nn.memory import LRUAState, lrua_init, lrua_step


class MANNConfig(FewShotAlgoConfig):
    """``algo:`` section of ``mann``: controller LSTM width, memory ``slots`` x ``width``, ``heads`` read
    heads (= write heads), usage decay ``gamma``, ``key_strength`` (NTM's beta; False = the paper),
    ``encoder`` (``pixels`` as in the paper or ``conv4`` with ``hidden`` channels and batch-norm ``bn``),
    ``max_way`` label slots (None: the task's way)."""

    controller: int = Field(200, ge=1)
    slots: int = Field(128, ge=1)
    width: int = Field(40, ge=1)
    heads: int = Field(4, ge=1)
    gamma: float = Field(0.95, ge=0, le=1)
    key_strength: bool = True
    strength_init: float = Field(10.0, gt=1)
    encoder: Literal["pixels", "conv4"] = "pixels"
    hidden: int = Field(32, ge=4)
    bn: Literal["running", "batch", "none"] = "running"
    max_way: int | None = Field(None, ge=2)
    train_sequence: Literal["episode", "shuffled"] = "episode"


class MANNEvalConfig(FewShotEvalConfig):
    """``eval:`` section of ``mann``: the shared protocol plus the support ``order`` (module docstring)."""

    order: Literal["interleaved", "shuffled"] = "interleaved"


class MANNModel(nn.Module):
    """Encoder + LSTM controller + head projections; the memory state is passed explicitly.

    ``forward`` is not used; :meth:`step` advances one time step for a batch ``B`` of sequences.
    """

    def __init__(self, cfg: MANNConfig, x_shape: tuple[int, ...], max_way: int, gen: torch.Generator) -> None:
        super().__init__()
        self.cfg = cfg
        self.max_way = max_way
        if cfg.encoder == "conv4":
            self.encoder: nn.Module = make_backbone("conv4", x_shape[0], cfg.hidden, cfg.bn, gen)
            enc_dim = self.encoder.out_dim(x_shape)  # type: ignore[operator]
        else:
            self.encoder = nn.Flatten(start_dim=-len(x_shape))
            enc_dim = int(torch.tensor(x_shape).prod())
        h, w = cfg.heads, cfg.width
        self.lstm = nn.LSTMCell(enc_dim + max_way + h * w, cfg.controller)
        self.per_head = w + 1 + (1 if cfg.key_strength else 0)
        self.head = nn.Linear(cfg.controller, h * self.per_head)
        self.out = nn.Linear(cfg.controller + h * w, max_way)
        # beta = 1 + softplus(raw + offset) starts near strength_init (raw ~ 0 at initialisation)
        self.strength_offset = float(torch.log(torch.expm1(torch.tensor(cfg.strength_init - 1.0))))
        reset_parameters_(self, gen)
        with torch.no_grad():
            bound = 1.0 / cfg.controller**0.5
            for p in self.lstm.parameters():
                nn.init.uniform_(p, -bound, bound, generator=gen)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [B, L, *x_shape] -> [B, L, enc_dim]``."""
        return self.encoder(x)

    def init_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, LRUAState]:
        """Zero controller state ``(h, c) [B, controller]`` and the initial memory."""
        z = torch.zeros(batch, self.cfg.controller)
        return z, z.clone(), lrua_init(batch, self.cfg.slots, self.cfg.width, self.cfg.heads)

    def step(
        self, e: torch.Tensor, prev_y: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor, LRUAState]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, LRUAState]]:
        """One time step: ``e: [B, enc_dim]``, ``prev_y: [B, max_way]`` (one-hot or zeros) ->
        ``(logits [B, max_way], new state)``."""
        h, c, mem = state
        b = e.shape[0]
        inp = torch.cat([e, prev_y, mem.reads.reshape(b, -1)], -1)
        h, c = self.lstm(inp, (h, c))
        p = self.head(h).view(b, self.cfg.heads, self.per_head)
        keys = torch.tanh(p[..., : self.cfg.width])
        alpha = p[..., self.cfg.width]
        strength = (
            1.0 + torch.nn.functional.softplus(p[..., self.cfg.width + 1] + self.strength_offset)
            if self.cfg.key_strength else None
        )
        reads, mem = lrua_step(mem, keys, alpha, self.cfg.gamma, strength)
        logits = self.out(torch.cat([h, reads.reshape(b, -1)], -1))
        return logits, (h, c, mem)

    def run(self, x: torch.Tensor, prev_y: torch.Tensor,
            state: tuple[torch.Tensor, torch.Tensor, LRUAState] | None = None
            ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, LRUAState]]:
        """A whole sequence: ``x: [B, L, *x_shape]``, ``prev_y: [B, L, max_way]`` ->
        ``(logits [B, L, max_way], final state)``."""
        e = self.encode(x)
        state = state if state is not None else self.init_state(x.shape[0])
        out = []
        for t in range(x.shape[1]):
            logits, state = self.step(e[:, t], prev_y[:, t], state)
            out.append(logits)
        return torch.stack(out, 1), state


def offset_labels(slots: torch.Tensor, max_way: int) -> torch.Tensor:
    """Inputs ``onehot(y_{t-1})`` (zeros at t = 0) from label slots ``[B, L]`` -> ``[B, L, max_way]``."""
    oh = torch.nn.functional.one_hot(slots, max_way).to(torch.float32)
    return torch.cat([torch.zeros_like(oh[:, :1]), oh[:, :-1]], 1)


def presentation_index(y: torch.Tensor, way: int) -> torch.Tensor:
    """How many times each step's class was shown before (0 = first presentation): ``y: [B, L] -> [B, L]``."""
    oh = torch.nn.functional.one_hot(y, way)
    return ((oh.cumsum(1) - oh) * oh).sum(-1)


class MANN(FewShotLearner):
    """Santoro et al. (2016) memory-augmented network (module docstring)."""

    eval_config_cls = MANNEvalConfig

    def __init__(self, cfg: MANNConfig, task: object, seed: int) -> None:
        t = require_classification_task(task, "mann")
        max_way = label_slot_count(cfg.max_way, t)
        model = MANNModel(cfg, tuple(t.x_shape), max_way, torch_gen(seed, "mann-init"))
        super().__init__("mann", cfg, t, seed, model)
        self.cfg: MANNConfig = cfg
        self.max_way = max_way
        self.order_gen = torch_gen(seed, "mann-train-order")
        self._eval: MANNEvalConfig | None = None
        self._eval_gen: torch.Generator | None = None

    # -- the two sequence protocols ------------------------------------------------------------------
    def episode_logits(self, episode: FewShotEpisode, order: torch.Tensor, slot_of: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The support presented in ``order`` (``[T, n_support]`` indices) with offset labels, then every
        query as the next step from the post-support state (module docstring).

        ``slot_of: [T, way]`` binds episode label ``c`` to label slot ``slot_of[:, c]``. Returns support
        logits ``[T, n_support, way]`` (step ``t`` predicts the ``t``-th presented label), the presented
        labels ``[T, n_support]`` and query logits ``[T, n_query, way]``, all over the episode's slots.
        """
        model: MANNModel = self.model  # type: ignore[assignment]
        n_t, ns = episode.support_y.shape
        nq = episode.query_x.shape[1]
        way = slot_of.shape[1]
        sx = episode.support_x[torch.arange(n_t)[:, None], order]
        sy = episode.support_y.gather(1, order)
        s_slots = slot_of.gather(1, sy)
        s_logits, (h, c, mem) = model.run(sx, offset_labels(s_slots, self.max_way))

        def rep(t: torch.Tensor) -> torch.Tensor:  # [T, ...] -> [T * nq, ...]
            return t.repeat_interleave(nq, 0)

        state = (rep(h), rep(c), LRUAState(rep(mem.memory), rep(mem.read_w), rep(mem.usage), rep(mem.reads)))
        eq = model.encode(episode.query_x).reshape(n_t * nq, -1)
        last = torch.nn.functional.one_hot(s_slots[:, -1], self.max_way).to(eq.dtype)  # [T, max_way]
        q_logits, _ = model.step(eq, rep(last), state)
        q_logits = q_logits.view(n_t, nq, self.max_way).gather(2, slot_of[:, None, :].expand(-1, nq, -1))
        s_logits = s_logits.gather(2, slot_of[:, None, :].expand(-1, ns, -1))
        assert q_logits.shape[-1] == way
        return s_logits, sy, q_logits

    def shuffled_logits(self, episode: FewShotEpisode, slot_of: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """The paper's training sequence: support and query shuffled into one sequence, offset labels;
        returns logits ``[T, L, way]`` over the episode's slots and the labels ``[T, L]``."""
        model: MANNModel = self.model  # type: ignore[assignment]
        x = torch.cat([episode.support_x, episode.query_x], 1)  # [T, L, *x]
        y = torch.cat([episode.support_y, episode.query_y], 1)  # [T, L]
        n_t, length = y.shape
        perm = torch.rand(n_t, length, generator=self.order_gen).argsort(-1)
        x = x[torch.arange(n_t)[:, None], perm]
        y = y.gather(1, perm)
        logits, _ = model.run(x, offset_labels(slot_of.gather(1, y), self.max_way))
        return logits.gather(2, slot_of[:, None, :].expand(-1, length, -1)), y

    # -- training ------------------------------------------------------------------------------------
    def loss(self, episode: FewShotEpisode) -> tuple[torch.Tensor, dict[str, float]]:
        way = episode_way(episode)
        n_t, ns = episode.support_y.shape
        slot_of = random_label_slots(n_t, self.max_way, way, self.order_gen)  # [T, way]
        metrics: dict[str, float] = {}
        if self.cfg.train_sequence == "shuffled":
            logits, y = self.shuffled_logits(episode, slot_of)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, way), y.reshape(-1))
        else:
            order = torch.rand(n_t, ns, generator=self.order_gen).argsort(-1)
            s_logits, sy, q_logits = self.episode_logits(episode, order, slot_of)
            logits = torch.cat([s_logits, q_logits], 1)
            y = torch.cat([sy, episode.query_y], 1)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, way), y.reshape(-1))
        with torch.no_grad():
            correct = (logits.argmax(-1) == y).to(torch.float32)
            if self.cfg.train_sequence == "episode":
                metrics["accuracy"] = float(correct[:, ns:].mean())
                metrics["support_accuracy"] = float(correct[:, :ns].mean())
            else:
                inst = presentation_index(y, way)
                metrics["accuracy"] = float(correct[inst > 0].mean()) if bool((inst > 0).any()) else 0.0
                for k in (1, 2, 5):
                    sel = inst == k - 1
                    if bool(sel.any()):
                        metrics[f"acc_inst{k}"] = float(correct[sel].mean())
        return loss, metrics

    def extra_state(self) -> dict[str, Any]:
        return {"order_rng": get_state(self.order_gen)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "order_rng" in state:
            set_state(self.order_gen, state["order_rng"])

    # -- evaluation ----------------------------------------------------------------------------------
    def support_order(self, support_y: torch.Tensor, way: int) -> torch.Tensor:
        """Presentation order of the support ``[T, n_support]`` (indices), per ``eval.order``."""
        n_t, ns = support_y.shape
        if self._eval is not None and self._eval.order == "shuffled":
            assert self._eval_gen is not None
            return torch.rand(n_t, ns, generator=self._eval_gen).argsort(-1)
        key = presentation_index(support_y, way) * way + support_y  # round-major, then label
        return torch.argsort(key, dim=-1, stable=True)

    def predict(self, episode: FewShotEpisode) -> torch.Tensor:
        """Log-probabilities ``[T, n_query, way]``: each query is the next step after the support sequence."""
        way = int(episode.support_y.max()) + 1
        if way > self.max_way:
            raise ConfigError(
                f"eval: mann has {self.max_way} label slots (algo.max_way) and cannot score {way}-way episodes"
            )
        order = self.support_order(episode.support_y, way)
        slot_of = torch.arange(way).expand(episode.num_tasks, -1)
        _, _, q_logits = self.episode_logits(episode, order, slot_of)
        return torch.log_softmax(q_logits, -1)

    @contextlib.contextmanager
    def eval_context(self, ecfg: FewShotEvalConfig, seed: int) -> Iterator[None]:
        assert isinstance(ecfg, MANNEvalConfig)
        self._eval, self._eval_gen = ecfg, torch_gen(seed, "mann-order")
        try:
            yield
        finally:
            self._eval, self._eval_gen = None, None


@register_algo("mann", family="fewshot", config=MANNConfig, eval_config=MANNEvalConfig)
def build_mann(cfg: MANNConfig, task: object, seed: int) -> MANN:
    """Memory-augmented neural network (Santoro et al. 2016): LSTM controller + LRUA memory."""
    return MANN(cfg, task, seed)
