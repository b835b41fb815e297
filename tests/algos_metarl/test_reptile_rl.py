"""Reptile for RL (Nichol et al. 2018): the update rule, resume equality."""

from __future__ import annotations

import pytest
import torch

from fastadapt.algos.metarl.common import (
    adapt_params,
    detach_params,
    expand_params,
    sample_rollouts,
    shared_params,
)
from fastadapt.algos.metarl.reptile_rl import ReptileRL, ReptileRLConfig
from fastadapt.core.registry import ALGOS
from fastadapt.tasks.rl.navigation2d import Navigation2D


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def small_cfg(**kw: object) -> ReptileRLConfig:
    base: dict[str, object] = dict(meta_batch=4, fast_batch=4, hidden=(16,), inner_steps=2, outer_lr=0.5)
    base.update(kw)
    return ReptileRLConfig(**base)


def test_registered() -> None:
    assert ALGOS.get("reptile-rl").family == "metarl"


def test_update_moves_theta_toward_mean_of_adapted_params() -> None:
    """theta_new = theta + eps * mean_i(phi_i - theta), phi_i after inner_steps PG steps on fresh rollouts."""
    cfg = small_cfg()
    a = ReptileRL(cfg, Navigation2D(horizon=10), seed=0)
    b = ReptileRL(cfg, Navigation2D(horizon=10), seed=0)
    theta0 = detach_params({k: v.clone() for k, v in shared_params(b.policy).items()})
    tasks, seeds = b.sample_iteration()
    p = detach_params(expand_params(theta0, len(tasks)))
    for s in range(cfg.inner_steps):
        ro = sample_rollouts(b.sampler, tasks, None if s == 0 else p, seeds[s], cfg)
        p = detach_params(adapt_params(b.policy, p, ro, cfg.inner_lr))
    m = a.train_step(0)
    for k, v in shared_params(a.policy).items():
        expected = theta0[k] + cfg.outer_lr * (p[k].mean(0) - theta0[k])
        assert torch.allclose(v.detach(), expected, atol=1e-6)
    assert set(m) >= {"env_steps", "pre_return", "post_return"}


def test_resume_equality(tmp_path) -> None:
    cfg = small_cfg(outer_lr_final=0.1, anneal_iterations=4)
    a = ReptileRL(cfg, Navigation2D(horizon=10), seed=2)
    for i in range(2):
        a.train_step(i)
    snap = a.state_dict()
    ref = [a.train_step(i) for i in (2, 3)]
    b = ReptileRL(cfg, Navigation2D(horizon=10), seed=2)
    b.load_state_dict(roundtrip(snap, tmp_path))
    assert [b.train_step(i) for i in (2, 3)] == ref
    assert ref[1]["outer_lr"] < ref[0]["outer_lr"]


def roundtrip(state, tmp_path):
    """Pass a learner state through the real checkpoint format (safetensors + JSON) and back."""
    from fastadapt.experiment.checkpoints import read_checkpoint, save_checkpoint

    path = save_checkpoint(tmp_path / "ckpts", 1, state, config_hash="h", wall_time=0.0, keep=1)
    return read_checkpoint(path, "h")[1]
