"""MAML-RL (Finn et al. 2017): exact meta-gradients, first-order option, resume equality, quick learning."""

from __future__ import annotations

import math

import pytest
import torch

from fastadapt.algos.metarl.common import (
    MetaRLEvalConfig,
    Rollouts,
    adapt_params,
    adaptation_curve,
    detach_params,
    expand_params,
    inner_losses,
    log_probs,
    make_sampler,
    maml_surrogate,
    shared_params,
    trpo_step,
)
from fastadapt.algos.metarl.maml_rl import MAMLRL, MAMLRLConfig
from fastadapt.core.registry import ALGOS
from fastadapt.core.seeding import torch_gen
from fastadapt.nn.policies import CategoricalMLPPolicy, GaussianMLPPolicy
from fastadapt.ops.cg import flat_grad, hessian_vector_product, set_flat_
from fastadapt.ops.returns import masked_mean
from fastadapt.tasks.rl.navigation2d import Navigation2D

# ----------------------------------------------------------------------------------- toy fixtures


def toy_rollouts(T: int = 2, E: int = 3, H: int = 4, obs_dim: int = 2, act_dim: int = 2, seed: int = 0,
                 discrete: bool = False) -> Rollouts:
    """Random float64 rollouts with some padded steps (episodes that ended early)."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(T, E, H, obs_dim, generator=g, dtype=torch.float64)
    if discrete:
        actions = torch.randint(0, act_dim, (T, E, H), generator=g)
    else:
        actions = torch.randn(T, E, H, act_dim, generator=g, dtype=torch.float64)
    mask = torch.ones(T, E, H, dtype=torch.float64)
    mask[0, 1, 3:] = 0
    mask[1, 2, 2:] = 0
    rewards = torch.randn(T, E, H, generator=g, dtype=torch.float64) * mask
    adv = torch.randn(T, E, H, generator=g, dtype=torch.float64) * mask
    values = torch.randn(T, E, H, generator=g, dtype=torch.float64) * mask
    return Rollouts(obs, actions, rewards, mask, adv, values, rewards.clone())


def toy_policy(discrete: bool = False) -> torch.nn.Module:
    gen = torch_gen(3, "toy")
    if discrete:
        return CategoricalMLPPolicy(2, 3, hidden=(4,), generator=gen).double()
    return GaussianMLPPolicy(2, 2, hidden=(4,), init_log_std=-0.3, generator=gen).double()


def meta_loss_fn(policy, train, valid, lr, estimator, create_graph=True):
    theta0 = detach_params(shared_params(policy))
    phi0 = adapt_params(policy, expand_params(theta0, valid.num_tasks), train[0], lr, estimator, 0.9)
    for ro in train[1:]:
        phi0 = adapt_params(policy, phi0, ro, lr, estimator, 0.9)
    with torch.no_grad():
        old_logp, old_out = log_probs(policy, detach_params(phi0), valid)

    def f(theta, cg=create_graph):
        return maml_surrogate(policy, theta, train, valid, old_logp, old_out, lr, estimator, 0.9, cg)[0]

    return f


def finite_diff_grad(f, theta, eps=1e-6):
    out = {}
    for k, v in theta.items():
        g = torch.zeros_like(v)
        for i in range(v.numel()):
            plus = {n: t.detach().clone() for n, t in theta.items()}
            minus = {n: t.detach().clone() for n, t in theta.items()}
            plus[k].view(-1)[i] += eps
            minus[k].view(-1)[i] -= eps
            with torch.no_grad():
                g.view(-1)[i] = (f(plus) - f(minus)) / (2 * eps)
        out[k] = g
    return out


# --------------------------------------------------------------------------------------- gradients


@pytest.mark.parametrize(
    "estimator,steps,discrete",
    [("reinforce", 1, False), ("reinforce", 2, False), ("reinforce", 1, True)],
)
def test_second_order_meta_gradient_equals_finite_differences(estimator: str, steps: int, discrete: bool) -> None:
    """The autograd meta-gradient through the inner update(s) equals central finite differences of the
    meta-objective theta -> L_outer(adapt(theta)) (float64, tiny policy). (LVC and DiCE deliberately differ
    from this derivative of the sample function: their extra curvature terms estimate the dependence of
    the sampling distribution on theta; they are tested against closed forms in test_promp.py.)"""
    policy = toy_policy(discrete)
    act = 3 if discrete else 2
    train = [toy_rollouts(seed=1 + s, act_dim=act, discrete=discrete) for s in range(steps)]
    valid = toy_rollouts(seed=9, act_dim=act, discrete=discrete)
    f = meta_loss_fn(policy, train, valid, lr=0.5, estimator=estimator)
    theta = shared_params(policy)
    loss = f(theta)
    grads = torch.autograd.grad(loss, list(theta.values()))
    fd = finite_diff_grad(f, theta)
    for (k, g) in zip(theta, grads):
        assert torch.allclose(g, fd[k], rtol=1e-5, atol=1e-8), (k, g, fd[k])
    # the second-order term is not negligible here (otherwise the test would prove little)
    fo = torch.autograd.grad(f(theta, cg=False), list(theta.values()))
    diff = sum(float((a - b).abs().sum()) for a, b in zip(grads, fo))
    assert diff > 1e-3


def test_first_order_drops_exactly_the_hessian_term() -> None:
    """g_SO - g_FO = -alpha * mean_i H_i(theta) v_i with v_i = grad L_out_i(phi_i) and H_i the Hessian of task
    i's inner loss; and g_FO = mean_i v_i (the outer gradient at the adapted parameters)."""
    policy = toy_policy()
    train, valid = toy_rollouts(seed=1), toy_rollouts(seed=2)
    lr = 0.5
    f = meta_loss_fn(policy, [train], valid, lr, "reinforce")
    theta = shared_params(policy)
    names = list(theta)
    g_so = torch.autograd.grad(f(theta, cg=True), list(theta.values()))
    g_fo = torch.autograd.grad(f(theta, cg=False), list(theta.values()))
    flat = torch.cat([v.detach().reshape(-1) for v in theta.values()])
    shapes = [v.shape for v in theta.values()]

    def unflat(x):
        out, i = {}, 0
        for n, s in zip(names, shapes):
            m = math.prod(s)
            out[n] = x[i:i + m].reshape(s)
            i += m
        return out

    T = valid.num_tasks
    phi = adapt_params(policy, expand_params(unflat(flat), T), train, lr)
    phi = detach_params(phi)
    expected_diff = torch.zeros_like(flat)
    expected_fo = torch.zeros_like(flat)
    # outer loss per task at phi_i: importance ratio has gradient grad log pi * A (mean over valid steps)
    with torch.no_grad():
        old_logp, _ = log_probs(policy, phi, valid)
    for i in range(T):
        def outer_i(x, i=i):
            p = {k: v.unsqueeze(0) for k, v in unflat(x).items()}
            one = Rollouts(*(t[i:i + 1] for t in (valid.obs, valid.actions, valid.rewards, valid.mask,
                                                   valid.advantages, valid.values, valid.returns)))
            logp, _ = log_probs(policy, p, one)
            ratio = torch.exp(logp - old_logp[i:i + 1])
            return -(ratio * one.advantages * one.mask).sum() / one.mask.sum()

        def inner_i(x, i=i):
            p = {k: v.unsqueeze(0) for k, v in unflat(x).items()}
            one = Rollouts(*(t[i:i + 1] for t in (train.obs, train.actions, train.rewards, train.mask,
                                                   train.advantages, train.values, train.returns)))
            return inner_losses(policy, p, one, "reinforce", 0.9).sum()

        phi_i = torch.cat([phi[k][i].reshape(-1) for k in names])
        v_i = torch.autograd.functional.jacobian(outer_i, phi_i)
        _, hv = torch.autograd.functional.hvp(inner_i, flat, v_i)
        expected_diff += -lr * hv / T
        expected_fo += v_i / T
    got_diff = torch.cat([(a - b).reshape(-1) for a, b in zip(g_so, g_fo)])
    got_fo = torch.cat([b.reshape(-1) for b in g_fo])
    assert torch.allclose(got_fo, expected_fo, rtol=1e-8, atol=1e-10)
    assert torch.allclose(got_diff, expected_diff, rtol=1e-6, atol=1e-10)
    assert float(got_diff.abs().max()) > 1e-4


