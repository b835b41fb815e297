"""Meta Networks: gradient preprocessing, layer augmentation, resume equality, determinism, evaluation rows,
learning on held-out digits, the omniglot-runs protocol."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from fastadapt.algos.fewshot.common import FewShotEvalConfig, clone_tree
from fastadapt.algos.fewshot.metanet import MetaNet, MetaNetConfig, build_metanet, preprocess_grad
from fastadapt.core.errors import ConfigError
from fastadapt.core.registry import ALGOS
from fastadapt.tasks.fewshot.episodes import ClassDataset, FewShotTasks

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "omniglot"
HAVE_REAL = all((REAL / f"images_background_small{i}.zip").exists() for i in (1, 2))


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def toy_task(classes: int = 16, per: int = 8, size: int = 16, way: int = 4) -> FewShotTasks:
    """Random blob patterns plus noise (learnable, tiny)."""
    g = torch.Generator().manual_seed(0)
    protos = (torch.rand(classes, 1, size, size, generator=g) > 0.7).float()
    x = protos.repeat_interleave(per, 0) + 0.3 * torch.randn(classes * per, 1, size, size, generator=g)
    labels = torch.arange(classes).repeat_interleave(per)
    ds = ClassDataset(x, labels, [f"c{i}" for i in range(classes)], [f"g{i % 4}" for i in range(classes)])
    return FewShotTasks("toy", ds, {"train": list(range(12)), "test": list(range(12, 16))}, way=way, shot=1,
                        query=2)


def small(**kw: object) -> MetaNetConfig:
    return MetaNetConfig(**{"hidden": 8, "base_hidden": 8, "rep_dim": 8, "gen_hidden": 6, **kw})


def test_registered() -> None:
    entry = ALGOS.get("metanet")
    assert entry.family == "fewshot" and entry.config is MetaNetConfig


def test_preprocess_grad_matches_andrychowicz() -> None:
    g = torch.tensor([1.0, -1e-2, 1e-6, -1e-6, 0.0])
    out = preprocess_grad(g, p=10.0)
    assert out.shape == (5, 2)
    assert out[0].tolist() == pytest.approx([0.0, 1.0])
    assert out[1].tolist() == pytest.approx([math.log(1e-2) / 10, -1.0])
    assert out[2].tolist() == pytest.approx([-1.0, 1e-6 * math.exp(10)])  # |g| < e^-10 ~ 4.5e-5
    assert out[3].tolist() == pytest.approx([-1.0, -1e-6 * math.exp(10)])
    assert out[4].tolist() == [-1.0, 0.0]


def test_zero_fast_weights_give_the_slow_base_learner() -> None:
    """Layer augmentation: with m and d outputting 0, the logits are exactly the slow head's."""
    task = toy_task()
    learner = build_metanet(small(), task, 0)
    mdl = learner.model
    with torch.no_grad():
        for gen in (mdl.m, mdl.d):
            gen.net[-1].weight.zero_()
            gen.net[-1].bias.zero_()
    ep = task.sample(3, seed=1, split="test")
    slots = torch.arange(4).expand(3, -1)
    mdl.eval()
    with torch.no_grad():
        got = learner.logits(ep, slots)
        f = mdl.trunk(ep.query_x)
        want = mdl.base2(torch.relu(mdl.base1(f)))[..., :4]
    torch.testing.assert_close(got, want)
    # and non-zero fast weights change them
    learner2 = build_metanet(small(), task, 0)
    learner2.model.eval()
    with torch.no_grad():
        assert not torch.allclose(learner2.logits(ep, slots), want)


@pytest.mark.parametrize("extra", [{}, {"max_way": 6, "second_order": True, "meta_batch": 2, "pair_offsets": 2}])
def test_resume_gives_identical_metrics(extra: dict) -> None:
    task = toy_task()
    a = build_metanet(small(**extra), task, seed=3)
    for i in range(3):
        a.train_step(i)
    snap = a.state_dict()
    rest_a = [a.train_step(i) for i in (3, 4)]
    b = build_metanet(small(**extra), task, seed=3)
    b.load_state_dict(clone_tree(snap))
    rest_b = [b.train_step(i) for i in (3, 4)]
    assert rest_a == rest_b
    assert all(math.isfinite(v) for m in rest_a for v in m.values())


