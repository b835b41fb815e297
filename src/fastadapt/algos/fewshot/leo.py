"""LEO: Latent Embedding Optimization (Rusu, Rao, Sygnowski, Vinyals, Pascanu, Osindero & Hadsell 2019,
"Meta-Learning with Latent Embedding Optimization", ICLR).

Two phases, both driven by ``train_step`` (so ``fastadapt train`` runs them in order and resumes anywhere):

1. **Pretraining** (the first ``pretrain_steps`` iterations): a feature extractor (the library's Conv4 or
   ResNet backbone, running batch norm) plus a linear head is trained by ordinary classification over all
   meta-training classes (rotated copies count as classes when the task uses rotations), on random
   batches of ``pretrain_batch`` images. It is then frozen (eval mode) and maps images to embeddings
   ``x: [..., d]`` (the paper uses a pretrained WRN-28-10; sec. 4.2).
2. **LEO meta-training** on the embeddings (paper, Algorithm 1 and sec. 3):

   - encoder ``g_e: R^d -> R^h`` per example, relation net ``g_r`` over all pairs of the support's
     encodings; per class ``n`` the mean over its shots and over all partners gives the parameters of
     ``q(z_n | D^tr) = N(mu_n, diag sigma_n^2)`` over a latent code ``z_n: [latent]`` (eqs. 3-4);
   - decoder ``g_d: R^latent -> (mu^d_n, sigma^d_n)`` of the class's classifier weights ``w_n: [d]``
     (sampled, eq. 5); logits ``x . w_n`` (eq. 1);
   - ``inner_steps`` gradient steps on the *latent codes* with the support loss, rate ``alpha``
     (learned, init ``inner_lr``), decoding after every step (eq. 6); then ``finetune_steps`` steps on
     the decoded weights themselves with rate ``eta`` (learned, init ``finetune_lr``);
   - meta-loss (eq. 7 + sec. 3.3): query cross-entropy of the fine-tuned weights
     ``+ kl_weight * KL(q(z|D^tr) || N(0, I))`` (closed form for diagonal Gaussians)
     ``+ encoder_penalty * ||stopgrad(z') - z||^2`` (mean over classes)
     ``+ l2_penalty * sum ||phi||^2`` (encoder, relation net, decoder)
     ``+ orthogonality_penalty * mean((C - I)^2)``, ``C`` the correlation matrix of the decoder's
     weight columns (one column per latent dimension);
   - the meta-gradient flows through the whole inner loop (second order; the latent space is small).

   Dropout (rate ``dropout``) is applied to the embeddings during meta-training (drawn from the
   learner's own generator). At test time the means of ``q(z)`` and of the decoder are used (no sampling),
   so predictions are deterministic.

Iterations before ``pretrain_steps`` report the pretraining batch's ``loss``/``accuracy`` with ``phase = 0``;
later ones the LEO query ``loss``/``accuracy`` with ``phase = 1``.
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
    query_accuracy,
    require_classification_task,
    torch_threads,
)
from fastadapt.core.errors import ConfigError, NumericError
from fastadapt.core.registry import register_algo
from fastadapt.core.seeding import torch_gen
from fastadapt.core.types import FewShotEpisode
from fastadapt.nn.backbones import make_backbone, reset_parameters_


class LEOConfig(FewShotAlgoConfig):
    """``algo:`` section of ``leo``.

    Feature extractor: ``backbone`` (``conv4``/``resnet``) of width ``hidden``, pretrained for
    ``pretrain_steps`` iterations of ``pretrain_batch`` images with Adam at ``pretrain_lr``.
    LEO: ``latent`` size of the codes (64 in the paper), ``encoder_hidden`` the encoder's output size
    (= ``latent`` in the paper), ``relation_layers`` (3), ``inner_steps``/``finetune_steps`` (5/5),
    ``inner_lr``/``finetune_lr`` initial learned rates (1.0/0.001), ``learn_inner_lrs``, ``dropout`` on the
    embeddings, penalty weights ``kl_weight`` (beta), ``encoder_penalty`` (gamma), ``l2_penalty``
    (lambda_1) and ``orthogonality_penalty`` (lambda_2); ``stddev_offset`` of the standard deviations
    (:func:`gaussian_params`); ``embedding_norm``
    ``"l2"`` scales every frozen embedding to unit length, ``"none"`` (default) uses them as they are.
    Note on ``inner_lr``: the paper starts it at 1.0 for its WRN features; the logits ``x . w`` and the
    latent step's effect grow with ``|x|^2``, and with our Conv4 features a start of 1.0 gave query
    cross-entropies of 40-400 at the first LEO step, so the shipped configs start at 0.01 (it is learned).
    ``lr``/``grad_clip``/``meta_batch`` are the outer loop's; ``threads`` torch threads during training/evaluation (0 = unchanged).
    """

    lr: float = Field(1e-3, gt=0)
    meta_batch: int = Field(8, ge=1)
    grad_clip: float = Field(0.1, ge=0)
    backbone: Literal["conv4", "resnet"] = "conv4"
    hidden: int = Field(64, ge=4)
    channels_last: bool = True
    pretrain_steps: int = Field(1000, ge=0)
    pretrain_batch: int = Field(128, ge=2)
    pretrain_lr: float = Field(1e-3, gt=0)
    latent: int = Field(32, ge=1)
    encoder_hidden: int = Field(32, ge=1)
    relation_layers: int = Field(3, ge=1)
    inner_steps: int = Field(5, ge=0, le=100)
    finetune_steps: int = Field(5, ge=0, le=100)
    inner_lr: float = Field(1.0, gt=0)
    finetune_lr: float = Field(0.001, gt=0)
    learn_inner_lrs: bool = True
    dropout: float = Field(0.3, ge=0, lt=1)
    kl_weight: float = Field(1e-3, ge=0)
    encoder_penalty: float = Field(1e-9, ge=0)
    l2_penalty: float = Field(1e-4, ge=0)
    orthogonality_penalty: float = Field(1.0, ge=0)
    stddev_offset: float = Field(0.0, ge=0)
    embedding_norm: Literal["l2", "none"] = "none"
    threads: int = Field(1, ge=0, le=256)


class LEOEvalConfig(FewShotEvalConfig):
    """``eval:`` section of ``leo``: the shared protocol, ``ways`` default 5 and 20 like the others."""


def gaussian_params(raw: torch.Tensor, stddev_offset: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``raw: [..., 2k]`` into a mean and a standard deviation ``[..., k]``, the latter as in the LEO
    code: ``max(exp(s) - 1 + stddev_offset, 1e-10)`` (about 0 for ``s`` near 0, so sampling starts
    almost noise-free)."""
    mu, s = raw.chunk(2, -1)
    return mu, (torch.exp(s) - 1.0 + stddev_offset).clamp_min(1e-10)


