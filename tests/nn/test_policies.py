"""Policy modules: shapes, agreement with torch.distributions, determinism, functional_call + vmap."""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import functional_call, stack_module_state, vmap

from fastadapt.nn.policies import (
    CategoricalMLPPolicy,
    DeterministicPolicy,
    GaussianMLPPolicy,
    TanhGaussianPolicy,
    policy_for_spaces,
)
from fastadapt.nn.values import DiscreteQMLP, QMLP, ValueMLP


def gen(seed: int = 0) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def test_categorical_matches_torch_distribution() -> None:
    pol = CategoricalMLPPolicy(4, 3, generator=gen(1))
    obs = torch.randn(2, 5, 7, 4, generator=gen(2))
    out = pol(obs)
    assert out[0].shape == (2, 5, 7, 3)
    a = pol.sample(out, gen(3))
    assert a.shape == (2, 5, 7) and a.dtype == torch.int64
    d = torch.distributions.Categorical(logits=out[0])
    torch.testing.assert_close(pol.log_prob(out, a), d.log_prob(a))
    torch.testing.assert_close(pol.entropy(out), d.entropy())
    out_q = (out[0] + torch.randn(out[0].shape, generator=gen(4)),)
    dq = torch.distributions.Categorical(logits=out_q[0])
    torch.testing.assert_close(pol.kl(out, out_q), torch.distributions.kl_divergence(d, dq))
    assert torch.equal(pol.mode(out), out[0].argmax(-1))


def test_categorical_sampling_frequencies() -> None:
    pol = CategoricalMLPPolicy(1, 3)
    logits = torch.log(torch.tensor([0.2, 0.3, 0.5])).expand(20000, 3)
    a = pol.sample((logits,), gen(0))
    freq = torch.bincount(a, minlength=3).float() / a.numel()
    torch.testing.assert_close(freq, torch.tensor([0.2, 0.3, 0.5]), atol=0.015, rtol=0)


def test_gaussian_matches_torch_distribution() -> None:
    pol = GaussianMLPPolicy(3, 2, init_log_std=-0.5, generator=gen(1))
    obs = torch.randn(4, 6, 3, generator=gen(2))
    mean, log_std = pol(obs)
    assert mean.shape == log_std.shape == (4, 6, 2)
    a = pol.sample((mean, log_std), gen(3))
    assert a.shape == (4, 6, 2)
    d = torch.distributions.Independent(torch.distributions.Normal(mean, log_std.exp()), 1)
    torch.testing.assert_close(pol.log_prob((mean, log_std), a), d.log_prob(a))
    torch.testing.assert_close(pol.entropy((mean, log_std)), d.entropy())
    out_q = (mean + 0.3, log_std - 0.2)
    dq = torch.distributions.Independent(torch.distributions.Normal(out_q[0], out_q[1].exp()), 1)
    torch.testing.assert_close(pol.kl((mean, log_std), out_q), torch.distributions.kl_divergence(d, dq))
    torch.testing.assert_close(pol.mode((mean, log_std)), mean)


def test_same_generator_same_weights_and_samples() -> None:
    p1 = GaussianMLPPolicy(3, 2, generator=gen(7))
    p2 = GaussianMLPPolicy(3, 2, generator=gen(7))
    for a, b in zip(p1.parameters(), p2.parameters()):
        assert torch.equal(a, b)
    out = p1(torch.zeros(5, 3))
    assert torch.equal(p1.sample(out, gen(9)), p2.sample(out, gen(9)))
    p3 = GaussianMLPPolicy(3, 2, generator=gen(8))
    assert not torch.equal(p1.mean_net.net[0].weight, p3.mean_net.net[0].weight)


def test_global_rng_untouched() -> None:
    state = torch.get_rng_state()
    pol = CategoricalMLPPolicy(4, 2, generator=gen(0))
    pol.sample(pol(torch.zeros(3, 4)), gen(1))
    assert torch.equal(state, torch.get_rng_state())


