"""Probabilistic MAML (PLATIPUS; Finn, Xu & Levine 2018, "Probabilistic Model-Agnostic Meta-Learning").

A Gaussian prior over the initial weights, ``theta ~ N(mu, sigma^2)`` (diagonal), is meta-learned so that
one gradient step from a *sample* fits a task; sampling several initial weights gives several plausible
functions for ambiguous few-shot data. Training (the paper's Algorithm 1), for each task with support
``D_tr`` and query ``D_test``:

1. variational posterior ``q = N(mu - gamma_q * grad L(mu, D_tr ∪ D_test), v_q)``;
2. ``theta ~ q`` (reparameterised), ``phi = theta - alpha * grad L(theta, D_tr)`` (``inner_steps`` steps);
3. loss ``L(phi, D_test) + kl_weight * KL(q || p)`` with the learned prior-posterior
   ``p = N(mu - gamma_p * grad L(mu, D_tr), sigma^2)``.

Meta-testing (Algorithm 2) uses only the support: ``theta ~ p``, then the inner steps. ``mu``, ``log sigma^2``,
``log v_q``, ``gamma_p``, ``gamma_q`` (one per tensor) are meta-learned by Adam through the second-order
inner steps (:mod:`fastadapt.ops.functional`, vmapped over tasks). Regression task families only here
(the sinusoid); evaluation reports the query MSE of the mean prediction over ``eval.samples`` sampled
models after ``k`` steps (method ``promaml``) and of a single sample (``promaml-1sample``).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import Field, field_validator

from fastadapt.algos.fewshot.common import FewShotAlgoConfig, torch_threads
from fastadapt.core.config import Section
from fastadapt.core.errors import CheckpointError, ConfigError, NumericError
from fastadapt.core.registry import register_algo
from fastadapt.core.seeding import get_state, set_state, torch_gen
from fastadapt.core.types import Row
from fastadapt.nn.mlp import MLP
from fastadapt.ops import functional as F


class ProMAMLConfig(FewShotAlgoConfig):
    """The ``algo:`` section of ``promaml`` (``lr``: Adam rate of every meta-parameter)."""

    meta_batch: int = Field(25, ge=1)
    hidden: list[int] = Field(default_factory=lambda: [40, 40])
    activation: Literal["relu", "tanh", "elu", "gelu", "silu"] = "relu"
    inner_steps: int = Field(1, ge=1, le=100)
    inner_lr: float = Field(0.01, gt=0, description="alpha, the inner SGD rate")
    gamma_init: float = Field(0.01, gt=0, description="initial gamma_p and gamma_q (learned, per tensor)")
    sigma_init: float = Field(1e-3, gt=0, description="initial prior / posterior standard deviation")
    kl_weight: float = Field(1e-3, ge=0)
    threads: int = Field(1, ge=0, le=256)

    @field_validator("hidden", mode="before")
    @classmethod
    def _hidden_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, int) else v


class ProMAMLEvalConfig(Section):
    """``eval:`` of ``promaml``: held-out regression tasks, adaptation steps, sampled models per task."""

    tasks: int = Field(1000, ge=1)
    adapt_steps: list[int] = Field(default_factory=lambda: [0, 1, 10])
    shots: list[int] | None = None
    query: int | None = Field(None, ge=1)
    samples: int = Field(5, ge=1, description="initial weights sampled per task (mean prediction)")
    chunk: int = Field(250, ge=1)

    @field_validator("adapt_steps", "shots", mode="before")
    @classmethod
    def _wrap(cls, v: Any) -> Any:
        return [v] if isinstance(v, int) else v



def _mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((pred - y) ** 2).mean()


def gaussian_kl(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_q, e^logvar_q) || N(mu_p, e^logvar_p)) of diagonal Gaussians, summed over all but dim 0."""
    kl = 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1.0)
    return kl.flatten(1).sum(1)