def test_per_task_adaptation_is_batched_and_independent() -> None:
    """One backward over the summed losses gives each task its own gradient: adapting tasks together equals
    adapting each alone."""
    policy = toy_policy()
    ro = toy_rollouts(T=3, seed=4)
    theta = detach_params(shared_params(policy))
    together = adapt_params(policy, expand_params(theta, 3), ro, 0.3)
    for i in range(3):
        one = Rollouts(*(t[i:i + 1] for t in (ro.obs, ro.actions, ro.rewards, ro.mask, ro.advantages,
                                              ro.values, ro.returns)))
        alone = adapt_params(policy, expand_params(theta, 1), one, 0.3)
        for k in theta:
            assert torch.allclose(together[k][i], alone[k][0], atol=1e-12)
    # no-grad context gives the same adapted parameters (views of Parameters under no_grad are a trap)
    with torch.no_grad():
        again = adapt_params(policy, expand_params(shared_params(policy), 3), ro, 0.3)
    for k in theta:
        assert torch.allclose(again[k], together[k], atol=1e-12)


# ------------------------------------------------------------------------- TRPO meta-update curvature
# Regression tests for the MAML-TRPO seed-2 divergence on navigation2d (benchmarks/maml-rl/README.md): the
# shipped config used the Fisher of the adapted policies (inner gradient held constant) as the trust-region
# curvature. The true KL of the adapted policies, theta -> KL(pi_phi_old || pi_phi(theta)), has Hessian
# J^T F J with J = dphi/dtheta = I - alpha H_inner. The Fisher-only model ignores J: on navigation2d it
# underestimated the KL of the accepted steps 2-10x (seeds 0, 1) and up to 150x (seed 2, growing as it
# diverged), forcing step fractions of 0.07-0.13; with the exact curvature the ratio stays ~1.1.


