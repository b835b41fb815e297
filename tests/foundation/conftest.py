"""A tiny deterministic learner registered for the foundation's in-process tests (not shipped)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from pydantic import Field

from fastadapt.core.config import Section
from fastadapt.core.errors import NumericError
from fastadapt.core.registry import ALGOS, TASKS, register_algo, register_task
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
    fault_at: int = Field(0, ge=0, description="raise a NumericError (loss) at this iteration (0: never)")


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


def write_toy_config(path: Path, **train: Any) -> Path:
    cfg = {
        "name": "toy",
        "algo": {"name": "toy-sgd", "lr": 0.1},
        "task": {"name": "toy-regression", "dim": 3},
        "train": {"iterations": 12, "seed": 0, "checkpoint_every": 4, "keep_checkpoints": 2,
                  "tensorboard": False, **train},
        "eval": {"tasks": 10},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def toy_config(tmp_path: Path) -> Path:
    return write_toy_config(tmp_path / "toy.yaml")


__all__ = ["NumericError", "write_toy_config"]
