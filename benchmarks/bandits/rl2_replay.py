"""Replay the RL² evaluation code's own 1000 trials (diagnostic for the UCB1 k=50, n=100 cell).

The RL² baseline script (florensacc/rllab-curriculum, sandbox/rocky/neural_learner, the evaluate_*_once
functions; read via the search tool, not copied) evaluates trial ``seed`` for ``seed in range(1000)`` as:
``np.random.seed(seed)``; the arm means are ``np.random.uniform(size=(1, k))`` (MABEnv.reset_trial) and
pull ``t`` returns ``np.random.binomial(1, p[a_t])``; the same 1000 seeds are used for every method and every
grid value (tuning on the evaluation trials). UCB1 and greedy use no policy randomness, so their totals on
the paper's trials are fully determined and can be recomputed here.

Legacy ``RandomState.binomial(1, p)`` consumes exactly one double ``U`` per call and returns
``U > 1 - p`` if ``p <= 0.5`` else ``U <= p`` (checked below against the literal scalar loop), so the whole
replay is vectorised over trials with a per-trial tape ``RandomState(seed).random_sample(k + n)``.
The MT19937 ``RandomState`` here is an explicit per-trial generator used only to replay those trials; the
library itself never uses it.

Usage: python benchmarks/bandits/rl2_replay.py [--cells 50x100,...] [--trials 1000] > OUT.md
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from fastadapt.baselines.bandits import PARAM_GRIDS, ucb_choose


def tapes(arms: int, pulls: int, trials: int, first_seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-trial (means [trials, arms], uniforms [trials, pulls]) of the RL² code's trials."""
    means = np.empty((trials, arms))
    u = np.empty((trials, pulls))
    for i in range(trials):
        x = np.random.RandomState(first_seed + i).random_sample(arms + pulls)
        means[i], u[i] = x[:arms], x[arms:]
    return means, u


def replay(means: np.ndarray, u: np.ndarray, c: float, variant: str = "rl2") -> np.ndarray:
    """Totals ``[trials]`` of UCB1 (``c``; c = 0 is greedy) on the replayed trials."""
    trials, arms = means.shape
    s = np.zeros((trials, arms))
    m = np.zeros((trials, arms))
    tot = np.zeros(trials)
    rows = np.arange(trials)
    for t in range(u.shape[1]):
        a = ucb_choose(t, s, m, c, variant)
        p = means[rows, a]
        r = np.where(p <= 0.5, u[:, t] > 1.0 - p, u[:, t] <= p).astype(np.float64)
        s[rows, a] += r
        m[rows, a] += 1.0
        tot += r
    return tot


