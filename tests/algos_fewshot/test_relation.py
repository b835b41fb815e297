"""Relation Networks: the split first convolution equals the paper's concatenation, resume equality,
learning on a toy task."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fastadapt.algos.fewshot.common import FewShotEvalConfig, clone_tree
from fastadapt.algos.fewshot.relation import RelationConfig, RelationNet, build_relation
from fastadapt.core.registry import ALGOS
from fastadapt.tasks.fewshot.episodes import ClassDataset, FewShotTasks

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "omniglot"
HAVE_REAL = all((REAL / f"images_background_small{i}.zip").exists() for i in (1, 2))
needs_real = pytest.mark.skipif(not HAVE_REAL, reason=f"real Omniglot minimal splits not found at {REAL}")


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on the shared 2-core machine OpenMP spin-waiting makes 2 threads ~10x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def toy_task(classes: int = 16, per: int = 8, size: int = 16) -> FewShotTasks:
    g = torch.Generator().manual_seed(0)
    protos = (torch.rand(classes, 1, size, size, generator=g) > 0.7).float()
    x = protos.repeat_interleave(per, 0) + 0.3 * torch.randn(classes * per, 1, size, size, generator=g)
    labels = torch.arange(classes).repeat_interleave(per)
    ds = ClassDataset(x, labels, [f"c{i}" for i in range(classes)], [f"g{i % 4}" for i in range(classes)])
    return FewShotTasks("toy", ds, {"train": list(range(12)), "test": list(range(12, 16))}, 4, 1, 2)


def test_registered() -> None:
    assert ALGOS.get("relation").family == "fewshot"


def test_split_convolution_equals_concatenated_pairs() -> None:
    task = toy_task()
    learner = RelationNet(RelationConfig(hidden=8, bn="none"), task, 0)
    m = learner.model
    g = torch.Generator().manual_seed(1)
    fs = torch.randn(2, 3, 8, 4, 4, generator=g)
    fq = torch.randn(2, 5, 8, 4, 4, generator=g)
    fast = m.relations(fs, fq)
    # the paper's way: concatenate every (class, query) pair along channels, then run the module
    pairs = torch.cat([fs[:, None].expand(2, 5, 3, 8, 4, 4), fq[:, :, None].expand(2, 5, 3, 8, 4, 4)], 3)
    y = m.post1(m.conv1(pairs.flatten(0, 2)))
    y = m.fc2(torch.relu(m.fc1(m.block2(y).flatten(1))))
    assert torch.allclose(fast, torch.sigmoid(y).view(2, 5, 3), atol=1e-6)


def test_resume_gives_identical_metrics() -> None:
    task = toy_task()
    cfg = RelationConfig(hidden=8, meta_batch=2)
    a = build_relation(cfg, task, 4)
    for i in range(3):
        a.train_step(i)
    snap = a.state_dict()
    rest_a = [a.train_step(i) for i in (3, 4)]
    b = build_relation(cfg, task, 4)
    b.load_state_dict(clone_tree(snap))
    assert rest_a == [b.train_step(i) for i in (3, 4)]


@needs_real
def test_training_improves_over_chance_on_held_out_alphabets() -> None:
    from fastadapt.tasks.fewshot.omniglot import OmniglotConfig, build_omniglot

    task = build_omniglot(OmniglotConfig(root=str(REAL), test_alphabets=["Korean", "Sanskrit"], way=5,
                                         shot=1, query=5))
    learner = build_relation(RelationConfig(hidden=16), task, 0)
    ecfg = FewShotEvalConfig(ways=[5], shots=[1], query=5, episodes=60, batch=30)
    before = learner.evaluate(ecfg, 3)[0].mean
    for i in range(80):
        learner.train_step(i)
    after = learner.evaluate(ecfg, 3)[0].mean
    assert after > 0.2 + 0.15, (before, after)  # chance is 0.2
    assert after > before + 0.1, (before, after)


def test_shot_pooling_mean_keeps_scale() -> None:
    task = toy_task()
    ep1 = task.sample(1, seed=0, way=4, shot=1, query=2)
    # a 3-shot episode whose shots are three copies of the 1-shot support
    sx = ep1.support_x.repeat_interleave(3, 1)
    sy = ep1.support_y.repeat_interleave(3, 1)
    from fastadapt.core.types import FewShotEpisode

    ep3 = FewShotEpisode(sx, sy, ep1.query_x, ep1.query_y)
    mean = RelationNet(RelationConfig(hidden=8, shot_pool="mean"), task, 0)
    total = RelationNet(RelationConfig(hidden=8, shot_pool="sum"), task, 0)
    mean.model.eval()
    total.model.eval()
    with torch.no_grad():
        assert torch.allclose(mean.scores_of(ep1), mean.scores_of(ep3), atol=1e-5)
        assert float((total.scores_of(ep1) - total.scores_of(ep3)).abs().max()) > 1e-6
