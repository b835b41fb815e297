"""``fastadapt bench maml-speed``: second-order MAML meta-training speed on Conv4 (issue 8, "Speed").

Setting: Conv4 (``channels`` = 64, 28x28 grey images), 5-way 1-shot, 15 queries per class, one inner SGD step
(rate 0.4), second-order meta-gradient, Adam outer step; meta-batch ``B`` in ``meta_batch`` (default 4 and
32). Rows (``mean`` = meta-training iterations per second, ``se`` over ``repeats`` timed iterations,
setting ``{"meta_batch": B}``):

- ``fastadapt``: :mod:`fastadapt.ops.functional` as :class:`~fastadapt.algos.fewshot.maml.MAMLClassifier`
  runs it on Conv4 (``vectorize: loop``): per-task ``functional_call`` with ``torch.autograd.grad
  (create_graph=True)``, channels-last convolutions and native batch norm. (The vmapped path was measured
  about 2x slower than the loop for Conv4 on this CPU, because per-task weights turn convolutions into grouped
  ones, and its batch norm must be written out by hand to get correct second-order gradients; it stays the
  default for MLPs, where it is faster.)
- ``higher``: ``higher.innerloop_ctx`` per task with a differentiable SGD step (the reference library).
- ``loop_reference``: the textbook per-task loop on the same ``nn.Module`` (contiguous memory format).
- ``forward_backward`` (the ceiling): one plain forward+backward of the same network over the same number
  of images (``B * (5 + 75)``) and an Adam step, as iterations per second; the rows' ``extra`` report the
  share of it each method reaches.

Before timing, the meta-gradients of all three methods are computed in float64 on ``check_tasks`` tasks from
the same weights and compared (``extra.rel_diff``: ||g - g_ref|| / ||g_ref|| over all parameters against
``loop_reference``); the benchmark fails if any exceeds ``rtol``. Timings interleave the methods within each
repeat so that machine-load changes hit all of them alike.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from pydantic import Field, field_validator
from torch import nn

from fastadapt.algos.fewshot.maml import MetaClassifier
from fastadapt.core.config import Section
from fastadapt.core.errors import NumericError
from fastadapt.core.registry import register_benchmark
from fastadapt.core.seeding import torch_gen
from fastadapt.core.types import BenchContext, Row
from fastadapt.nn.backbones import conv4_classifier
from fastadapt.ops import functional as F

METHODS = ("fastadapt", "higher", "loop_reference")


class MAMLSpeedConfig(Section):
    """Knobs of ``maml-speed`` (``fastadapt bench maml-speed --set key=value``)."""

    meta_batch: list[int] = Field(default_factory=lambda: [4, 32], description="tasks per meta-batch")
    way: int = Field(5, ge=2)
    shot: int = Field(1, ge=1)
    query: int = Field(15, ge=1, description="queries per class")
    channels: int = Field(64, ge=1)
    image_size: int = Field(28, ge=16)
    inner_lr: float = Field(0.4, gt=0)
    repeats: int = Field(3, ge=2, description="timed iterations per method and meta-batch")
    warmup: int = Field(1, ge=0)
    threads: int = Field(1, ge=1, description="torch threads during the measurement")
    check_tasks: int = Field(2, ge=1, description="tasks in the float64 meta-gradient agreement check")
    rtol: float = Field(1e-8, gt=0, description="max relative difference of the float64 meta-gradients")
    methods: list[str] = Field(default_factory=lambda: list(METHODS))

    @field_validator("meta_batch", "methods", mode="before")
    @classmethod
    def _wrap(cls, v: Any) -> Any:
        return [v] if isinstance(v, (int, str)) else v

    @field_validator("methods")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [m for m in v if m not in METHODS]
        if bad:
            raise ValueError(f"unknown methods {bad}; allowed: {', '.join(METHODS)}")
        return v


def _ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(logits, y)


def _fast_name(ref_name: str) -> str:
    """``conv4_classifier`` parameter name -> :class:`MetaClassifier` name (``0.body.*``, ``1.weight``)."""
    if ref_name.startswith("0."):
        return "body." + ref_name[2:]
    return {"1.weight": "head_weight", "1.bias": "head_bias"}[ref_name]


class _Problem:
    """Weights and one fixed meta-batch: support ``[B, way*shot, 1, S, S]``, query ``[B, way*query, ...]``."""

    def __init__(self, cfg: MAMLSpeedConfig, batch: int, seed: int, dtype: torch.dtype = torch.float32) -> None:
        g = torch_gen(seed, "maml-speed", batch)
        shape = (1, cfg.image_size, cfg.image_size)
        self.ref = conv4_classifier(cfg.way, shape, cfg.channels, bn="batch", generator=g).to(dtype)
        self.fast = MetaClassifier(shape, cfg.way, cfg.channels, "fixed", torch_gen(seed, "unused"),
                                   channels_last=True).to(dtype)
        fast_p = dict(self.fast.named_parameters())
        self.pairs = [(fast_p[_fast_name(n)], pr) for n, pr in self.ref.named_parameters()]
        with torch.no_grad():  # identical weights
            for pf, pr in self.pairs:
                pf.copy_(pr)
        self.fast.to(memory_format=torch.channels_last)
        n_s, n_q = cfg.way * cfg.shot, cfg.way * cfg.query
        self.sx = torch.rand(batch, n_s, *shape, generator=g).to(dtype)
        self.qx = torch.rand(batch, n_q, *shape, generator=g).to(dtype)
        self.sy = torch.arange(cfg.way).repeat_interleave(cfg.shot).expand(batch, -1).contiguous()
        self.qy = torch.arange(cfg.way).repeat_interleave(cfg.query).expand(batch, -1).contiguous()
        self.lr = cfg.inner_lr
        self.opt_fast = torch.optim.Adam(self.fast.parameters(), lr=1e-3)
        self.opt_ref = torch.optim.Adam(self.ref.parameters(), lr=1e-3)

    # each method: meta-gradient into .grad of its module's parameters (no optimizer step)
    def grad_fastadapt(self) -> None:
        p = F.params_of(self.fast)
        adapted = F.adapt(self.fast, p, self.sx, self.sy, _ce, 1, self.lr, mode="loop")
        assert isinstance(adapted, dict)
        logits = F.forward_batched(self.fast, adapted, self.qx, mode="loop")
        loss = _ce(logits.flatten(0, 1), self.qy.flatten())
        self.opt_fast.zero_grad(set_to_none=True)
        loss.backward()

    def grad_loop_reference(self) -> None:
        params = dict(self.ref.named_parameters())
        self.opt_ref.zero_grad(set_to_none=True)
        total = 0.0
        b = self.sx.shape[0]
        for t in range(b):
            loss = _ce(torch.func.functional_call(self.ref, params, (self.sx[t],)), self.sy[t])
            gs = torch.autograd.grad(loss, list(params.values()), create_graph=True)
            new = {k: v - self.lr * g for (k, v), g in zip(params.items(), gs)}
            total = total + _ce(torch.func.functional_call(self.ref, new, (self.qx[t],)), self.qy[t])
        (total / b).backward()

    def grad_higher(self) -> None:
        import higher  # optional dev dependency

        inner = torch.optim.SGD(self.ref.parameters(), lr=self.lr)
        self.opt_ref.zero_grad(set_to_none=True)
        b = self.sx.shape[0]
        for t in range(b):
            with higher.innerloop_ctx(self.ref, inner, copy_initial_weights=False) as (fmodel, diffopt):
                diffopt.step(_ce(fmodel(self.sx[t]), self.sy[t]))
                (_ce(fmodel(self.qx[t]), self.qy[t]) / b).backward()

    def step(self, method: str) -> None:
        getattr(self, f"grad_{method}")()
        (self.opt_fast if method == "fastadapt" else self.opt_ref).step()

    def forward_backward(self) -> None:
        x = torch.cat([self.sx, self.qx], 1).flatten(0, 1)
        y = torch.cat([self.sy, self.qy], 1).flatten()
        self.opt_ref.zero_grad(set_to_none=True)
        _ce(self.ref(x), y).backward()
        self.opt_ref.step()

    def grads(self, method: str) -> list[torch.Tensor]:
        """The meta-gradient, in the reference module's parameter order."""
        getattr(self, f"grad_{method}")()
        i = 0 if method == "fastadapt" else 1
        return [pair[i].grad.detach().clone() for pair in self.pairs]  # type: ignore[union-attr]


