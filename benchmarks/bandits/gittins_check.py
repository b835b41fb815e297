"""Check of the fast Gittins calibration (`gittins_table_calibrated`) used by the bandit benchmark.

1. Against the exact per-state calibration (bisection to 1e-10 with a separate DP per state, the
   same absolute truncation level 2n) for n = 40: largest error vs the certified bracket half-width.
2. Policy level, n = 100: the Gittins policy with the benchmark's table (grid 1024, refinement to
   5e-4) and with a table refined to 1e-8 play the same 1000 evaluation trials (seed 0) for k = 5, 10, 50;
   prints how many trials end with a different total.

Usage: python benchmarks/bandits/gittins_check.py > benchmarks/bandits/gittins-check.md
"""

from __future__ import annotations

import time

import numpy as np

from fastadapt.baselines.bandits import GITTINS_GRID, GITTINS_REFINE_TOL, _trials
from fastadapt.baselines.gittins import gittins_indices, gittins_table_calibrated


def play(table: np.ndarray, arms: int, pulls: int) -> np.ndarray:
    means, u = _trials(arms, pulls, 1000, 0, "test")
    trials = means.shape[0]
    s = np.zeros((trials, arms), dtype=np.int64)
    m = np.zeros((trials, arms), dtype=np.int64)
    tot = np.zeros(trials)
    rows = np.arange(trials)
    for t in range(pulls):
        a = np.argmax(table[s, m - s], axis=1)
        r = u[:, t] < means[rows, a]
        s[rows, a] += r
        m[rows, a] += 1
        tot += r
    return tot


def main() -> None:
    print("## 1. fast calibration vs exact per-state calibration (n = 40, truncation level 80)\n")
    print("| discount | max abs error | max certified half-width | error <= half-width | cpu fast (s) | cpu exact (s) |")
    print("|---|---|---|---|---|---|")
    n = 40
    for gamma in (0.9, 0.99, 0.999, 0.9999):
        t0 = time.process_time()
        tab, wid = gittins_table_calibrated(n, gamma, grid=GITTINS_GRID, refine_tol=GITTINS_REFINE_TOL)
        t1 = time.process_time()
        err, ok = 0.0, True
        for d in range(n + 1):
            s = np.arange(d + 1)
            ex = gittins_indices(1.0 + s, 1.0 + d - s, gamma, horizon=2 * n - d, tol=1e-10)
            e = np.abs(ex - tab[s, d - s])
            err = max(err, float(e.max()))
            ok = ok and bool((e <= wid[s, d - s] / 2 + 1e-9).all())
        t2 = time.process_time()
        print(f"| {gamma} | {err:.2e} | {np.nanmax(wid) / 2:.2e} | {ok} | {t1 - t0:.2f} | {t2 - t1:.2f} |", flush=True)
    print("\n## 2. policy with the benchmark table vs a table refined to 1e-8 (n = 100, discount 0.99)\n")
    t0 = time.process_time()
    fast, wf = gittins_table_calibrated(100, 0.99, grid=GITTINS_GRID, refine_tol=GITTINS_REFINE_TOL)
    t1 = time.process_time()
    fine, wfine = gittins_table_calibrated(100, 0.99, grid=GITTINS_GRID, refine_tol=1e-8)
    t2 = time.process_time()
    print(f"benchmark table: max width {np.nanmax(wf):.1e}, {t1 - t0:.2f} s CPU; refined table: max width "
          f"{np.nanmax(wfine):.1e}, {t2 - t1:.2f} s CPU; max |difference| {np.nanmax(np.abs(fast - fine)):.1e}\n")
    print("| k | mean total (benchmark table) | mean total (refined) | trials with a different total |")
    print("|---|---|---|---|")
    for k in (5, 10, 50):
        a, b = play(fast, k, 100), play(fine, k, 100)
        print(f"| {k} | {a.mean():.3f} | {b.mean():.3f} | {(a != b).sum()} |", flush=True)
    print("\n## 3. cost of the n = 500 tables (one discount each; truncation level 1000, 125,751 states)\n")
    print("| discount | cpu (s) | max certified half-width |")
    print("|---|---|---|")
    for gamma in (0.9, 0.9999):
        t0 = time.process_time()
        _, w = gittins_table_calibrated(500, gamma, grid=GITTINS_GRID, refine_tol=GITTINS_REFINE_TOL)
        print(f"| {gamma} | {time.process_time() - t0:.1f} | {np.nanmax(w) / 2:.1e} |", flush=True)


if __name__ == "__main__":
    main()
