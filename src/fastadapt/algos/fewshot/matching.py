"""Matching Networks (Vinyals, Blundell, Lillicrap, Kavukcuoglu & Wierstra 2016, "Matching Networks for One
Shot Learning").

A query ``x`` is classified by attention over the labelled support set:
``P(y | x, S) = sum_i a(f(x), g(x_i)) onehot(y_i)`` with ``a`` a softmax over cosine similarities
(multiplied by ``scale``; the paper's plain cosine is ``scale=1``, which trains markedly slower). ``f`` and
``g`` share a Conv4 embedding. With ``fce=true`` the *full-context embeddings* of the paper are used:

- ``g(x_i, S) = h_fwd_i + h_bwd_i + g'(x_i)``, a bidirectional LSTM over the support embeddings;
- ``f(x, S) = attLSTM(f'(x), g(S), K)``: ``K = fce_steps`` read steps of an LSTM whose input is
  ``[f'(x), r_{k-1}]`` (``r`` the attention read-out over ``g(S)``) and whose output is ``h_k = h^_k + f'(x)``
  (the read-out enters through the input rather than the concatenated hidden state of the paper's
  appendix; the same computation up to how ``r`` is wired into the gates).

Trained with the negative log-likelihood of the query labels under ``P``.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from fastadapt.algos.fewshot.common import (
    FewShotAlgoConfig,
    FewShotEvalConfig,
    FewShotLearner,
    episode_way,
    query_accuracy,
    require_classification_task,
)
from fastadapt.core.registry import register_algo
from fastadapt.core.seeding import torch_gen
from fastadapt.core.types import FewShotEpisode
from fastadapt.nn.backbones import make_backbone


class MatchingConfig(FewShotAlgoConfig):
    """``algo:`` section of ``matching``: backbone, width, batch-norm mode, full-context embeddings
    (``fce``, ``fce_steps`` read steps), cosine ``scale``."""

    backbone: Literal["conv4", "resnet"] = "conv4"
    hidden: int = Field(64, ge=4)
    bn: Literal["running", "batch", "none"] = "running"
    fce: bool = False
    fce_steps: int = Field(5, ge=1)
    scale: float = Field(10.0, gt=0)
    channels_last: bool = True


class MatchingModel(nn.Module):
    """Embedding + optional full-context embedding LSTMs. ``forward`` is not used; see the methods."""

    def __init__(self, cfg: MatchingConfig, in_shape: tuple[int, ...], gen: torch.Generator) -> None:
        super().__init__()
        self.embed = make_backbone(cfg.backbone, in_shape[0], cfg.hidden, cfg.bn, gen, cfg.channels_last)
        self.fce = cfg.fce
        if cfg.fce:
            d = self.embed.out_dim(in_shape)
            self.g_lstm = nn.LSTM(d, d, batch_first=True, bidirectional=True)
            self.f_cell = nn.LSTMCell(2 * d, d)
            with torch.no_grad():
                for p in list(self.g_lstm.parameters()) + list(self.f_cell.parameters()):
                    bound = 1.0 / d**0.5
                    nn.init.uniform_(p, -bound, bound, generator=gen)

    def context_support(self, zs: torch.Tensor) -> torch.Tensor:
        """``g(x_i, S)``: ``zs: [tasks, n, d] -> [tasks, n, d]``."""
        out, _ = self.g_lstm(zs)
        d = zs.shape[-1]
        return zs + out[..., :d] + out[..., d:]

    def context_query(self, zq: torch.Tensor, gs: torch.Tensor, steps: int) -> torch.Tensor:
        """``f(x, S)``: ``zq: [tasks, m, d]``, ``gs: [tasks, n, d] -> [tasks, m, d]``."""
        t, m, d = zq.shape
        x = zq.reshape(t * m, d)
        h = torch.zeros_like(x)
        c = torch.zeros_like(x)
        r = torch.zeros_like(x)
        for _ in range(steps):
            h_hat, c = self.f_cell(torch.cat([x, r], -1), (h, c))
            h = h_hat + x
            att = torch.softmax((h.view(t, m, d) @ gs.transpose(1, 2)), -1)  # [t, m, n]
            r = (att @ gs).reshape(t * m, d)
        return h.view(t, m, d)


class MatchingNet(FewShotLearner):
    """Matching Networks with optional full-context embeddings."""

    def __init__(self, cfg: MatchingConfig, task: object, seed: int) -> None:
        t = require_classification_task(task, "matching")
        model = MatchingModel(cfg, tuple(t.x_shape), torch_gen(seed, "matching-init"))
        super().__init__("matching", cfg, t, seed, model)
        self.cfg: MatchingConfig = cfg

    def log_probs(self, ep: FewShotEpisode) -> torch.Tensor:
        """``log P(y | x, S)``: ``[tasks, n_query, way]``."""
        model: MatchingModel = self.model  # type: ignore[assignment]
        ns = ep.support_x.shape[1]
        z = model.embed(torch.cat([ep.support_x, ep.query_x], 1))
        zs, zq = z[:, :ns], z[:, ns:]
        if model.fce:
            zs = model.context_support(zs)
            zq = model.context_query(zq, zs, self.cfg.fce_steps)
        sims = torch.nn.functional.normalize(zq, dim=-1) @ torch.nn.functional.normalize(zs, dim=-1).transpose(1, 2)
        att = torch.softmax(self.cfg.scale * sims, -1)  # [T, m, n]
        onehot = torch.nn.functional.one_hot(ep.support_y, episode_way(ep)).to(att.dtype)  # [T, n, way]
        return torch.log((att @ onehot).clamp_min(1e-12))

    def loss(self, episode: FewShotEpisode) -> tuple[torch.Tensor, dict[str, float]]:
        lp = self.log_probs(episode)
        loss = torch.nn.functional.nll_loss(lp.reshape(-1, lp.shape[-1]), episode.query_y.reshape(-1))
        return loss, {"accuracy": query_accuracy(lp.detach(), episode.query_y)}

    def predict(self, episode: FewShotEpisode) -> torch.Tensor:
        return self.log_probs(episode)


@register_algo("matching", family="fewshot", config=MatchingConfig, eval_config=FewShotEvalConfig)
def build_matching(cfg: MatchingConfig, task: object, seed: int) -> MatchingNet:
    """Matching Networks (Vinyals et al. 2016): attention over the support set, optional FCE."""
    return MatchingNet(cfg, task, seed)

