"""MAML and its gradient-based relatives for few-shot supervised learning.

- ``maml``: Model-Agnostic Meta-Learning (Finn, Abbeel & Levine 2017), second order by default, any number
  of inner steps, optionally learned per-step (per-layer) inner learning rates and the multi-step loss of
  "How to train your MAML" (Antoniou, Edwards & Storkey 2019, LSLR and MSL).
- ``fomaml``: first-order MAML (same paper, sec. 5.2): inner gradients are treated as constants.
- ``metasgd``: Meta-SGD (Li, Zhou, Chen & Li 2017): one learned learning rate per parameter (and step).
- ``anil``: Almost No Inner Loop (Raghu, Raghu, Bengio & Vinyals 2020): only the head adapts.

All four are the same learner with different defaults, registered under their own names. The inner loop of
a whole meta-batch runs at once with ``torch.func`` (:mod:`fastadapt.ops.functional`), and ordinary
autograd through it gives the exact second-order meta-gradient.

Evaluation (``evaluate``) on held-out tasks reports, for every shot ``K`` and number of adaptation steps
``k``, the mean query loss (MSE for regression) of the meta-learned initialisation next to two baselines
fine-tuned with the same number of plain SGD steps: ``pretrained`` (one network trained jointly on all
meta-training tasks, on the same data stream) and ``random-init`` (a freshly initialised network). The
baselines' fine-tuning rate is chosen per cell on separate validation tasks from ``eval.finetune_lrs``.
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
from fastadapt.core.errors import ConfigError, NumericError
from fastadapt.core.registry import register_algo
from fastadapt.core.seeding import get_state, set_state, torch_gen
from fastadapt.core.types import FewShotEpisode, Row
from fastadapt.nn.backbones import Conv4, reset_parameters_
from fastadapt.nn.mlp import MLP
from fastadapt.ops import functional as F


def _as_list(v: Any) -> Any:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return [v]
    return v


class MAMLConfig(FewShotAlgoConfig):
    """The ``algo:`` section of ``maml`` (and ``fomaml``/``metasgd``/``anil``) configs.

    Outer loop: Adam with ``lr`` (and the other :class:`FewShotAlgoConfig` fields; ``grad_clip`` 0 = off).
    """

    meta_batch: int = Field(25, ge=1, le=100_000, description="tasks per meta-update")
    hidden: list[int] = Field(default_factory=lambda: [40, 40], description="MLP widths (regression)")
    activation: Literal["relu", "tanh", "elu", "gelu", "silu"] = "relu"
    inner_steps: int = Field(1, ge=1, le=100, description="inner SGD steps during meta-training")
    inner_lr: float = Field(0.01, gt=0, description="inner learning rate (initial value if learned)")
    learn_inner_lr: bool = Field(False, description="meta-learn the inner learning rates")
    lr_granularity: Literal["scalar", "layer", "parameter"] = Field(
        "scalar", description="one learned rate per step (scalar), per tensor (layer) or per weight (Meta-SGD)"
    )
    per_step_lr: bool = Field(True, description="a separate learned rate for every inner step")
    lr_min: float | None = Field(
        None, description="project the learned rates of the LAST inner step (the ones reused for steps past "
        "inner_steps) to >= lr_min after every meta-update; 0 keeps those extra steps descent steps",
    )
    first_order: bool = Field(False, description="first-order MAML (drop second derivatives)")
    second_order_steps: int | None = Field(
        None, ge=0, description="differentiate only the first m inner gradients (later steps first order)"
    )
    adapt: Literal["all", "head"] = Field("all", description="parameters adapted in the inner loop (head = ANIL)")
    multi_step_loss: bool = Field(
        False, description="meta-loss = mean of the query losses after every inner step (MAML++ MSL)"
    )
    vectorize: Literal["vmap", "loop"] = Field(
        "vmap", description="meta-batch inner loop: vmap (fastest for MLPs) or task loop (fastest for Conv4)"
    )
    channels_last: bool = Field(True, description="classification, loop mode: channels-last convolutions")
    pretrain_baseline: bool = Field(
        True, description="regression: also train the joint-training ('pretrained') baseline on the same tasks"
    )
    pretrain_lr: float = Field(1e-3, gt=0)
    channels: int = Field(64, ge=1, description="Conv4 channels (classification)")
    head: Literal["fixed", "unicorn"] = Field(
        "unicorn", description="classification head: one row per class, or one shared row copied per class"
    )
    eval_inner_steps: int | None = Field(None, ge=1, description="test-time inner steps (default inner_steps)")
    threads: int = Field(
        1, ge=0, le=256,
        description="torch intra-op threads during train_step/evaluate (0 = leave unchanged); 1 is "
        "fastest for these small models on a shared CPU",
    )

    @field_validator("hidden", mode="before")
    @classmethod
    def _hidden_list(cls, v: Any) -> Any:
        return _as_list(v)

    @field_validator("hidden")
    @classmethod
    def _hidden_pos(cls, v: list[int]) -> list[int]:
        if any(h < 1 for h in v):
            raise ValueError(f"hidden widths must be >= 1, got {v}")
        return v


class FOMAMLConfig(MAMLConfig):
    """``fomaml``: MAML with ``first_order: true`` by default."""

    first_order: bool = True


class MetaSGDConfig(MAMLConfig):
    """``metasgd``: learned per-parameter inner rates (Li et al. 2017)."""

    learn_inner_lr: bool = True
    lr_granularity: Literal["scalar", "layer", "parameter"] = "parameter"
    per_step_lr: bool = True


class ANILConfig(MAMLConfig):
    """``anil``: only the last layer adapts (Raghu et al. 2020)."""

    adapt: Literal["all", "head"] = "head"


class MAMLEvalConfig(FewShotEvalConfig):
    """The ``eval:`` section of gradient-based few-shot learners.

    Classification tasks use the shared protocol of :class:`FewShotEvalConfig` (``ways``, ``shots``
    [default 1 and 5], ``query`` [default 15], ``episodes``, ``omniglot_runs`` ...). Regression tasks use
    ``tasks``, ``adapt_steps``, ``shots`` (default: the task's shot), ``query`` (default: the task's),
    ``baselines``, ``finetune_lrs``, ``val_tasks`` and ``chunk``.
    """

    tasks: int = Field(1000, ge=1, le=1_000_000, description="held-out test tasks per cell")
    adapt_steps: list[int] = Field(default_factory=lambda: [0, 1, 10], description="adaptation steps to report")
    shots: list[int] | None = Field(None, description="support sizes K (default: the task's shot; 1 and 5)")
    query: int | None = Field(None, ge=1, description="query points per task/class (default: task's; 15)")
    baselines: list[Literal["pretrained", "random-init"]] = Field(
        default_factory=lambda: ["pretrained", "random-init"]
    )
    finetune_lrs: list[float] = Field(
        default_factory=lambda: [0.001, 0.003, 0.01, 0.03, 0.1],
        description="baselines' SGD rates; the best on validation tasks is used per cell",
    )
    val_tasks: int = Field(200, ge=1, description="validation tasks used to pick the baselines' rate")
    chunk: int = Field(250, ge=1, description="tasks adapted at once (memory bound)")

    @field_validator("adapt_steps", "shots", "finetune_lrs", "baselines", mode="before")
    @classmethod
    def _wrap(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [v]
        return _as_list(v)

    @field_validator("adapt_steps")
    @classmethod
    def _steps(cls, v: list[int]) -> list[int]:
        if not v or any(s < 0 for s in v):
            raise ValueError(f"adapt_steps must be a non-empty list of integers >= 0, got {v}")
        return v

    @field_validator("shots")
    @classmethod
    def _shots(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or any(s < 1 for s in v)):
            raise ValueError(f"shots must be integers >= 1, got {v}")
        return v

    @field_validator("finetune_lrs")
    @classmethod
    def _lrs(cls, v: list[float]) -> list[float]:
        if not v or any(not (x > 0) for x in v):
            raise ValueError(f"finetune_lrs must be positive, got {v}")
        return v



def _mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error of one task: ``pred, y: [points, 1]`` -> scalar."""
    return ((pred - y) ** 2).mean()


