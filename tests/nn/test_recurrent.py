"""RL²'s GRU actor-critic: shapes, step-vs-sequence equality, trial resets, determinism."""

from __future__ import annotations

import pytest
import torch

from fastadapt.nn.recurrent import RecurrentActorCritic


def _gen(seed: int = 0) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def _inputs(model: RecurrentActorCritic, b: int, t: int, seed: int = 1) -> torch.Tensor:
    g = _gen(seed)
    obs = torch.rand(b, t, model.obs_dim, generator=g)
    a = torch.randint(0, model.n_actions, (b, t), generator=g)
    r = torch.rand(b, t, generator=g)
    d = (torch.rand(b, t, generator=g) < 0.2).float()
    first = torch.zeros(b, t, dtype=torch.bool)
    first[:, 0] = True
    return model.make_input(obs, a, r, d, first)


@pytest.mark.parametrize("shared", [False, True])
def test_shapes(shared: bool) -> None:
    m = RecurrentActorCritic(3, 4, hidden=16, shared=shared, generator=_gen())
    assert m.in_dim == 3 + 4 + 2
    assert m.state_size == (16 if shared else 32)
    x = _inputs(m, 5, 7)
    assert x.shape == (5, 7, m.in_dim)
    logits, v, h = m(x)
    assert logits.shape == (5, 7, 4) and v.shape == (5, 7) and h.shape == (5, m.state_size)
    lg1, v1, h1 = m.step(x[:, 0], m.initial_state(5))
    assert lg1.shape == (5, 4) and v1.shape == (5,) and h1.shape == (5, m.state_size)
    a = m.sample((logits,), _gen())
    assert a.shape == (5, 7) and a.dtype == torch.int64
    assert m.log_prob((logits,), a).shape == (5, 7)
    assert m.entropy((logits,)).shape == (5, 7)
    assert torch.allclose(m.kl((logits,), (logits,)), torch.zeros(5, 7), atol=1e-6)


@pytest.mark.parametrize("shared", [False, True])
def test_step_by_step_equals_sequence(shared: bool) -> None:
    m = RecurrentActorCritic(2, 3, hidden=8, shared=shared, generator=_gen())
    x = _inputs(m, 4, 6)
    logits, v, h_seq = m(x)
    h = m.initial_state(4)
    for t in range(6):
        lg, vt, h = m.step(x[:, t], h)
        assert torch.allclose(lg, logits[:, t], atol=1e-5)
        assert torch.allclose(vt, v[:, t], atol=1e-5)
    assert torch.allclose(h, h_seq, atol=1e-5)


def test_trial_start_resets_state_but_episode_boundaries_do_not() -> None:
    """Two trials concatenated with `trial_start` give the same outputs as two separate runs from zeros;
    without the mark (an episode boundary inside one trial) the memory carries over and outputs differ."""
    m = RecurrentActorCritic(2, 3, hidden=8, generator=_gen())
    xa, xb = _inputs(m, 3, 5, seed=1), _inputs(m, 3, 4, seed=2)
    la, va, _ = m(xa)
    lb, vb, _ = m(xb)
    x = torch.cat([xa, xb], dim=1)
    start = torch.zeros(3, 9, dtype=torch.bool)
    start[:, 0] = True
    start[:, 5] = True
    l_reset, v_reset, _ = m(x, trial_start=start)
    assert torch.allclose(l_reset, torch.cat([la, lb], 1), atol=1e-5)
    assert torch.allclose(v_reset, torch.cat([va, vb], 1), atol=1e-5)
    l_carry, _, _ = m(x)  # same inputs, no reset: the second part depends on the first
    assert torch.allclose(l_carry[:, :5], la, atol=1e-5)
    assert not torch.allclose(l_carry[:, 5:], lb, atol=1e-4)
    # per-row resets: only row 0 starts a new trial at t=5
    start2 = torch.zeros(3, 9, dtype=torch.bool)
    start2[0, 5] = True
    l_mix, _, _ = m(x, trial_start=start2)
    assert torch.allclose(l_mix[0, 5:], lb[0], atol=1e-5)
    assert torch.allclose(l_mix[1:], l_carry[1:], atol=1e-5)


def test_make_input_encodes_previous_step() -> None:
    m = RecurrentActorCritic(1, 3, hidden=4, generator=_gen())
    obs = torch.tensor([[0.5], [0.25]])
    x = m.make_input(obs, torch.tensor([2, 1]), torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0]),
                     first=torch.tensor([False, True]))
    assert torch.equal(x[0], torch.tensor([0.5, 0.0, 0.0, 1.0, 1.0, 1.0]))
    assert torch.equal(x[1], torch.tensor([0.25, 0.0, 0.0, 0.0, 0.0, 0.0]))  # start of a trial
    with pytest.raises(ValueError, match="prev_action"):
        m.make_input(obs, torch.tensor([1]), torch.zeros(2), torch.zeros(2))


def test_deterministic_init_and_sampling() -> None:
    m1 = RecurrentActorCritic(2, 3, hidden=8, generator=_gen(5))
    m2 = RecurrentActorCritic(2, 3, hidden=8, generator=_gen(5))
    m3 = RecurrentActorCritic(2, 3, hidden=8, generator=_gen(6))
    for (k, p1), p2, p3 in zip(m1.state_dict().items(), m2.state_dict().values(), m3.state_dict().values()):
        assert torch.equal(p1, p2), k
    assert any(not torch.equal(p1, p3) for p1, p3 in zip(m1.parameters(), m3.parameters()))
    logits = torch.zeros(20000, 3)
    a1, a2 = m1.sample((logits,), _gen(3)), m1.sample((logits,), _gen(3))
    assert torch.equal(a1, a2)
    freq = torch.bincount(a1, minlength=3).float() / 20000
    assert torch.allclose(freq, torch.full((3,), 1 / 3), atol=0.02)  # uniform for equal logits
    skew = m1.sample((torch.tensor([[0.0, 0.0, 3.0]]).expand(20000, 3),), _gen(4))
    p = torch.softmax(torch.tensor([0.0, 0.0, 3.0]), 0)[2]
    assert abs(float((skew == 2).float().mean()) - float(p)) < 0.02


def test_bad_shapes_are_rejected() -> None:
    m = RecurrentActorCritic(2, 3, hidden=8, generator=_gen())
    with pytest.raises(ValueError, match="x: expected"):
        m(torch.zeros(2, 3, 5))
    with pytest.raises(ValueError, match="h: expected"):
        m.step(torch.zeros(2, m.in_dim), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="n_actions"):
        RecurrentActorCritic(2, 0)


def test_policy_step_and_critic_extra() -> None:
    m = RecurrentActorCritic(2, 3, hidden=8, critic_extra_dim=4, generator=_gen())
    x = _inputs(m, 3, 5)
    extra = torch.rand(3, 4, generator=_gen(9))
    logits, v, _ = m(x, critic_extra=extra)
    h = torch.zeros(3, 8)
    for t in range(5):
        lg, h = m.policy_step(x[:, t], h)
        assert torch.allclose(lg, logits[:, t], atol=1e-5)
    # the value depends on the extra features, the policy does not
    logits2, v2, _ = m(x, critic_extra=extra + 1.0)
    assert torch.allclose(logits, logits2) and not torch.allclose(v, v2)
    with pytest.raises(ValueError, match="critic_extra"):
        m(x)
    with pytest.raises(ValueError, match="shared"):
        RecurrentActorCritic(2, 3, hidden=8, shared=True, critic_extra_dim=4)
