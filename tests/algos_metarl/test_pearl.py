"""PEARL (Rakelly et al. 2019): buffers, collection, posterior sampling, resume equality, smoke training."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fastadapt.algos.metarl.pearl import PEARL, PEARLConfig, PEARLEvalConfig, TaskBuffers
from fastadapt.core.errors import CheckpointError, ConfigError
from fastadapt.core.registry import ALGOS
from fastadapt.tasks.rl.navigation2d import Navigation2D, Navigation2DConfig


def _tiny(**kw: object) -> PEARLConfig:
    base: dict[str, object] = dict(
        hidden=(16, 16), encoder_hidden=(16,), latent_dim=3, num_train_tasks=6, meta_batch=3, tasks_per_iter=2,
        initial_episodes=1, prior_episodes=1, posterior_episodes=1, extra_episodes=1, grad_steps_per_iter=4,
        batch_size=16, context_batch=8, buffer_size=500, reward_scale=10.0,
    )
    base.update(kw)
    return PEARLConfig(**base)


def _dense(horizon: int = 10) -> Navigation2D:
    return Navigation2D(Navigation2DConfig(horizon=horizon))


def _sparse() -> Navigation2D:
    return Navigation2D(Navigation2DConfig(sparse=True, horizon=8))


def test_registered_with_configs() -> None:
    entry = ALGOS.get("pearl")
    assert entry.family == "metarl" and entry.config is PEARLConfig and entry.eval_config is PEARLEvalConfig


@pytest.mark.parametrize("name", ["pearl-navigation2d", "pearl-sparse-navigation2d", "pearl-halfcheetah-vel"])
def test_shipped_configs_validate(name: str) -> None:
    from fastadapt.experiment.catalog import load_all
    from fastadapt.experiment.config import load_config

    load_all()
    cfg = load_config(name)
    assert cfg.algo_entry.name == "pearl" and isinstance(cfg.eval, PEARLEvalConfig)
    assert cfg.eval.context_episodes == [0, 1, 2]


def test_task_buffers_ring_sample_clear_and_state() -> None:
    buf = TaskBuffers(3, 5, obs_dim=2, act_dim=1)
    data = {k: torch.arange(2 * 4, dtype=torch.float32).reshape(2, 4) for k in ("rew", "crew", "term")}
    data["obs"] = data["next_obs"] = torch.arange(16, dtype=torch.float32).reshape(2, 4, 2)
    data["act"] = torch.arange(8, dtype=torch.float32).reshape(2, 4, 1)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.float32)
    buf.add([0, 2], data, mask)
    assert buf.size.tolist() == [3, 0, 4] and buf.ptr.tolist() == [3, 0, 4]
    assert buf.data["rew"][0, :3].tolist() == [0.0, 1.0, 2.0]
    buf.add([2], {k: v[1:] for k, v in data.items()}, mask[1:])  # wraps around: capacity 5
    assert int(buf.size[2]) == 5 and int(buf.ptr[2]) == 3
    assert buf.data["rew"][2].tolist() == [5.0, 6.0, 7.0, 7.0, 4.0]
    s = buf.sample(torch.tensor([0, 0, 2]), 50, torch.Generator().manual_seed(0))
    assert s["obs"].shape == (3, 50, 2) and s["rew"].shape == (3, 50)
    assert set(s["rew"][0].tolist()) <= {0.0, 1.0, 2.0}  # only the filled part of task 0
    assert set(s["rew"][2].tolist()) <= {4.0, 5.0, 6.0, 7.0}
    buf2 = TaskBuffers(3, 5, 2, 1)
    buf2.load_state_dict(buf.state_dict())
    assert all(torch.equal(buf.data[k], buf2.data[k]) for k in TaskBuffers.FIELDS)
    buf.clear([2])
    assert int(buf.size[2]) == 0
    with pytest.raises(Exception, match="empty"):
        buf.sample(torch.tensor([2]), 3, torch.Generator())


def test_collection_fills_buffers_as_in_the_paper() -> None:
    """Initial + prior + posterior episodes reach the encoder buffer; extra episodes only the replay buffer;
    the encoder buffers of the tasks collected this iteration hold only this iteration's data."""
    dist = _dense(horizon=10)
    cfg = _tiny()
    learner = PEARL(cfg, dist, seed=0)
    dist_env_steps = 10
    learner.train_step(0)
    sizes_replay = learner.replay.size.tolist()
    sizes_enc = learner.enc_buffer.size.tolist()
    collected = [i for i, s in enumerate(sizes_replay) if s > dist_env_steps]
    assert len(collected) == cfg.tasks_per_iter
    for i in range(cfg.num_train_tasks):
        if i in collected:  # initial (1) + prior (1) + posterior (1) + extra (1) episodes; encoder: prior + post
            assert sizes_replay[i] == 4 * dist_env_steps and sizes_enc[i] == 2 * dist_env_steps
        else:  # only the initial episode
            assert sizes_replay[i] == dist_env_steps and sizes_enc[i] == dist_env_steps
    assert learner.env_steps == sum(sizes_replay)


