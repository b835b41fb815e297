"""Bandit baselines (RL² Table 1 conventions) and the ``bandits`` benchmark."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from fastadapt.baselines.bandits import (
    BANDIT_METHODS,
    BayesOptimalBandit,
    NotComputable,
    count_posterior_states,
    evaluate_bandit_method,
    simulate,
)
from fastadapt.bench.bandits import BanditBenchConfig, run_bandits
from fastadapt.core.errors import ConfigError
from fastadapt.core.registry import BENCHMARKS
from fastadapt.core.seeding import np_rng
from fastadapt.core.types import BenchContext


@pytest.mark.parametrize(("arms", "pulls", "value", "tol"), [
    (5, 10, 6.660, 5e-4),     # RL² setting, exact DP value (REFERENCES.md)
    (2, 10, 6.0218, 5e-5),
    (10, 10, 6.714, 5e-4),    # k >= n: the same as k = 50
    (50, 10, 6.714, 5e-4),
])
def test_bayes_optimal_exact_values(arms: int, pulls: int, value: float, tol: float) -> None:
    assert abs(BayesOptimalBandit(arms, pulls).value - value) < tol


def test_bayes_optimal_small_cases_by_hand() -> None:
    assert BayesOptimalBandit(1, 7).value == pytest.approx(3.5)  # one arm: n * E[p]
    assert BayesOptimalBandit(2, 1).value == pytest.approx(0.5)
    # n=2: pull, then stay after a success (2/3) and switch after a failure (1/2)
    assert BayesOptimalBandit(2, 2).value == pytest.approx(0.5 + 0.5 * 2 / 3 + 0.5 * 0.5)


def test_bayes_optimal_state_count_and_refusal() -> None:
    bo = BayesOptimalBandit(5, 10)
    assert bo.n_states == count_posterior_states(5, 10) == len(bo._memo)
    with pytest.raises(NotComputable, match="not computed"):
        BayesOptimalBandit(5, 100)


def test_bayes_optimal_policy_simulation_matches_exact_value() -> None:
    res = evaluate_bandit_method("bayes_optimal", 5, 10, trials=3000, seed=1)
    assert abs(res.mean - res.extra["exact_value"]) < 3 * res.se


def _scalar_ucb(means: np.ndarray, u: np.ndarray, c: float) -> float:
    """Per-trial reference implementation of the RL² code's UCB1 (ks=1, ms=2 pseudo-counts)."""
    k = len(means)
    ks, ms, tot = np.ones(k), np.full(k, 2.0), 0.0
    for t in range(len(u)):
        with np.errstate(invalid="ignore", divide="ignore"):
            idx = ks / ms + c * np.sqrt(2 * np.log(t) / ms)
        a = 0 if t == 0 else int(np.argmax(idx))
        r = float(u[t] < means[a])
        ks[a] += r
        ms[a] += 1
        tot += r
    return tot


def test_vectorised_ucb1_and_greedy_match_scalar_reference() -> None:
    rng = np_rng(0, "t")
    means, u = rng.random((50, 4)), rng.random((50, 30))
    for c in (0.0, 0.3):
        ours = simulate("ucb1", means, 30, u, np_rng(0, "p"), c)
        ref = [_scalar_ucb(means[i], u[i], c) for i in range(50)]
        np.testing.assert_array_equal(ours, ref)
    greedy = simulate("greedy", means, 30, u, np_rng(0, "p"))
    np.testing.assert_array_equal(greedy, simulate("ucb1", means, 30, u, np_rng(0, "p"), 0.0))


def test_random_mean_and_ordering() -> None:
    rnd = evaluate_bandit_method("random", 5, 100, trials=400, seed=0)
    assert abs(rnd.mean - 50.0) < 4 * rnd.se
    ts = evaluate_bandit_method("thompson", 5, 100, trials=400, seed=0)
    assert ts.mean > rnd.mean + 15
    assert ts.tuned is None and rnd.n == 400 and rnd.se == pytest.approx(rnd.se)


def test_tuning_reports_the_best_grid_value() -> None:
    res = evaluate_bandit_method("ucb1", 5, 10, trials=300, seed=0, grid=[0.0, 0.5, 1.0])
    assert res.tuned is not None and res.tuned["c"] in (0.0, 0.5, 1.0)
    best = max(res.tuning, key=lambda d: d["mean"])
    assert best["c"] == res.tuned["c"]


