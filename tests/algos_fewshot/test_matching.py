"""Matching Networks: resume equality, FCE shapes, learning on a toy task, registry."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fastadapt.algos.fewshot.common import FewShotEvalConfig, clone_tree
from fastadapt.algos.fewshot.matching import MatchingConfig, MatchingNet, build_matching
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
    assert ALGOS.get("matching").family == "fewshot"


@pytest.mark.parametrize("fce", [False, True])
def test_resume_gives_identical_metrics(fce: bool) -> None:
    task = toy_task()
    cfg = MatchingConfig(hidden=8, fce=fce, fce_steps=2)
    a = build_matching(cfg, task, 2)
    for i in range(3):
        a.train_step(i)
    snap = a.state_dict()
    rest_a = [a.train_step(i) for i in (3, 4)]
    b = build_matching(cfg, task, 2)
    b.load_state_dict(clone_tree(snap))
    assert rest_a == [b.train_step(i) for i in (3, 4)]


def test_log_probs_are_normalised_and_fce_changes_them() -> None:
    task = toy_task()
    ep = task.sample(3, seed=0, way=4, shot=2, query=2)
    plain = MatchingNet(MatchingConfig(hidden=8), task, 0)
    fce = MatchingNet(MatchingConfig(hidden=8, fce=True), task, 0)
    for learner in (plain, fce):
        lp = learner.predict(ep)
        assert lp.shape == (3, 8, 4)
        assert torch.allclose(lp.exp().sum(-1), torch.ones(3, 8), atol=1e-5)
    assert any(n.startswith("g_lstm") for n, _ in fce.model.named_parameters())
    assert not any(n.startswith("g_lstm") for n, _ in plain.model.named_parameters())


@needs_real
def test_training_improves_on_held_out_alphabets() -> None:
    from fastadapt.tasks.fewshot.omniglot import OmniglotConfig, build_omniglot

    task = build_omniglot(OmniglotConfig(root=str(REAL), test_alphabets=["Korean", "Sanskrit"], way=20,
                                         shot=1, query=2))
    learner = build_matching(MatchingConfig(hidden=16), task, 0)
    ecfg = FewShotEvalConfig(ways=[5], shots=[1], query=5, episodes=60, batch=30)
    before = learner.evaluate(ecfg, 3)[0].mean
    for i in range(40):
        learner.train_step(i)
    after = learner.evaluate(ecfg, 3)[0].mean
    assert after > 0.2 + 0.2  # chance is 0.2
    assert after > before + 0.05, (before, after)
