"""MAML family on N-way K-shot classification (toy data; real Omniglot runs live in benchmarks/)."""

from __future__ import annotations

import math

import pytest
import torch

from fastadapt.algos.fewshot.common import clone_tree
from fastadapt.algos.fewshot.maml import (
    ANILConfig,
    MAMLClassifier,
    MAMLConfig,
    MAMLEvalConfig,
    MetaSGDConfig,
    build_maml,
)
from fastadapt.core.errors import ConfigError
from fastadapt.tasks.fewshot.episodes import ClassDataset, FewShotTasks


def blob_task(classes: int = 16, per: int = 6, size: int = 16, way: int = 3) -> FewShotTasks:
    """Each class is a random binary pattern plus noise (tiny and learnable)."""
    g = torch.Generator().manual_seed(0)
    protos = (torch.rand(classes, 1, size, size, generator=g) > 0.7).float()
    x = protos.repeat_interleave(per, 0) + 0.3 * torch.randn(classes * per, 1, size, size, generator=g)
    labels = torch.arange(classes).repeat_interleave(per)
    ds = ClassDataset(x, labels, [f"c{i}" for i in range(classes)], [f"g{i % 4}" for i in range(classes)])
    return FewShotTasks("blobs", ds, {"train": list(range(11)), "test": list(range(11, 16))}, way=way, shot=1, query=2)


def small(**kw: object) -> MAMLConfig:
    base = dict(channels=8, meta_batch=2, inner_lr=0.1)
    base.update(kw)
    return MAMLConfig(**base)


@pytest.mark.parametrize(
    "cfg",
    [small(), small(vectorize="loop", head="fixed", first_order=True),
     MetaSGDConfig(channels=8, meta_batch=2, inner_steps=2, multi_step_loss=True), ANILConfig(channels=8, meta_batch=2)],
    ids=["maml-vmap", "fomaml-loop-fixed", "metasgd", "anil"],
)
def test_classifier_resume_gives_identical_metrics(cfg: MAMLConfig) -> None:
    task = blob_task()
    a = build_maml(cfg, task, seed=3)
    assert isinstance(a, MAMLClassifier)
    for i in range(2):
        a.train_step(i)
    snap = clone_tree(a.state_dict())
    rest_a = [a.train_step(i) for i in (2, 3)]
    b = build_maml(cfg, task, seed=3)
    b.load_state_dict(snap)
    rest_b = [b.train_step(i) for i in (2, 3)]
    assert rest_a == rest_b
    assert all(math.isfinite(v) for m in rest_a for v in m.values())
    assert rest_a[-1]["examples"] == 4 * 2 * 3 * 3


def test_classifier_vmap_equals_loop_meta_gradient() -> None:
    task = blob_task()
    ep = task.sample(3, seed=1)
    grads = {}
    for mode in ("vmap", "loop"):
        lr = build_maml(small(vectorize=mode, inner_steps=2, learn_inner_lr=True), task, seed=0)
        lr.model.double()
        for k in lr.inner_lrs:
            lr.inner_lrs[k].data = lr.inner_lrs[k].data.double()
        ep64 = type(ep)(ep.support_x.double(), ep.support_y, ep.query_x.double(), ep.query_y)
        loss, _ = lr.loss(ep64)
        grads[mode] = torch.autograd.grad(loss, list(lr.model.parameters()) + list(lr.inner_lrs.values()))
    for a, b in zip(grads["vmap"], grads["loop"]):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)


def test_classifier_learns_and_evaluates_other_ways() -> None:
    task = blob_task()
    lr = build_maml(small(meta_batch=4, inner_steps=1, lr=3e-3), task, seed=0)
    before = lr.evaluate(MAMLEvalConfig(ways=[3], shots=[1], episodes=40, query=2), seed=0)[0].mean
    for i in range(40):
        lr.train_step(i)
    rows = lr.evaluate(MAMLEvalConfig(ways=[3, 5], shots=[1], episodes=40, query=2), seed=0)
    assert [r.setting for r in rows] == [{"way": 3, "shot": 1}, {"way": 5, "shot": 1}]
    assert rows[0].mean > max(before, 1 / 3 + 0.1)
    assert rows[1].mean > 1 / 5 + 0.05
    fixed = build_maml(small(head="fixed"), task, seed=0)
    with pytest.raises(ConfigError, match="ways"):
        fixed.evaluate(MAMLEvalConfig(ways=[5], shots=[1], episodes=2, query=2), seed=0)
