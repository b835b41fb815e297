"""LRUA memory (Santoro et al. 2016, eqs. 2-8): shapes and checks, least-used weights, a loop reference of
several steps, purity, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from fastadapt.nn.memory import INIT_MEMORY, LRUAState, content_weights, least_used, lrua_init, lrua_step


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_init_shapes_and_values() -> None:
    s = lrua_init(3, 10, 4, 2)
    assert (s.batch, s.slots, s.width, s.heads) == (3, 10, 4, 2)
    assert s.memory.shape == (3, 10, 4) and torch.all(s.memory == INIT_MEMORY)
    assert s.read_w.shape == (3, 2, 10) and s.usage.shape == (3, 10) and s.reads.shape == (3, 2, 4)
    assert float(s.read_w.abs().sum() + s.usage.abs().sum() + s.reads.abs().sum()) == 0.0
    with pytest.raises(ValueError, match="heads need at least as many slots"):
        lrua_init(1, 2, 4, 3)


def test_shape_errors_name_the_culprit() -> None:
    s = lrua_init(2, 8, 4, 2)
    with pytest.raises(ValueError, match="LRUA keys: expected shape \\(2, 2, 4\\)"):
        lrua_step(s, torch.zeros(2, 2, 5), torch.zeros(2, 2), 0.9)
    with pytest.raises(ValueError, match="LRUA alpha"):
        lrua_step(s, torch.zeros(2, 2, 4), torch.zeros(2, 3), 0.9)
    with pytest.raises(ValueError, match="LRUA strength"):
        lrua_step(s, torch.zeros(2, 2, 4), torch.zeros(2, 2), 0.9, torch.ones(2))
    bad = LRUAState(s.memory, s.read_w, torch.zeros(2, 7), s.reads)
    with pytest.raises(ValueError, match="LRUA usage: expected shape \\(2, 8\\)"):
        lrua_step(bad, torch.zeros(2, 2, 4), torch.zeros(2, 2), 0.9)
    with pytest.raises(ValueError, match="gamma"):
        lrua_step(s, torch.zeros(2, 2, 4), torch.zeros(2, 2), 1.5)


def test_least_used_takes_the_n_smallest_with_index_tie_break() -> None:
    u = torch.tensor([[0.5, 0.1, 0.1, 0.9, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    assert least_used(u, 2).tolist() == [[0, 1, 0, 0, 1], [1, 1, 0, 0, 0]]
    assert least_used(u, 3).tolist() == [[0, 1, 1, 0, 1], [1, 1, 1, 0, 0]]


def test_content_weights_are_a_softmax_of_scaled_cosines() -> None:
    mem = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]]])
    k = torch.tensor([[[3.0, 0.0]]])
    w = content_weights(k, mem)
    want = torch.softmax(torch.tensor([1.0, 0.0, -1.0]), 0)
    torch.testing.assert_close(w[0, 0], want)
    w5 = content_weights(k, mem, torch.tensor([[5.0]]))
    torch.testing.assert_close(w5[0, 0], torch.softmax(torch.tensor([5.0, 0.0, -5.0]), 0))


def reference_step(mem, read_w, usage, keys, alpha, gamma, strength):
    """Plain loops over one memory (no batch): the paper's equations written out element by element."""
    n, w = len(mem), len(mem[0])
    h = len(keys)
    order = sorted(range(n), key=lambda i: (usage[i], i))
    w_lu = [1.0 if i in order[:h] else 0.0 for i in range(n)]
    w_w = [[1 / (1 + math.exp(-alpha[j])) * read_w[j][i] + (1 - 1 / (1 + math.exp(-alpha[j]))) * w_lu[i]
            for i in range(n)] for j in range(h)]
    erase = order[0]
    new = [[0.0 if i == erase else mem[i][c] for c in range(w)] for i in range(n)]
    for i in range(n):
        for c in range(w):
            new[i][c] += sum(w_w[j][i] * keys[j][c] for j in range(h))
    reads, w_r = [], []
    for j in range(h):
        kn = math.sqrt(sum(v * v for v in keys[j]))
        sims = []
        for i in range(n):
            mn = math.sqrt(sum(v * v for v in new[i]))
            sims.append(strength[j] * sum(keys[j][c] * new[i][c] for c in range(w)) / max(kn * mn, 1e-8))
        z = sum(math.exp(s) for s in sims)
        wr = [math.exp(s) / z for s in sims]
        w_r.append(wr)
        reads.append([sum(wr[i] * new[i][c] for i in range(n)) for c in range(w)])
    new_usage = [gamma * usage[i] + sum(w_r[j][i] + w_w[j][i] for j in range(h)) for i in range(n)]
    return new, w_r, new_usage, reads


