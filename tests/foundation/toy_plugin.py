"""A tiny deterministic learner for the foundation tests, loaded as a plugin (FASTADAPT_PLUGINS=toy_plugin)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from pydantic import Field

from fastadapt.core.config import Section
from fastadapt.core.registry import ALGOS, BENCHMARKS, TASKS, register_algo, register_benchmark, register_task
from fastadapt.core.seeding import get_state, set_state, torch_gen
from fastadapt.core.types import Row
from fastadapt.eval.metrics import mean_se


class ToyTaskConfig(Section):
    dim: int = Field(3, gt=0)
    noise: float = Field(0.1, ge=0)
    root: str | None = None


class ToyAlgoConfig(Section):
    lr: float = Field(0.1, gt=0)
    batch: int = Field(32, gt=0)
    momentum: float = Field(0.5, ge=0, lt=1)
    fault_at: int = Field(0, ge=0, description="make the loss NaN at this iteration (0: never)")
    sleep_s: float = Field(0.0, ge=0, description="sleep this long per step (for kill tests)")


class ToyEvalConfig(Section):
    tasks: int = Field(20, gt=0)


class ToyLearner:
    """SGD+momentum linear regression with a fresh minibatch from an explicit generator per step."""

    key_metric = "loss"

    def __init__(self, cfg: ToyAlgoConfig, task: ToyTaskConfig, seed: int) -> None:
        self.cfg, self.task = cfg, task
        self.true_w = torch.randn(task.dim, generator=torch_gen(seed, "true-w"))
        self.w = torch.zeros(task.dim, requires_grad=True)
        self.opt = torch.optim.SGD([self.w], lr=cfg.lr, momentum=cfg.momentum)
        self.gen = torch_gen(seed, "data")
        self.examples = 0

    def train_step(self, iteration: int) -> dict[str, float]:
        if self.cfg.sleep_s:
            time.sleep(self.cfg.sleep_s)
        x = torch.randn(self.cfg.batch, self.task.dim, generator=self.gen)
        y = x @ self.true_w + self.task.noise * torch.randn(self.cfg.batch, generator=self.gen)
        loss = ((x @ self.w - y) ** 2).mean()
        if self.cfg.fault_at and iteration == self.cfg.fault_at:
            loss = loss * float("nan")
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.examples += self.cfg.batch
        return {"loss": float(loss.item()), "examples": self.examples}

    def state_dict(self) -> dict[str, Any]:
        return {"w": self.w.detach(), "opt": self.opt.state_dict(), "gen": get_state(self.gen),
                "examples": self.examples}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.w.copy_(state["w"])
        self.opt.load_state_dict(state["opt"])
        set_state(self.gen, state["gen"])
        self.examples = int(state["examples"])

    def evaluate(self, cfg: ToyEvalConfig, seed: int) -> list[Row]:
        g = torch_gen(seed, "eval")
        errs = []
        for _ in range(cfg.tasks):
            x = torch.randn(16, self.task.dim, generator=g)
            errs.append(float(((x @ (self.w.detach() - self.true_w)) ** 2).mean()))
        m, se, n = mean_se(errs)
        return [Row("toy", {"adapt_steps": 0}, m, se, n)]


if "toy-regression" not in TASKS:
    register_task("toy-regression", family="fewshot", config=ToyTaskConfig)(lambda cfg: cfg)
if "toy-sgd" not in ALGOS:
    register_algo("toy-sgd", family="fewshot", config=ToyAlgoConfig, eval_config=ToyEvalConfig)(ToyLearner)


class ToyBenchConfig(Section):
    values: list[float] = Field(default_factory=lambda: [1.0, 2.0, 3.0], min_length=1)


def run_toy_bench(cfg: ToyBenchConfig, ctx: Any) -> list[Row]:
    """Two cells from fixed numbers: exercises the bench runner's files, references and --run rows."""
    m, se, n = mean_se(cfg.values)
    ctx.references.append(Row("toy (paper)", {"adapt_steps": 0}, 9.0, float("nan"), 0))
    ctx.notes.append("toy note")
    return [Row("mean", {"adapt_steps": 0}, m, se, n), Row("mean", {"adapt_steps": 1}, m + 1, se, n)]


if "toy-bench" not in BENCHMARKS:
    register_benchmark("toy-bench", config=ToyBenchConfig)(run_toy_bench)


def _install_crash_hook() -> None:
    """For crash tests in a real subprocess: ``FASTADAPT_TEST_CRASH=<where>:<iteration>`` kills this
    process with SIGKILL at a precise point of checkpoint ``iteration``: ``state`` (while the learner's
    state is being collected), ``weights`` (after the weights file is written, before state.json),
    ``rename`` (everything written, before the atomic rename) or ``after`` (right after the rename)."""
    import os
    import signal

    spec = os.environ.get("FASTADAPT_TEST_CRASH", "")
    if not spec:
        return
    where, _, it = spec.partition(":")
    target = int(it)
    import fastadapt.experiment.checkpoints as ck

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if where == "state":
        orig_state = ToyLearner.state_dict

        def state_dict(self: ToyLearner) -> dict[str, Any]:
            if self.examples == target * self.cfg.batch:
                die()
            return orig_state(self)

        ToyLearner.state_dict = state_dict  # type: ignore[method-assign]
    elif where == "weights":
        orig_save = ck.save_file

        def save_file(tensors: Any, path: str) -> None:
            orig_save(tensors, path)
            if _current[0] == target:
                die()

        ck.save_file = save_file
    elif where in ("rename", "after"):
        orig_replace = ck.os.replace

        class _OS:
            def __getattr__(self, name: str) -> Any:
                return getattr(os, name)

            @staticmethod
            def replace(src: Any, dst: Any) -> None:
                is_ckpt = str(dst).rsplit("/", 1)[-1] == f"ckpt-{target:08d}"
                if is_ckpt and where == "rename":
                    die()
                orig_replace(src, dst)
                if is_ckpt and where == "after":
                    die()

        ck.os = _OS()  # type: ignore[assignment]
    orig_step = ToyLearner.train_step

    def train_step(self: ToyLearner, iteration: int) -> dict[str, float]:
        _current[0] = iteration
        return orig_step(self, iteration)

    ToyLearner.train_step = train_step  # type: ignore[method-assign]


_current = [0]
_install_crash_hook()
