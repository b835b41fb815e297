"""Relation Networks (Sung, Yang, Zhang, Xiang, Torr & Hospedales 2018, "Learning to Compare: Relation
Network for Few-Shot Learning").

An encoder (Conv4 pooling in its first two blocks: ``[1, 28, 28] -> [64, 7, 7]``) embeds images; the
embeddings of a class's support shots are pooled (``shot_pool``: ``"sum"`` as in the paper, which trains
one model per shot count, or ``"mean"``, which lets one model serve 1-shot and 5-shot: a model trained
1-shot with ``sum`` sees 5x larger maps at 5-shot and collapses, measured 41% on 5-way 5-shot in
benchmarks/omniglot); a *relation module* scores every (class, query) pair
from the channel-concatenation of the two feature maps: 2 x [conv 3x3 64, BN, ReLU, max-pool 2] ->
``fc(64 -> relation_hidden)`` -> ReLU -> ``fc(-> 1)`` -> sigmoid. Training regresses the scores onto the
one-hot targets with a mean squared error, as in the paper.

Efficiency: the first relation convolution is linear, so ``conv([a; b]) = conv_a(a) + conv_b(b)``; we
apply its two halves to the ``way`` class maps and the ``n_query`` query maps separately and add them
for every pair (identical output, ``way + n_query`` instead of ``way * n_query`` convolutions).
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
from fastadapt.nn.backbones import Conv4, batch_norm, reset_parameters_


class RelationConfig(FewShotAlgoConfig):
    """``algo:`` section of ``relation``: encoder width ``hidden``, relation module hidden units
    ``relation_hidden`` (8 in the paper), batch-norm mode, ``shot_pool`` (module docstring)."""

    hidden: int = Field(64, ge=4)
    relation_hidden: int = Field(8, ge=1)
    bn: Literal["running", "batch", "none"] = "running"
    channels_last: bool = True
    shot_pool: Literal["sum", "mean"] = "mean"


class RelationModel(nn.Module):
    """Encoder + relation module (module docstring)."""

    def __init__(self, cfg: RelationConfig, in_shape: tuple[int, ...], gen: torch.Generator) -> None:
        super().__init__()
        h = cfg.hidden
        self.encoder = Conv4(in_shape[0], h, pool=2, bn=cfg.bn, flatten=False, generator=gen,
                             channels_last=cfg.channels_last)
        c, hh, ww = self.encoder.out_shape(in_shape)
        self.conv1 = nn.Conv2d(2 * c, h, 3, padding=1)
        self.post1 = nn.Sequential(batch_norm(h, cfg.bn), nn.MaxPool2d(2), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(h, h, 3, padding=1), batch_norm(h, cfg.bn), nn.MaxPool2d(2),
                                    nn.ReLU())
        side = max(1, (hh // 2) // 2)
        self.fc1 = nn.Linear(h * side * side, cfg.relation_hidden)
        self.fc2 = nn.Linear(cfg.relation_hidden, 1)
        reset_parameters_(self.conv1, gen)
        reset_parameters_(self.block2, gen)
        reset_parameters_(self.fc1, gen)
        reset_parameters_(self.fc2, gen)
        self.channels = c

    def relations(self, fs: torch.Tensor, fq: torch.Tensor) -> torch.Tensor:
        """Relation scores in (0, 1): class maps ``fs: [T, way, c, h, w]``, query maps ``fq: [T, m, c, h, w]``
        -> ``[T, m, way]``."""
        t, way = fs.shape[:2]
        m = fq.shape[1]
        c = self.channels
        w = self.conv1.weight
        a = nn.functional.conv2d(fs.flatten(0, 1), w[:, :c], self.conv1.bias, padding=1)  # class half
        b = nn.functional.conv2d(fq.flatten(0, 1), w[:, c:], None, padding=1)  # query half
        a = a.view(t, 1, way, *a.shape[1:])
        b = b.view(t, m, 1, *b.shape[1:])
        pair = (a + b).flatten(0, 2)  # [T*m*way, h, H, W]
        y = self.block2(self.post1(pair)).flatten(1)
        y = self.fc2(torch.relu(self.fc1(y)))
        return torch.sigmoid(y).view(t, m, way)


class RelationNet(FewShotLearner):
    """Relation Networks: learned comparison of (class, query) feature-map pairs."""

    def __init__(self, cfg: RelationConfig, task: object, seed: int) -> None:
        t = require_classification_task(task, "relation")
        model = RelationModel(cfg, tuple(t.x_shape), torch_gen(seed, "relation-init"))
        super().__init__("relation", cfg, t, seed, model)
        self.cfg: RelationConfig = cfg

    def scores_of(self, ep: FewShotEpisode) -> torch.Tensor:
        """Relation scores ``[tasks, n_query, way]`` in (0, 1)."""
        model: RelationModel = self.model  # type: ignore[assignment]
        ns = ep.support_x.shape[1]
        f = model.encoder(torch.cat([ep.support_x, ep.query_x], 1))  # [T, n+m, c, h, w]
        fs, fq = f[:, :ns], f[:, ns:]
        way = episode_way(ep)
        onehot = nn.functional.one_hot(ep.support_y, way).to(fs.dtype)  # [T, n, way]
        if self.cfg.shot_pool == "mean":
            onehot = onehot / onehot.sum(1, keepdim=True).clamp_min(1)
        class_maps = torch.einsum("tnk,tnchw->tkchw", onehot, fs)  # sum (or mean) over each class's shots
        return model.relations(class_maps, fq)

    def loss(self, episode: FewShotEpisode) -> tuple[torch.Tensor, dict[str, float]]:
        r = self.scores_of(episode)
        target = nn.functional.one_hot(episode.query_y, r.shape[-1]).to(r.dtype)
        loss = nn.functional.mse_loss(r, target)
        return loss, {"accuracy": query_accuracy(r.detach(), episode.query_y)}

    def predict(self, episode: FewShotEpisode) -> torch.Tensor:
        return torch.log(self.scores_of(episode).clamp_min(1e-12))


@register_algo("relation", family="fewshot", config=RelationConfig, eval_config=FewShotEvalConfig)
def build_relation(cfg: RelationConfig, task: object, seed: int) -> RelationNet:
    """Relation Networks (Sung et al. 2018): a learned metric over feature-map pairs."""
    return RelationNet(cfg, task, seed)
