"""LEO (Rusu et al. 2019): pretraining phase then frozen backbone, penalties, relation-net encoding,
second-order inner loop, resume equality across the phase switch, evaluation rows, learning on digits."""

from __future__ import annotations

import pytest
import torch

from fastadapt.algos.fewshot.common import clone_tree
from fastadapt.algos.fewshot.leo import (
    LEO,
    LEOConfig,
    LEOEvalConfig,
    build_leo,
    kl_to_standard_normal,
    orthogonality,
)
from fastadapt.core.errors import ConfigError
from fastadapt.core.registry import ALGOS
from fastadapt.tasks.fewshot.episodes import ClassDataset, FewShotTasks


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def toy_task(classes: int = 12, per: int = 8, size: int = 16, way: int = 3, rotations: bool = True) -> FewShotTasks:
    g = torch.Generator().manual_seed(0)
    protos = (torch.rand(classes, 1, size, size, generator=g) > 0.7).float()
    x = protos.repeat_interleave(per, 0) + 0.3 * torch.randn(classes * per, 1, size, size, generator=g)
    labels = torch.arange(classes).repeat_interleave(per)
    ds = ClassDataset(x, labels, [f"c{i}" for i in range(classes)], [f"g{i % 3}" for i in range(classes)])
    return FewShotTasks("toy", ds, {"train": list(range(8)), "test": list(range(8, 12))}, way=way, shot=1,
                        query=2, rotations=rotations)


def small(**kw: object) -> LEOConfig:
    base: dict[str, object] = {"hidden": 8, "pretrain_steps": 2, "pretrain_batch": 8, "latent": 4,
                               "encoder_hidden": 4, "inner_steps": 2, "finetune_steps": 2, "meta_batch": 2}
    base.update(kw)
    return LEOConfig(**base)


def test_registered() -> None:
    e = ALGOS.get("leo")
    assert e.family == "fewshot" and e.config is LEOConfig and e.eval_config is LEOEvalConfig


def test_penalties() -> None:
    mu, sigma = torch.zeros(2, 3), torch.ones(2, 3)
    assert torch.allclose(kl_to_standard_normal(mu, sigma), torch.zeros(2))
    kl = kl_to_standard_normal(torch.tensor([1.0]), torch.tensor([2.0]))
    assert float(kl) == pytest.approx(0.5 * (1 + 4 - 1 - 2 * torch.log(torch.tensor(2.0)).item()))
    q, _ = torch.linalg.qr(torch.randn(6, 3, generator=torch.Generator().manual_seed(0)))
    assert float(orthogonality(q)) == pytest.approx(0.0, abs=1e-10)
    same = torch.ones(6, 2)
    assert float(orthogonality(same)) == pytest.approx(0.5)  # off-diagonal correlations 1, mean over 4


def test_pretraining_labels_cover_rotated_train_classes_only() -> None:
    task = toy_task()
    leo = build_leo(small(pretrain_batch=400), task, 0)
    assert leo.net.pretrain_head.out_features == 8 * 4
    x, y = leo.pretrain_batch()
    assert x.shape == (400, 1, 16, 16) and int(y.min()) >= 0 and int(y.max()) < 32
    assert len(set(y.tolist())) > 20
    train_items = set(leo._pre_items.tolist())
    assert train_items == {i for c in task.classes("train") for i in task.dataset.items_of(c).tolist()}


def test_phases_pretrain_then_frozen_backbone() -> None:
    task = toy_task()
    leo = build_leo(small(), task, 0)
    enc0 = leo.net.encoder.weight.detach().clone()
    m0 = leo.train_step(0)
    assert m0["phase"] == 0.0
    assert torch.equal(leo.net.encoder.weight, enc0)  # LEO weights untouched while pretraining
    leo.train_step(1)
    back = {k: v.detach().clone() for k, v in leo.net.backbone.state_dict().items()}
    m2 = leo.train_step(2)
    assert m2["phase"] == 1.0 and {"kl", "orthogonality", "query_ce", "inner_lr"} <= set(m2)
    for k, v in leo.net.backbone.state_dict().items():
        assert torch.equal(v, back[k]), k  # frozen: neither weights nor running stats change
    assert not torch.equal(leo.net.encoder.weight, enc0)