def _mse_per_task(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``pred, y: [tasks, points, 1]`` -> ``[tasks]``."""
    return ((pred - y) ** 2).flatten(1).mean(1)


class MAMLLearner:
    """Gradient-based meta-learner (MAML / FOMAML / Meta-SGD / ANIL) on a few-shot regression task family.

    ``task`` is a task-family object such as :class:`fastadapt.tasks.fewshot.sinusoid.SinusoidTasks`
    (``kind == "regression"``, ``in_dim``, ``out_dim``, ``shot``, ``query``, ``episodes(n, generator)``,
    ``split_episodes(n, seed, split, shot, query)``).
    """

    key_metric = "loss"

    def __init__(self, cfg: MAMLConfig, task: Any, seed: int, name: str = "maml") -> None:
        kind = getattr(task, "kind", None)
        if kind != "regression":
            raise ConfigError(
                f"task: {name} supports regression task families here (got {type(task).__name__}); "
                "classification is handled by the few-shot classification learner"
            )
        if cfg.augment != "none":
            raise ConfigError(f"algo.augment: {cfg.augment!r} applies to images; use 'none' for {type(task).__name__}")
        self.cfg = cfg
        self.task = task
        self.seed = int(seed)
        self.name = name
        self.model = self._new_model(torch_gen(seed, name, "init"))
        all_names = [n for n, _ in self.model.named_parameters()]
        if cfg.adapt == "head":
            last = all_names[-2:] if len(all_names) >= 2 else all_names
            self.fast_names = last
        else:
            self.fast_names = all_names
        fast = F.params_of(self.model, self.fast_names)
        self.inner_lrs: dict[str, torch.Tensor] = {}
        if cfg.learn_inner_lr:
            self.inner_lrs = F.init_inner_lrs(
                fast, cfg.inner_steps, cfg.inner_lr, cfg.lr_granularity, cfg.per_step_lr, requires_grad=True
            )
        meta_params = list(self.model.parameters()) + list(self.inner_lrs.values())
        self.opt = torch.optim.Adam(meta_params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.pretrained: nn.Module | None = None
        self.pre_opt: torch.optim.Optimizer | None = None
        if cfg.pretrain_baseline:
            self.pretrained = self._new_model(torch_gen(seed, name, "pretrained-init"))
            self.pre_opt = torch.optim.Adam(self.pretrained.parameters(), lr=cfg.pretrain_lr)
        self.gen = torch_gen(seed, name, "train-tasks")
        self.examples = 0
        self.iterations = 0

    # -------------------------------------------------------------------------------- pieces
    def _new_model(self, gen: torch.Generator) -> nn.Module:
        return MLP(self.task.in_dim, self.task.out_dim, tuple(self.cfg.hidden), self.cfg.activation, generator=gen)

    def lr_spec(self) -> F.LRSpec:
        """The inner learning rates as :mod:`fastadapt.ops.functional` expects them."""
        if not self.inner_lrs:
            return float(self.cfg.inner_lr)
        return F.expand_scalar_lrs(self.inner_lrs, self.fast_names)

    def _split(self) -> tuple[F.Params, F.Params]:
        allp = F.params_of(self.model)
        fast = {k: allp[k] for k in self.fast_names}
        frozen = {k: v for k, v in allp.items() if k not in fast}
        return fast, frozen

    def adapt_batch(
        self, support_x: torch.Tensor, support_y: torch.Tensor, steps: int, trajectory: bool = False
    ) -> F.Params | list[F.Params]:
        """Adapted fast weights ``{name: [tasks, *shape]}`` after ``steps`` inner steps on the support sets."""
        fast, frozen = self._split()
        return F.adapt(
            self.model, fast, support_x, support_y, _mse, steps, self.lr_spec(),
            first_order=self.cfg.first_order, frozen=frozen, trajectory=trajectory, mode=self.cfg.vectorize,
            second_order_steps=self.cfg.second_order_steps,
        )

    # ------------------------------------------------------------------------------ training
    def train_step(self, iteration: int) -> dict[str, float]:
        """One meta-update on a fresh meta-batch; ``loss`` is the post-adaptation query MSE."""
        with torch_threads(self.cfg.threads):
            return self._train_step(iteration)

    def current_lr(self) -> float:
        """Outer Adam rate: ``lr * lr_decay ** (iterations // lr_decay_every)`` (constant if 0)."""
        if self.cfg.lr_decay_every <= 0:
            return self.cfg.lr
        return self.cfg.lr * self.cfg.lr_decay ** (self.iterations // self.cfg.lr_decay_every)

    def _train_step(self, iteration: int) -> dict[str, float]:
        cfg = self.cfg
        for group in self.opt.param_groups:
            group["lr"] = self.current_lr()
        ep, _, _ = self.task.episodes(cfg.meta_batch, self.gen)
        _, frozen = self._split()
        traj = self.adapt_batch(ep.support_x, ep.support_y, cfg.inner_steps, trajectory=True)
        assert isinstance(traj, list)
        steps_for_loss = range(1, len(traj)) if cfg.multi_step_loss else [len(traj) - 1]
        losses = []
        for s in steps_for_loss:
            pred = F.forward_batched(self.model, traj[s], ep.query_x, frozen)
            losses.append(_mse_per_task(pred, ep.query_y).mean())
        final = losses[-1].detach()
        meta_loss = torch.stack(losses).mean()
        if not torch.isfinite(meta_loss):
            raise NumericError("meta-loss", iteration)
        self.opt.zero_grad(set_to_none=True)
        meta_loss.backward()
        gnorm = self._clip()
        self.opt.step()
        self._project_lrs()
        metrics = {"loss": float(final), "meta_loss": float(meta_loss.detach()), "grad_norm": gnorm}
        if self.pretrained is not None and self.pre_opt is not None:
            x = torch.cat([ep.support_x, ep.query_x], 1)
            y = torch.cat([ep.support_y, ep.query_y], 1)
            pl = _mse_per_task(self.pretrained(x), y).mean()
            self.pre_opt.zero_grad(set_to_none=True)
            pl.backward()
            self.pre_opt.step()
            metrics["pretrained_loss"] = float(pl.detach())
        self.examples += cfg.meta_batch * (ep.support_x.shape[1] + ep.query_x.shape[1])
        self.iterations += 1
        metrics["examples"] = float(self.examples)
        if self.inner_lrs:
            metrics["inner_lr_mean"] = float(torch.cat([v.detach().flatten() for v in self.inner_lrs.values()]).mean())
        for k, v in metrics.items():
            if not math.isfinite(v):
                raise NumericError(k, iteration)
        return metrics

    def _project_lrs(self) -> None:
        if self.cfg.lr_min is not None and self.inner_lrs:
            with torch.no_grad():
                for v in self.inner_lrs.values():
                    v[-1].clamp_(min=self.cfg.lr_min)

    def _clip(self) -> float:
        params = [p for g in self.opt.param_groups for p in g["params"] if p.grad is not None]
        if self.cfg.grad_clip > 0:
            return float(torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip))
        return float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])))

    # ------------------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, Any]:
        """Weights, learned rates, optimizers, the task-stream generator and counters."""
        state: dict[str, Any] = {
            "model": dict(self.model.state_dict()),
            "inner_lrs": {k: v.detach().clone() for k, v in self.inner_lrs.items()},
            "optimizer": self.opt.state_dict(),
            "generator": get_state(self.gen),
            "examples": self.examples,
            "iterations": self.iterations,
        }
        if self.pretrained is not None and self.pre_opt is not None:
            state["pretrained"] = dict(self.pretrained.state_dict())
            state["pretrained_optimizer"] = self.pre_opt.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (raises CheckpointError-compatible KeyErrors upward)."""
        from fastadapt.core.errors import CheckpointError

        try:
            self.model.load_state_dict(state["model"])
            with torch.no_grad():
                if set(state["inner_lrs"]) != set(self.inner_lrs):
                    raise CheckpointError(
                        f"inner_lrs: checkpoint has {sorted(state['inner_lrs'])}, config expects "
                        f"{sorted(self.inner_lrs)}"
                    )
                for k, v in state["inner_lrs"].items():
                    self.inner_lrs[k].copy_(v)
            self.opt.load_state_dict(state["optimizer"])
            set_state(self.gen, state["generator"])
            self.examples = int(state["examples"])
            self.iterations = int(state["iterations"])
            if self.pretrained is not None and self.pre_opt is not None:
                self.pretrained.load_state_dict(state["pretrained"])
                self.pre_opt.load_state_dict(state["pretrained_optimizer"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise CheckpointError(f"{self.name} state: {e}") from None

    # ------------------------------------------------------------------------------ evaluation
    def evaluate(self, cfg: MAMLEvalConfig | None, seed: int) -> list[Row]:
        """Meta-test on held-out tasks: rows ``{method, setting: {shot, adapt_steps}, mean, se, n}``.

        ``mean`` is the query MSE averaged over ``cfg.tasks`` tasks of split ``cfg.split`` (default
        ``"test"``; seed ``seed``) and ``se`` its standard error. Baselines' fine-tuning rates are picked on
        ``cfg.val_tasks`` ``"val"`` tasks, or on ``"train"`` tasks when ``cfg.split`` is ``"val"``, so a rate
        is never picked on the tasks it is reported on.
        """
        with torch_threads(self.cfg.threads):
            return self._evaluate(cfg, seed)

    def _evaluate(self, cfg: MAMLEvalConfig | None, seed: int) -> list[Row]:
        cfg = cfg or MAMLEvalConfig()
        shots = cfg.shots or [int(self.task.shot)]
        query = cfg.query or int(self.task.query)
        steps_list = sorted(set(int(s) for s in cfg.adapt_steps))
        max_steps = max(steps_list)
        rows: list[Row] = []
        fast, frozen = self._split()
        for shot in shots:
            test, _, _ = self.task.split_episodes(cfg.tasks, seed, cfg.split, shot=shot, query=query)
            per_step = self._curve(self.model, fast, frozen, self.lr_spec(), test, max_steps, cfg.chunk)
            for k in steps_list:
                rows.append(self._row(self.name, shot, k, per_step[k], {}))
            baselines: list[tuple[str, nn.Module]] = []
            if "pretrained" in cfg.baselines:
                if self.pretrained is None:
                    raise ConfigError("eval.baselines: 'pretrained' needs algo.pretrain_baseline: true")
                baselines.append(("pretrained", self.pretrained))
            if "random-init" in cfg.baselines:
                baselines.append(("random-init", self._new_model(torch_gen(seed, self.name, "random-init"))))
            if not baselines:
                continue
            pick = "train" if cfg.split == "val" else "val"
            val, _, _ = self.task.split_episodes(cfg.val_tasks, seed, pick, shot=shot, query=query)
            for method, net in baselines:
                p = F.params_of(net)
                val_curves = {
                    lr: self._curve(net, p, {}, lr, val, max_steps, cfg.chunk).mean(1) for lr in cfg.finetune_lrs
                }
                test_curves: dict[float, torch.Tensor] = {}
                for k in steps_list:
                    best = min(cfg.finetune_lrs, key=lambda lr: float(val_curves[lr][k]))
                    if best not in test_curves:
                        test_curves[best] = self._curve(net, p, {}, best, test, max_steps, cfg.chunk)
                    rows.append(self._row(method, shot, k, test_curves[best][k], {"finetune_lr": best}))
        return rows

    @staticmethod
    def _row(method: str, shot: int, k: int, errs: torch.Tensor, extra: dict[str, Any]) -> Row:
        n = int(errs.numel())
        mean = float(errs.mean())
        se = float(errs.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")
        return Row(method, {"shot": int(shot), "adapt_steps": int(k)}, mean, se, n, dict(extra))

    @staticmethod
    def _curve(
        model: nn.Module,
        fast: F.Params,
        frozen: F.Params,
        lrs: F.LRSpec,
        ep: FewShotEpisode,
        max_steps: int,
        chunk: int,
    ) -> torch.Tensor:
        """Per-task query MSE after ``0..max_steps`` steps: ``[steps+1, tasks]``."""
        return F.adaptation_curve(
            model, fast, lrs, ep.support_x, ep.support_y, ep.query_x, ep.query_y, _mse, _mse_per_task,
            max_steps, frozen, chunk,
        )


# ------------------------------------------------------------------------------------ classification
class TaskBatchNorm2d(nn.Module):
    """Batch norm with the statistics of the current batch (no running averages), written out by hand.

    Same math and parameter names (``weight``, ``bias``) as ``nn.BatchNorm2d(c, track_running_stats=False)``
    in training mode. It exists because, in torch 2.13, the second-order meta-gradient through the *affine*
    native batch norm inside ``torch.func.vmap(torch.func.grad(...))`` is wrong (a test in
    ``tests/algos_fewshot/test_functional.py`` records it); the hand-written form vmaps correctly.
    ``x: [N, C, H, W]``.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean((0, 2, 3), keepdim=True)
        var = (x - mu).pow(2).mean((0, 2, 3), keepdim=True)
        return (x - mu) * torch.rsqrt(var + self.eps) * self.weight[:, None, None] + self.bias[:, None, None]


