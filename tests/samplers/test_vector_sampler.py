"""Vector sampler: layout, masks, log-probs, determinism, vmapped per-task params == per-task loop."""

from __future__ import annotations

import pytest
import torch

from fastadapt.core.protocols import BatchedEnv, Sampler
from fastadapt.nn.policies import CategoricalMLPPolicy, GaussianMLPPolicy
from fastadapt.samplers import VectorSampler
from fastadapt.tasks.rl.navigation2d import Navigation2D


def _policy(seed: int = 0, log_std: float = -1.0) -> GaussianMLPPolicy:
    return GaussianMLPPolicy(2, 2, hidden=(16, 16), init_log_std=log_std,
                             generator=torch.Generator().manual_seed(seed))


def _per_task_params(policy: torch.nn.Module, num_tasks: int, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: v.detach() + 0.3 * torch.randn((num_tasks, *v.shape), generator=gen)
            for k, v in policy.named_parameters()}


def test_layout_masks_and_log_probs() -> None:
    dist = Navigation2D(horizon=40)
    policy = _policy()
    sampler = VectorSampler(dist, policy, num_envs=3)
    assert isinstance(sampler, Sampler) and isinstance(sampler.env(2), BatchedEnv)
    tasks = dist.sample(5, seed=0)
    b = sampler.sample(tasks, None, seed=0)
    assert b.obs.shape == (5, 3, 40, 2) and b.actions.shape == (5, 3, 40, 2)
    for x in (b.rewards, b.dones, b.mask, b.log_probs, b.infos["terminated"]):
        assert x.shape == (5, 3, 40)
    assert b.infos["last_obs"].shape == (5, 3, 2)
    # one episode per env: exactly one done per env, mask = 1 up to and including it
    assert torch.equal(b.dones.sum(-1), torch.ones(5, 3))
    last = b.dones.argmax(-1)
    steps = torch.arange(40)
    assert torch.equal(b.mask, (steps <= last[..., None]).float())
    assert b.env_steps() == int(b.mask.sum())
    # recorded log-probs are the behaviour policy's
    with torch.no_grad():
        logp = policy.log_prob(policy(b.obs), b.actions)
    assert torch.allclose(logp * b.mask, b.log_probs, atol=1e-5)
    # rewards agree with the env definition: -||s' - g||, s' = s + clip(a)
    goals = torch.tensor([t.goal for t in tasks])[:, None, None]
    nxt = b.obs + b.actions.clamp(-0.1, 0.1)
    assert torch.allclose(b.rewards, -(nxt - goals).norm(dim=-1) * b.mask, atol=1e-5)


def test_same_seed_same_batch_different_seed_different() -> None:
    dist = Navigation2D(horizon=20)
    tasks = dist.sample(3, seed=0)
    s1 = VectorSampler(dist, _policy(), num_envs=2)
    s2 = VectorSampler(dist, _policy(), num_envs=2)
    b1, b2 = s1.sample(tasks, None, seed=7), s2.sample(tasks, None, seed=7)
    for k in ("obs", "actions", "rewards", "dones", "mask", "log_probs"):
        assert torch.equal(getattr(b1, k), getattr(b2, k)), k
    assert not torch.equal(b1.actions, s1.sample(tasks, None, seed=8).actions)


def test_vmapped_forward_equals_per_task_loop() -> None:
    dist = Navigation2D(horizon=25)
    policy = _policy()
    T = 6
    tasks = dist.sample(T, seed=1)
    params = _per_task_params(policy, T, seed=2)
    sampler = VectorSampler(dist, policy, num_envs=4)
    b = sampler.sample(tasks, params, seed=3)
    # the batch's log-probs equal a per-task loop over functional_call with that task's parameters
    for t in range(T):
        p_t = {k: v[t] for k, v in params.items()}
        with torch.no_grad():
            out = torch.func.functional_call(policy, p_t, (b.obs[t],))
            logp = policy.log_prob(out, b.actions[t])
        assert torch.allclose(logp * b.mask[t], b.log_probs[t], atol=1e-5)


