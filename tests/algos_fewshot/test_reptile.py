"""Reptile: the exact meta-update, resume equality, evaluation rows (regression and classification)."""

from __future__ import annotations

import math

import pytest
import torch

from fastadapt.algos.fewshot.common import clone_tree
from fastadapt.algos.fewshot.reptile import (
    ReptileClassifier,
    ReptileConfig,
    ReptileEvalConfig,
    ReptileRegressor,
    build_reptile,
)
from fastadapt.ops import functional as F
from fastadapt.tasks.fewshot.episodes import ClassDataset, FewShotTasks
from fastadapt.tasks.fewshot.sinusoid import SinusoidConfig, SinusoidTasks


def _blobs(way: int = 3) -> FewShotTasks:
    g = torch.Generator().manual_seed(0)
    protos = (torch.rand(12, 1, 16, 16, generator=g) > 0.7).float()
    x = protos.repeat_interleave(5, 0) + 0.3 * torch.randn(60, 1, 16, 16, generator=g)
    labels = torch.arange(12).repeat_interleave(5)
    ds = ClassDataset(x, labels, [f"c{i}" for i in range(12)], [f"g{i % 3}" for i in range(12)])
    return FewShotTasks("blobs", ds, {"train": list(range(8)), "test": list(range(8, 12))}, way=way, shot=1, query=2)


def test_reptile_update_is_the_papers_interpolation() -> None:
    cfg = ReptileConfig(hidden=[8], meta_batch=3, inner_steps=4, inner_lr=0.05, lr=0.3, anneal=False)
    task = SinusoidTasks(SinusoidConfig(shot=5, query=5))
    lr = build_reptile(cfg, task, seed=0)
    assert isinstance(lr, ReptileRegressor)
    before = {k: v.detach().clone() for k, v in lr.model.named_parameters()}
    gen_copy = torch.Generator()
    gen_copy.set_state(lr.gen.get_state())
    ep, _, _ = task.episodes(3, gen_copy)
    x = torch.cat([ep.support_x, ep.query_x], 1)
    y = torch.cat([ep.support_y, ep.query_y], 1)
    mse = lambda p, t: ((p - t) ** 2).mean()  # noqa: E731
    per_task = [F.adapt_task(lr.model, before, x[i], y[i], mse, 4, 0.05) for i in range(3)]
    lr.train_step(0)
    for k, v in lr.model.named_parameters():
        mean_adapted = torch.stack([p[k] for p in per_task]).mean(0)
        expected = before[k] + 0.3 * (mean_adapted - before[k])
        assert torch.allclose(v.detach(), expected, rtol=1e-5, atol=1e-6), k


@pytest.mark.parametrize("kind", ["regression", "classification"])
def test_reptile_resume_and_rows(kind: str) -> None:
    if kind == "regression":
        task: object = SinusoidTasks(SinusoidConfig(shot=5, query=5))
        cfg = ReptileConfig(hidden=[8], meta_batch=2, inner_steps=2, outer="adam", lr=1e-3)
        ev = ReptileEvalConfig(tasks=20, adapt_steps=[0, 2])
    else:
        task = _blobs()
        cfg = ReptileConfig(channels=8, meta_batch=2, inner_steps=2, inner_lr=0.1, vectorize="loop")
        ev = ReptileEvalConfig(ways=[3], shots=[1], episodes=6, query=2)
    a = build_reptile(cfg, task, seed=1)
    assert isinstance(a, ReptileRegressor if kind == "regression" else ReptileClassifier)
    for i in range(2):
        a.train_step(i)
    snap = clone_tree(a.state_dict())
    rest_a = [a.train_step(i) for i in (2, 3)]
    b = build_reptile(cfg, task, seed=1)
    b.load_state_dict(snap)
    assert [b.train_step(i) for i in (2, 3)] == rest_a
    rows = a.evaluate(ev, seed=0)
    assert rows and all(r.method == "reptile" and math.isfinite(r.mean) for r in rows)
    if kind == "regression":
        assert [r.setting for r in rows] == [{"shot": 5, "adapt_steps": 0}, {"shot": 5, "adapt_steps": 2}]
        # eval.split is honoured: other tasks, other errors, same schema
        val = a.evaluate(ReptileEvalConfig(tasks=20, adapt_steps=[0, 2], split="val"), seed=0)
        assert [r.setting for r in val] == [r.setting for r in rows]
        assert all(v.mean != r.mean for v, r in zip(val, rows))
    else:
        assert rows[0].setting == {"way": 3, "shot": 1} and 0.0 <= rows[0].mean <= 1.0
