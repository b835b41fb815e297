"""Reptile (Nichol, Achiam & Schulman 2018, "On First-Order Meta-Learning Algorithms").

Each task of a meta-batch starts from the meta-parameters ``theta`` and takes ``inner_steps`` plain SGD steps
on all of its training data (support and query together: Reptile has no separate outer loss); the
meta-update moves ``theta`` towards the mean adapted weights, ``theta <- theta + eps * mean_t(theta_t -
theta)``. It is implemented as the "gradient" ``theta - mean_t theta_t`` fed to an outer optimizer: plain SGD
with rate ``lr = eps`` reproduces the paper's update exactly (the default, with the paper's linear annealing
of ``eps`` to 0 when ``anneal: true``); ``outer: adam`` is the common variant.

All tasks adapt at once with :mod:`fastadapt.ops.functional` (vmapped or looped; no graph is built).
At meta-test time the learner adapts on the support set with ``eval_inner_steps`` steps (default: the
training ``inner_steps``) and predicts the query set.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import Field, field_validator
from torch import nn

from fastadapt.algos.fewshot.common import (
    FewShotAlgoConfig,
    FewShotEvalConfig,
    FewShotLearner,
    query_accuracy,
    require_classification_task,
    torch_threads,
)
from fastadapt.core.config import Section
from fastadapt.core.errors import CheckpointError, ConfigError, NumericError
from fastadapt.core.registry import register_algo
from fastadapt.core.seeding import get_state, set_state, torch_gen
from fastadapt.core.types import FewShotEpisode, Row
from fastadapt.nn.backbones import conv4_classifier
from fastadapt.nn.mlp import MLP
from fastadapt.ops import functional as F


class ReptileConfig(FewShotAlgoConfig):
    """The ``algo:`` section of ``reptile`` (``lr`` is the outer step size epsilon)."""

    lr: float = Field(0.1, gt=0, description="outer step size epsilon (SGD) or Adam rate")
    outer: Literal["sgd", "adam"] = "sgd"
    anneal: bool = Field(True, description="anneal the outer rate linearly to 0 over train.iterations")
    anneal_iterations: int = Field(10_000, ge=1, description="iterations over which the rate reaches 0")
    meta_batch: int = Field(5, ge=1)
    inner_steps: int = Field(5, ge=1, le=1000)
    inner_lr: float = Field(0.02, gt=0)
    eval_inner_steps: int | None = Field(None, ge=1)
    hidden: list[int] = Field(default_factory=lambda: [40, 40], description="MLP widths (regression)")
    activation: Literal["relu", "tanh", "elu", "gelu", "silu"] = "relu"
    channels: int = Field(64, ge=1, description="Conv4 channels (classification)")
    vectorize: Literal["vmap", "loop"] = "vmap"
    threads: int = Field(1, ge=0, le=256, description="torch threads during train/eval (0 = unchanged)")

    @field_validator("hidden", mode="before")
    @classmethod
    def _hidden_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, int) else v


class ReptileEvalConfig(FewShotEvalConfig):
    """``eval:`` of ``reptile``: the shared classification protocol; for regression ``tasks``,
    ``adapt_steps``, ``shots`` (default: the task's) and ``query`` (default: the task's)."""

    tasks: int = Field(1000, ge=1)
    adapt_steps: list[int] = Field(default_factory=lambda: [0, 1, 10])
    shots: list[int] | None = None
    query: int | None = Field(None, ge=1)
    chunk: int = Field(250, ge=1)

    @field_validator("adapt_steps", "shots", mode="before")
    @classmethod
    def _wrap(cls, v: Any) -> Any:
        return [v] if isinstance(v, int) else v



def _mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((pred - y) ** 2).mean()


def _mse_per_task(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((pred - y) ** 2).flatten(1).mean(1)


def _ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits, y)


def _reptile_update(
    model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, loss_fn: Any,
    cfg: ReptileConfig,
) -> float:
    """Adapt every task on ``x: [tasks, n, ...]`` and step ``opt`` with ``theta - mean_t theta_t``.

    Returns the mean squared distance moved (a progress signal).
    """
    params = F.params_of(model)
    with torch.no_grad():
        adapted = F.adapt(
            model, {k: v.detach() for k, v in params.items()}, x, y, loss_fn, cfg.inner_steps, cfg.inner_lr,
            first_order=True, mode=cfg.vectorize,
        )
        assert isinstance(adapted, dict)
        moved = 0.0
        for k, p in params.items():
            delta = p.detach() - adapted[k].mean(0)
            p.grad = delta.clone()
            moved += float((delta**2).sum())
    opt.step()
    return moved


def _outer_optimizer(params: list[torch.Tensor], cfg: ReptileConfig) -> torch.optim.Optimizer:
    if cfg.outer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr)
    return torch.optim.Adam(params, lr=cfg.lr, betas=(0.0, 0.999))


def _outer_lr(cfg: ReptileConfig, iterations: int) -> float:
    if not cfg.anneal:
        return cfg.lr
    return cfg.lr * max(0.0, 1.0 - iterations / cfg.anneal_iterations)


class ReptileRegressor:
    """Reptile on a few-shot regression family (e.g. sinusoid); ``key_metric`` is the post-adaptation MSE."""

    key_metric = "loss"

    def __init__(self, cfg: ReptileConfig, task: Any, seed: int) -> None:
        if cfg.augment != "none":
            raise ConfigError("algo.augment: applies to images; use 'none' for regression")
        self.cfg = cfg
        self.task = task
        self.model = MLP(task.in_dim, task.out_dim, tuple(cfg.hidden), cfg.activation,
                         generator=torch_gen(seed, "reptile", "init"))
        self.opt = _outer_optimizer(list(self.model.parameters()), cfg)
        self.gen = torch_gen(seed, "reptile", "train-tasks")
        self.examples = 0
        self.iterations = 0

    def train_step(self, iteration: int) -> dict[str, float]:
        with torch_threads(self.cfg.threads):
            ep, _, _ = self.task.episodes(self.cfg.meta_batch, self.gen)
            x = torch.cat([ep.support_x, ep.query_x], 1)
            y = torch.cat([ep.support_y, ep.query_y], 1)
            for g in self.opt.param_groups:
                g["lr"] = _outer_lr(self.cfg, self.iterations)
            moved = _reptile_update(self.model, self.opt, x, y, _mse, self.cfg)
            # progress signal: query MSE after inner_steps on the support set (no gradient)
            curve = F.adaptation_curve(
                self.model, F.params_of(self.model), self.cfg.inner_lr, ep.support_x, ep.support_y,
                ep.query_x, ep.query_y, _mse, _mse_per_task, self.cfg.inner_steps,
            )
        self.iterations += 1
        self.examples += int(x.shape[0] * x.shape[1])
        loss = float(curve[-1].mean())
        if not (math.isfinite(loss) and math.isfinite(moved)):
            raise NumericError("loss", iteration)
        return {"loss": loss, "moved": moved, "outer_lr": self.opt.param_groups[0]["lr"],
                "examples": float(self.examples)}

    def state_dict(self) -> dict[str, Any]:
        return {"model": dict(self.model.state_dict()), "optimizer": self.opt.state_dict(),
                "generator": get_state(self.gen), "examples": self.examples, "iterations": self.iterations}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optimizer"])
            set_state(self.gen, state["generator"])
            self.examples = int(state["examples"])
            self.iterations = int(state["iterations"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise CheckpointError(f"reptile state: {e}") from None

    def evaluate(self, cfg: Section | None, seed: int) -> list[Row]:
        """Rows ``reptile`` with setting ``{shot, adapt_steps}``: query MSE over held-out tasks of split
        ``ecfg.split`` (default ``"test"``)."""
        ecfg = cfg if isinstance(cfg, ReptileEvalConfig) else ReptileEvalConfig()
        rows = []
        steps = sorted(set(ecfg.adapt_steps))
        with torch_threads(self.cfg.threads):
            for shot in ecfg.shots or [int(self.task.shot)]:
                ep, _, _ = self.task.split_episodes(ecfg.tasks, seed, ecfg.split, shot=shot,
                                                    query=ecfg.query or int(self.task.query))
                curve = F.adaptation_curve(
                    self.model, F.params_of(self.model), self.cfg.inner_lr, ep.support_x, ep.support_y,
                    ep.query_x, ep.query_y, _mse, _mse_per_task, max(steps), chunk=ecfg.chunk,
                )
                for k in steps:
                    e = curve[k]
                    se = float(e.std() / math.sqrt(e.numel())) if e.numel() > 1 else float("nan")
                    rows.append(Row("reptile", {"shot": int(shot), "adapt_steps": int(k)}, float(e.mean()), se,
                                    int(e.numel()), {"inner_lr": self.cfg.inner_lr}))
        return rows


class ReptileClassifier(FewShotLearner):
    """Reptile on N-way K-shot classification with the Conv4 classifier (batch statistics per task)."""

    def __init__(self, cfg: ReptileConfig, task: Any, seed: int) -> None:
        t = require_classification_task(task, "reptile")
        model = conv4_classifier(t.way, tuple(t.x_shape), cfg.channels, bn="batch",
                                 generator=torch_gen(seed, "reptile", "init"))
        super().__init__("reptile", cfg, t, seed, model, optimizer=_outer_optimizer(list(model.parameters()), cfg))
        self.rcfg = cfg

    def train_step(self, iteration: int) -> dict[str, float]:
        del iteration
        with torch_threads(self.rcfg.threads):
            self.model.train()
            for g in self.optimizer.param_groups:
                g["lr"] = _outer_lr(self.rcfg, self.iterations)
            ep = self.sample_train()
            x = torch.cat([ep.support_x, ep.query_x], 1)
            y = torch.cat([ep.support_y, ep.query_y], 1)
            moved = _reptile_update(self.model, self.optimizer, x, y, _ce, self.rcfg)
        self.iterations += 1
        self.examples += self.episode_examples(ep)
        return {"moved": moved, "lr": self.optimizer.param_groups[0]["lr"], "examples": float(self.examples)}

    def predict(self, episode: FewShotEpisode) -> torch.Tensor:
        way = int(episode.support_y.max()) + 1
        if way != self.task.way:
            raise ConfigError(f"eval.ways: reptile was trained for {self.task.way}-way tasks, got {way}-way")
        steps = self.rcfg.eval_inner_steps or self.rcfg.inner_steps
        with torch.no_grad():
            p = {k: v.detach() for k, v in self.model.named_parameters()}
            adapted = F.adapt(self.model, p, episode.support_x, episode.support_y, _ce, steps,
                              self.rcfg.inner_lr, first_order=True, mode=self.rcfg.vectorize)
            assert isinstance(adapted, dict)
            logits = F.forward_batched(self.model, adapted, episode.query_x, mode=self.rcfg.vectorize)
        return torch.log_softmax(logits, -1)

    def loss(self, episode: FewShotEpisode) -> tuple[torch.Tensor, dict[str, float]]:
        s = self.predict(episode)
        return torch.nn.functional.nll_loss(s.flatten(0, 1), episode.query_y.flatten()), {
            "accuracy": query_accuracy(s, episode.query_y)
        }

    def evaluate(self, cfg: Section | None, seed: int) -> list[Row]:
        ecfg = cfg if isinstance(cfg, ReptileEvalConfig) else ReptileEvalConfig()
        fcfg = FewShotEvalConfig(
            ways=ecfg.ways, shots=ecfg.shots or [1, 5], query=ecfg.query or 15, episodes=ecfg.episodes,
            batch=ecfg.batch, split=ecfg.split, within_group=ecfg.within_group, omniglot_runs=ecfg.omniglot_runs,
            assignment=ecfg.assignment,
        )
        with torch_threads(self.rcfg.threads):
            rows = super().evaluate(fcfg, seed)
        for r in rows:
            r.extra["adapt_steps"] = self.rcfg.eval_inner_steps or self.rcfg.inner_steps
        return rows


@register_algo("reptile", family="fewshot", config=ReptileConfig, eval_config=ReptileEvalConfig)
def build_reptile(cfg: ReptileConfig, task: Any, seed: int) -> ReptileRegressor | ReptileClassifier:
    """Reptile (Nichol et al. 2018): move the initialisation towards each task's adapted weights."""
    if getattr(task, "kind", None) == "regression":
        return ReptileRegressor(cfg, task, seed)
    return ReptileClassifier(cfg, task, seed)