class ProMAMLLearner:
    """PLATIPUS on a few-shot regression family (module docstring); ``key_metric`` = query MSE."""

    key_metric = "loss"

    def __init__(self, cfg: ProMAMLConfig, task: Any, seed: int) -> None:
        if getattr(task, "kind", None) != "regression":
            raise ConfigError(f"task: promaml supports regression task families (got {type(task).__name__})")
        if cfg.augment != "none":
            raise ConfigError("algo.augment: applies to images; use 'none' for regression")
        self.cfg = cfg
        self.task = task
        self.model = MLP(task.in_dim, task.out_dim, tuple(cfg.hidden), cfg.activation,
                         generator=torch_gen(seed, "promaml", "init"))
        names = [n for n, _ in self.model.named_parameters()]
        shapes = {n: p.shape for n, p in self.model.named_parameters()}
        log_s2 = 2.0 * math.log(cfg.sigma_init)
        self.log_sigma2 = {n: torch.full(shapes[n], log_s2, requires_grad=True) for n in names}
        self.log_vq = {n: torch.full(shapes[n], log_s2, requires_grad=True) for n in names}
        shape1 = {n: (1,) * len(shapes[n]) for n in names}
        self.gamma_p = {n: torch.full(shape1[n], cfg.gamma_init, requires_grad=True) for n in names}
        self.gamma_q = {n: torch.full(shape1[n], cfg.gamma_init, requires_grad=True) for n in names}
        self.names = names
        extra = [*self.log_sigma2.values(), *self.log_vq.values(), *self.gamma_p.values(), *self.gamma_q.values()]
        self.opt = torch.optim.Adam(list(self.model.parameters()) + extra, lr=cfg.lr)
        self.gen = torch_gen(seed, "promaml", "train-tasks")
        self.noise = torch_gen(seed, "promaml", "noise")
        self.examples = 0
        self.iterations = 0

    def _sample(self, mean: F.Params, logvar: dict[str, torch.Tensor], gen: torch.Generator) -> F.Params:
        return {k: m + torch.exp(0.5 * logvar[k]) * torch.randn(m.shape, generator=gen) for k, m in mean.items()}

    def train_step(self, iteration: int) -> dict[str, float]:
        """One meta-update (Algorithm 1 of the paper) on a fresh meta-batch."""
        with torch_threads(self.cfg.threads):
            cfg = self.cfg
            ep, _, _ = self.task.episodes(cfg.meta_batch, self.gen)
            mu = F.params_of(self.model)
            x_all = torch.cat([ep.support_x, ep.query_x], 1)
            y_all = torch.cat([ep.support_y, ep.query_y], 1)
            mu_p = F.adapt_vmap(self.model, mu, ep.support_x, ep.support_y, _mse, 1, self.gamma_p)
            mu_q = F.adapt_vmap(self.model, mu, x_all, y_all, _mse, 1, self.gamma_q)
            assert isinstance(mu_p, dict) and isinstance(mu_q, dict)
            theta = self._sample(mu_q, self.log_vq, self.noise)
            phi = F.adapt_vmap(self.model, theta, ep.support_x, ep.support_y, _mse, cfg.inner_steps,
                               cfg.inner_lr, batched_params=True)
            assert isinstance(phi, dict)
            pred = F.forward_batched(self.model, phi, ep.query_x)
            mse = ((pred - ep.query_y) ** 2).flatten(1).mean(1)  # [T]
            kl = sum(
                gaussian_kl(mu_q[k], self.log_vq[k].expand_as(mu_q[k]), mu_p[k],
                            self.log_sigma2[k].expand_as(mu_p[k]))
                for k in self.names
            )
            loss = (mse + cfg.kl_weight * kl).mean()
            if not torch.isfinite(loss):
                raise NumericError("promaml loss", iteration)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_([p for g in self.opt.param_groups for p in g["params"]], cfg.grad_clip)
            self.opt.step()
        self.iterations += 1
        self.examples += int(x_all.shape[0] * x_all.shape[1])
        return {"loss": float(mse.mean().detach()), "kl": float(kl.mean().detach()),
                "sigma_mean": float(torch.cat([(0.5 * v.detach()).exp().flatten() for v in self.log_sigma2.values()]).mean()),
                "examples": float(self.examples)}

    # ---------------------------------------------------------------------------------- checkpoint
    def _extra(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"log_sigma2": self.log_sigma2, "log_vq": self.log_vq, "gamma_p": self.gamma_p, "gamma_q": self.gamma_q}

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": dict(self.model.state_dict()),
            "extra": {g: {k: v.detach().clone() for k, v in d.items()} for g, d in self._extra().items()},
            "optimizer": self.opt.state_dict(),
            "generators": {"tasks": get_state(self.gen), "noise": get_state(self.noise)},
            "examples": self.examples,
            "iterations": self.iterations,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(state["model"])
            with torch.no_grad():
                for g, d in self._extra().items():
                    for k, v in d.items():
                        v.copy_(state["extra"][g][k])
            self.opt.load_state_dict(state["optimizer"])
            set_state(self.gen, state["generators"]["tasks"])
            set_state(self.noise, state["generators"]["noise"])
            self.examples = int(state["examples"])
            self.iterations = int(state["iterations"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise CheckpointError(f"promaml state: {e}") from None

    # ---------------------------------------------------------------------------------- evaluation
    def evaluate(self, cfg: Section | None, seed: int) -> list[Row]:
        """Query MSE of the mean prediction over ``samples`` sampled models (and of one sample)."""
        ecfg = cfg if isinstance(cfg, ProMAMLEvalConfig) else ProMAMLEvalConfig()
        steps = sorted(set(ecfg.adapt_steps))
        rows: list[Row] = []
        with torch_threads(self.cfg.threads), torch.no_grad():
            mu = {k: v.detach() for k, v in F.params_of(self.model).items()}
            gp = {k: v.detach() for k, v in self.gamma_p.items()}
            ls2 = {k: v.detach() for k, v in self.log_sigma2.items()}
            for shot in ecfg.shots or [int(self.task.shot)]:
                ep, _, _ = self.task.split_episodes(ecfg.tasks, seed, "test", shot=shot,
                                                    query=ecfg.query or int(self.task.query))
                gen = torch_gen(seed, "promaml-eval", shot)
                preds: list[list[torch.Tensor]] = [[] for _ in steps]
                for _ in range(ecfg.samples):
                    chunks: list[list[torch.Tensor]] = [[] for _ in steps]
                    for i in range(0, ep.num_tasks, ecfg.chunk):
                        sl = slice(i, i + ecfg.chunk)
                        sx, sy, qx = ep.support_x[sl], ep.support_y[sl], ep.query_x[sl]
                        m_p = F.adapt_vmap(self.model, mu, sx, sy, _mse, 1, gp)
                        assert isinstance(m_p, dict)
                        theta = self._sample(m_p, ls2, gen)
                        traj = F.adapt_vmap(self.model, theta, sx, sy, _mse, max(steps), self.cfg.inner_lr,
                                            trajectory=True, batched_params=True)
                        assert isinstance(traj, list)
                        for j, k in enumerate(steps):
                            chunks[j].append(F.forward_batched(self.model, traj[k], qx))
                    for j in range(len(steps)):
                        preds[j].append(torch.cat(chunks[j]))
                for j, k in enumerate(steps):
                    stack = torch.stack(preds[j])  # [samples, T, Q, 1]
                    for method, pred in (("promaml", stack.mean(0)), ("promaml-1sample", stack[0])):
                        e = ((pred - ep.query_y) ** 2).flatten(1).mean(1)
                        se = float(e.std() / math.sqrt(e.numel())) if e.numel() > 1 else float("nan")
                        rows.append(Row(method, {"shot": int(shot), "adapt_steps": int(k)}, float(e.mean()), se,
                                        int(e.numel()), {"samples": ecfg.samples if method == "promaml" else 1}))
        return rows


@register_algo("promaml", family="fewshot", config=ProMAMLConfig, eval_config=ProMAMLEvalConfig)
def build_promaml(cfg: ProMAMLConfig, task: Any, seed: int) -> ProMAMLLearner:
    """Probabilistic MAML / PLATIPUS (Finn, Xu & Levine 2018): a meta-learned Gaussian prior over weights."""
    return ProMAMLLearner(cfg, task, seed)