def test_deterministic_trajectories_equal_per_task_loop() -> None:
    """With mode actions, sampling T tasks at once (vmap) == sampling each task alone with its params."""
    dist = Navigation2D(horizon=30)
    policy = _policy()
    T = 4
    tasks = dist.sample(T, seed=5)
    params = _per_task_params(policy, T, seed=6)
    batched = VectorSampler(dist, policy, num_envs=2, deterministic=True).sample(tasks, params, seed=0)
    single = VectorSampler(dist, policy, num_envs=2, deterministic=True)
    for t in range(T):
        b_t = single.sample([tasks[t]], {k: v[t:t + 1] for k, v in params.items()}, seed=0)
        assert torch.allclose(batched.obs[t], b_t.obs[0], atol=1e-5)
        assert torch.allclose(batched.rewards[t], b_t.rewards[0], atol=1e-5)


def test_per_task_params_change_behaviour_and_partial_params() -> None:
    dist = Navigation2D(horizon=10)
    policy = _policy()
    tasks = dist.sample(2, seed=0)
    full = _per_task_params(policy, 2, seed=0)
    partial = {k: v for k, v in full.items() if k != "log_std"}  # log_std shared from the module
    sampler = VectorSampler(dist, policy, num_envs=2, deterministic=True)
    b_full = sampler.sample(tasks, full, seed=0)
    b_part = sampler.sample(tasks, partial, seed=0)
    b_none = sampler.sample(tasks, None, seed=0)
    assert torch.allclose(b_full.actions, b_part.actions)  # mode ignores log_std
    assert not torch.allclose(b_full.actions, b_none.actions)
    with pytest.raises(ValueError, match="leading tasks dim"):
        sampler.sample(tasks, {k: v[:1] for k, v in full.items()}, seed=0)


def test_early_termination_is_masked() -> None:
    dist = Navigation2D(horizon=50)
    tasks = [{"goal": [0.02, 0.0]}, {"goal": [0.45, 0.45]}]

    class Toward(torch.nn.Module):
        """Deterministic stand-in with the policy API: moves toward a fixed point."""

        def __init__(self) -> None:
            super().__init__()
            self.target = torch.nn.Parameter(torch.tensor([0.02, 0.0]))

        def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor]:
            return ((self.target - obs).clamp(-0.1, 0.1),)

        def sample(self, out: tuple[torch.Tensor], generator: torch.Generator) -> torch.Tensor:
            return out[0]

        def mode(self, out: tuple[torch.Tensor]) -> torch.Tensor:
            return out[0]

        def log_prob(self, out: tuple[torch.Tensor], actions: torch.Tensor) -> torch.Tensor:
            return torch.zeros(actions.shape[:-1])

    b = VectorSampler(dist, Toward(), num_envs=1).sample(tasks, None, seed=0)
    assert b.mask[0, 0].sum() == 1 and b.infos["terminated"][0, 0, 0] == 1 and b.dones[0, 0, 0] == 1
    assert b.mask[1, 0].sum() == 50 and b.infos["terminated"][1].sum() == 0
    assert (b.rewards[0, 0, 1:] == 0).all()


def test_discrete_policy_runs_on_a_callable_env_factory() -> None:
    from fastadapt.tasks.rl.gridworld import Gridworld

    dist = Gridworld()
    policy = CategoricalMLPPolicy(dist.obs_dim, 5, hidden=(8,))
    sampler = VectorSampler(lambda t, e: dist.batched_env(t, e), policy, num_envs=2)
    b = sampler.sample(dist.sample(3, seed=0), None, seed=0)
    assert b.actions.dtype == torch.int64 and b.actions.shape == (3, 2, 15)


@pytest.mark.bench
def test_sampler_speed_benchmark_runs_small(tmp_path: object) -> None:
    """The registered ``sampler-speed`` benchmark end to end with tiny settings (numbers not checked)."""
    from fastadapt.bench.sampler_speed import SamplerSpeedConfig, run_sampler_speed
    from fastadapt.core.types import BenchContext

    cfg = SamplerSpeedConfig(nav_tasks=4, nav_envs_per_task=4, nav_batched_steps=20, nav_sync_steps=5,
                             cheetah_tasks=1, cheetah_envs_per_task=2, cheetah_horizon=5, bare_steps=20,
                             repeats=2)
    ctx = BenchContext(out=tmp_path)
    rows = run_sampler_speed(cfg, ctx)
    methods = [r.method for r in rows]
    assert methods[:2] == ["fastadapt_batched", "gymnasium_sync"]
    assert rows[0].setting == {"env": "navigation2d", "envs": 16}
    assert all(r.mean > 0 and r.n == 2 for r in rows)
    assert any("ratio" in n for n in ctx.notes)