def replace_batchnorm_(module: nn.Module) -> nn.Module:
    """Swap every ``nn.BatchNorm2d`` of ``module`` for a :class:`TaskBatchNorm2d` with the same weights."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            new = TaskBatchNorm2d(child.num_features, child.eps)
            if child.affine:
                with torch.no_grad():
                    new.weight.copy_(child.weight)
                    new.bias.copy_(child.bias)
            setattr(module, name, new)
        else:
            replace_batchnorm_(child)
    return module


class MetaClassifier(nn.Module):
    """Conv4 body + linear head, written so the head can change its number of classes per task.

    ``head="fixed"``: ``head_weight: [way, d]``, ``head_bias: [way]`` (Finn et al. 2017).
    ``head="unicorn"``: one shared row ``head_weight: [1, d]``, ``head_bias: [1]`` that is copied to every
    class before adaptation (Ye & Chao 2022, "How to Train Your MAML to Excel in Few-Shot Classification",
    UnicornMAML): permutation invariant and usable for any number of ways (5-way training, 20-way testing).
    ``vmap_safe_bn`` swaps the batch norms for :class:`TaskBatchNorm2d` (needed for correct second-order
    meta-gradients under ``vmap``; the per-task loop uses the faster native batch norm). ``channels_last``
    stores the convolutions in channels-last format (faster on CPU, same values).

    ``x: [*lead, C, H, W] -> logits [*lead, way]``.
    """

    def __init__(
        self,
        in_shape: tuple[int, ...],
        way: int,
        hidden: int,
        head: str,
        gen: torch.Generator,
        vmap_safe_bn: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.body = Conv4(in_shape[0], hidden, bn="batch", generator=gen, channels_last=channels_last)
        if vmap_safe_bn:
            replace_batchnorm_(self.body)
        d = self.body.out_dim(in_shape)
        rows = way if head == "fixed" else 1
        lin = reset_parameters_(nn.Linear(d, rows), gen)
        self.head_weight = nn.Parameter(lin.weight.detach().clone() if head == "fixed" else torch.zeros(1, d))
        self.head_bias = nn.Parameter(lin.bias.detach().clone() if head == "fixed" else torch.zeros(1))
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(self.body(x), self.head_weight, self.head_bias)


def _ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of one task: ``logits: [n, way]``, ``y: [n]``."""
    return torch.nn.functional.cross_entropy(logits, y)