def kl_to_standard_normal(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag sigma^2) || N(0, I))`` summed over the last dim: ``[..., k] -> [...]``."""
    return 0.5 * (mu.pow(2) + sigma.pow(2) - 1.0 - 2.0 * torch.log(sigma)).sum(-1)


def orthogonality(weight: torch.Tensor) -> torch.Tensor:
    """``mean((C - I)^2)`` with ``C`` the correlation (cosine) matrix of the columns of ``weight: [out, k]``
    (LEO sec. 3.3; one column per latent dimension of a ``nn.Linear(k, out)``)."""
    w = weight / (weight.norm(dim=0, keepdim=True) + 1e-12)
    c = w.t() @ w
    return (c - torch.eye(c.shape[0], dtype=c.dtype)).pow(2).mean()


class LEONet(nn.Module):
    """Feature extractor + pretraining head + LEO's encoder, relation net, decoder and inner rates."""

    def __init__(self, cfg: LEOConfig, in_shape: tuple[int, ...], pretrain_classes: int,
                 gen: torch.Generator) -> None:
        super().__init__()
        self.backbone = make_backbone(cfg.backbone, in_shape[0], cfg.hidden, "running", gen, cfg.channels_last)
        d = self.backbone.out_dim(in_shape)
        self.embed_dim = d
        self.pretrain_head = reset_parameters_(nn.Linear(d, pretrain_classes), gen)
        h, m = cfg.encoder_hidden, cfg.latent
        self.encoder = reset_parameters_(nn.Linear(d, h), gen)
        layers: list[nn.Module] = []
        width = 2 * h
        for i in range(cfg.relation_layers):
            out = 2 * m
            layers.append(nn.Linear(width, out))
            if i < cfg.relation_layers - 1:
                layers.append(nn.ReLU())
            width = out
        self.relation = reset_parameters_(nn.Sequential(*layers), gen)
        self.decoder = nn.Linear(m, 2 * d, bias=False)  # LEO: no bias, Glorot-uniform weights
        with torch.no_grad():
            nn.init.xavier_uniform_(self.decoder.weight, generator=gen)
        self.inner_lr = nn.Parameter(torch.tensor(float(cfg.inner_lr)), requires_grad=cfg.learn_inner_lrs)
        self.finetune_lr = nn.Parameter(torch.tensor(float(cfg.finetune_lr)), requires_grad=cfg.learn_inner_lrs)

    def leo_parameters(self) -> list[nn.Parameter]:
        mods = [self.encoder, self.relation, self.decoder]
        ps = [p for mod in mods for p in mod.parameters()]
        return ps + [p for p in (self.inner_lr, self.finetune_lr) if p.requires_grad]

    def penalised_weights(self) -> list[torch.Tensor]:
        """The weights under the L2 penalty (encoder, relation net, decoder)."""
        return [p for mod in (self.encoder, self.relation, self.decoder) for p in mod.parameters()]