def toy_learner(fvp_second_order: bool, lr: float = 0.5, max_kl: float = 1e-3):
    """A MAMLRL whose policy is the float64 toy policy, with the toy rollouts and the old adapted policy."""
    cfg = small_cfg(hidden=(4,), inner_lr=lr, gamma=0.9, max_kl=max_kl, fvp_second_order=fvp_second_order,
                    cg_iters=20, max_backtracks=15)
    learner = MAMLRL(cfg, small_task(), seed=0)
    learner.policy = toy_policy()
    train, valid = [toy_rollouts(seed=1)], toy_rollouts(seed=2)
    theta0 = detach_params(expand_params(shared_params(learner.policy), valid.num_tasks))
    phi_old = detach_params(adapt_params(learner.policy, theta0, train[0], lr, "reinforce", 0.9))
    with torch.no_grad():
        old_logp, old_out = log_probs(learner.policy, phi_old, valid)
        pre_logp, _ = log_probs(learner.policy, theta0, train[0])
    return learner, train, valid, old_logp, old_out, pre_logp


def adapted_kl_and_loss(learner, train, valid, old_logp, old_out) -> tuple[float, float]:
    """Independent recomputation: adapt the CURRENT theta on ``train`` (fresh inner step), then the mean KL
    of the old vs new adapted policies and the importance-sampled surrogate loss on ``valid``."""
    pol, cfg = learner.policy, learner.cfg
    theta = detach_params(expand_params(shared_params(pol), valid.num_tasks))
    phi = adapt_params(pol, theta, train[0], cfg.inner_lr, "reinforce", cfg.gamma)
    with torch.no_grad():
        logp, out = log_probs(pol, phi, valid)
        kl = masked_mean(pol.kl(old_out, out), valid.mask, dim=(1, 2)).mean()
        loss = -masked_mean(torch.exp(logp - old_logp) * valid.advantages, valid.mask, dim=(1, 2)).mean()
    return float(kl), float(loss)