def test_dense_critic_reward_for_sparse_task() -> None:
    """PEARL's sparse point robot: critic trained on -distance, context and returns on the sparse reward."""
    dist = _sparse()
    learner = PEARL(_tiny(critic_reward="dense"), dist, seed=1)
    env = dist.batched_env(2, 3)
    env.set_tasks(dist.sample(2, 0, "train"))
    ep = learner.run_episode(env, torch.zeros(2, 3, 3), torch.Generator().manual_seed(0))
    dist_to_goal = (ep["next_obs"] - env.goals.unsqueeze(2)).norm(dim=-1)
    assert torch.allclose(ep["crew"], -dist_to_goal, atol=1e-6)
    sparse = torch.where(dist_to_goal <= 0.2, 1.0 - dist_to_goal, torch.zeros_like(dist_to_goal))
    assert torch.allclose(ep["rew"], sparse, atol=1e-6)
    with pytest.raises(ConfigError, match="dense"):
        bad = PEARL(_tiny(critic_reward="dense"), dist, seed=1)
        bad._dense_reward(object(), torch.zeros(1, 1, 2), {})


def test_posterior_sampling_uses_the_previous_episodes() -> None:
    """Episode 0 of posterior sampling and of the prior baseline are the same draw (same generator); later
    episodes differ because z comes from q(z | earlier episodes) instead of the prior."""
    dist = _dense(horizon=10)
    learner = PEARL(_tiny(), dist, seed=2)
    tasks = dist.sample(3, 5, "test")
    post = learner.posterior_sampling(tasks, 3, 2, torch.Generator().manual_seed(7))
    prior = learner.posterior_sampling(tasks, 3, 2, torch.Generator().manual_seed(7), infer=False)
    assert post.shape == (3, 3, 2)
    assert torch.equal(post[0], prior[0])
    assert not torch.equal(post[1:], prior[1:])
    mu, var = learner.adapt(tasks[0], 2)
    assert mu.shape == (3,) and bool((var < 1).all())
    a = learner.act((mu, var), torch.zeros(4, 2))
    assert a.shape == (4, 2) and bool((a.abs() <= 0.1 + 1e-6).all())


def test_evaluate_rows() -> None:
    dist = _dense(horizon=10)
    learner = PEARL(_tiny(), dist, seed=3)
    learner.train_step(0)
    rows = learner.evaluate(PEARLEvalConfig(test_tasks=4, chains_per_task=2, context_episodes=[0, 2]), seed=0)
    got = {(r.method, r.setting["context_episodes"]) for r in rows}
    assert got == {(m, k) for m in ("pearl", "prior", "oracle") for k in (0, 2)}
    for r in rows:
        assert r.n == 4 and math.isfinite(r.mean) and math.isfinite(r.se) and r.mean <= 0
    oracle = [r.mean for r in rows if r.method == "oracle"]
    pearl0 = [r.mean for r in rows if r.method == "pearl"][0]
    assert oracle[0] == oracle[1] and oracle[0] > pearl0


def _save_load(state: dict, tmp_path: Path) -> dict:
    from fastadapt.experiment.checkpoints import read_checkpoint, save_checkpoint

    path = save_checkpoint(tmp_path / "ckpts", 1, state, config_hash="h", wall_time=0.0, keep=1)
    return read_checkpoint(path, "h")[1]


