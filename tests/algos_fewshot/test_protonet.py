"""Prototypical Networks: resume equality, determinism, evaluation rows, learning on real Omniglot, the
omniglot-runs protocol."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fastadapt.algos.fewshot.common import FewShotEvalConfig, augment_images, clone_tree
from fastadapt.algos.fewshot.protonet import ProtoNet, ProtoNetConfig, ProtoNetEvalConfig, build_protonet
from fastadapt.core.errors import ConfigError
from fastadapt.core.registry import ALGOS
from fastadapt.tasks.fewshot.episodes import ClassDataset, FewShotTasks

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "omniglot"
HAVE_REAL = all((REAL / f"images_background_small{i}.zip").exists() for i in (1, 2))
needs_real = pytest.mark.skipif(
    not HAVE_REAL, reason=f"real Omniglot minimal splits not found at {REAL}"
)


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on the shared 2-core machine OpenMP spin-waiting makes 2 threads ~10x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def toy_task(classes: int = 16, per: int = 8, size: int = 16, way: int = 4) -> FewShotTasks:
    """Classes are random blob patterns plus noise (learnable, tiny)."""
    g = torch.Generator().manual_seed(0)
    protos = (torch.rand(classes, 1, size, size, generator=g) > 0.7).float()
    x = (protos.repeat_interleave(per, 0) + 0.3 * torch.randn(classes * per, 1, size, size, generator=g))
    labels = torch.arange(classes).repeat_interleave(per)
    ds = ClassDataset(x, labels, [f"c{i}" for i in range(classes)], [f"g{i % 4}" for i in range(classes)])
    splits = {"train": list(range(12)), "test": list(range(12, 16))}
    return FewShotTasks("toy", ds, splits, way=way, shot=1, query=2)


def small_cfg(**kw: object) -> ProtoNetConfig:
    return ProtoNetConfig(hidden=8, **kw)


def test_registered() -> None:
    entry = ALGOS.get("protonet")
    assert entry.family == "fewshot" and entry.config is ProtoNetConfig
    assert entry.eval_config is ProtoNetEvalConfig


@pytest.mark.parametrize("extra", [{}, {"augment": "affine", "meta_batch": 2, "lr_decay_every": 2}])
def test_resume_gives_identical_metrics(extra: dict) -> None:
    task = toy_task()
    a = build_protonet(small_cfg(**extra), task, seed=3)
    for i in range(3):
        a.train_step(i)
    snap = a.state_dict()
    rest_a = [a.train_step(i) for i in (3, 4)]
    b = build_protonet(small_cfg(**extra), task, seed=3)
    b.load_state_dict(clone_tree(snap))
    rest_b = [b.train_step(i) for i in (3, 4)]
    assert rest_a == rest_b
    assert rest_a[-1]["examples"] == 5 * a.cfg.meta_batch * 4 * 3


def test_same_seed_same_metrics_and_weights() -> None:
    task = toy_task()
    a, b = build_protonet(small_cfg(), task, 1), build_protonet(small_cfg(), task, 1)
    assert [a.train_step(i) for i in range(2)] == [b.train_step(i) for i in range(2)]
    c = build_protonet(small_cfg(), task, 2)
    assert c.train_step(0) != build_protonet(small_cfg(), task, 1).train_step(0)


def test_evaluate_rows_schema() -> None:
    task = toy_task()
    learner = build_protonet(small_cfg(), task, 0)
    rows = learner.evaluate(FewShotEvalConfig(ways=[2, 4], shots=[1, 3], query=2, episodes=10, batch=4), 5)
    assert [r.setting for r in rows] == [
        {"way": 2, "shot": 1}, {"way": 2, "shot": 3}, {"way": 4, "shot": 1}, {"way": 4, "shot": 3}
    ]
    for r in rows:
        assert 0.0 <= r.mean <= 1.0 and r.n == 10 and r.se >= 0
        lo, hi = r.extra["ci95"]
        assert lo <= r.mean <= hi
    again = learner.evaluate(FewShotEvalConfig(ways=[2, 4], shots=[1, 3], query=2, episodes=10, batch=3), 5)
    assert [r.mean for r in rows] == [r.mean for r in again]  # same seed, any batch size
    tta = learner.evaluate(ProtoNetEvalConfig(ways=[4], shots=[1], query=2, episodes=4, tta=2,
                                              transductive=2), 0)
    assert 0.0 <= tta[0].mean <= 1.0


def test_wrong_task_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="protonet needs a few-shot classification task"):
        build_protonet(small_cfg(), object(), 0)


def test_augmentations_keep_shape_and_are_seeded() -> None:
    x = torch.rand(2, 3, 1, 12, 12)
    for mode in ("shift", "affine"):
        a = augment_images(x, mode, 2.0, torch.Generator().manual_seed(1))
        b = augment_images(x, mode, 2.0, torch.Generator().manual_seed(1))
        assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
    # a pure shift moves ink without changing it (up to what falls off the border)
    x = torch.zeros(1, 1, 12, 12)
    x[0, 0, 5, 5] = 1.0
    s = augment_images(x, "shift", 2.0, torch.Generator().manual_seed(2))
    assert float(s.sum()) == 1.0


@needs_real
def test_short_training_beats_the_untrained_net_on_held_out_alphabets() -> None:
    from fastadapt.tasks.fewshot.omniglot import OmniglotConfig, build_omniglot

    task = build_omniglot(OmniglotConfig(root=str(REAL), test_alphabets=["Korean", "Sanskrit"], way=20,
                                         shot=1, query=2))
    learner = build_protonet(ProtoNetConfig(hidden=16), task, 0)
    ecfg = FewShotEvalConfig(ways=[5], shots=[1], query=5, episodes=60, batch=30)
    before = learner.evaluate(ecfg, 11)[0].mean
    for i in range(40):
        learner.train_step(i)
    after = learner.evaluate(ecfg, 11)[0].mean
    assert after > 0.2 + 0.2  # chance is 0.2
    assert after > before + 0.05, (before, after)


@needs_real
def test_omniglot_runs_protocol(tmp_path: Path) -> None:
    from fastadapt.tasks.fewshot.omniglot import OmniglotConfig, build_omniglot, scan_omniglot
    from fastadapt.tasks.fewshot.omniglot_runs import build_runs

    images = scan_omniglot(REAL, ["images_background_small1", "images_background_small2"])
    build_runs(images, tmp_path / "runs", ["Korean", "Sanskrit"], n_runs=4, seed=0)
    task = build_omniglot(OmniglotConfig(root=str(REAL), test_alphabets=["Korean", "Sanskrit"]))
    learner = build_protonet(ProtoNetConfig(hidden=16), task, 0)
    rows = learner.evaluate(ProtoNetEvalConfig(omniglot_runs=str(tmp_path / "runs")), 0)
    assert len(rows) == 1
    r = rows[0]
    assert r.setting == {"way": 20, "shot": 1, "protocol": "omniglot-runs"}
    assert r.n == 4 and r.extra["items"] == 80 and len(r.extra["per_run"]) == 4
    assert r.mean == pytest.approx(sum(r.extra["per_run"]) / 4)
    assert r.mean > 0.05 * 2  # well above 20-way chance even untrained


def test_balanced_assignment_is_the_best_balanced_labelling() -> None:
    from itertools import permutations

    from fastadapt.algos.fewshot.common import balanced_assignment, decide

    g = torch.Generator().manual_seed(3)
    s = torch.randn(5, 6, 3, generator=g)  # 5 tasks, 6 queries, 3-way: 2 queries per class
    pred = balanced_assignment(s)
    for t in range(5):
        assert torch.bincount(pred[t], minlength=3).tolist() == [2, 2, 2]
        best = max(permutations([0, 0, 1, 1, 2, 2]),
                   key=lambda lab: float(s[t, torch.arange(6), torch.tensor(lab)].sum()))
        got = float(s[t, torch.arange(6), pred[t]].sum())
        assert got == pytest.approx(float(s[t, torch.arange(6), torch.tensor(best)].sum()), abs=1e-9)
    # a case where the argmax labels collide: balanced moves the weaker claim to its second choice
    s2 = torch.tensor([[[5.0, 4.0], [6.0, 1.0]]])
    assert decide(s2, "argmax").tolist() == [[0, 0]]
    assert decide(s2, "balanced").tolist() == [[1, 0]]
    with pytest.raises(ConfigError, match="multiple of way"):
        balanced_assignment(torch.zeros(1, 5, 2))
    with pytest.raises(ConfigError, match="unknown rule"):
        decide(s2, "greedy")


def test_balanced_assignment_in_the_protocol_rows() -> None:
    task = toy_task()
    learner = build_protonet(small_cfg(), task, 0)
    cfg = dict(ways=[4], shots=[1], query=2, episodes=6, batch=3)
    plain = learner.evaluate(FewShotEvalConfig(**cfg), 1)[0]
    bal = learner.evaluate(FewShotEvalConfig(assignment="balanced", **cfg), 1)[0]
    assert plain.extra["assignment"] == "argmax" and bal.extra["assignment"] == "balanced"
    assert 0.0 <= bal.mean <= 1.0
    with pytest.raises(ValueError, match="assignment"):
        FewShotEvalConfig(assignment="hungry")


@needs_real
def test_runs_are_read_like_the_task_images(tmp_path: Path) -> None:
    """A task built with ``crop`` evaluates the runs on cropped images too (and only then)."""
    from fastadapt.tasks.fewshot.omniglot import OmniglotConfig, build_omniglot, scan_omniglot
    from fastadapt.tasks.fewshot.omniglot_runs import build_runs, load_runs

    images = scan_omniglot(REAL, ["images_background_small1", "images_background_small2"])
    folder = build_runs(images, tmp_path / "runs", ["Korean"], n_runs=2, seed=0)
    for crop in (False, True):
        task = build_omniglot(OmniglotConfig(root=str(REAL), test_alphabets=["Korean", "Sanskrit"], crop=crop))
        assert task.info["crop"] is crop
        learner = build_protonet(ProtoNetConfig(hidden=8), task, 0)
        seen = []

        def spy(ep, _seen=seen):  # noqa: ANN001, ANN202
            _seen.append(ep)
            return torch.zeros(ep.query_y.shape + (20,))

        learner.evaluate_runs(str(folder), predict=spy)
        assert torch.equal(seen[0].support_x, load_runs(folder, 28, crop=crop).episode.support_x)
        assert not torch.equal(seen[0].support_x, load_runs(folder, 28, crop=not crop).episode.support_x)
