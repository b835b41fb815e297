"""Train RL² on one setting (bandit arms/pulls or tabular-MDP episodes) and evaluate it on held-out tasks.

Writes ``<out>/<tag>.json`` with the eval rows (greedy and sampled actions), the training curve, wall and
CPU time and the machine load. Example::

    nice -n 10 .venv/bin/python benchmarks/rl2/run_rl2.py --task bandit --arms 5 --pulls 10 --seed 0 \
        --iterations 150 --eval-trials 20000 --out benchmarks/rl2/results
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from fastadapt.algos.metarl.rl2 import RL2, RL2Config, RL2EvalConfig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", choices=["bandit", "tabular-mdp"], default="bandit")
    ap.add_argument("--arms", type=int, default=5)
    ap.add_argument("--pulls", type=int, default=10)
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iterations", type=int, default=150)
    ap.add_argument("--eval-trials", type=int, default=20000)
    ap.add_argument("--eval-batch", type=int, default=5000)
    ap.add_argument("--algo", default="{}", help="JSON dict of RL2Config overrides")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/rl2/results")
    ap.add_argument("--tag", default=None)
    ap.add_argument("--deadline-unix", type=float, default=None,
                    help="stop training early at this wall-clock time (then evaluate); recorded in the JSON")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.task == "bandit":
        from fastadapt.tasks.rl.bandit import BanditDistribution

        dist = BanditDistribution(args.arms, args.pulls)
        tag = args.tag or f"bandit-k{args.arms}-n{args.pulls}-s{args.seed}"
    else:
        from fastadapt.tasks.rl.tabular_mdp import TabularMDPDistribution

        dist = TabularMDPDistribution(episodes=args.episodes)
        tag = args.tag or f"mdp-n{args.episodes}-s{args.seed}"
    algo = json.loads(args.algo)
    cfg = RL2Config(**algo)
    learner = RL2(cfg, dist, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    curve = []
    stopped_early = False
    w0, c0 = time.perf_counter(), time.process_time()
    for it in range(1, args.iterations + 1):
        if args.deadline_unix is not None and time.time() > args.deadline_unix:
            stopped_early = True
            break
        m = learner.train_step(it)
        curve.append({"iteration": it, **m, "wall_s": round(time.perf_counter() - w0, 2),
                      "cpu_s": round(time.process_time() - c0, 2)})
        if it % 10 == 0 or it == args.iterations:
            print(tag, it, {k: round(v, 4) for k, v in m.items()}, flush=True)
    train_wall, train_cpu = time.perf_counter() - w0, time.process_time() - c0
    rows = []
    for greedy in (True, False):
        e0 = time.perf_counter()
        row = learner.evaluate(RL2EvalConfig(trials=args.eval_trials, batch_trials=args.eval_batch,
                                             greedy=greedy), seed=10_000 + args.seed)[0]
        d = row.to_json()
        d["method"] = "rl2-greedy" if greedy else "rl2-sampled"
        d["eval_wall_s"] = round(time.perf_counter() - e0, 2)
        rows.append(d)
        print(tag, d, flush=True)
    result = {
        "tag": tag,
        "task": args.task,
        "seed": args.seed,
        "iterations": len(curve),
        "planned_iterations": args.iterations,
        "stopped_early_at_deadline": stopped_early,
        "algo": cfg.model_dump(),
        "train_wall_s": round(train_wall, 1),
        "train_cpu_s": round(train_cpu, 1),
        "threads": args.threads,
        "loadavg_end": os.getloadavg(),
        "rows": rows,
        "curve": curve,
    }
    (out / f"{tag}.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