def check_meta_gradients(cfg: MAMLSpeedConfig, seed: int, methods: list[str]) -> dict[str, float]:
    """Relative difference ``||g - g_ref|| / ||g_ref||`` (all parameters concatenated) of each method's
    float64 meta-gradient from ``loop_reference``'s. (Per tensor it is not meaningful: conv biases before
    batch norm have an exactly-zero true gradient.)"""
    prob = _Problem(cfg, cfg.check_tasks, seed, dtype=torch.float64)
    ref = prob.grads("loop_reference")
    out = {}
    for m in methods:
        g = prob.grads(m)
        diff = torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(g, ref)))
        norm = torch.sqrt(sum((b**2).sum() for b in ref))
        out[m] = float(diff / norm)
    return out


def _stats(times: list[float]) -> tuple[float, float]:
    rates = np.asarray([1.0 / t for t in times])
    return float(rates.mean()), float(rates.std(ddof=1) / math.sqrt(len(rates)))


@register_benchmark("maml-speed", config=MAMLSpeedConfig)
def run_maml_speed(cfg: MAMLSpeedConfig, ctx: BenchContext) -> list[Row]:
    """Second-order MAML iterations/s on Conv4: fastadapt vs higher vs a per-task loop, plus the ceiling."""
    methods = list(cfg.methods)
    if "higher" in methods:
        try:
            import higher  # noqa: F401
        except ImportError:
            methods.remove("higher")
            ctx.notes.append("`higher` is not installed: its row is skipped (pip install higher).")
    old_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    rows: list[Row] = []
    try:
        diffs = check_meta_gradients(cfg, ctx.seed, methods)
        for m, d in diffs.items():
            if not d <= cfg.rtol:
                raise NumericError(f"{m} meta-gradient", detail=f"relative difference {d:.3g} > rtol {cfg.rtol}")
        ctx.notes.append(
            "Meta-gradient agreement in float64 with loop_reference (||g - g_ref|| / ||g_ref||, "
            f"{cfg.check_tasks} tasks): " + ", ".join(f"{m} {d:.2e}" for m, d in diffs.items()) + "."
        )
        for b in ctx.track(cfg.meta_batch, "meta-batch sizes", len(cfg.meta_batch)):
            prob = _Problem(cfg, b, ctx.seed)
            jobs: dict[str, Callable[[], None]] = {m: (lambda m=m: prob.step(m)) for m in methods}
            jobs["forward_backward"] = prob.forward_backward
            for _ in range(cfg.warmup):
                for fn in jobs.values():
                    fn()
            times: dict[str, list[float]] = {k: [] for k in jobs}
            for _ in range(cfg.repeats):
                for k, fn in jobs.items():
                    t0 = time.perf_counter()
                    fn()
                    times[k].append(time.perf_counter() - t0)
            ceil_mean, ceil_se = _stats(times["forward_backward"])
            higher_mean = _stats(times["higher"])[0] if "higher" in times else float("nan")
            for k in jobs:
                mean, se = _stats(times[k])
                extra: dict[str, Any] = {
                    "seconds_per_iteration": float(np.mean(times[k])),
                    "share_of_ceiling": mean / ceil_mean,
                    "images_per_iteration": b * (cfg.way * cfg.shot + cfg.way * cfg.query),
                }
                if k in diffs:
                    extra["rel_diff"] = diffs[k]
                if "higher" in times and k != "higher":
                    extra["speedup_vs_higher"] = mean / higher_mean
                rows.append(Row(k, {"meta_batch": int(b)}, mean, se, cfg.repeats, extra))
    finally:
        torch.set_num_threads(old_threads)
    try:
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
        ctx.notes.append(f"Machine load average (1/5/15 min) at the end: {load}; torch threads: {cfg.threads}.")
    except OSError:
        pass
    return rows
