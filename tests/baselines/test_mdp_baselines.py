"""Tabular-MDP baselines (RL² Table 2, TabulaRL definitions) and the ``tabular-mdp`` benchmark."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fastadapt.baselines.mdp import (
    MDP_METHODS,
    _extended_vi,
    evaluate_mdp_method,
    simulate_mdp,
    value_iteration,
)
from fastadapt.bench.tabular_mdp import TabularMDPBenchConfig, run_tabular_mdp
from fastadapt.core.errors import ConfigError
from fastadapt.core.registry import BENCHMARKS
from fastadapt.core.seeding import np_rng
from fastadapt.core.types import BenchContext


def _tiny() -> tuple[np.ndarray, np.ndarray]:
    # 2 states, 2 actions, deterministic: a0 -> s0, a1 -> s1 (from either state)
    P = np.zeros((1, 2, 2, 2))
    P[0, :, 0, 0] = 1.0
    P[0, :, 1, 1] = 1.0
    R = np.array([[[1.0, 0.5], [0.0, 2.0]]])
    return P, R


def test_value_iteration_by_hand() -> None:
    P, R = _tiny()
    Q = value_iteration(R, P, horizon=2)
    np.testing.assert_allclose(Q[0, 1], [[1.0, 0.5], [0.0, 2.0]])  # last step: immediate reward
    np.testing.assert_allclose(Q[0, 0], [[2.0, 2.5], [1.0, 4.0]])  # Q0 = R + max_a Q1(next)


def test_oracle_on_tiny_mdp_without_noise() -> None:
    P, R = _tiny()
    zeros = np.zeros((1, 3, 2))
    tot = simulate_mdp("oracle", P, R, episodes=3, horizon=2, u_next=np.full((1, 3, 2), 0.5),
                       z_reward=zeros, rng=np_rng(0))
    assert tot[0] == pytest.approx(3 * 2.5)  # a1 (0.5) then a1 (2.0) in each episode


def test_extended_vi_limits() -> None:
    rng = np_rng(1)
    P = rng.dirichlet(np.ones(4), size=(3, 4, 2))
    R = rng.normal(size=(3, 4, 2))
    zero = np.zeros((3, 4, 2))
    np.testing.assert_allclose(_extended_vi(R, P, zero, zero, 3), value_iteration(R, P, 3), atol=1e-12)
    # unbounded L1 slack: all mass on the best next state, i.e. Q = R + max_s' V(s')
    Q = _extended_vi(R, P, zero, np.full((3, 4, 2), 10.0), 2)
    v1 = R.max(-1)
    np.testing.assert_allclose(Q[:, 0], R + v1.max(-1)[:, None, None], atol=1e-12)


def test_random_mean_is_ten_per_episode() -> None:
    res = evaluate_mdp_method("random", episodes=10, trials=400, seed=0)
    assert abs(res.mean - 100.0) < 4 * res.se


def test_learners_beat_random_and_oracle_bounds_them() -> None:
    out = {m: evaluate_mdp_method(m, episodes=5, trials=150, seed=2,
                                  grid={"opsrl": [2], "ucrl2": [0.1], "beb": [0.01],
                                        "eps_greedy": [0.1]}.get(m), tune_trials=20)
           for m in MDP_METHODS}
    for m in ("psrl", "opsrl", "ucrl2", "beb", "greedy"):
        assert out[m].mean > out["random"].mean + 3 * out["random"].se, m
        assert out[m].mean < out["oracle"].mean, m
    assert abs(out["oracle"].mean / 50 - 2.18) < 0.15  # about 21.8 per episode (REFERENCES.md)
    assert out["ucrl2"].tuned == {"scaling": 0.1} and out["opsrl"].tuned == {"samples": 2}


def test_determinism_and_unknown_method() -> None:
    a = evaluate_mdp_method("psrl", 3, trials=50, seed=4)
    b = evaluate_mdp_method("psrl", 3, trials=50, seed=4)
    assert a.mean == b.mean
    with pytest.raises(ConfigError, match="methods"):
        evaluate_mdp_method("dqn", 3)


def test_bench_config_and_rows(tmp_path: Path) -> None:
    assert BENCHMARKS.get("tabular-mdp").config is TabularMDPBenchConfig
    cfg = TabularMDPBenchConfig(episodes=10, trials=30, methods="random")
    assert cfg.episodes == [10] and cfg.methods == ["random"]
    with pytest.raises(ConfigError, match="methods.*allowed"):
        TabularMDPBenchConfig(methods=["psrl", "dqn"])
    ctx = BenchContext(out=tmp_path)
    rows = run_tabular_mdp(TabularMDPBenchConfig(episodes=[10, 25], trials=30, methods=["random", "psrl"]), ctx)
    assert [(r.method, r.setting) for r in rows] == [
        ("random", {"episodes": 10}), ("psrl", {"episodes": 10}),
        ("random", {"episodes": 25}), ("psrl", {"episodes": 25}),
    ]
    assert all(r.n == 30 and "wall_s" in r.extra and "tuned" in r.extra for r in rows)
    refs = {(r.method, r.setting["episodes"]): r.mean for r in ctx.references}
    assert refs[("psrl (paper)", 10)] == 138.1 and refs[("random (paper)", 25)] == 250.2
    assert ctx.plot is not None
    ctx.plot(rows, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000