def test_same_seed_same_metrics() -> None:
    task = toy_task()
    a, b = build_metanet(small(), task, 1), build_metanet(small(), task, 1)
    assert [a.train_step(i) for i in range(2)] == [b.train_step(i) for i in range(2)]
    assert build_metanet(small(), task, 2).train_step(0) != build_metanet(small(), task, 1).train_step(0)


def test_evaluate_rows_schema_and_way_limit() -> None:
    task = toy_task()
    learner = build_metanet(small(max_way=4), task, 0)
    ecfg = FewShotEvalConfig(ways=[2, 4], shots=[1, 3], query=2, episodes=8, batch=4)
    rows = learner.evaluate(ecfg, 5)
    assert [r.setting for r in rows] == [
        {"way": 2, "shot": 1}, {"way": 2, "shot": 3}, {"way": 4, "shot": 1}, {"way": 4, "shot": 3}
    ]
    for r in rows:
        assert 0.0 <= r.mean <= 1.0 and r.n == 8
        lo, hi = r.extra["ci95"]
        assert lo <= r.mean <= hi
    again = learner.evaluate(ecfg.model_copy(update={"batch": 3}), 5)
    assert [r.mean for r in rows] == pytest.approx([r.mean for r in again], abs=1e-9)
    with pytest.raises(ConfigError, match="max_way"):
        build_metanet(small(max_way=3), task, 0)
    big = toy_task(classes=20, way=4)
    big.splits = {"train": list(range(12)), "val": [], "test": list(range(12, 20))}
    with pytest.raises(ConfigError, match="cannot score 5-way"):
        build_metanet(small(max_way=4), big, 0).evaluate(FewShotEvalConfig(ways=[5], shots=[1], query=2, episodes=2), 0)


def test_wrong_task_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="metanet needs a few-shot classification task"):
        build_metanet(small(), object(), 0)


def test_learns_on_held_out_digits() -> None:
    """A few seconds of meta-training beats chance (0.2) clearly on unseen digits 5-9, 5-way 1-shot."""
    pytest.importorskip("sklearn")
    from fastadapt.tasks.fewshot.digits import DigitsConfig, build_digits

    task = build_digits(DigitsConfig(way=5, shot=1, query=4))
    learner: MetaNet = build_metanet(MetaNetConfig(hidden=32, meta_batch=8), task, 0)
    ecfg = FewShotEvalConfig(ways=[5], shots=[1], query=5, episodes=60, batch=30)
    before = learner.evaluate(ecfg, 11)[0].mean
    for i in range(40):
        learner.train_step(i)
    after = learner.evaluate(ecfg, 11)[0].mean
    assert after > 0.2 + 0.15, (before, after)
    assert after > before + 0.1, (before, after)


@pytest.mark.skipif(not HAVE_REAL, reason=f"real Omniglot minimal splits not found at {REAL}")
def test_omniglot_runs_protocol(tmp_path: Path) -> None:
    from fastadapt.tasks.fewshot.omniglot import OmniglotConfig, build_omniglot, scan_omniglot
    from fastadapt.tasks.fewshot.omniglot_runs import build_runs

    images = scan_omniglot(REAL, ["images_background_small1", "images_background_small2"])
    build_runs(images, tmp_path / "runs", ["Korean", "Sanskrit"], n_runs=2, seed=0)
    task = build_omniglot(OmniglotConfig(root=str(REAL), test_alphabets=["Korean", "Sanskrit"]))
    learner = build_metanet(small(max_way=20), task, 0)
    (r,) = learner.evaluate(FewShotEvalConfig(omniglot_runs=str(tmp_path / "runs")), 0)
    assert r.setting == {"way": 20, "shot": 1, "protocol": "omniglot-runs"}
    assert r.n == 2 and r.extra["items"] == 40 and 0.0 <= r.mean <= 1.0
