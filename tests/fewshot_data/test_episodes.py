"""N-way K-shot episode sampler: shapes, labels, determinism, split disjointness, rotations, errors."""

from __future__ import annotations

import pytest
import torch

from fastadapt.core.errors import ConfigError
from fastadapt.core.seeding import torch_gen
from fastadapt.tasks.fewshot.episodes import (
    ClassDataset,
    EpisodeSampler,
    FewShotTasks,
    accuracy_stats,
    split_by_fraction,
    split_by_groups,
)

@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on the shared 2-core machine OpenMP spin-waiting makes 2 threads ~10x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)



def toy_dataset(classes: int = 12, per: int = 6, groups: int = 3, size: int = 5) -> ClassDataset:
    """Every item is a distinct random (non-symmetric) image; item i belongs to class i // per."""
    g = torch.Generator().manual_seed(123)
    x = torch.rand(classes * per, 1, size, size, generator=g)
    labels = torch.arange(classes).repeat_interleave(per)
    names = [f"c{c}" for c in range(classes)]
    grp = [f"g{c % groups}" for c in range(classes)]
    return ClassDataset(x, labels, names, grp)


def find_item(ds: ClassDataset, img: torch.Tensor) -> tuple[int, int]:
    """(item index, rotation k) such that rot90(ds.x[item], k) == img."""
    for k in range(4):
        r = torch.rot90(ds.x, k, dims=(-2, -1))
        hit = (r == img).flatten(1).all(1).nonzero()
        if hit.numel():
            return int(hit[0]), k
    raise AssertionError("image not from the dataset")


def test_shapes_and_class_major_labels() -> None:
    ds = toy_dataset()
    s = EpisodeSampler(ds, range(12), way=4, shot=2, query=3)
    ep = s.sample(5, torch_gen(0, "t"))
    assert ep.support_x.shape == (5, 8, 1, 5, 5)
    assert ep.query_x.shape == (5, 12, 1, 5, 5)
    assert ep.support_y.dtype == torch.int64
    assert torch.equal(ep.support_y[0], torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))
    assert torch.equal(ep.query_y[3], torch.arange(4).repeat_interleave(3))
    for t in range(5):
        seen: set[int] = set()
        label_class: dict[int, int] = {}
        for xs, ys in ((ep.support_x[t], ep.support_y[t]), (ep.query_x[t], ep.query_y[t])):
            for img, y in zip(xs, ys.tolist()):
                item, k = find_item(ds, img)
                assert k == 0
                assert item not in seen  # support and query never share an example
                seen.add(item)
                c = int(ds.labels[item])
                assert label_class.setdefault(y, c) == c  # one dataset class per label
        assert len(set(label_class.values())) == 4  # distinct classes


def test_seeded_determinism() -> None:
    ds = toy_dataset()
    tasks = FewShotTasks("toy", ds, {"train": list(range(12))}, way=3, shot=1, query=2)
    a = tasks.sample(6, seed=7)
    b = tasks.sample(6, seed=7)
    c = tasks.sample(6, seed=8)
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_x, b.query_x)
    assert not torch.equal(a.query_x, c.query_x)
    g1, g2 = torch_gen(3, "x"), torch_gen(3, "x")
    assert torch.equal(tasks.sample(2, generator=g1).query_x, tasks.sample(2, generator=g2).query_x)


def test_split_by_groups_disjoint_and_complete() -> None:
    ds = toy_dataset()
    sp = split_by_groups(ds, test=["g1"], val=["g2"])
    assert set(sp["train"]) | set(sp["val"]) | set(sp["test"]) == set(range(12))
    assert not set(sp["train"]) & set(sp["test"]) and not set(sp["val"]) & set(sp["test"])
    assert {ds.groups[c] for c in sp["test"]} == {"g1"}
    with pytest.raises(ConfigError, match="unknown group 'nope'"):
        split_by_groups(ds, test=["nope"])


@pytest.mark.parametrize("by", ["group", "class"])
def test_split_by_fraction_seeded(by: str) -> None:
    ds = toy_dataset(classes=20, groups=5)
    a = split_by_fraction(ds, 0.2, 0.2, seed=1, by=by)
    assert a == split_by_fraction(ds, 0.2, 0.2, seed=1, by=by)
    assert sorted(a["train"] + a["val"] + a["test"]) == list(range(20))
    assert a["val"] and a["test"]
    if by == "group":
        gt = {ds.groups[c] for c in a["test"]}
        assert not gt & {ds.groups[c] for c in a["train"]}


def test_episodes_stay_inside_their_split() -> None:
    ds = toy_dataset()
    sp = split_by_groups(ds, test=["g0"])
    tasks = FewShotTasks("toy", ds, sp, way=3, shot=1, query=1)
    ep = tasks.sample(10, seed=0, split="test")
    for img in ep.support_x.reshape(-1, 1, 5, 5):
        item, _ = find_item(ds, img)
        assert int(ds.labels[item]) in sp["test"]


def test_rotations_are_extra_classes() -> None:
    ds = toy_dataset(classes=3, per=4, groups=1)
    s = EpisodeSampler(ds, range(3), way=12, shot=1, query=1, rotations=True)
    assert s.num_classes == 12
    ep = s.sample(1, torch_gen(1, "r"))
    pairs = set()
    for img, y in zip(ep.support_x[0], ep.support_y[0].tolist()):
        item, k = find_item(ds, img)
        pairs.add((int(ds.labels[item]), k))
        q_item, q_k = find_item(ds, ep.query_x[0, y])  # query of the same label: same class, same angle
        assert (int(ds.labels[q_item]), q_k) == (int(ds.labels[item]), k)
    assert len(pairs) == 12  # all (class, angle) pairs used once
    tasks = FewShotTasks("toy", ds, {"train": [0, 1], "test": [2]}, 2, 1, 1, rotations=True)
    assert tasks.uses_rotations("train") and not tasks.uses_rotations("test")


def test_within_group_episodes() -> None:
    ds = toy_dataset(classes=12, groups=3)
    s = EpisodeSampler(ds, range(12), way=4, shot=1, query=1, within_group=True)
    for t in range(5):
        ep = s.sample(1, torch_gen(t, "w"))
        groups = {ds.groups[int(ds.labels[find_item(ds, im)[0]])] for im in ep.support_x[0]}
        assert len(groups) == 1


def test_clear_errors() -> None:
    ds = toy_dataset(classes=4, per=3)
    with pytest.raises(ConfigError, match="5-way episodes need 5 classes"):
        EpisodeSampler(ds, range(4), way=5, shot=1, query=1)
    with pytest.raises(ConfigError, match="shot \\+ query = 4 but class 'c0' has only 3"):
        EpisodeSampler(ds, range(4), way=2, shot=2, query=2)
    with pytest.raises(ConfigError, match="overlap"):
        FewShotTasks("toy", ds, {"train": [0, 1], "test": [1, 2]}, 2, 1, 1)
    tasks = FewShotTasks("toy", ds, {"train": [0, 1, 2, 3]}, 2, 1, 1)
    with pytest.raises(ConfigError, match="split 'test' of task 'toy' has no classes"):
        tasks.sample(1, seed=0, split="test")


def test_accuracy_stats() -> None:
    mean, se, (lo, hi) = accuracy_stats([1.0, 0.0, 1.0, 0.0])
    assert mean == 0.5
    assert se == pytest.approx(0.57735 / 2, rel=1e-4)
    assert lo == pytest.approx(0.5 - 1.96 * se) and hi == pytest.approx(0.5 + 1.96 * se)