@pytest.mark.parametrize(("sparse", "rank"), [(False, 0), (True, 0), (False, 1)])
def test_resume_equality_through_checkpoint(tmp_path: Path, sparse: bool, rank: int) -> None:
    dist = _sparse() if sparse else _dense()
    cfg = _tiny(critic_reward="dense" if sparse else "env", encoder_precision_rank=rank)
    a = PEARL(cfg, dist, seed=4)
    for it in range(3):
        a.train_step(it)
    state = _save_load(a.state_dict(), tmp_path)
    ref = [a.train_step(it) for it in (3, 4)]
    b = PEARL(cfg, dist, seed=4)
    b.load_state_dict(state)
    got = [b.train_step(it) for it in (3, 4)]
    assert got == ref
    for k, v in ref[-1].items():
        assert math.isfinite(v), k
    ra = a.evaluate(PEARLEvalConfig(test_tasks=2, chains_per_task=1), seed=0)
    rb = b.evaluate(PEARLEvalConfig(test_tasks=2, chains_per_task=1), seed=0)
    assert [r.mean for r in ra] == [r.mean for r in rb]


def test_same_seed_same_metrics_and_bad_checkpoint() -> None:
    dist = _dense()
    m1 = PEARL(_tiny(), dist, seed=5).train_step(0)
    m2 = PEARL(_tiny(), dist, seed=5).train_step(0)
    m3 = PEARL(_tiny(), dist, seed=6).train_step(0)
    assert m1 == m2 and m1 != m3
    learner = PEARL(_tiny(), dist, seed=5)
    state = learner.state_dict()
    del state["rng_update"]
    with pytest.raises(CheckpointError, match="rng_update"):
        learner.load_state_dict(state)


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="tasks_per_iter"):
        PEARL(_tiny(tasks_per_iter=10), _dense(), seed=0)
    with pytest.raises(ConfigError, match="task"):
        PEARL(_tiny(), object(), seed=0)


def test_smoke_training_improves_q_fit_and_stays_finite() -> None:
    """A few iterations on dense navigation: all metrics finite; the KL term keeps z's posterior proper."""
    dist = _dense(horizon=10)
    learner = PEARL(_tiny(grad_steps_per_iter=20, num_train_tasks=4), dist, seed=7)
    hist = [learner.train_step(i) for i in range(4)]
    for m in hist:
        assert all(math.isfinite(v) for v in m.values())
        assert 0 < m["z_var"] <= 1.0 + 1e-6 and m["kl"] >= 0
    assert hist[-1]["grad_steps"] == 80 and hist[-1]["env_steps"] > hist[0]["env_steps"]
    assert np.isfinite(hist[-1]["return_posterior"])


def test_low_rank_product_of_gaussians_is_the_exact_product() -> None:
    """Factors with precision diag(1/var_n) + U_n U_n^T: mean and covariance equal the brute-force product,
    do not depend on the order of the transitions, respect the mask, and reduce to the diagonal product for
    U = 0; the KL matches torch's multivariate-normal KL."""
    from fastadapt.nn.context_encoder import (
        kl_to_standard_normal,
        low_rank_product_of_gaussians,
        posterior_variance,
        product_of_gaussians,
        rsample_gaussian,
    )

    g = torch.Generator().manual_seed(0)
    mus = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    var = torch.rand(3, 4, 5, generator=g, dtype=torch.float64) + 0.1
    u = torch.randn(3, 4, 5, 2, generator=g, dtype=torch.float64)
    mu, scale = low_rank_product_of_gaussians(mus, var, u)
    prec = torch.diag_embed(1 / var) + u @ u.transpose(-1, -2)
    cov = torch.linalg.inv(prec.sum(1))
    ref_mu = (cov @ (prec @ mus.unsqueeze(-1)).sum(1)).squeeze(-1)
    assert torch.allclose(mu, ref_mu) and torch.allclose(scale @ scale.transpose(-1, -2), cov)
    perm = torch.tensor([2, 0, 3, 1])
    mu_p, scale_p = low_rank_product_of_gaussians(mus[:, perm], var[:, perm], u[:, perm])
    assert torch.allclose(mu_p, mu) and torch.allclose(scale_p @ scale_p.transpose(-1, -2), cov)
    ref_kl = torch.distributions.kl_divergence(
        torch.distributions.MultivariateNormal(ref_mu, cov),
        torch.distributions.MultivariateNormal(torch.zeros(5, dtype=torch.float64), torch.eye(5, dtype=torch.float64)),
    )
    assert torch.allclose(kl_to_standard_normal(mu, scale), ref_kl)
    mu0, s0 = low_rank_product_of_gaussians(mus, var, torch.zeros_like(u))
    mud, vd = product_of_gaussians(mus, var)
    assert torch.allclose(mu0, mud) and torch.allclose(posterior_variance(mu0, s0), vd)
    mask = torch.zeros(3, 4, dtype=torch.float64)
    mask[0, :2] = 1
    mu_m, s_m = low_rank_product_of_gaussians(mus, var, u, mask)
    mu_r, s_r = low_rank_product_of_gaussians(mus[0, :2], var[0, :2], u[0, :2])
    assert torch.allclose(mu_m[0], mu_r) and torch.allclose(s_m[0], s_r)
    assert torch.equal(mu_m[1:], torch.zeros(2, 5)) and torch.equal(s_m[1], torch.eye(5, dtype=torch.float64))
    z = torch.stack([rsample_gaussian(mu[0], scale[0], g) for _ in range(4000)])
    assert torch.allclose(torch.cov(z.T), cov[0], atol=0.15 * float(cov[0].abs().max()))
    with pytest.raises(ValueError, match="expected"):
        low_rank_product_of_gaussians(mus, var, u[..., 0])


