"""scikit-learn digits as a few-shot task."""

from __future__ import annotations

import pytest
import torch

from fastadapt.core.errors import ConfigError
from fastadapt.core.registry import TASKS

pytest.importorskip("sklearn")

from fastadapt.tasks.fewshot.digits import DigitsConfig, build_digits, load_digits_dataset  # noqa: E402

@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on the shared 2-core machine OpenMP spin-waiting makes 2 threads ~10x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)



def test_dataset() -> None:
    ds = load_digits_dataset(16)
    assert ds.x.shape == (1797, 1, 16, 16) and ds.num_classes == 10
    assert float(ds.x.min()) >= 0.0 and float(ds.x.max()) <= 1.0
    assert min(ds.count(c) for c in range(10)) >= 170


def test_task_splits_and_episodes() -> None:
    assert TASKS.get("digits").family == "fewshot"
    tasks = build_digits(DigitsConfig())
    assert tasks.splits["train"] == [0, 1, 2, 3, 4] and tasks.splits["test"] == [5, 6, 7, 8, 9]
    ep = tasks.sample(3, seed=0)
    assert ep.support_x.shape == (3, 5, 1, 16, 16) and ep.query_x.shape == (3, 50, 1, 16, 16)
    assert torch.equal(ep.query_x, tasks.sample(3, seed=0).query_x)
    test = tasks.sample(2, seed=0, split="test", shot=5, query=3)
    assert test.support_x.shape == (2, 25, 1, 16, 16)
    with pytest.raises(ConfigError, match="5-way episodes need 5 classes"):
        build_digits(DigitsConfig(test_classes=[8, 9])).sample(1, seed=0, split="test")
    with pytest.raises(ConfigError, match="digits are 0..9"):
        build_digits(DigitsConfig(test_classes=[10]))


def test_protonet_learns_unseen_digits() -> None:
    from fastadapt.algos.fewshot.common import FewShotEvalConfig
    from fastadapt.algos.fewshot.protonet import ProtoNetConfig, build_protonet

    tasks = build_digits(DigitsConfig(query=5))
    learner = build_protonet(ProtoNetConfig(hidden=16), tasks, 0)
    for i in range(40):
        learner.train_step(i)
    row = learner.evaluate(FewShotEvalConfig(ways=[5], shots=[5], query=5, episodes=40, batch=20), 0)[0]
    assert row.mean > 0.2 + 0.4  # chance is 0.2
