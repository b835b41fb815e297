"""Gittins indices by calibration + truncated DP, against published values (REFERENCES.md)."""

from __future__ import annotations

import numpy as np
import pytest

from fastadapt.baselines.gittins import (
    gittins_index,
    gittins_indices,
    gittins_table,
    gittins_table_calibrated,
)
from fastadapt.core.errors import ConfigError


def test_published_values_gittins_r_package() -> None:
    # jedwards24/gittins tests: bmab_gi_ab(3, 2, gamma=0.8, tol=1e-4, N=20) = 0.67143994; the package returns
    # the midpoint of a bracket narrower than tol, so agreement is expected to within tol / 2.
    assert abs(gittins_index(3, 2, 0.8, 20) - 0.67143994) <= 0.5e-4
    # bmab_gi_multiple(alpha_start=2, beta_start=1, gamma=0.5, N=20, tol=5e-4) snapshot
    for (a, b), ref in {(2, 1): 0.70600586, (2, 2): 0.53586272, (3, 1): 0.77735112}.items():
        assert abs(gittins_index(a, b, 0.5, 20) - ref) <= 2.5e-4, (a, b)


def test_uniform_prior_values() -> None:
    # GI(1,1) ~ 0.7029 at gamma=0.9 and ~ 0.8699 at gamma=0.99 (REFERENCES.md)
    assert abs(gittins_index(1, 1, 0.9, 100) - 0.7029) < 2e-4
    assert abs(gittins_index(1, 1, 0.99, 800) - 0.8699) < 2e-4


def test_index_properties() -> None:
    a = np.array([1, 2, 3, 1, 1, 5])
    b = np.array([1, 1, 1, 2, 3, 5])
    gi = gittins_indices(a, b, 0.9, 60)
    assert (gi >= a / (a + b)).all() and (gi <= 1).all()
    assert gi[0] < gi[1] < gi[2]  # more successes -> larger index
    assert gi[0] > gi[3] > gi[4]  # more failures -> smaller index
    # the exploration bonus shrinks as the discount shrinks: index -> mean as gamma -> 0
    assert gittins_index(2, 3, 0.01, 20) == pytest.approx(0.4, abs=1e-3)


def test_table_matches_single_calls() -> None:
    t = gittins_table(6, 0.9, horizon=30)
    assert np.isnan(t[6, 1]) and not np.isnan(t[3, 3])
    for s, f in [(0, 0), (2, 1), (0, 5), (3, 3)]:
        assert t[s, f] == pytest.approx(gittins_index(1 + s, 1 + f, 0.9, 30), abs=2e-6)


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError):
        gittins_index(1, 1, 1.0, 10)
    with pytest.raises(ConfigError):
        gittins_index(0, 1, 0.9, 10)


@pytest.mark.parametrize("gamma", [0.9, 0.99])
def test_calibrated_table_matches_exact_per_state_calibration(gamma: float) -> None:
    # one DP per retirement reward over the whole triangle == the per-state calibration with the same
    # (absolute) truncation level, within the certified bracket
    n = 12
    table, width = gittins_table_calibrated(n, gamma, grid=128, refine_tol=1e-7)
    assert np.nanmax(width) <= 1e-7
    for d in range(n + 1):
        s = np.arange(d + 1)
        exact = gittins_indices(1.0 + s, 1.0 + d - s, gamma, horizon=2 * n - d, tol=1e-10)
        np.testing.assert_allclose(table[s, d - s], exact, atol=0.5e-7 + 1e-9)
    assert np.isnan(table[n, 1]) and np.isnan(width[n, 1])


def test_calibrated_grid_bracket_is_certified_without_refinement() -> None:
    n = 10
    table, width = gittins_table_calibrated(n, 0.99, grid=64, refine_tol=1.0)  # interpolation only
    assert 0 < np.nanmax(width) < 1 / 64
    for d in (0, 4, 10):
        s = np.arange(d + 1)
        exact = gittins_indices(1.0 + s, 1.0 + d - s, 0.99, horizon=2 * n - d, tol=1e-10)
        assert (np.abs(table[s, d - s] - exact) <= width[s, d - s] / 2 + 1e-9).all()


def test_calibrated_table_published_values() -> None:
    # jedwards24/gittins: bmab_gi_ab(3, 2, gamma=0.8, N=20) = 0.67143994 (depth 20 below the state)
    t, _ = gittins_table_calibrated(0, 0.8, depth=20, a0=3, b0=2, grid=64, refine_tol=1e-8)
    assert abs(t[0, 0] - 0.67143994) <= 0.5e-4
    # GI(1,1) ~ 0.7029 at gamma = 0.9 (REFERENCES.md; deep truncation)
    t, _ = gittins_table_calibrated(0, 0.9, depth=150, grid=64, refine_tol=1e-8)
    assert abs(t[0, 0] - 0.7029) < 2e-4


def test_calibrated_table_arguments() -> None:
    with pytest.raises(ConfigError):
        gittins_table_calibrated(5, 1.0)
    with pytest.raises(ConfigError):
        gittins_table_calibrated(5, 0.9, grid=1)