@pytest.mark.parametrize("fvp_second_order", [True, False])
def test_trpo_curvature_is_the_hessian_of_the_adapted_policies_kl(fvp_second_order: bool) -> None:
    """The Hessian-vector products TRPO uses equal finite differences of the gradient of the adapted
    policies' KL through the inner update (J^T F J) with the default ``fvp_second_order: true``; the
    Fisher-only option is measurably different on this problem (so the test can tell the two apart)."""
    learner, train, valid, old_logp, old_out, pre_logp = toy_learner(fvp_second_order)
    objective, kl_fn = learner.trpo_closures(train, valid, old_logp, old_out, pre_logp)
    params = list(learner.policy.parameters())
    kl = objective(True)[1] if kl_fn is None else kl_fn()
    hvp = hessian_vector_product(kl, params)
    flat0 = torch.nn.utils.parameters_to_vector(params).detach().clone()
    v = torch.randn(flat0.shape, generator=torch.Generator().manual_seed(4), dtype=flat0.dtype)
    got = hvp(v)

    def kl_grad_at(x: torch.Tensor) -> torch.Tensor:
        set_flat_(params, x)
        g = flat_grad(objective(True)[1], params)  # the true KL, differentiated through the adaptation
        set_flat_(params, flat0)
        return g

    eps = 1e-5
    fd = (kl_grad_at(flat0 + eps * v) - kl_grad_at(flat0 - eps * v)) / (2 * eps)
    rel = float((got - fd).norm() / fd.norm())
    if fvp_second_order:
        assert rel < 1e-4, rel
    else:
        assert rel > 0.1, rel  # the approximation the shipped config used before the fix


def test_trpo_meta_step_respects_the_trust_region_of_the_adapted_policies() -> None:
    """One TRPO meta-update with the default (exact) curvature: the step is accepted; the KL of the adapted
    policies, recomputed independently by re-running the inner step from the new theta, is <= max_kl and
    equals the line search's; the surrogate of the adapted policies decreased."""
    learner, train, valid, old_logp, old_out, pre_logp = toy_learner(True, max_kl=1e-3)
    objective, kl_fn = learner.trpo_closures(train, valid, old_logp, old_out, pre_logp)
    kl0, loss0 = adapted_kl_and_loss(learner, train, valid, old_logp, old_out)
    assert kl0 < 1e-12 and kl_fn is None
    res = trpo_step(list(learner.policy.parameters()), objective, learner.trpo_fields(), kl_fn)
    kl1, loss1 = adapted_kl_and_loss(learner, train, valid, old_logp, old_out)
    assert res.step_frac > 0
    assert 0 < kl1 <= learner.cfg.max_kl
    assert math.isclose(kl1, res.kl, rel_tol=1e-6) and math.isclose(loss1, res.loss_after, rel_tol=1e-6)
    assert loss1 < loss0


def test_trpo_quadratic_kl_model_is_accurate_only_with_the_exact_curvature() -> None:
    """In a small trust region the KL measured at the accepted step matches the quadratic model
    ``1/2 s^T H s`` (within a factor 2) with the exact curvature. With the Fisher-only curvature the model
    underestimates the KL so badly that 15 backtracks (factor 0.8^15 in step, ~0.001 in KL) find no
    acceptable step here — on navigation2d it forced step fractions of 0.07-0.13 and the divergence."""
    got = {}
    for fso in (True, False):
        learner, train, valid, old_logp, old_out, pre_logp = toy_learner(fso, max_kl=1e-5)
        objective, kl_fn = learner.trpo_closures(train, valid, old_logp, old_out, pre_logp)
        got[fso] = trpo_step(list(learner.policy.parameters()), objective, learner.trpo_fields(), kl_fn)
    exact, fisher = got[True], got[False]
    assert exact.step_frac > 0 and 0.5 < exact.kl / exact.kl_model < 2.0, exact
    assert fisher.step_frac == 0 or fisher.kl / fisher.kl_model > 4.0, fisher


