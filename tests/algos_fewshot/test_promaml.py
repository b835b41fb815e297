"""Probabilistic MAML (PLATIPUS): KL formula, resume equality, evaluation rows."""

from __future__ import annotations

import math

import torch

from fastadapt.algos.fewshot.common import clone_tree
from fastadapt.algos.fewshot.promaml import ProMAMLConfig, ProMAMLEvalConfig, build_promaml, gaussian_kl
from fastadapt.tasks.fewshot.sinusoid import SinusoidConfig, SinusoidTasks


def test_gaussian_kl_matches_torch_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    mq, mp = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    lq, lp = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    q = torch.distributions.Normal(mq, (0.5 * lq).exp())
    p = torch.distributions.Normal(mp, (0.5 * lp).exp())
    ref = torch.distributions.kl_divergence(q, p).sum(1)
    assert torch.allclose(gaussian_kl(mq, lq, mp, lp), ref, atol=1e-5)
    assert torch.allclose(gaussian_kl(mq, lq, mq, lq), torch.zeros(3), atol=1e-6)


def test_promaml_resume_and_rows() -> None:
    task = SinusoidTasks(SinusoidConfig(shot=5, query=5))
    cfg = ProMAMLConfig(hidden=[8], meta_batch=3, inner_steps=2, grad_clip=5.0)
    a = build_promaml(cfg, task, seed=2)
    for i in range(2):
        a.train_step(i)
    snap = clone_tree(a.state_dict())
    rest_a = [a.train_step(i) for i in (2, 3)]
    b = build_promaml(cfg, task, seed=2)
    b.load_state_dict(snap)
    assert [b.train_step(i) for i in (2, 3)] == rest_a
    assert all(math.isfinite(v) for m in rest_a for v in m.values())
    rows = a.evaluate(ProMAMLEvalConfig(tasks=12, adapt_steps=[0, 1], samples=2, chunk=5), seed=0)
    assert {(r.method, r.setting["adapt_steps"]) for r in rows} == {
        (m, k) for m in ("promaml", "promaml-1sample") for k in (0, 1)
    }
    assert all(r.n == 12 and math.isfinite(r.mean) for r in rows)
    assert [r.mean for r in rows] == [r.mean for r in a.evaluate(ProMAMLEvalConfig(tasks=12, adapt_steps=[0, 1], samples=2, chunk=5), seed=0)]
