"""Meta-LSTM (Ravi & Larochelle 2017): preprocessing, update rule, meta-gradient without second derivatives,
batch-norm modes, resume equality, evaluation rows, learning on held-out digits."""

from __future__ import annotations

import math

import pytest
import torch

from fastadapt.algos.fewshot.common import clone_tree
from fastadapt.algos.fewshot.meta_lstm import (
    MetaLSTM,
    MetaLSTMConfig,
    MetaLSTMEvalConfig,
    build_meta_lstm,
    preprocess,
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


def toy_task(classes: int = 12, per: int = 8, size: int = 16, way: int = 3) -> FewShotTasks:
    g = torch.Generator().manual_seed(0)
    protos = (torch.rand(classes, 1, size, size, generator=g) > 0.7).float()
    x = protos.repeat_interleave(per, 0) + 0.3 * torch.randn(classes * per, 1, size, size, generator=g)
    labels = torch.arange(classes).repeat_interleave(per)
    ds = ClassDataset(x, labels, [f"c{i}" for i in range(classes)], [f"g{i % 3}" for i in range(classes)])
    return FewShotTasks("toy", ds, {"train": list(range(8)), "test": list(range(8, 12))}, way=way, shot=1, query=2)


def small(**kw: object) -> MetaLSTMConfig:
    base: dict[str, object] = {"channels": 4, "hidden": 5, "inner_steps": 2, "meta_batch": 2}
    base.update(kw)
    return MetaLSTMConfig(**base)


def test_registered() -> None:
    e = ALGOS.get("meta-lstm")
    assert e.family == "fewshot" and e.config is MetaLSTMConfig and e.eval_config is MetaLSTMEvalConfig


def test_preprocessing_matches_andrychowicz() -> None:
    x = torch.tensor([2.0, -0.5, 1e-6, -1e-6, 0.0])
    out = preprocess(x, 10.0)
    assert out.shape == (5, 2)
    assert out[0].tolist() == pytest.approx([math.log(2.0) / 10, 1.0])
    assert out[1].tolist() == pytest.approx([math.log(0.5) / 10, -1.0])
    # |x| < e^-10 ~ 4.5e-5: (-1, e^10 x)
    assert out[2].tolist() == pytest.approx([-1.0, math.exp(10) * 1e-6])
    assert out[3].tolist() == pytest.approx([-1.0, -math.exp(10) * 1e-6])
    assert out[4].tolist() == [-1.0, 0.0]


def test_untrained_update_is_near_sgd_and_follows_the_cell_rule() -> None:
    """With tiny meta-weights, f ~ sigmoid(b_F) and i ~ sigmoid(b_I): theta_1 ~ f theta_0 - i grad."""
    task = toy_task()
    learner = build_meta_lstm(small(init_scale=0.0, inner_steps=1), task, 0)
    ep = task.sample(2, seed=1)
    theta, _ = learner.adapt(ep.support_x, ep.support_y, 3, 1, meta_graph=False)
    theta0 = learner.net.learner.expand_head(learner.net.theta0.detach(), 3)
    th = theta0.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(learner.net.learner.forward(th, ep.support_x[0], 3), ep.support_y[0])
    (g,) = torch.autograd.grad(loss, th)
    f, i = torch.sigmoid(torch.tensor(4.5)), torch.sigmoid(torch.tensor(-4.5))
    assert torch.allclose(theta[0], f * theta0 - i * g, atol=1e-6)


def test_meta_gradient_ignores_second_derivatives() -> None:
    """The learner's gradient is an input (constant): d theta_1 / d theta_0 = f (+ gate terms), so with
    zero gate weights on theta the meta-gradient w.r.t. theta_0 is exactly f * dL/dtheta_1."""
    task = toy_task()
    learner = build_meta_lstm(small(init_scale=0.0, inner_steps=1, meta_batch=1), task, 0)
    ep = task.sample(1, seed=2)
    theta, _ = learner.adapt(ep.support_x, ep.support_y, 3, 1, meta_graph=True)
    th1 = theta[0].detach().requires_grad_(True)
    q = torch.nn.functional.cross_entropy(learner.net.learner.forward(th1, ep.query_x[0], 3), ep.query_y[0])
    (g1,) = torch.autograd.grad(q, th1)
    q2 = torch.nn.functional.cross_entropy(learner.net.learner.forward(theta[0], ep.query_x[0], 3), ep.query_y[0])
    (g0,) = torch.autograd.grad(q2, learner.net.theta0)
    f = torch.sigmoid(torch.tensor(4.5))
    body = learner.net.learner.body_size
    assert torch.allclose(g0[:body], f * g1[:body], atol=1e-6)
    # the shared head row receives the sum over the way copies
    d = learner.net.learner.feat_dim
    head = (f * g1[body: body + 3 * d]).view(3, d).sum(0)
    assert torch.allclose(g0[body: body + d], head, atol=1e-6)


def test_batchnorm_modes_differ_and_support_mode_ignores_other_queries() -> None:
    task = toy_task()
    learner = build_meta_lstm(small(), task, 0)
    ep = task.sample(1, seed=3)
    a = learner.evaluate(MetaLSTMEvalConfig(ways=[3], shots=[1], query=2, episodes=4), 0)
    b = learner.evaluate(MetaLSTMEvalConfig(ways=[3], shots=[1], query=2, episodes=4, bn_test="batch"), 0)
    assert a[0].extra["bn_test"] == "support" and b[0].extra["bn_test"] == "batch"
    # "support": a query's scores do not depend on the other queries of the episode
    learner._bn_test = "support"
    full = learner.predict(ep)
    from fastadapt.core.types import FewShotEpisode

    one = learner.predict(FewShotEpisode(ep.support_x, ep.support_y, ep.query_x[:, :1], ep.query_y[:, :1]))
    assert torch.allclose(full[:, :1], one, atol=1e-5)
    learner._bn_test = None


@pytest.mark.parametrize("extra", [{}, {"augment": "shift", "lr_decay_every": 2}])
def test_resume_gives_identical_metrics(extra: dict) -> None:
    task = toy_task()
    a = build_meta_lstm(small(**extra), task, seed=3)
    for i in range(3):
        a.train_step(i)
    snap = a.state_dict()
    rest_a = [a.train_step(i) for i in (3, 4)]
    b = build_meta_lstm(small(**extra), task, seed=3)
    b.load_state_dict(clone_tree(snap))
    rest_b = [b.train_step(i) for i in (3, 4)]
    assert rest_a == rest_b
    assert rest_a[-1]["examples"] == 5 * 2 * 3 * 3


def test_evaluate_rows_any_way() -> None:
    task = toy_task()
    learner = build_meta_lstm(small(), task, 0)
    rows = learner.evaluate(MetaLSTMEvalConfig(ways=[2, 4], shots=[1, 2], query=2, episodes=6, batch=4), 5)
    assert [r.setting for r in rows] == [
        {"way": 2, "shot": 1}, {"way": 2, "shot": 2}, {"way": 4, "shot": 1}, {"way": 4, "shot": 2}
    ]
    for r in rows:
        assert 0.0 <= r.mean <= 1.0 and r.n == 6
        lo, hi = r.extra["ci95"]
        assert lo <= r.mean <= hi
    again = learner.evaluate(MetaLSTMEvalConfig(ways=[2, 4], shots=[1, 2], query=2, episodes=6, batch=3), 5)
    assert [r.mean for r in rows] == pytest.approx([r.mean for r in again], abs=1e-9)


def test_wrong_task_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="meta-lstm needs a few-shot classification task"):
        build_meta_lstm(small(), object(), 0)


def test_learns_on_held_out_digits() -> None:
    """A few seconds of meta-training lifts 5-way 5-shot accuracy on unseen digits 5-9 well above chance (0.2)
    and above the untrained meta-learner (which already acts like SGD from a random init). A larger
    initial input gate (``input_bias=-2``, rate ~0.12) than the paper's shortens the initial plateau."""
    pytest.importorskip("sklearn")
    from fastadapt.tasks.fewshot.digits import DigitsConfig, build_digits

    task = build_digits(DigitsConfig(way=5, shot=5, query=5))
    cfg = MetaLSTMConfig(channels=8, inner_steps=3, meta_batch=2, lr=1.5e-3, input_bias=-2.0)
    learner: MetaLSTM = build_meta_lstm(cfg, task, 0)
    ecfg = MetaLSTMEvalConfig(ways=[5], shots=[5], query=5, episodes=60, batch=30)
    before = learner.evaluate(ecfg, 11)[0].mean
    for i in range(20):
        learner.train_step(i)
    after = learner.evaluate(ecfg, 11)[0].mean
    assert after > 0.2 * 2, (before, after)
    assert after > before + 0.08, (before, after)