class MAMLClassifier(FewShotLearner):
    """MAML / FOMAML / Meta-SGD / ANIL on N-way K-shot classification (Omniglot, digits).

    Every task of a meta-batch adapts a copy of the Conv4 classifier on its support set with
    ``inner_steps`` SGD steps (:mod:`fastadapt.ops.functional`, vmapped or looped over tasks); the outer
    loss is the query cross-entropy of the adapted weights. At test time ``eval_inner_steps`` steps are
    taken (default: ``inner_steps``). Batch norm uses each task's batch statistics (MAML's convention).
    """

    key_metric = "accuracy"

    def __init__(self, cfg: MAMLConfig, task: Any, seed: int, name: str = "maml") -> None:
        t = require_classification_task(task, name)
        gen = torch_gen(seed, name, "init")
        model = MetaClassifier(
            tuple(t.x_shape), t.way, cfg.channels, cfg.head, gen,
            vmap_safe_bn=cfg.vectorize == "vmap", channels_last=cfg.channels_last and cfg.vectorize == "loop",
        )
        fast_names = ["head_weight", "head_bias"] if cfg.adapt == "head" else [n for n, _ in model.named_parameters()]
        inner_lrs: dict[str, torch.Tensor] = {}
        if cfg.learn_inner_lr:
            base = {n: p for n, p in model.named_parameters() if n in fast_names}
            inner_lrs = F.init_inner_lrs(base, cfg.inner_steps, cfg.inner_lr, cfg.lr_granularity, cfg.per_step_lr)
        opt = torch.optim.Adam(
            list(model.parameters()) + list(inner_lrs.values()), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        super().__init__(name, cfg, t, seed, model, optimizer=opt)
        self.mcfg = cfg
        self.fast_names = fast_names
        self.inner_lrs = inner_lrs

    # -- adaptation ---------------------------------------------------------------------------------
    def lr_spec(self, detach: bool = False) -> F.LRSpec:
        if not self.inner_lrs:
            return float(self.mcfg.inner_lr)
        lrs = {k: (v.detach() if detach else v) for k, v in self.inner_lrs.items()}
        return F.expand_scalar_lrs(lrs, self.fast_names)

    def _fast_frozen(self, way: int, detach: bool = False) -> tuple[F.Params, F.Params]:
        allp = {k: (v.detach() if detach else v) for k, v in self.model.named_parameters()}
        if self.mcfg.head == "unicorn":
            allp["head_weight"] = allp["head_weight"].expand(way, -1)
            allp["head_bias"] = allp["head_bias"].expand(way)
        elif way != self.task.way:
            raise ConfigError(
                f"eval.ways: a 'fixed' head was trained for {self.task.way}-way tasks, got {way}-way; "
                "use algo.head: unicorn to test other ways"
            )
        fast = {k: allp[k] for k in self.fast_names}
        frozen = {k: v for k, v in allp.items() if k not in fast}
        return fast, frozen

    def adapted(
        self, ep: FewShotEpisode, steps: int, trajectory: bool = False, detach: bool = False
    ) -> tuple[F.Params | list[F.Params], F.Params]:
        """Adapted fast weights ``{name: [tasks, *shape]}`` (or their trajectory) and the frozen ones."""
        way = int(ep.support_y.max()) + 1
        fast, frozen = self._fast_frozen(way, detach)
        out = F.adapt(
            self.model, fast, ep.support_x, ep.support_y, _ce, steps, self.lr_spec(detach),
            first_order=self.mcfg.first_order, frozen=frozen, trajectory=trajectory,
            mode=self.mcfg.vectorize, second_order_steps=self.mcfg.second_order_steps,
        )
        return out, frozen

    def loss(self, episode: FewShotEpisode) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.mcfg
        traj, frozen = self.adapted(episode, cfg.inner_steps, trajectory=True)
        assert isinstance(traj, list)
        steps = range(1, len(traj)) if cfg.multi_step_loss else [len(traj) - 1]
        losses, logits = [], None
        for st in steps:
            logits = F.forward_batched(self.model, traj[st], episode.query_x, frozen, mode=cfg.vectorize)
            losses.append(torch.nn.functional.cross_entropy(logits.flatten(0, 1), episode.query_y.flatten()))
        assert logits is not None
        return torch.stack(losses).mean(), {"accuracy": query_accuracy(logits.detach(), episode.query_y)}

    def predict(self, episode: FewShotEpisode) -> torch.Tensor:
        steps = self.mcfg.eval_inner_steps or self.mcfg.inner_steps
        with torch.no_grad():
            params, frozen = self.adapted(episode, steps, detach=True)
            assert isinstance(params, dict)
            logits = F.forward_batched(self.model, params, episode.query_x, frozen, mode=self.mcfg.vectorize)
        return torch.log_softmax(logits, -1)

    # -- training / checkpoint / eval ----------------------------------------------------------------
    def train_step(self, iteration: int) -> dict[str, float]:
        with torch_threads(self.mcfg.threads):
            out = super().train_step(iteration)
        if self.inner_lrs:
            out["inner_lr_mean"] = float(torch.cat([v.detach().flatten() for v in self.inner_lrs.values()]).mean())
        return out

    def extra_state(self) -> dict[str, Any]:
        return {"inner_lrs": {k: v.detach().clone() for k, v in self.inner_lrs.items()}}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        from fastadapt.core.errors import CheckpointError

        saved = state.get("inner_lrs", {})
        if set(saved) != set(self.inner_lrs):
            raise CheckpointError(f"inner_lrs: checkpoint has {sorted(saved)}, config expects {sorted(self.inner_lrs)}")
        with torch.no_grad():
            for k, v in saved.items():
                self.inner_lrs[k].copy_(v)

    def evaluate(self, cfg: Section | None, seed: int) -> list[Row]:
        """The shared few-shot protocol (``ways`` x ``shots`` accuracy rows, or the Omniglot runs)."""
        ecfg = cfg if isinstance(cfg, MAMLEvalConfig) else MAMLEvalConfig()
        fcfg = FewShotEvalConfig(
            ways=ecfg.ways, shots=ecfg.shots or [1, 5], query=ecfg.query or 15, episodes=ecfg.episodes,
            batch=ecfg.batch, split=ecfg.split, within_group=ecfg.within_group,
            omniglot_runs=ecfg.omniglot_runs, assignment=ecfg.assignment,
        )
        with torch_threads(self.mcfg.threads):
            rows = super().evaluate(fcfg, seed)
        steps = self.mcfg.eval_inner_steps or self.mcfg.inner_steps
        for r in rows:
            r.extra["adapt_steps"] = steps
        return rows


def _build(cfg: MAMLConfig, task: Any, seed: int, name: str) -> MAMLLearner | MAMLClassifier:
    if getattr(task, "kind", None) == "regression":
        return MAMLLearner(cfg, task, seed, name=name)
    return MAMLClassifier(cfg, task, seed, name=name)


@register_algo("maml", family="fewshot", config=MAMLConfig, eval_config=MAMLEvalConfig)
def build_maml(cfg: MAMLConfig, task: Any, seed: int) -> MAMLLearner | MAMLClassifier:
    """MAML (Finn et al. 2017): second-order, multi-step, optional learned per-step inner rates."""
    return _build(cfg, task, seed, "maml")


@register_algo("fomaml", family="fewshot", config=FOMAMLConfig, eval_config=MAMLEvalConfig)
def build_fomaml(cfg: FOMAMLConfig, task: Any, seed: int) -> MAMLLearner | MAMLClassifier:
    """First-order MAML (Finn et al. 2017, sec. 5.2)."""
    return _build(cfg, task, seed, "fomaml")


@register_algo("metasgd", family="fewshot", config=MetaSGDConfig, eval_config=MAMLEvalConfig)
def build_metasgd(cfg: MetaSGDConfig, task: Any, seed: int) -> MAMLLearner | MAMLClassifier:
    """Meta-SGD (Li et al. 2017): meta-learned per-parameter inner learning rates."""
    return _build(cfg, task, seed, "metasgd")


@register_algo("anil", family="fewshot", config=ANILConfig, eval_config=MAMLEvalConfig)
def build_anil(cfg: ANILConfig, task: Any, seed: int) -> MAMLLearner | MAMLClassifier:
    """ANIL (Raghu et al. 2020): MAML adapting only the head."""
    return _build(cfg, task, seed, "anil")