@pytest.mark.parametrize("use_strength", [False, True])
def test_matches_an_elementwise_reference_over_several_steps(use_strength: bool) -> None:
    b, n, w, h, gamma = 2, 6, 3, 2, 0.9
    s = lrua_init(b, n, w, h, dtype=torch.float64)
    refs = [([[INIT_MEMORY] * w for _ in range(n)], [[0.0] * n for _ in range(h)], [0.0] * n) for _ in range(b)]
    g = gen(0)
    for _ in range(5):
        keys = torch.randn(b, h, w, generator=g, dtype=torch.float64)
        alpha = torch.randn(b, h, generator=g, dtype=torch.float64)
        beta = 1 + 4 * torch.rand(b, h, generator=g, dtype=torch.float64)
        reads, s = lrua_step(s, keys, alpha, gamma, beta if use_strength else None)
        for i in range(b):
            mem, rw, us = refs[i]
            st = beta[i].tolist() if use_strength else [1.0] * h
            mem, rw, us, rd = reference_step(mem, rw, us, keys[i].tolist(), alpha[i].tolist(), gamma, st)
            refs[i] = (mem, rw, us)
            torch.testing.assert_close(s.memory[i], torch.tensor(mem, dtype=torch.float64))
            torch.testing.assert_close(s.read_w[i], torch.tensor(rw, dtype=torch.float64))
            torch.testing.assert_close(s.usage[i], torch.tensor(us, dtype=torch.float64))
            torch.testing.assert_close(reads[i], torch.tensor(rd, dtype=torch.float64))
            torch.testing.assert_close(s.reads[i], reads[i])


def test_first_write_goes_to_the_least_used_slots_and_erases_one() -> None:
    s = lrua_init(1, 5, 2, 2)
    keys = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    _, s1 = lrua_step(s, keys, torch.full((1, 2), -50.0), 0.5)  # gate ~0: pure least-used writes
    # slots 0 and 1 are least used; every head writes its key to both; the others keep INIT_MEMORY
    torch.testing.assert_close(s1.memory[0, :2], torch.ones(2, 2))
    torch.testing.assert_close(s1.memory[0, 2:], torch.full((3, 2), INIT_MEMORY))
    # slot 0 was erased before the write: write a second time, slot 2 (now least used) is zeroed first
    mem = s1.memory.clone()
    mem[0, 2] = 7.0
    s1 = LRUAState(mem, s1.read_w, s1.usage, s1.reads)
    _, s2 = lrua_step(s1, keys, torch.full((1, 2), -50.0), 0.5)
    assert int(s1.usage.argmin()) == 2 and float(s2.memory[0, 2].abs().max()) == pytest.approx(1.0)


def test_pure_and_differentiable() -> None:
    s = lrua_init(2, 6, 3, 2)
    keys = torch.randn(2, 2, 3, generator=gen(1), requires_grad=True)
    alpha = torch.randn(2, 2, generator=gen(2), requires_grad=True)
    before = [t.clone() for t in (s.memory, s.read_w, s.usage, s.reads)]
    r1, s1 = lrua_step(s, keys, alpha, 0.95)
    r2, _ = lrua_step(s1, keys * 0.5, alpha, 0.95)
    for a, b in zip(before, (s.memory, s.read_w, s.usage, s.reads)):
        assert torch.equal(a, b)
    (r1.sum() + r2.pow(2).sum()).backward()
    assert keys.grad is not None and torch.isfinite(keys.grad).all() and keys.grad.abs().sum() > 0
    assert alpha.grad is not None and torch.isfinite(alpha.grad).all() and alpha.grad.abs().sum() > 0