def test_wrong_shapes_raise_naming_argument() -> None:
    pol = CategoricalMLPPolicy(4, 2)
    with pytest.raises(ValueError, match="obs"):
        pol(torch.zeros(3, 5))
    out = pol(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="actions"):
        pol.log_prob(out, torch.zeros(4, dtype=torch.long))
    gp = GaussianMLPPolicy(4, 2)
    with pytest.raises(ValueError, match="actions"):
        gp.log_prob(gp(torch.zeros(3, 4)), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="activation"):
        GaussianMLPPolicy(4, 2, activation="sigmoidish")


@pytest.mark.parametrize("cls,kw", [(CategoricalMLPPolicy, {"n_actions": 3}), (GaussianMLPPolicy, {"act_dim": 2})])
def test_functional_call_vmap_over_task_params(cls, kw) -> None:
    tasks = 4
    pols = [cls(5, **kw, generator=gen(i)) for i in range(tasks)]
    params, buffers = stack_module_state(pols)
    base = pols[0]
    obs = torch.randn(tasks, 3, 6, 5, generator=gen(99))

    def f(p, b, o):
        return functional_call(base, (p, b), (o,))

    out = vmap(f)(params, buffers, obs)
    for i, p in enumerate(pols):
        ref = p(obs[i])
        for x, y in zip(out, ref):
            torch.testing.assert_close(x[i], y)
    a = base.sample(out, gen(0))
    lp = base.log_prob(out, a)
    assert lp.shape == (tasks, 3, 6)
    # gradient flows to the per-task parameters
    g = torch.autograd.grad(lp.sum(), list(params.values()), allow_unused=True)
    assert any(x is not None and x.abs().sum() > 0 for x in g)


def test_tanh_gaussian_log_prob_matches_transformed_distribution() -> None:
    low, high = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0])
    pol = TanhGaussianPolicy(3, 2, low, high, hidden=(16,), generator=gen(0))
    out = pol(torch.randn(50, 3, generator=gen(1)))
    a, logp = pol.rsample(out, gen(2))
    assert bool(((a >= low) & (a <= high)).all())
    base = torch.distributions.Normal(out[0], out[1].exp())
    tr = torch.distributions.TransformedDistribution(
        base,
        [torch.distributions.TanhTransform(cache_size=1),
         torch.distributions.AffineTransform((high + low) / 2, (high - low) / 2)],
    )
    a2 = a.clamp(low + 1e-4, high - 1e-4)
    ref = tr.log_prob(a2).sum(-1)
    torch.testing.assert_close(logp, ref, atol=2e-2, rtol=1e-3)


def test_deterministic_and_values_shapes() -> None:
    pol = DeterministicPolicy(3, 2, [-1, -1], [1, 1], hidden=(8,))
    a = pol(torch.zeros(4, 7, 3))
    assert a.shape == (4, 7, 2) and bool((a.abs() <= 1).all())
    assert ValueMLP(3)(torch.zeros(4, 7, 3)).shape == (4, 7)
    assert QMLP(3, 2)(torch.zeros(4, 3), torch.zeros(4, 2)).shape == (4,)
    assert DiscreteQMLP(3, 5)(torch.zeros(4, 3)).shape == (4, 5)
    with pytest.raises(ValueError, match="act"):
        QMLP(3, 2)(torch.zeros(4, 3), torch.zeros(5, 2))


def test_policy_for_spaces() -> None:
    import gymnasium as gym

    box = gym.spaces.Box(-1, 1, (3,))
    assert isinstance(policy_for_spaces(box, gym.spaces.Discrete(4)), CategoricalMLPPolicy)
    assert isinstance(policy_for_spaces(box, gym.spaces.Box(-1, 1, (2,))), GaussianMLPPolicy)


def test_entropy_of_uniform_categorical() -> None:
    pol = CategoricalMLPPolicy(2, 4)
    ent = pol.entropy((torch.zeros(3, 4),))
    torch.testing.assert_close(ent, torch.full((3,), math.log(4)))