def test_relation_encoding_is_permutation_equivariant_over_classes() -> None:
    task = toy_task()
    leo = build_leo(small(), task, 0)
    zs = torch.randn(1, 6, leo.net.embed_dim)
    ys = torch.tensor([[0, 0, 1, 1, 2, 2]])
    mu, sigma = leo.encode(zs, ys, 3)
    perm = torch.tensor([2, 3, 4, 5, 0, 1])  # classes (0,1,2) -> support of (1,2,0)
    mu2, sigma2 = leo.encode(zs[:, perm], ys, 3)
    assert torch.allclose(mu2, mu[:, [1, 2, 0]], atol=1e-6) and torch.allclose(sigma2, sigma[:, [1, 2, 0]], atol=1e-6)
    assert bool((sigma > 0).all())


def test_inner_loop_is_second_order_and_reduces_support_loss() -> None:
    task = toy_task()
    leo = build_leo(small(dropout=0.0, inner_steps=3, finetune_steps=0), task, 0)
    zs = torch.randn(2, 3, leo.net.embed_dim)
    ys = torch.arange(3).expand(2, 3)
    w, parts = leo.adapt(zs, ys, 3, training=False)
    w0 = leo.decode(parts["mu"], sample=False)
    assert float(leo._ce(w.detach(), zs, ys)) < float(leo._ce(w0.detach(), zs, ys))
    # meta-training graph reaches the learned inner rate through the latent steps
    w, _ = leo.adapt(zs, ys, 3, training=True)
    (g,) = torch.autograd.grad(leo._ce(w, zs, ys), leo.net.inner_lr)
    assert torch.isfinite(g) and float(g.abs()) > 0


@pytest.mark.parametrize("extra", [{}, {"lr_decay_every": 1, "augment": "shift"}])
def test_resume_gives_identical_metrics_across_the_phase_switch(extra: dict) -> None:
    task = toy_task()
    a = build_leo(small(pretrain_steps=4, **extra), task, seed=3)
    for i in range(3):
        a.train_step(i)
    snap = a.state_dict()
    rest_a = [a.train_step(i) for i in (3, 4, 5)]
    assert [m["phase"] for m in rest_a] == [0.0, 1.0, 1.0]
    b = build_leo(small(pretrain_steps=4, **extra), task, seed=3)
    b.load_state_dict(clone_tree(snap))
    rest_b = [b.train_step(i) for i in (3, 4, 5)]
    assert rest_a == rest_b


def test_evaluate_rows_any_way_and_deterministic() -> None:
    task = toy_task()
    leo = build_leo(small(), task, 0)
    for i in range(3):
        leo.train_step(i)
    ecfg = LEOEvalConfig(ways=[2, 4], shots=[1, 2], query=2, episodes=6, batch=4)
    rows = leo.evaluate(ecfg, 5)
    assert [r.setting for r in rows] == [
        {"way": 2, "shot": 1}, {"way": 2, "shot": 2}, {"way": 4, "shot": 1}, {"way": 4, "shot": 2}
    ]
    for r in rows:
        assert 0.0 <= r.mean <= 1.0 and r.n == 6 and r.extra["pretrained"] is True
    again = leo.evaluate(ecfg.model_copy(update={"batch": 3}), 5)
    assert [r.mean for r in rows] == pytest.approx([r.mean for r in again], abs=1e-9)
    # evaluation does not disturb training randomness
    c = build_leo(small(), task, 0)
    for i in range(3):
        c.train_step(i)
    assert leo.train_step(3) == c.train_step(3)


def test_wrong_task_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="leo needs a few-shot classification task"):
        build_leo(small(), object(), 0)


def test_learns_on_held_out_digits() -> None:
    """Pretraining + LEO for a few seconds beats chance (0.2) clearly on unseen digits 5-9, 5-way 1-shot."""
    pytest.importorskip("sklearn")
    from fastadapt.tasks.fewshot.digits import DigitsConfig, build_digits

    task = build_digits(DigitsConfig(way=5, shot=1, query=5))
    leo: LEO = build_leo(LEOConfig(hidden=16, pretrain_steps=60, pretrain_batch=64, latent=8, encoder_hidden=8,
                                   meta_batch=4), task, 0)
    ecfg = LEOEvalConfig(ways=[5], shots=[1], query=5, episodes=60, batch=30)
    before = leo.evaluate(ecfg, 11)[0].mean
    for i in range(100):
        leo.train_step(i)
    after = leo.evaluate(ecfg, 11)[0].mean
    assert after > 0.2 + 0.15, (before, after)
    assert after > before + 0.1, (before, after)