def test_low_rank_encoder_in_the_learner() -> None:
    """encoder_precision_rank=1: the encoder emits (mu, scale [.., L, L]); training and meta-test run, the
    posterior variance reported stays proper, and adapt() returns per-dimension variances."""
    dist = _dense(horizon=10)
    learner = PEARL(_tiny(grad_steps_per_iter=10, num_train_tasks=4, encoder_precision_rank=1), dist, seed=3)
    assert learner.encoder.precision_rank == 1
    hist = [learner.train_step(i) for i in range(2)]
    assert all(math.isfinite(v) for m in hist for v in m.values()) and 0 < hist[-1]["z_var"] <= 1.0 + 1e-6
    b = learner.enc_buffer.sample(torch.arange(4), 8, torch.Generator().manual_seed(0))
    mu, scale = learner.posterior(learner._context(b))
    assert mu.shape == (4, 3) and scale.shape == (4, 3, 3)
    mu1, var1 = learner.adapt(dist.sample(1, 0, "test")[0], budget=1)
    assert mu1.shape == (3,) and var1.shape == (3,) and bool((var1 > 0).all())
    rows = learner.evaluate(PEARLEvalConfig(test_tasks=2, chains_per_task=2), seed=0)
    assert all(math.isfinite(r.mean) for r in rows)
    with pytest.raises(Exception, match="encoder_precision_rank"):
        PEARLConfig(encoder_precision_rank=-1)


@pytest.mark.mujoco
def test_halfcheetah_vel_through_looped_env() -> None:
    """MuJoCo families have no batched env: PEARL steps their gymnasium envs in a loop (LoopBatchedEnv)."""
    pytest.importorskip("mujoco")
    from fastadapt.algos.metarl.pearl import LoopBatchedEnv, make_batched_env
    from fastadapt.tasks.rl.mujoco.cheetah import HalfCheetahVel, HalfCheetahVelConfig

    dist = HalfCheetahVel(HalfCheetahVelConfig(horizon=5))
    env = make_batched_env(dist, 2, 1)
    assert isinstance(env, LoopBatchedEnv) and env.max_episode_steps == 5
    learner = PEARL(_tiny(num_train_tasks=3, grad_steps_per_iter=2), dist, seed=0)
    m = learner.train_step(0)
    assert m["env_steps"] == 5 * (3 + 2 * 3) and all(math.isfinite(v) for v in m.values())
    rows = learner.evaluate(PEARLEvalConfig(test_tasks=2, chains_per_task=1, context_episodes=[0, 1]), seed=0)
    assert {r.method for r in rows} == {"pearl", "prior"}


@pytest.mark.slow
def test_shipped_dense_config_beats_the_prior_after_30_iterations() -> None:
    """The shipped pearl-navigation2d config (rank-1 encoder factors), seed 0, 30 iterations (~65 CPU-s):
    posterior sampling after 1 and 2 context episodes returns clearly more than episodes with z from the
    prior (measured +1.0 and +2.6 at iteration 30, benchmarks/pearl/README.md session 5)."""
    from fastadapt.experiment.catalog import load_all
    from fastadapt.experiment.config import load_config
    from fastadapt.experiment.runner import build_learner

    load_all()
    cfg = load_config("pearl-navigation2d", seed=0)
    assert cfg.algo.encoder_precision_rank == 1
    learner = build_learner(cfg)
    for it in range(30):
        learner.train_step(it)
    rows = {(r.method, r.setting["context_episodes"]): r.mean for r in learner.evaluate(cfg.eval, seed=1000)}
    assert rows[("pearl", 1)] > rows[("prior", 1)] + 0.5
    assert rows[("pearl", 2)] > rows[("prior", 2)] + 1.5
