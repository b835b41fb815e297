"""ProMP (Rothfuss et al. 2019): the LVC estimator's gradient and Hessian on a toy problem with a closed
form, registration, resume equality, a ProMP step changes the policy."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fastadapt.algos.metarl.common import MetaRLEvalConfig, Rollouts, expand_params, inner_losses
from fastadapt.algos.metarl.promp import ProMP, ProMPConfig
from fastadapt.core.registry import ALGOS
from fastadapt.tasks.rl.navigation2d import Navigation2D

LOG_2PI = math.log(2 * math.pi)


class ConstGaussian(nn.Module):
    """pi_theta(a) = N(a; mu, 1) for every observation (one-step Gaussian bandit)."""

    def __init__(self, mu: float) -> None:
        super().__init__()
        self.mu = nn.Parameter(torch.tensor([mu], dtype=torch.float64))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.mu.expand(*obs.shape[:-1], 1)
        return m, torch.zeros_like(m)

    def log_prob(self, out: tuple[torch.Tensor, ...], actions: torch.Tensor) -> torch.Tensor:
        m, _ = out
        return (-0.5 * (actions - m) ** 2 - 0.5 * LOG_2PI).sum(-1)


def bandit_rollouts(theta: float, c: float, n: int, seed: int) -> tuple[Rollouts, torch.Tensor]:
    """n one-step episodes a ~ N(theta, 1), reward r = -(a - c)^2 used directly as the advantage."""
    g = torch.Generator().manual_seed(seed)
    a = theta + torch.randn(1, n, 1, 1, generator=g, dtype=torch.float64)
    r = -((a - c) ** 2).squeeze(-1)
    ones = torch.ones_like(r)
    obs = torch.zeros(1, n, 1, 1, dtype=torch.float64)
    return Rollouts(obs, a, r, ones, r.clone(), torch.zeros_like(r), r.clone()), a.reshape(-1)


def grad_and_hessian(estimator: str, policy: ConstGaussian, ro: Rollouts) -> tuple[float, float]:
    """d/dtheta and d^2/dtheta^2 of the estimator's surrogate objective (= minus the inner loss)."""
    p = expand_params(dict(policy.named_parameters()), 1)
    obj = -inner_losses(policy, p, ro, estimator, 1.0).sum()  # type: ignore[arg-type]
    (g,) = torch.autograd.grad(obj, [policy.mu], create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), [policy.mu])
    return float(g.detach()), float(h)


def test_lvc_sample_formulas() -> None:
    """On fixed samples: LVC gradient = mean (a - theta) r, LVC Hessian = mean ((a - theta)^2 - 1) r
    (grad^2 log pi + (grad log pi)^2 weighted by r); MAML's log-likelihood surrogate has the same gradient but
    Hessian mean(-1 * r) (no score-product term)."""
    theta, c = 0.3, -1.2
    policy = ConstGaussian(theta)
    ro, a = bandit_rollouts(theta, c, 50, seed=0)
    r = ro.advantages.reshape(-1)
    g_lvc, h_lvc = grad_and_hessian("lvc", policy, ro)
    g_pg, h_pg = grad_and_hessian("reinforce", policy, ro)
    s = a - theta
    assert g_lvc == pytest.approx(float((s * r).mean()), rel=1e-12)
    assert g_pg == pytest.approx(g_lvc, rel=1e-12)
    assert h_lvc == pytest.approx(float(((s**2 - 1) * r).mean()), rel=1e-10)
    assert h_pg == pytest.approx(float(-r.mean()), rel=1e-10)


def test_lvc_expected_gradient_and_hessian_match_closed_form() -> None:
    """J(theta) = E_{a~N(theta,1)}[-(a-c)^2] = -((theta-c)^2 + 1): grad J = -2 (theta - c), Hessian = -2.
    The LVC estimator is unbiased for both in this one-step problem (Rothfuss et al. 2019, sec. 5); MAML's
    log-likelihood surrogate has the right gradient but its Hessian estimates -E[r] = (theta-c)^2 + 1."""
    theta, c, n = 0.5, -1.0, 400_000
    policy = ConstGaussian(theta)
    ro, a = bandit_rollouts(theta, c, n, seed=1)
    r = ro.advantages.reshape(-1)
    s = a - theta
    g_lvc, h_lvc = grad_and_hessian("lvc", policy, ro)
    _, h_pg = grad_and_hessian("reinforce", policy, ro)
    se_g = float((s * r).std() / math.sqrt(n))
    se_h = float(((s**2 - 1) * r).std() / math.sqrt(n))
    assert abs(g_lvc - (-2 * (theta - c))) < 4 * se_g
    assert abs(h_lvc - (-2.0)) < 4 * se_h
    expected_pg = (theta - c) ** 2 + 1  # 3.25, far from the true -2
    assert abs(h_pg - expected_pg) < 0.05 and abs(h_pg - (-2.0)) > 5.0


def test_dice_expected_hessian_matches_closed_form() -> None:
    """DiCE (Foerster et al. 2018) is also unbiased for the Hessian of J in the one-step problem."""
    theta, c, n = 0.5, -1.0, 400_000
    policy = ConstGaussian(theta)
    ro, a = bandit_rollouts(theta, c, n, seed=2)
    g, h = grad_and_hessian("dice", policy, ro)
    s, r = a - theta, ro.rewards.reshape(-1)
    assert abs(g - (-2 * (theta - c))) < 4 * float((s * r).std() / math.sqrt(n))
    assert abs(h - (-2.0)) < 4 * float(((s**2 - 1) * r).std() / math.sqrt(n))


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def small_cfg(**kw: object) -> ProMPConfig:
    base: dict[str, object] = dict(meta_batch=4, fast_batch=4, hidden=(16,), promp_steps=2)
    base.update(kw)
    return ProMPConfig(**base)


def test_registered() -> None:
    entry = ALGOS.get("promp")
    assert entry.family == "metarl" and entry.config is ProMPConfig and entry.eval_config is MetaRLEvalConfig


@pytest.mark.parametrize("kw", [{}, {"adaptive_kl": True, "inner_steps": 2}])
def test_resume_equality(kw: dict, tmp_path) -> None:
    cfg = small_cfg(**kw)
    task = Navigation2D(horizon=10)
    a = ProMP(cfg, task, seed=3)
    for i in range(2):
        a.train_step(i)
    snap = a.state_dict()
    ref = [a.train_step(i) for i in (2, 3)]
    b = ProMP(cfg, Navigation2D(horizon=10), seed=3)
    b.load_state_dict(roundtrip(snap, tmp_path))
    assert [b.train_step(i) for i in (2, 3)] == ref
    before = {k: v.clone() for k, v in a.policy.state_dict().items()}
    a.train_step(4)
    assert any(not torch.equal(before[k], v) for k, v in a.policy.state_dict().items())


def roundtrip(state, tmp_path):
    """Pass a learner state through the real checkpoint format (safetensors + JSON) and back."""
    from fastadapt.experiment.checkpoints import read_checkpoint, save_checkpoint

    path = save_checkpoint(tmp_path / "ckpts", 1, state, config_hash="h", wall_time=0.0, keep=1)
    return read_checkpoint(path, "h")[1]