def replay_approx_gittins(means: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Totals of the RL² script's ``GittinsBernoulli`` policy on the replayed trials (diagnostic).

    That class scores each arm with a closed-form approximation called with ``discount = 1``:
    ``mu + mu (1 - mu) / (sqrt(n (2 c + 1/n) mu (1 - mu)) + mu - 0.5)``, ``n = a + b``, ``mu = a / n``,
    ``c = ln(1 / discount) = 0`` (our re-implementation of the formula, for comparison only).
    """
    trials, arms = means.shape
    a, b = np.ones((trials, arms)), np.ones((trials, arms))
    tot = np.zeros(trials)
    rows = np.arange(trials)
    for t in range(u.shape[1]):
        n = a + b
        mu = a / n
        idx = mu + mu * (1 - mu) / (np.sqrt(n * (1.0 / n) * mu * (1 - mu)) + mu - 0.5)
        act = np.argmax(idx, axis=1)
        p = means[rows, act]
        r = np.where(p <= 0.5, u[:, t] > 1.0 - p, u[:, t] <= p)
        a[rows, act] += r
        b[rows, act] += 1.0 - r
        tot += r
    return tot


def literal_ucb(arms: int, pulls: int, seed: int, c: float) -> float:
    """The RL² code's loop, step by step with the legacy global-style stream (a private RandomState)."""
    rs = np.random.RandomState(seed)
    p = rs.uniform(size=(1, arms))[0]
    ks, ms, tot = np.ones(arms), np.full(arms, 2.0), 0.0
    for t in range(pulls):
        with np.errstate(divide="ignore", invalid="ignore"):
            idx = ks / ms + c * np.sqrt(2 * np.log(t) / ms)
        a = int(np.argmax(idx))
        r = float(rs.binomial(1, np.array([p[a]]))[0])
        ks[a] += r
        ms[a] += 1
        tot += r
    return tot


def literal_stochastic(policy: str, arms: int, pulls: int, trials: int, first_seed: int = 0) -> np.ndarray:
    """Totals of the RL² script's ``random`` / ``thompson`` loops on trials ``first_seed ...``.

    These policies draw from the same per-trial stream as the rewards (``np.random.choice`` /
    ``np.random.beta`` interleaved with ``np.random.binomial``), so they are replayed call by call.
    """
    tot = np.zeros(trials)
    for i in range(trials):
        rs = np.random.RandomState(first_seed + i)
        p = rs.uniform(size=(1, arms))[0]
        al, be = np.ones(arms), np.ones(arms)
        for _ in range(pulls):
            a = int(rs.choice(np.arange(arms))) if policy == "random" else int(np.argmax(rs.beta(al, be)))
            r = int(rs.binomial(1, np.array([p[a]]))[0])
            al[a] += r
            be[a] += 1 - r
            tot[i] += r
    return tot


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", default="5x10,10x10,50x10,5x100,10x100,50x100,5x500,10x500,50x500")
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--variants", default="rl2")
    ap.add_argument("--json", default=None)
    ap.add_argument("--first-seed", type=int, default=0, help="0 = the paper's trials; other = fresh trials")
    ap.add_argument("--skip-ucb", action="store_true", help="skip the UCB1/greedy table")
    ap.add_argument("--stochastic", action="store_true", help="also replay random and Thompson call by call")
    ap.add_argument("--approx-gittins", action="store_true", help="also replay the script's approximate Gittins")
    ap.add_argument("--grid", default=None, help="comma-separated c values (default: the RL² grid 0..1)")
    args = ap.parse_args()
    from fastadapt.bench.bandits import _PAPER_COLUMNS, _PAPER_VALUES

    t0 = time.perf_counter()
    # 1. the vectorised replay equals the literal scalar loop (exact totals) on a few trials
    means, u = tapes(7, 40, 30)
    for c in (0.0, 0.2, 1.0):
        lit = [literal_ucb(7, 40, i, c) for i in range(30)]
        assert np.array_equal(replay(means, u, c), lit), c
    print("check: vectorised replay == literal RL² loop on 30 trials x 3 values of c (exact totals)\n")
    grid = tuple(float(c) for c in args.grid.split(",")) if args.grid else PARAM_GRIDS["ucb1"][1]
    out = []
    cells = [] if args.skip_ucb else args.cells.split(",")
    if cells:
        print("| k, n | variant | best c (tuned on these trials) | UCB1 ± se | paper UCB1 | z | greedy ± se | "
              "paper greedy | z |")
        print("|---|---|---|---|---|---|---|---|---|")
    for cell in cells:
        k, n = map(int, cell.split("x"))
        means, u = tapes(k, n, args.trials, args.first_seed)
        paper = dict(zip(_PAPER_COLUMNS, _PAPER_VALUES[(n, k)]))
        for variant in args.variants.split(","):
            res = {}
            for c in grid:
                x = replay(means, u, c, variant)
                res[c] = (float(x.mean()), float(x.std() / math.sqrt(len(x) - 1)))
            best = max(grid, key=lambda c: res[c][0])
            mu, se = res[best]
            g_mu, g_se = res.get(0.0, (math.nan, math.nan))
            out.append({"arms": k, "pulls": n, "variant": variant, "best_c": best, "ucb1": res[best],
                        "greedy": res.get(0.0), "all": {str(c): v for c, v in res.items()}})
            print(f"| {k}, {n} | {variant} | {best} | {mu:.2f} ± {se:.2f} | {paper['ucb1']} | "
                  f"{(mu - paper['ucb1']) / se:+.2f} | {g_mu:.2f} ± {g_se:.2f} | {paper['greedy']} | "
                  f"{(g_mu - paper['greedy']) / g_se:+.2f} |", flush=True)
    if args.stochastic:
        print("\n| k, n | random (literal replay) ± se | paper | z | thompson (literal replay) ± se | paper | z |")
        print("|---|---|---|---|---|---|---|")
        for cell in args.cells.split(","):
            k, n = map(int, cell.split("x"))
            ref = dict(zip(_PAPER_COLUMNS, _PAPER_VALUES[(n, k)]))
            line = f"| {k}, {n} |"
            for pol in ("random", "thompson"):
                x = literal_stochastic(pol, k, n, args.trials, args.first_seed)
                mu, se = float(x.mean()), float(x.std() / math.sqrt(len(x) - 1))
                line += f" {mu:.2f} ± {se:.2f} | {ref[pol]} | {(mu - ref[pol]) / se:+.2f} |"
                out.append({"arms": k, "pulls": n, "policy": pol, "mean": mu, "se": se})
            print(line, flush=True)
    if args.approx_gittins:
        print("\n| k, n | RL² script's approximate 'Gittins' (discount 1) ± se | paper Gittins | z |")
        print("|---|---|---|---|")
        for cell in args.cells.split(","):
            k, n = map(int, cell.split("x"))
            means, u = tapes(k, n, args.trials, args.first_seed)
            x = replay_approx_gittins(means, u)
            mu, se = float(x.mean()), float(x.std() / math.sqrt(len(x) - 1))
            ref = dict(zip(_PAPER_COLUMNS, _PAPER_VALUES[(n, k)]))["gittins"]
            print(f"| {k}, {n} | {mu:.2f} ± {se:.2f} | {ref} | {(mu - ref) / se:+.2f} |")
    print(f"\ntrials: RandomState seeds {args.first_seed}..{args.first_seed + args.trials - 1}")
    print(f"wall {time.perf_counter() - t0:.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"trials": args.trials, "rows": out}, f, indent=1)


if __name__ == "__main__":
    main()