class LEO(FewShotLearner):
    """LEO on a frozen pretrained feature extractor (module docstring)."""

    eval_needs_grad = True
    eval_config_cls = LEOEvalConfig

    def __init__(self, cfg: LEOConfig, task: object, seed: int) -> None:
        t = require_classification_task(task, "leo")
        classes = t.classes("train")
        if not classes:
            raise ConfigError("task: leo pretrains on the 'train' split, which has no classes")
        self.n_rot = 4 if t.uses_rotations("train") else 1
        if self.n_rot == 4 and len(t.x_shape) >= 2 and t.x_shape[-1] != t.x_shape[-2]:
            raise ConfigError(f"rotations: need square images, got {t.x_shape}")
        net = LEONet(cfg, tuple(t.x_shape), len(classes) * self.n_rot, torch_gen(seed, "leo-init"))
        opt = torch.optim.Adam([
            {"params": list(net.backbone.parameters()) + list(net.pretrain_head.parameters()),
             "lr": cfg.pretrain_lr},
            {"params": net.leo_parameters(), "lr": cfg.lr},
        ])
        super().__init__("leo", cfg, t, seed, net, optimizer=opt)
        self.cfg: LEOConfig = cfg
        self.net = net
        self.noise_gen = torch_gen(seed, "leo-noise")
        # pretraining pool: every item of the train classes, labelled by its class's position
        ds = t.dataset
        items = [ds.items_of(c) for c in classes]
        self._pre_items = torch.cat(items)
        self._pre_labels = torch.cat([torch.full((len(ix),), i, dtype=torch.int64) for i, ix in enumerate(items)])

    # -- phase 1: pretraining ----------------------------------------------------------------------
    def pretrain_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A random batch ``x: [B, C, H, W]``, ``y: [B]`` over the train classes (x rotations)."""
        n = self.cfg.pretrain_batch
        pick = torch.randint(self._pre_items.numel(), (n,), generator=self.gen)
        x = self.task.dataset.x[self._pre_items[pick]].clone()
        y = self._pre_labels[pick]
        if self.n_rot == 4:
            rot = torch.randint(4, (n,), generator=self.gen)
            for k in (1, 2, 3):
                sel = rot == k
                if bool(sel.any()):
                    x[sel] = torch.rot90(x[sel], k, dims=(-2, -1))
            y = y * 4 + rot
        return x, y

    def _pretrain_step(self) -> dict[str, float]:
        self.net.backbone.train()
        x, y = self.pretrain_batch()
        logits = self.net.pretrain_head(self.net.backbone(x))
        loss = torch.nn.functional.cross_entropy(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.examples += int(y.numel())
        return {"loss": float(loss.detach()), "accuracy": float((logits.argmax(-1) == y).float().mean()),
                "phase": 0.0}

    # -- phase 2: LEO ---------------------------------------------------------------------------------
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Frozen features ``[*lead, d]`` of images ``[*lead, C, H, W]`` (backbone in eval mode)."""
        was = self.net.backbone.training
        self.net.backbone.eval()
        try:
            with torch.no_grad():
                z = self.net.backbone(x)
                if self.cfg.embedding_norm == "l2":
                    z = torch.nn.functional.normalize(z, dim=-1)
                return z
        finally:
            self.net.backbone.train(was)

    def _noise(self, shape: torch.Size) -> torch.Tensor:
        return torch.randn(shape, generator=self.noise_gen)

    def _dropout(self, x: torch.Tensor) -> torch.Tensor:
        p = self.cfg.dropout
        if p == 0:
            return x
        keep = (torch.rand(x.shape, generator=self.noise_gen) >= p).to(x.dtype)
        return x * keep / (1 - p)

    def encode(self, zs: torch.Tensor, ys: torch.Tensor, way: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-class latent Gaussians from support embeddings ``zs: [T, n, d]`` with class-major labels
        ``ys: [T, n]``: ``(mu, sigma)`` each ``[T, way, latent]`` (LEO eqs. 3-4)."""
        e = self.net.encoder(zs)  # [T, n, h]
        n = e.shape[1]
        pairs = torch.cat([e[:, :, None, :].expand(-1, -1, n, -1), e[:, None, :, :].expand(-1, n, -1, -1)], -1)
        r = self.net.relation(pairs).mean(2)  # [T, n, 2m]: mean over all partners
        onehot = torch.nn.functional.one_hot(ys, way).to(r.dtype)  # [T, n, way]
        per_class = onehot.transpose(1, 2) @ r / onehot.sum(1).clamp_min(1)[..., None]  # [T, way, 2m]
        return gaussian_params(per_class, self.cfg.stddev_offset)

    def decode(self, z: torch.Tensor, sample: bool) -> torch.Tensor:
        """Classifier weights ``[T, way, d]`` from latent codes ``z: [T, way, latent]`` (LEO eq. 5)."""
        mu, sigma = gaussian_params(self.net.decoder(z), self.cfg.stddev_offset)
        return mu + sigma * self._noise(mu.shape) if sample else mu

    @staticmethod
    def _ce(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over tasks of logits ``x . w_n``: ``w: [T, way, d]``, ``x: [T, n, d]``."""
        logits = x @ w.transpose(1, 2)
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum") / y.shape[1]

    def adapt(self, zs: torch.Tensor, ys: torch.Tensor, way: int, training: bool
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """LEO's inner loop on support embeddings ``zs: [T, n, d]``: latent steps then weight fine-tuning.
        Returns the adapted weights ``[T, way, d]`` and the pieces of the penalties."""
        cfg, net = self.cfg, self.net
        mu, sigma = self.encode(zs, ys, way)
        z = mu + sigma * self._noise(mu.shape) if training else mu
        z0 = z
        create = training
        for _ in range(cfg.inner_steps):
            with torch.enable_grad():
                zz = z if create else z.detach().requires_grad_(True)
                loss = self._ce(self.decode(zz, training), zs, ys)
                (g,) = torch.autograd.grad(loss, zz, create_graph=create)
            z = zz - net.inner_lr * g if create else (zz - net.inner_lr * g).detach()
        w = self.decode(z, training)
        for _ in range(cfg.finetune_steps):
            with torch.enable_grad():
                ww = w if create else w.detach().requires_grad_(True)
                loss = self._ce(ww, zs, ys)
                (g,) = torch.autograd.grad(loss, ww, create_graph=create)
            w = ww - net.finetune_lr * g if create else (ww - net.finetune_lr * g).detach()
        return w, {"mu": mu, "sigma": sigma, "z0": z0, "z": z}

    def loss(self, episode: FewShotEpisode) -> tuple[torch.Tensor, dict[str, float]]:
        cfg, net = self.cfg, self.net
        way = episode_way(episode)
        zs = self._dropout(self.embed(episode.support_x))
        zq = self._dropout(self.embed(episode.query_x))
        w, parts = self.adapt(zs, episode.support_y, way, training=True)
        logits = zq @ w.transpose(1, 2)
        ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), episode.query_y.flatten())
        kl = kl_to_standard_normal(parts["mu"], parts["sigma"]).mean()
        enc = (parts["z"].detach() - parts["z0"]).pow(2).sum(-1).mean()
        l2 = sum(p.pow(2).sum() for p in net.penalised_weights())
        orth = orthogonality(net.decoder.weight)
        total = ce + cfg.kl_weight * kl + cfg.encoder_penalty * enc + cfg.l2_penalty * l2 \
            + cfg.orthogonality_penalty * orth
        if not torch.isfinite(total):
            raise NumericError("leo meta-loss", self.iterations)
        return total, {"accuracy": query_accuracy(logits.detach(), episode.query_y),
                       "query_ce": float(ce.detach()), "kl": float(kl.detach()),
                       "orthogonality": float(orth.detach()), "inner_lr": float(net.inner_lr.detach()),
                       "finetune_lr": float(net.finetune_lr.detach()), "phase": 1.0}

    def _leo_step(self) -> dict[str, float]:
        ep = self.sample_train()
        loss, metrics = self.loss(ep)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.net.leo_parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.examples += self.episode_examples(ep)
        out = {"loss": float(loss.detach())}
        out.update(metrics)
        return out

    def train_step(self, iteration: int) -> dict[str, float]:
        """A pretraining step while ``iterations < pretrain_steps``, else a LEO meta-update."""
        del iteration
        with torch_threads(self.cfg.threads):
            pre_lr = self.cfg.pretrain_lr
            lr = self.current_lr()
            self.optimizer.param_groups[0]["lr"] = pre_lr
            self.optimizer.param_groups[1]["lr"] = lr
            if self.iterations < self.cfg.pretrain_steps:
                out = self._pretrain_step()
            else:
                out = self._leo_step()
            self.iterations += 1
        out["lr"] = lr
        out["examples"] = float(self.examples)
        return out

    def current_lr(self) -> float:
        """LEO's outer rate, decayed by ``lr_decay`` every ``lr_decay_every`` LEO iterations."""
        if self.cfg.lr_decay_every <= 0:
            return self.cfg.lr
        done = max(0, self.iterations - self.cfg.pretrain_steps)
        return self.cfg.lr * self.cfg.lr_decay ** (done // self.cfg.lr_decay_every)

    def extra_state(self) -> dict[str, Any]:
        from fastadapt.core.seeding import get_state

        return {"noise_rng": get_state(self.noise_gen)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        from fastadapt.core.seeding import set_state

        if "noise_rng" in state:
            set_state(self.noise_gen, state["noise_rng"])

    # -- evaluation ------------------------------------------------------------------------------------
    def predict(self, episode: FewShotEpisode) -> torch.Tensor:
        way = episode_way(episode)
        zs, zq = self.embed(episode.support_x), self.embed(episode.query_x)
        w, _ = self.adapt(zs, episode.support_y, way, training=False)
        with torch.no_grad():
            return torch.log_softmax(zq @ w.transpose(1, 2), -1)

    @contextlib.contextmanager
    def eval_context(self, ecfg: FewShotEvalConfig, seed: int) -> Iterator[None]:
        del ecfg, seed
        with torch_threads(self.cfg.threads):
            yield

    def evaluate(self, cfg: Any, seed: int) -> list[Any]:
        rows = super().evaluate(cfg, seed)
        for r in rows:
            r.extra["pretrained"] = self.iterations >= self.cfg.pretrain_steps
            r.extra["leo_iterations"] = max(0, self.iterations - self.cfg.pretrain_steps)
        return rows


@register_algo("leo", family="fewshot", config=LEOConfig, eval_config=LEOEvalConfig)
def build_leo(cfg: LEOConfig, task: object, seed: int) -> LEO:
    """LEO (Rusu et al. 2019): latent embedding optimisation on a pretrained, frozen feature extractor."""
    return LEO(cfg, task, seed)