@pytest.mark.parametrize("method", ["ots", "eps_greedy", "gittins"])
def test_parametrised_methods_run(method: str) -> None:
    grid = {"ots": [1, 3], "eps_greedy": [0.0, 0.2], "gittins": [0.9, 0.99]}[method]
    res = evaluate_bandit_method(method, 5, 10, trials=200, seed=0, grid=grid)
    assert 5.0 < res.mean < 7.5 and math.isfinite(res.se)


def test_determinism() -> None:
    a = evaluate_bandit_method("thompson", 10, 20, trials=100, seed=3)
    b = evaluate_bandit_method("thompson", 10, 20, trials=100, seed=3)
    assert a.mean == b.mean and a.se == b.se


def test_unknown_method() -> None:
    with pytest.raises(ConfigError, match="methods"):
        evaluate_bandit_method("nope", 5, 10)
    with pytest.raises(ConfigError, match="methods.*allowed"):
        BanditBenchConfig(methods=["ucb1", "nope"])


def test_bench_config_accepts_scalars() -> None:
    cfg = BanditBenchConfig(arms=5, pulls=10, methods="ucb1", trials=50)
    assert cfg.arms == [5] and cfg.pulls == [10] and cfg.methods == ["ucb1"]
    assert BENCHMARKS.get("bandits").config is BanditBenchConfig


def test_bench_rows_and_paper_references(tmp_path: Path) -> None:
    cfg = BanditBenchConfig(arms=[5], pulls=[10, 100], methods=["bayes_optimal", "random"], trials=50)
    ctx = BenchContext(out=tmp_path)
    rows = run_bandits(cfg, ctx)
    assert [(r.method, r.setting) for r in rows] == [
        ("bayes_optimal", {"arms": 5, "pulls": 10}),
        ("random", {"arms": 5, "pulls": 10}),
        ("random", {"arms": 5, "pulls": 100}),
    ]  # Bayes-optimal for n=100 is skipped with a note, never approximated
    assert any("Not computed" in n and "bayes_optimal k=5 n=100" in n for n in ctx.notes)
    r = rows[1]
    assert r.n == 50 and r.se > 0 and set(r.extra) >= {"tuned", "wall_s"}
    assert all(ref.method.endswith("(paper)") for ref in ctx.references)
    assert any(ref.method == "random (paper)" and ref.mean == 5.0 for ref in ctx.references)
    assert ctx.plot is not None
    ctx.plot(rows, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_all_methods_listed() -> None:
    assert set(BANDIT_METHODS) == {
        "bayes_optimal", "gittins", "ucb1", "thompson", "ots", "eps_greedy", "greedy", "random"
    }


def test_ucb_variants() -> None:
    from fastadapt.baselines.bandits import ucb_choose

    s, m = np.zeros((3, 4)), np.zeros((3, 4))
    assert (ucb_choose(0, s, m, 1.0) == 0).all()  # RL² code: NaN index at t = 0 -> arm 0
    assert (ucb_choose(2, s, m, 1.0, "classic") == 2).all()  # classic: each arm once first
    m[:, 1], s[:, 1] = 3.0, 1.0
    assert (ucb_choose(5, s, m, 0.5, "t_from_1") != 1).all()  # the pulled arm's bonus is smaller
    with pytest.raises(ConfigError, match="variant"):
        ucb_choose(1, s, m, 1.0, "nope")


def test_gittins_above_the_old_limit_and_refusal() -> None:
    from fastadapt.baselines.bandits import GITTINS_MAX_PULLS

    res = evaluate_bandit_method("gittins", 5, 160, trials=40, seed=0, grid=[0.9])
    assert res.tuned == {"discount": 0.9} and 0.0 < res.extra["index_max_bracket_width"] <= 5e-4
    assert res.extra["truncation_level"] == 320 and 80 < res.mean < 160
    with pytest.raises(NotComputable, match="not computed"):
        evaluate_bandit_method("gittins", 5, GITTINS_MAX_PULLS + 1, trials=10)


def test_bench_ots_grid_options() -> None:
    cfg = BanditBenchConfig(ots_samples=3, ots_tune_trials=20)
    assert cfg.ots_samples == [3] and cfg.ots_tune_trials == 20
    with pytest.raises(ValueError):
        BanditBenchConfig(ots_samples=[0, 2])


def test_ots_tuning_with_a_reduced_grid(tmp_path: Path) -> None:
    cfg = BanditBenchConfig(arms=5, pulls=20, methods="ots", trials=60, ots_samples=[1, 4], ots_tune_trials=30)
    ctx = BenchContext(out=tmp_path)
    (row,) = run_bandits(cfg, ctx)
    assert row.extra["tuned"]["samples"] in (1, 4)
    assert row.extra["tuning_grid"] == [1.0, 4.0] and row.extra["tune_trials"] == 30
