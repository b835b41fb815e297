"""Meta Networks (Munkhdalai & Yu 2017, "Meta Networks", ICML), a simplified but faithful variant.

MetaNet has a *base learner* ``b`` and a *meta learner*; both have slow weights (trained by the outer loop
on the query loss) and fast weights generated per task from **meta-information**: loss gradients on the
support set, mapped to weights by learned functions. Slow and fast weights are combined by **layer
augmentation** (section 3.3): an augmented layer computes ``act(W x) + act(W* x)``.

What this module computes for one episode (Algorithm 1 of the paper; the deviations are listed below):

1. A shared Conv4 trunk ``f`` embeds support and query images: ``f_i, f_q: [d]``.
2. **Task-level fast weights** of the representation learner ``u(x) = relu(Q f + q) [+ relu(Q* f)]``: for
   ``T = pair_offsets * n_support`` support pairs ``(i, (i + k) mod n)``, ``k = 1..pair_offsets`` (the
   support is class-major, so small offsets give same-class pairs in K-shot episodes), the representation
   loss is the contrastive logistic loss ``BCE(emb_scale * (cos(u_i, u_j) - 0.5), [y_i == y_j])`` with the
   slow ``Q`` only; its per-pair gradients ``grad_Q`` (meta-information) are preprocessed coordinate-wise
   as in Andrychowicz et al. (2016) (``(log|g| / p, sign g)`` if ``|g| >= e^-p`` else ``(-1, e^p g)``,
   ``p = 10``) and mapped by ``d`` (an MLP applied to every coordinate, parameters ``G``); ``Q*`` is the
   mean of ``d`` over the pairs.
3. **Example-level fast weights** of the base learner: the base learner is a 2-layer head on ``f``,
   ``h = relu(W1 f + b1) [+ relu(W1* f)]``, ``logits = W2 h + b2 [+ W2* h]`` over the episode's label slots.
   For every support example ``i`` the cross-entropy gradient w.r.t. the slow ``(W1, W2)`` is computed
   (``torch.func.vmap(grad)``) and mapped coordinate-wise by ``m`` (an MLP, parameters ``Z``, same
   preprocessing) to ``W*_i = (W1*_i, W2*_i)``, stored in the memory ``M`` with the key ``r'_i = u(x'_i)``
   (slow + task fast weights).
4. **Query**: ``r = u(x)``; attention ``a_i = softmax_i(s * cos(r, r'_i))`` (``s = exp(log_att_scale)``, a
   learned slow parameter); the query's fast weights ``W* = sum_i a_i W*_i`` are read from ``M`` and the
   augmented base learner gives the logits. The outer loss is the query cross-entropy; Adam updates every
   slow parameter (trunk, ``Q, q, W1, b1, W2, b2, Z, G``, attention scale).

Deviations from the paper (documented simplifications): one Conv4 trunk (slow weights only) is shared by
``b`` and ``u`` and fast weights exist only in the layers on top of it (the paper augments every layer of two
separate CNNs); ``d`` is a coordinate-wise MLP averaged over pairs (the paper uses an LSTM over the
gradients); the meta-information is a constant input to ``m`` and ``d`` unless ``second_order=true`` (then
the outer gradient flows through the support gradients); a learned attention scale ``s`` (the paper's plain
cosine softmax is ``s = 1``). Label slots: ``max_way`` output rows; each training episode binds its classes to
randomly drawn slots (so a model trained 5-way can be evaluated up to ``max_way``-way); evaluation uses slots
``0..way-1``. Evaluation is the shared N-way K-shot query protocol of
:class:`~fastadapt.algos.fewshot.common.FewShotLearner` (and the Omniglot runs with ``max_way >= 20``).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn
from torch.func import grad, vmap

from fastadapt.algos.fewshot.common import (
    FewShotAlgoConfig,
    FewShotEvalConfig,
    FewShotLearner,
    episode_way,
    label_slot_count,
    random_label_slots,
    query_accuracy,
    require_classification_task,
)
from fastadapt.core.errors import ConfigError
from fastadapt.core.registry import register_algo
from fastadapt.core.seeding import get_state, set_state, torch_gen
from fastadapt.core.types import FewShotEpisode
from fastadapt.nn.backbones import make_backbone, reset_parameters_

GRAD_P = 10.0


class MetaNetConfig(FewShotAlgoConfig):
    """``algo:`` section of ``metanet``: trunk (``backbone``, ``hidden`` channels, ``bn``), base-learner head
    width ``base_hidden``, representation width ``rep_dim``, hidden width of the fast-weight generators
    ``m``/``d`` (``gen_hidden``), ``pair_offsets`` (representation-loss pairs per support example),
    ``emb_scale`` of the contrastive loss, initial attention scale ``att_scale``, ``second_order``, and
    ``max_way`` label slots (None: the task's way)."""

    backbone: Literal["conv4", "resnet"] = "conv4"
    hidden: int = Field(64, ge=4)
    bn: Literal["running", "batch", "none"] = "running"
    base_hidden: int = Field(32, ge=1)
    rep_dim: int = Field(64, ge=1)
    gen_hidden: int = Field(20, ge=1)
    pair_offsets: int = Field(1, ge=1)
    emb_scale: float = Field(10.0, gt=0)
    att_scale: float = Field(10.0, gt=0)
    second_order: bool = False
    channels_last: bool = True
    max_way: int | None = Field(None, ge=2)


def preprocess_grad(g: torch.Tensor, p: float = GRAD_P) -> torch.Tensor:
    """Andrychowicz et al. (2016) gradient preprocessing, coordinate-wise: ``[...] -> [..., 2]``."""
    big = g.abs() >= math.exp(-p)
    c1 = torch.where(big, torch.log(g.abs().clamp_min(1e-38)) / p, torch.full_like(g, -1.0))
    c2 = torch.where(big, torch.sign(g), g * math.exp(p))
    return torch.stack([c1, c2], -1)


class CoordinateMLP(nn.Module):
    """An MLP ``2 -> hidden -> hidden -> 1`` applied to every coordinate of preprocessed gradients:
    ``[..., 2] -> [...]`` (the paper's ``m``/``d`` take meta-information coordinate-wise)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


class MetaNetModel(nn.Module):
    """Every slow parameter of MetaNet: trunk, base head ``W1, b1, W2, b2``, representation head ``Q, q``,
    generators ``m`` (``self.m``) and ``d`` (``self.d``), attention log-scale."""

    def __init__(self, cfg: MetaNetConfig, x_shape: tuple[int, ...], max_way: int, gen: torch.Generator) -> None:
        super().__init__()
        self.trunk = make_backbone(cfg.backbone, x_shape[0], cfg.hidden, cfg.bn, gen, cfg.channels_last)
        d = self.trunk.out_dim(x_shape)
        self.base1 = nn.Linear(d, cfg.base_hidden)
        self.base2 = nn.Linear(cfg.base_hidden, max_way)
        self.rep = nn.Linear(d, cfg.rep_dim)
        self.m = CoordinateMLP(cfg.gen_hidden)
        self.d = CoordinateMLP(cfg.gen_hidden)
        reset_parameters_(self, gen)
        self.log_att_scale = nn.Parameter(torch.tensor(math.log(cfg.att_scale)))


def _base_example_loss(w1: torch.Tensor, w2: torch.Tensor, b1: torch.Tensor, b2: torch.Tensor,
                       f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of one example under the slow base head: ``f: [d]``, ``w2: [way, hidden]``, ``y: []``."""
    h = torch.relu(w1 @ f + b1)
    logits = w2 @ h + b2
    return torch.logsumexp(logits, -1) - logits.gather(0, y[None]).squeeze(0)


def _rep_pair_loss(q_w: torch.Tensor, q_b: torch.Tensor, fi: torch.Tensor, fj: torch.Tensor,
                   same: torch.Tensor, scale: float) -> torch.Tensor:
    """Contrastive logistic loss of one support pair under the slow representation head."""
    ri, rj = torch.relu(q_w @ fi + q_b), torch.relu(q_w @ fj + q_b)
    cos = (ri * rj).sum() / (ri.norm() * rj.norm()).clamp_min(1e-8)
    return torch.nn.functional.binary_cross_entropy_with_logits(scale * (cos - 0.5), same)


class MetaNet(FewShotLearner):
    """Meta Networks (module docstring)."""

    def __init__(self, cfg: MetaNetConfig, task: object, seed: int) -> None:
        t = require_classification_task(task, "metanet")
        max_way = label_slot_count(cfg.max_way, t)
        model = MetaNetModel(cfg, tuple(t.x_shape), max_way, torch_gen(seed, "metanet-init"))
        super().__init__("metanet", cfg, t, seed, model)
        self.cfg: MetaNetConfig = cfg
        self.max_way = max_way
        self.slot_gen = torch_gen(seed, "metanet-slots")

    def logits(self, ep: FewShotEpisode, slots: torch.Tensor) -> torch.Tensor:
        """Query logits ``[T, n_query, way]`` for label slots ``slots: [T, way]`` (module docstring)."""
        mdl: MetaNetModel = self.model  # type: ignore[assignment]
        cfg = self.cfg
        n_t, ns = ep.support_y.shape
        nq = ep.query_x.shape[1]
        z = mdl.trunk(torch.cat([ep.support_x, ep.query_x], 1))  # [T, ns+nq, d]
        fs, fq = z[:, :ns], z[:, ns:]
        meta_f = fs if cfg.second_order else fs.detach()

        def slow(p: torch.Tensor) -> torch.Tensor:
            return p if cfg.second_order else p.detach()

        # -- task-level fast weights Q* from the representation loss on support pairs
        idx = torch.arange(ns)
        pi = idx.repeat(cfg.pair_offsets)
        pj = torch.cat([(idx + k) % ns for k in range(1, cfg.pair_offsets + 1)])
        same = (ep.support_y[:, pi] == ep.support_y[:, pj]).to(fs.dtype)  # [T, P]
        pair_grad = vmap(vmap(grad(_rep_pair_loss), in_dims=(None, None, 0, 0, 0, None)),
                         in_dims=(None, None, 0, 0, 0, None))
        g_q = pair_grad(slow(mdl.rep.weight), slow(mdl.rep.bias), meta_f[:, pi], meta_f[:, pj], same,
                        cfg.emb_scale)  # [T, P, rep_dim, d]
        q_fast = mdl.d(preprocess_grad(g_q)).mean(1)  # [T, rep_dim, d]

        def represent(f: torch.Tensor) -> torch.Tensor:  # [T, n, d] -> [T, n, rep_dim]
            return torch.relu(mdl.rep(f)) + torch.relu(f @ q_fast.transpose(1, 2))

        # -- example-level fast weights W*_i from the base learner's support gradients
        w2 = mdl.base2.weight[slots]  # [T, way, base_hidden]
        b2 = mdl.base2.bias[slots]  # [T, way]
        ex_grad = vmap(vmap(grad(_base_example_loss, argnums=(0, 1)), in_dims=(None, None, None, None, 0, 0)),
                       in_dims=(None, 0, None, 0, 0, 0))
        g1, g2 = ex_grad(slow(mdl.base1.weight), slow(w2), slow(mdl.base1.bias), slow(b2), meta_f,
                         ep.support_y)  # [T, ns, base_hidden, d], [T, ns, way, base_hidden]
        w1_fast = mdl.m(preprocess_grad(g1))
        w2_fast = mdl.m(preprocess_grad(g2))

        # -- query: attention over the support keys reads the fast weights from memory
        rs, rq = represent(fs), represent(fq)
        cos = torch.nn.functional.normalize(rq, dim=-1) @ torch.nn.functional.normalize(rs, dim=-1).transpose(1, 2)
        att = torch.softmax(mdl.log_att_scale.exp() * cos, -1)  # [T, nq, ns]
        w1_q = (att @ w1_fast.reshape(n_t, ns, -1)).view(n_t, nq, *w1_fast.shape[2:])  # [T, nq, bh, d]
        w2_q = (att @ w2_fast.reshape(n_t, ns, -1)).view(n_t, nq, *w2_fast.shape[2:])  # [T, nq, way, bh]
        h = torch.relu(mdl.base1(fq)) + torch.relu(torch.einsum("tqhd,tqd->tqh", w1_q, fq))
        return h @ w2.transpose(1, 2) + b2[:, None] + torch.einsum("tqwh,tqh->tqw", w2_q, h)

    def loss(self, episode: FewShotEpisode) -> tuple[torch.Tensor, dict[str, float]]:
        way = episode_way(episode)
        slots = random_label_slots(episode.num_tasks, self.max_way, way, self.slot_gen)
        lg = self.logits(episode, slots)
        loss = torch.nn.functional.cross_entropy(lg.reshape(-1, way), episode.query_y.reshape(-1))
        return loss, {"accuracy": query_accuracy(lg.detach(), episode.query_y)}

    def predict(self, episode: FewShotEpisode) -> torch.Tensor:
        way = episode_way(episode)
        if way > self.max_way:
            raise ConfigError(
                f"eval: metanet has {self.max_way} label slots (algo.max_way) and cannot score {way}-way episodes"
            )
        slots = torch.arange(way).expand(episode.num_tasks, -1)
        return torch.log_softmax(self.logits(episode, slots), -1)

    def extra_state(self) -> dict[str, Any]:
        return {"slot_rng": get_state(self.slot_gen)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "slot_rng" in state:
            set_state(self.slot_gen, state["slot_rng"])


@register_algo("metanet", family="fewshot", config=MetaNetConfig, eval_config=FewShotEvalConfig)
def build_metanet(cfg: MetaNetConfig, task: object, seed: int) -> MetaNet:
    """Meta Networks (Munkhdalai & Yu 2017): fast weights from support gradients, layer augmentation."""
    return MetaNet(cfg, task, seed)