def test_shipped_nav2d_config_uses_the_exact_curvature() -> None:
    """The shipped MAML-TRPO configs differentiate the KL through the inner update (see above)."""
    from fastadapt.experiment.config import find_config, read_yaml

    for name in ("maml-trpo-navigation2d", "maml-trpo-halfcheetah-dir", "maml-trpo-halfcheetah-vel",
                 "maml-trpo-ml1"):
        algo = read_yaml(find_config(name))["algo"]
        assert algo.get("fvp_second_order", True) is True, name


# --------------------------------------------------------------------------------------- learner


def small_cfg(**kw: object) -> MAMLRLConfig:
    base: dict[str, object] = dict(meta_batch=4, fast_batch=4, hidden=(16,), cg_iters=3, max_backtracks=5)
    base.update(kw)
    return MAMLRLConfig(**base)


def small_task() -> Navigation2D:
    return Navigation2D(horizon=10)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_registered_names() -> None:
    for name in ("maml-trpo", "maml-ppo", "maml-vpg", "emaml-trpo"):
        entry = ALGOS.get(name)
        assert entry.family == "metarl" and entry.eval_config is MetaRLEvalConfig
    assert ALGOS.get("maml-ppo").config().outer == "ppo"
    assert ALGOS.get("emaml-trpo").config().estimator == "emaml"


@pytest.mark.parametrize(
    "kw",
    [{}, {"outer": "ppo", "ppo_epochs": 2, "estimator": "dice"},
     {"outer": "vpg", "estimator": "emaml", "first_order": True, "inner_steps": 2}],
)
def test_resume_equality(kw: dict, tmp_path) -> None:
    """Build, run 2 steps, snapshot, run 2 more; a fresh learner loaded from the snapshot matches exactly."""
    cfg = small_cfg(**kw)
    a = MAMLRL(cfg, small_task(), seed=5)
    for i in range(2):
        a.train_step(i)
    snap = a.state_dict()
    ref = [a.train_step(i) for i in (2, 3)]
    b = MAMLRL(cfg, small_task(), seed=5)
    b.load_state_dict(roundtrip(snap, tmp_path))
    got = [b.train_step(i) for i in (2, 3)]
    assert got == ref
    assert all(math.isfinite(v) for m in got for v in m.values())
    assert ref[-1]["env_steps"] > ref[0]["env_steps"]


def test_quick_learning_improves_post_adaptation_return() -> None:
    """A few MAML-TRPO meta-iterations on 2D navigation improve the 1-step-adapted return on fixed tasks."""
    torch.set_num_threads(1)
    task = Navigation2D(horizon=30)
    cfg = MAMLRLConfig(meta_batch=10, fast_batch=10, hidden=(32, 32), fvp_second_order=False, max_kl=0.02)
    learner = MAMLRL(cfg, task, seed=0)
    tasks = task.sample(10, seed=123, split="test")

    def post1() -> float:
        s = make_sampler(task, learner.policy, 10, 0)
        rets, _, _ = adaptation_curve(learner.policy, detach_params(shared_params(learner.policy)), s, tasks,
                                      1, cfg.inner_lr, "reinforce", cfg, seed=7)
        return float(rets[1].mean())

    before = post1()
    for i in range(6):
        learner.train_step(i)
    after = post1()
    print("quick-learning post-1-step return", before, after)
    assert after > before + 2.0, (before, after)


