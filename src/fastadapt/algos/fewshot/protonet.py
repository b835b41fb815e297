"""Prototypical Networks (Snell, Swersky & Zemel 2017, "Prototypical Networks for Few-shot Learning").

An embedding ``f`` (Conv4 by default) maps images to vectors; each class's prototype is the mean embedding
of its support examples and a query is classified by a softmax over negative squared Euclidean distances
to the prototypes (or scaled cosine similarities). Trained end-to-end on the query cross-entropy of
episodes; the paper trains Omniglot with 60-way episodes and tests 5/20-way.

Test-time options (eval config, all off by default; none of them looks at query labels):

- ``tta``: test-time augmentation; each support image contributes ``tta`` extra shifted copies to its
  prototype and each query's embedding is averaged over ``tta`` shifted copies.
- ``transductive``: refine the prototypes with that many soft k-means steps over the (unlabelled) query
  embeddings (Ren et al. 2018, "Meta-Learning for Semi-Supervised Few-Shot Classification").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch
from pydantic import Field

from fastadapt.algos.fewshot.common import (
    FewShotAlgoConfig,
    FewShotEvalConfig,
    FewShotLearner,
    augment_images,
    class_means,
    episode_way,
    query_accuracy,
    require_classification_task,
)
from fastadapt.core.registry import register_algo
from fastadapt.core.seeding import torch_gen
from fastadapt.core.types import FewShotEpisode
from fastadapt.nn.backbones import make_backbone


class ProtoNetConfig(FewShotAlgoConfig):
    """``algo:`` section of ``protonet``: backbone (``conv4`` / ``resnet``), its width ``hidden``, batch-norm
    mode ``bn``, ``distance`` (``euclidean`` as in the paper, or ``cosine`` scaled by ``scale``)."""

    backbone: Literal["conv4", "resnet"] = "conv4"
    hidden: int = Field(64, ge=4)
    bn: Literal["running", "batch", "none"] = "running"
    distance: Literal["euclidean", "cosine"] = "euclidean"
    scale: float = Field(10.0, gt=0)
    channels_last: bool = True


class ProtoNetEvalConfig(FewShotEvalConfig):
    """``eval:`` section of ``protonet``: the shared protocol plus test-time ``tta`` / ``transductive``."""

    tta: int = Field(0, ge=0)
    tta_shift: float = Field(2.0, ge=0)
    transductive: int = Field(0, ge=0)


def prototype_scores(zq: torch.Tensor, protos: torch.Tensor, distance: str, scale: float) -> torch.Tensor:
    """Logits ``[tasks, n_query, way]`` from query embeddings ``zq: [tasks, n_query, d]`` and prototypes
    ``protos: [tasks, way, d]``: ``-||zq - c||^2`` or ``scale * cos(zq, c)``."""
    if distance == "cosine":
        zq = torch.nn.functional.normalize(zq, dim=-1)
        protos = torch.nn.functional.normalize(protos, dim=-1)
        return scale * zq @ protos.transpose(1, 2)
    d2 = (zq * zq).sum(-1, keepdim=True) - 2 * zq @ protos.transpose(1, 2) + (protos * protos).sum(-1)[:, None]
    return -d2


class ProtoNet(FewShotLearner):
    """Prototypical Networks; ``model`` is the embedding network."""

    eval_config_cls = ProtoNetEvalConfig

    def __init__(self, cfg: ProtoNetConfig, task: object, seed: int) -> None:
        t = require_classification_task(task, "protonet")
        net = make_backbone(
            cfg.backbone, t.x_shape[0], cfg.hidden, cfg.bn, torch_gen(seed, "protonet-init"), cfg.channels_last
        )
        super().__init__("protonet", cfg, t, seed, net)
        self.cfg: ProtoNetConfig = cfg
        self._eval: ProtoNetEvalConfig | None = None
        self._eval_gen: torch.Generator | None = None

    def embed_episode(self, ep: FewShotEpisode) -> tuple[torch.Tensor, torch.Tensor]:
        """Support and query embeddings ``[tasks, n, d]`` from one forward pass over both sets."""
        ns = ep.support_x.shape[1]
        z = self.model(torch.cat([ep.support_x, ep.query_x], 1))
        return z[:, :ns], z[:, ns:]

    def loss(self, episode: FewShotEpisode) -> tuple[torch.Tensor, dict[str, float]]:
        zs, zq = self.embed_episode(episode)
        way = episode_way(episode)
        logits = prototype_scores(zq, class_means(zs, episode.support_y, way), self.cfg.distance,
                                  self.cfg.scale)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, way), episode.query_y.reshape(-1))
        return loss, {"accuracy": query_accuracy(logits.detach(), episode.query_y)}

    def predict(self, episode: FewShotEpisode) -> torch.Tensor:
        way = episode_way(episode)
        opts = self._eval
        if opts is None or opts.tta == 0:
            zs, zq = self.embed_episode(episode)
            ys = episode.support_y
        else:
            assert self._eval_gen is not None
            copies_s = [episode.support_x] + [
                augment_images(episode.support_x, "shift", opts.tta_shift, self._eval_gen) for _ in range(opts.tta)
            ]
            copies_q = [episode.query_x] + [
                augment_images(episode.query_x, "shift", opts.tta_shift, self._eval_gen) for _ in range(opts.tta)
            ]
            zs = self.model(torch.cat(copies_s, 1))
            ys = episode.support_y.repeat(1, opts.tta + 1)
            zq = torch.stack([self.model(q) for q in copies_q]).mean(0)
        protos = class_means(zs, ys, way)
        steps = opts.transductive if opts is not None else 0
        for _ in range(steps):
            # soft k-means refinement (Ren et al. 2018): prototypes absorb queries by their responsibilities
            resp = torch.softmax(prototype_scores(zq, protos, self.cfg.distance, self.cfg.scale), -1)
            onehot = torch.nn.functional.one_hot(ys, way).to(zs.dtype)
            num = onehot.transpose(1, 2) @ zs + resp.transpose(1, 2) @ zq
            protos = num / (onehot.sum(1) + resp.sum(1))[..., None]
        return torch.log_softmax(prototype_scores(zq, protos, self.cfg.distance, self.cfg.scale), -1)

    @contextlib.contextmanager
    def eval_context(self, ecfg: FewShotEvalConfig, seed: int) -> Iterator[None]:
        assert isinstance(ecfg, ProtoNetEvalConfig)
        self._eval, self._eval_gen = ecfg, torch_gen(seed, "protonet-tta")
        try:
            yield
        finally:
            self._eval, self._eval_gen = None, None


@register_algo("protonet", family="fewshot", config=ProtoNetConfig, eval_config=ProtoNetEvalConfig)
def build_protonet(cfg: ProtoNetConfig, task: object, seed: int) -> ProtoNet:
    """Prototypical Networks (Snell et al. 2017): nearest class mean in a learned embedding."""
    return ProtoNet(cfg, task, seed)
