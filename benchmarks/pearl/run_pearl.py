"""Train PEARL from a shipped config and meta-test it at a few points of training.

Usage: python benchmarks/pearl/run_pearl.py CONFIG --seed S --iterations N --eval-at 20,40,60 --out DIR
       [--set key=value ...]
Writes DIR/<config>-s<seed>.json with the training metrics, the eval rows at each point, wall and CPU
seconds (process time of this single-threaded process) and the 1-minute load average at start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

torch.set_num_threads(1)

from fastadapt.experiment.catalog import load_all  # noqa: E402
from fastadapt.experiment.config import load_config  # noqa: E402
from fastadapt.experiment.runner import build_learner  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iterations", type=int, default=None)
    ap.add_argument("--eval-at", default="")
    ap.add_argument("--eval-seed", type=int, default=1000)
    ap.add_argument("--out", default="benchmarks/pearl/runs")
    ap.add_argument("--set", nargs="*", default=[])
    ap.add_argument("--also-stochastic", action="store_true", help="also evaluate with sampled actions")
    args = ap.parse_args()
    load_all()
    cfg = load_config(args.config, args.set, seed=args.seed)
    iters = args.iterations or cfg.train.iterations
    evals = sorted({int(x) for x in args.eval_at.split(",") if x} | {iters})
    learner = build_learner(cfg)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rec = {
        "config": cfg.name, "seed": args.seed, "overrides": args.set, "iterations": iters,
        "load_start": os.getloadavg()[0], "metrics": [], "evals": [],
    }
    w0, c0 = time.perf_counter(), time.process_time()
    train_wall = train_cpu = 0.0
    for it in range(iters):
        w, c = time.perf_counter(), time.process_time()
        m = learner.train_step(it)
        train_wall += time.perf_counter() - w
        train_cpu += time.process_time() - c
        rec["metrics"].append({"iteration": it, **m})
        if (it + 1) % 10 == 0:
            print(it + 1, {k: round(v, 3) for k, v in m.items()}, flush=True)
        if it + 1 in evals:
            w, c = time.perf_counter(), time.process_time()
            rows = learner.evaluate(cfg.eval, seed=args.eval_seed)
            stoch = None
            if args.also_stochastic:
                scfg = cfg.eval.model_copy(update={"deterministic": False})
                stoch = [r.to_json() for r in learner.evaluate(scfg, seed=args.eval_seed)]
            rec["evals"].append({
                "iteration": it + 1, "env_steps": m["env_steps"], "grad_steps": m["grad_steps"],
                "train_cpu_s": round(train_cpu, 1), "eval_wall_s": round(time.perf_counter() - w, 1),
                "eval_cpu_s": round(time.process_time() - c, 1), "rows": [r.to_json() for r in rows],
                "rows_stochastic_actions": stoch,
            })
            print("eval", it + 1, [(r.method, r.setting["context_episodes"], round(r.mean, 2)) for r in rows], flush=True)
    rec.update(
        train_wall_s=round(train_wall, 1), train_cpu_s=round(train_cpu, 1),
        total_wall_s=round(time.perf_counter() - w0, 1), total_cpu_s=round(time.process_time() - c0, 1),
        load_end=os.getloadavg()[0],
    )
    path = out / f"{cfg.name}-s{args.seed}.json"
    path.write_text(json.dumps(rec, indent=1))
    print("wrote", path)


if __name__ == "__main__":
    main()