def test_evaluate_rows_protocol() -> None:
    cfg = small_cfg()
    learner = MAMLRL(cfg, small_task(), seed=0)
    learner.train_step(0)
    rows = learner.evaluate(MetaRLEvalConfig(test_tasks=3, adapt_steps=2, pretrain_iterations=1), seed=0)
    methods = {r.method for r in rows}
    assert methods == {"maml-trpo", "pretrained", "random-init", "oracle"}
    for m in methods:
        ks = sorted(r.setting["adapt_steps"] for r in rows if r.method == m)
        assert ks == [0, 1, 2]
    assert all(r.n == 3 and math.isfinite(r.mean) and math.isfinite(r.se) for r in rows)
    oracle = [r.mean for r in rows if r.method == "oracle"]
    best_other = max(r.mean for r in rows if r.method != "oracle")
    assert min(oracle) > best_other


@pytest.mark.slow
@pytest.mark.timeout(7200)  # ~5 CPU-minutes; hours of wall time on a loaded 2-core machine
def test_nav2d_maml_beats_pretrained_beats_random() -> None:
    """The shipped maml-trpo-navigation2d config: after one adaptation step MAML > pretrained > random."""
    from fastadapt.experiment import catalog
    from fastadapt.experiment.config import load_config

    catalog.load_all()
    cfg = load_config("maml-trpo-navigation2d")
    learner = cfg.algo_entry.build(cfg.algo, cfg.task_entry.build(cfg.task), 0)
    for i in range(cfg.train.iterations):
        learner.train_step(i)
    rows = learner.evaluate(cfg.eval, seed=0)
    one = {r.method: r.mean for r in rows if r.setting["adapt_steps"] == 1}
    print("nav2d 1-step returns (seed 0):", one)
    assert one["maml-trpo"] > one["pretrained"] > one["random-init"], one


@pytest.mark.mujoco
def test_halfcheetah_dir_end_to_end_with_process_sampler() -> None:
    """One MAML-TRPO iteration and a 1-step meta-test on HalfCheetah-Dir through the process sampler."""
    pytest.importorskip("mujoco")
    from fastadapt.tasks.rl.mujoco.cheetah import HalfCheetahDir, HalfCheetahDirConfig

    task = HalfCheetahDir(HalfCheetahDirConfig(horizon=10))
    cfg = small_cfg(meta_batch=2, fast_batch=2, num_workers=0)
    learner = MAMLRL(cfg, task, seed=0)
    m = learner.train_step(0)
    assert m["env_steps"] == 2 * 2 * 10 * 2
    rows = learner.evaluate(MetaRLEvalConfig(test_tasks=2, adapt_steps=1, baselines=["random-init"]), seed=0)
    assert {r.method for r in rows} == {"maml-trpo", "random-init"}
    learner.close()


@pytest.mark.metaworld
def test_ml1_reports_success_rate() -> None:
    pytest.importorskip("metaworld")
    from fastadapt.tasks.rl.metaworld import MetaWorldConfig, MetaWorldTasks

    task = MetaWorldTasks(MetaWorldConfig(benchmark="ML1", env_name="reach-v3", horizon=10))
    cfg = small_cfg(meta_batch=2, fast_batch=2, num_workers=0)
    learner = MAMLRL(cfg, task, seed=0)
    m = learner.train_step(0)
    assert 0.0 <= m["post_success"] <= 1.0
    rows = learner.evaluate(MetaRLEvalConfig(test_tasks=2, adapt_steps=1, baselines=[]), seed=0)
    assert all(0.0 <= r.extra["success_rate"] <= 1.0 for r in rows)
    learner.close()


def roundtrip(state, tmp_path):
    """Pass a learner state through the real checkpoint format (safetensors + JSON) and back."""
    from fastadapt.experiment.checkpoints import read_checkpoint, save_checkpoint

    path = save_checkpoint(tmp_path / "ckpts", 1, state, config_hash="h", wall_time=0.0, keep=1)
    return read_checkpoint(path, "h")[1]
